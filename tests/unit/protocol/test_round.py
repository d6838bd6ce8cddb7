"""The timed round's rules, driven through the real state machines with bytes."""

from __future__ import annotations

import os

import pytest
from conftest import UNIX_NS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner, sha256
from geoattest.errors import ConfigError, Reason, RoundError, WireError
from geoattest.protocol.round import (
    MAX_EXCHANGES,
    AgentRound,
    AgentRoundState,
    LandmarkRound,
    LandmarkRoundState,
    Responder,
    RoundSecrets,
    answer,
    challenge_head,
    commitment,
    decode_datagram,
    response_head,
)
from geoattest.v1 import round_pb2
from geoattest.wire.envelope import PayloadType, open_envelope


def make_pair(
    device: KeySigner,
    landmark: KeySigner,
    exchanges: int = 4,
    secret: bytes | None = None,
    responder: Responder | None = None,
) -> tuple[AgentRound, LandmarkRound, bytes]:
    secret = secret or os.urandom(32)
    agent = AgentRound(
        "dev-1",
        "lm-1",
        landmark.verifying_key,
        device,
        secret=secret,
        exchanges=exchanges,
        responder=responder,
    )
    lm = LandmarkRound(
        "lm-1",
        landmark,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    return agent, lm, secret


def kind(datagram: bytes) -> str:
    return decode_datagram(datagram).WhichOneof("kind") or ""


def test_honest_round_yields_receipt_the_agent_and_anyone_can_check(run_round, landmark_signer):
    run = run_round(exchanges=8)
    assert run.agent.state is AgentRoundState.DONE
    assert run.landmark.state is LandmarkRoundState.SIGNED
    assert run.receipt is not None
    envelope = decode_datagram(run.receipt).receipt
    payload = open_envelope(envelope, PayloadType.TIMING_RECEIPT, landmark_signer.verifying_key)
    receipt = round_pb2.TimingReceipt.FromString(payload)
    assert receipt.device_id == "dev-1"
    assert receipt.exchanges == 8
    assert receipt.transcript_digest == sha256(receipt.transcript.payload)
    assert commitment(receipt.secret) == run.agent.commit


def test_rtt_is_the_minimum_over_exchanges_on_the_landmark_clock(run_round):
    readings = iter([100, 900, 1200, 1250, 2250, 3000])
    run = run_round(exchanges=4, clock=lambda: next(readings))
    assert [e.rtt_ns for e in run.landmark.timed] == [800, 300, 50, 1000]
    receipt = round_pb2.TimingReceipt.FromString(decode_datagram(run.receipt).receipt.payload)
    assert receipt.rtt_min_ns == 50


def test_secret_is_never_sent_before_the_last_challenge_is_answered(device_signer, landmark_signer):
    agent, lm, secret = make_pair(device_signer, landmark_signer, exchanges=3)
    sent = [agent.open()]
    to_agent = lm.next_challenge(1)
    for t in range(3):
        reply = agent.receive(to_agent)
        assert reply is not None
        sent.append(reply)
        if kind(reply) == "close":
            assert t == 2 or lm.state is LandmarkRoundState.AWAITING_CLOSE
            break
        to_agent = lm.receive(reply, 10 + t, UNIX_NS)
    before_close = [d for d in sent if kind(d) != "close"]
    assert len(before_close) == 4  # open + 3 responses
    assert all(secret not in d for d in before_close)


def test_complete_listing_too_few_challenges_does_not_reveal(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=3)
    challenge = lm.next_challenge(1)
    agent.receive(challenge)
    early = round_pb2.Datagram(
        complete=round_pb2.Complete(
            round_id=lm.round_id, challenges=[decode_datagram(challenge).challenge.challenge]
        )
    ).SerializeToString()
    with pytest.raises(RoundError) as err:
        agent.receive(early)
    assert err.value.reason is Reason.ROUND_UNKNOWN_CHALLENGE
    assert agent.state is AgentRoundState.ANSWERING


def test_complete_naming_a_challenge_never_answered_does_not_reveal(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    agent.receive(lm.next_challenge(1))
    forged = round_pb2.Datagram(
        complete=round_pb2.Complete(round_id=lm.round_id, challenges=[os.urandom(16)])
    ).SerializeToString()
    with pytest.raises(RoundError) as err:
        agent.receive(forged)
    assert err.value.reason is Reason.ROUND_UNKNOWN_CHALLENGE
    assert agent.state is AgentRoundState.ANSWERING


def test_no_challenge_is_answered_after_the_reveal(run_round):
    run = run_round(exchanges=2)
    late = round_pb2.Datagram(
        challenge=round_pb2.Challenge(
            round_id=run.landmark.round_id, index=99, challenge=os.urandom(16)
        )
    ).SerializeToString()
    with pytest.raises(RoundError) as err:
        run.agent.receive(late)
    assert err.value.reason is Reason.ROUND_SECRET_REVEALED


@pytest.mark.parametrize("exchanges", [0, MAX_EXCHANGES + 1])
def test_an_agent_set_up_for_an_impossible_round_is_a_config_error(device_signer, exchanges):
    """The number of exchanges is the agent's own setting: a bad one is not evidence."""
    with pytest.raises(ConfigError, match="exchanges"):
        AgentRound(
            "dev-1", "lm-1", device_signer.verifying_key, device_signer, secret=os.urandom(32),
            exchanges=exchanges,
        )  # fmt: skip


def test_round_secrets_refuse_a_repeated_secret():
    secrets = RoundSecrets(lambda n: b"\x07" * n)
    secrets.draw()
    with pytest.raises(RoundError) as err:
        secrets.draw()
    assert err.value.reason is Reason.ROUND_SECRET_REUSED


def test_round_secrets_are_fresh_each_round():
    secrets = RoundSecrets(os.urandom)
    drawn = {secrets.draw() for _ in range(100)}
    assert len(drawn) == 100


def drive_to_close(agent: AgentRound, lm: LandmarkRound) -> round_pb2.Close:
    to_agent: bytes | None = lm.next_challenge(1)
    t = 2
    while True:
        assert to_agent is not None
        reply = agent.receive(to_agent)
        assert reply is not None
        if kind(reply) == "close":
            return decode_datagram(reply).close
        to_agent = lm.receive(reply, t, UNIX_NS)
        t += 1


def test_injected_wrong_answer_voids_the_round_and_nothing_is_signed(
    device_signer, landmark_signer
):
    """An on-path attacker answers first with a guess: the RTT it shortened never counts."""
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=2)
    first = lm.next_challenge(1)
    honest = agent.receive(first)
    index = decode_datagram(first).challenge.index
    forged = round_pb2.Datagram(
        response=round_pb2.Response(round_id=lm.round_id, index=index, answer=b"\0" * 32)
    ).SerializeToString()
    second = lm.receive(forged, 2, UNIX_NS)
    with pytest.raises(RoundError):
        lm.receive(honest, 3, UNIX_NS)  # the real answer arrives after the forgery
    complete = lm.receive(agent.receive(second), 5, UNIX_NS)
    close = agent.receive(complete)
    reply = lm.receive(close, 9, UNIX_NS)
    assert kind(reply) == "abort"
    assert lm.state is LandmarkRoundState.FAILED
    assert lm.failure is Reason.ROUND_BAD_RESPONSE
    assert lm.receipt is None


def test_wrong_reveal_voids_the_round(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=2)
    close = drive_to_close(agent, lm)
    close.secret = os.urandom(32)
    reply = lm.receive(round_pb2.Datagram(close=close).SerializeToString(), 9, UNIX_NS)
    assert kind(reply) == "abort"
    assert lm.failure is Reason.ROUND_BAD_COMMIT
    assert lm.receipt is None


def test_transcript_that_differs_from_the_round_voids_it(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=2)
    close = drive_to_close(agent, lm)
    transcript = round_pb2.RoundTranscript.FromString(close.transcript.payload)
    transcript.device_id = "dev-2"
    close.transcript.payload = transcript.SerializeToString()
    reply = lm.receive(round_pb2.Datagram(close=close).SerializeToString(), 9, UNIX_NS)
    assert kind(reply) == "abort"
    assert lm.failure is Reason.TRANSCRIPT_MISMATCH


def test_lost_challenge_is_replaced_by_a_fresh_one_and_a_late_answer_is_ignored(
    device_signer, landmark_signer
):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    first = lm.next_challenge(1_000)
    assert lm.retransmit_due(1_000 + 1) is None
    second = lm.retransmit_due(1_000 + 600_000_000)
    assert second is not None
    c1, c2 = decode_datagram(first).challenge, decode_datagram(second).challenge
    assert c1.index != c2.index
    assert c1.challenge != c2.challenge
    late = agent.receive(first)  # the first challenge was only delayed, not lost
    with pytest.raises(RoundError) as err:
        lm.receive(late, 600_000_100, UNIX_NS)
    assert err.value.reason is Reason.ROUND_UNEXPECTED_MESSAGE
    assert lm.timed == []
    complete = lm.receive(agent.receive(second), 600_000_500, UNIX_NS)
    assert lm.timed[0].rtt_ns == 600_000_500 - (1_000 + 600_000_000)
    assert kind(complete) == "complete"


def test_duplicated_datagrams_change_nothing(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=2)
    challenge = lm.next_challenge(1)
    response = agent.receive(challenge)
    assert agent.receive(challenge) == response  # duplicate challenge: same answer
    nxt = lm.receive(response, 5, UNIX_NS)
    with pytest.raises(RoundError):
        lm.receive(response, 6, UNIX_NS)  # duplicate response: refused, not re-timed
    assert len(lm.timed) == 1
    complete = lm.receive(agent.receive(nxt), 8, UNIX_NS)
    close = agent.receive(complete)
    assert agent.receive(complete) == close  # lost Close: the same bytes again
    receipt = lm.receive(close, 9, UNIX_NS)
    assert lm.receive(close, 10, UNIX_NS) == receipt  # lost receipt: the same receipt again
    assert agent.receive(receipt) is None
    assert agent.state is AgentRoundState.DONE


def test_lost_complete_is_sent_again(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    complete = lm.receive(agent.receive(lm.next_challenge(1)), 2, UNIX_NS)
    assert lm.retransmit_due(3) is None
    assert lm.retransmit_due(2 + 600_000_000) == complete


def test_unanswered_round_fails_after_bounded_attempts(device_signer, landmark_signer):
    _, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    lm.next_challenge(0)
    now, last = 0, None
    while lm.state is LandmarkRoundState.TIMING:
        now += 600_000_000
        last = lm.retransmit_due(now)
    assert last is not None
    assert kind(last) == "abort"
    assert lm.failure is Reason.ROUND_TIMEOUT


def test_receipt_for_another_round_is_refused_by_the_agent(run_round, device_signer):
    other = run_round(device_id="dev-1")
    agent, lm, _ = make_pair(device_signer, KeySigner.generate(), exchanges=1)
    close = drive_to_close(agent, lm)
    assert close.round_id
    with pytest.raises(RoundError):
        agent.receive(other.receipt)
    assert agent.state is AgentRoundState.REVEALED


def test_start_timer_only_moves_later(device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    challenge = lm.next_challenge(100)
    lm.start_timer(50)
    lm.start_timer(140)
    lm.receive(agent.receive(challenge), 200, UNIX_NS)
    assert lm.timed[0].rtt_ns == 60


def test_answer_is_sha256_of_secret_and_challenge():
    secret, challenge = os.urandom(32), os.urandom(16)
    assert answer(secret, challenge) == sha256(secret + challenge)
    assert len(secret + challenge) <= 55  # one SHA-256 block with padding


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_garbage_never_crashes_either_side(data, device_signer, landmark_signer):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=2)
    lm.next_challenge(1)
    for party in ("agent", "landmark"):
        try:
            if party == "agent":
                agent.receive(data)
            else:
                lm.receive(data, 5, UNIX_NS)
        except (WireError, RoundError):
            pass
    assert lm.timed == [] or all(len(e.answer) == 32 for e in lm.timed)
    assert lm.receipt is None
    assert agent.state in (AgentRoundState.OPENED, AgentRoundState.FAILED)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0, max_value=10_000), flip=st.integers(1, 255))
def test_mutated_datagrams_never_yield_a_receipt_for_a_wrong_round(
    position, flip, device_signer, landmark_signer
):
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=1)
    response = agent.receive(lm.next_challenge(1))
    complete = lm.receive(response, 2, UNIX_NS)
    close = bytearray(agent.receive(complete))
    close[position % len(close)] ^= flip
    try:
        reply = lm.receive(bytes(close), 3, UNIX_NS)
    except (WireError, RoundError):
        assert lm.receipt is None
        return
    if lm.receipt is not None:
        # The mutation hit a byte the landmark does not rely on (e.g. the device's
        # signature, which the verifier checks): the receipt still describes this round.
        receipt = round_pb2.TimingReceipt.FromString(lm.receipt.payload)
        assert receipt.round_id == lm.round_id
        assert commitment(receipt.secret) == agent.commit
    else:
        assert reply is not None
        assert kind(reply) == "abort"


INDICES = st.one_of(st.integers(min_value=0, max_value=300), st.integers(0, 2**32 - 1))
"""Every index: the one-byte ones, which the heads write from a template, and the rest."""
ROUND_IDS = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=1, max_size=200))


@given(round_id=ROUND_IDS, index=INDICES, z=st.binary(min_size=32, max_size=32))
def test_a_prebuilt_response_head_plus_the_answer_is_the_protobuf_encoding(round_id, index, z):
    expected = round_pb2.Datagram(
        response=round_pb2.Response(round_id=round_id, index=index, answer=z)
    ).SerializeToString()
    assert response_head(round_id, index) + z == expected


@given(round_id=ROUND_IDS, index=INDICES, challenge=st.binary(min_size=16, max_size=16))
def test_a_challenge_head_plus_its_random_bytes_is_the_protobuf_encoding(
    round_id, index, challenge
):
    expected = round_pb2.Datagram(
        challenge=round_pb2.Challenge(round_id=round_id, index=index, challenge=challenge)
    ).SerializeToString()
    assert challenge_head(round_id, index) + challenge == expected


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prepared=st.lists(st.booleans(), min_size=MAX_EXCHANGES, max_size=MAX_EXCHANGES))
@example(prepared=[False] * MAX_EXCHANGES)
@example(prepared=[True] * MAX_EXCHANGES)
def test_prepared_challenges_are_answered_exactly_as_decoded_ones(landmark_signer, prepared):
    """Whether the agent prepared the next challenges' bytes between exchanges or not (every
    index of the longest round, each way, is pinned), each answer is z = SHA-256(r || c) in
    the Response protobuf would build."""
    device = KeySigner.generate()
    agent, landmark, secret = make_pair(device, landmark_signer, exchanges=MAX_EXCHANGES)
    for index, prepare in enumerate(prepared):
        challenge = decode_datagram(landmark.next_challenge(index)).challenge
        reply = agent.receive(round_pb2.Datagram(challenge=challenge).SerializeToString())
        assert (
            reply
            == round_pb2.Datagram(
                response=round_pb2.Response(
                    round_id=challenge.round_id,
                    index=index,
                    answer=answer(secret, challenge.challenge),
                )
            ).SerializeToString()
        )
        if prepare:
            agent.prepare()


def test_a_prepared_challenge_is_refused_for_another_round_and_after_the_reveal(
    landmark_signer,
):
    device = KeySigner.generate()
    agent, landmark, _ = make_pair(device, landmark_signer, exchanges=2)
    to_agent = landmark.next_challenge(0)
    now = 0
    while kind(to_agent) == "challenge":
        reply = agent.receive(to_agent)
        agent.prepare()
        assert reply is not None
        other_round = round_pb2.Datagram(
            challenge=round_pb2.Challenge(
                round_id=os.urandom(16), index=1, challenge=os.urandom(16)
            )
        ).SerializeToString()
        with pytest.raises(RoundError) as refused:
            agent.receive(other_round)
        assert refused.value.reason is Reason.ROUND_UNKNOWN
        now += 10_000
        to_agent = landmark.receive(reply, now, UNIX_NS)
    assert kind(to_agent) == "complete"
    assert agent.receive(to_agent) is not None  # the Close: r is revealed
    for index in range(2, 4):  # the next indices, prepared while answering
        late = challenge_head(landmark.round_id, index) + os.urandom(16)
        with pytest.raises(RoundError) as after_reveal:
            agent.receive(late)
        assert after_reveal.value.reason is Reason.ROUND_SECRET_REVEALED


def test_a_prepared_challenge_is_refused_once_the_round_failed(landmark_signer):
    """A challenge read by its prepared head skips the round's checks: an aborted round
    drops the heads, so the same bytes are decoded and refused."""
    device = KeySigner.generate()
    agent, landmark, _ = make_pair(device, landmark_signer, exchanges=4)
    reply = agent.receive(landmark.next_challenge(0))
    agent.prepare()
    assert reply is not None
    abort = round_pb2.Datagram(
        abort=round_pb2.Abort(round_id=landmark.round_id, reason="test")
    ).SerializeToString()
    with pytest.raises(RoundError):
        agent.receive(abort)
    assert agent.state is AgentRoundState.FAILED
    prepared = challenge_head(landmark.round_id, 1) + os.urandom(16)
    with pytest.raises(RoundError) as refused:
        agent.receive(prepared)
    assert refused.value.reason is Reason.ROUND_UNEXPECTED_MESSAGE


class FailingOnce:
    """A responder whose first answer fails, as a GPU responder's may."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.calls = 0

    def answer(self, challenge: bytes) -> bytes:
        self.calls += 1
        if self.calls == 1:
            raise RoundError(Reason.MISSING_FIELD, "responder not ready")
        return answer(self.secret, challenge)


def test_a_first_answer_that_fails_leaves_the_round_unopened(landmark_signer):
    """The round id and state are taken only with an answer: after a failed first answer a
    challenge of another round opens the round, its Response headed with that round's id."""
    device = KeySigner.generate()
    secret = os.urandom(32)
    agent = AgentRound(
        "dev-1",
        "lm-1",
        landmark_signer.verifying_key,
        device,
        secret=secret,
        exchanges=2,
        responder=FailingOnce(secret),
    )
    first = round_pb2.Challenge(round_id=os.urandom(16), index=0, challenge=os.urandom(16))
    with pytest.raises(RoundError):
        agent.receive(round_pb2.Datagram(challenge=first).SerializeToString())
    assert agent.state is AgentRoundState.OPENED
    assert agent.round_id is None
    other = round_pb2.Challenge(round_id=os.urandom(16), index=0, challenge=os.urandom(16))
    reply = agent.receive(round_pb2.Datagram(challenge=other).SerializeToString())
    assert agent.round_id == other.round_id
    assert reply == response_head(other.round_id, 0) + answer(secret, other.challenge)


class Recording:
    """A responder that answers correctly and records what it was asked."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.asked: list[bytes] = []

    def answer(self, challenge: bytes) -> bytes:
        self.asked.append(challenge)
        return answer(self.secret, challenge)


def test_a_responder_answers_prepared_challenges_too(landmark_signer):
    """With the next challenges prepared between exchanges, as the driver does, every
    challenge but the first is read by its head, and each is still answered by the
    responder: the round ends with a receipt."""
    secret = os.urandom(32)
    responder = Recording(secret)
    agent, landmark, _ = make_pair(KeySigner.generate(), landmark_signer, 6, secret, responder)
    now = 0
    to_agent: bytes | None = landmark.next_challenge(now)
    while to_agent is not None:
        reply = agent.receive(to_agent)
        agent.prepare()
        if reply is None:
            break
        now += 10_000
        to_agent = landmark.receive(reply, now, UNIX_NS)
    assert agent.state is AgentRoundState.DONE
    assert responder.asked == [e.challenge for e in landmark.timed]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.sampled_from(["answer", "superseded", "wrong_length", "silence", "close", "bad_close"]),
        max_size=24,
    ),
    exchanges=st.integers(1, 4),
)
def test_a_landmark_round_awaits_an_answer_only_while_timing_and_only_the_last_challenge_s(
    device_signer, landmark_signer, steps, exchanges
):
    """``awaiting`` is what the landmark routes answers by (and what lets ``on_answer``
    skip the state check): whatever comes, it names the last challenge sent and its
    Response's head while the round is timing, and nothing once it is not."""
    agent, lm, _ = make_pair(device_signer, landmark_signer, exchanges=exchanges)
    now, sent = 0, [lm.next_challenge(0)]
    for step in steps:
        now += 1_000_000_000
        try:
            if step == "answer" and kind(sent[-1]) == "challenge":
                datagram = lm.receive(agent.receive(sent[-1]), now, UNIX_NS)
            elif step == "superseded" and len(sent) > 1 and kind(sent[-2]) == "challenge":
                index = decode_datagram(sent[-2]).challenge.index
                datagram = lm.on_answer(index, bytes(32), now)
            elif step == "wrong_length" and lm.awaiting is not None:
                datagram = lm.on_answer(lm.awaiting[0], bytes(31), now)
            elif step == "silence":
                datagram = lm.retransmit_due(now)
            elif step in ("close", "bad_close") and kind(sent[-1]) == "complete":
                close = agent.receive(sent[-1])
                assert close is not None
                if step == "bad_close":
                    close = close[:-1] + bytes((close[-1] ^ 1,))
                datagram = lm.receive(close, now, UNIX_NS)
            else:
                continue
        except (RoundError, WireError):
            datagram = None
        if datagram is not None:
            sent.append(datagram)
        if lm.state is LandmarkRoundState.TIMING:
            message = decode_datagram(sent[-1]).challenge
            assert lm.awaiting == (message.index, response_head(lm.round_id, message.index))
        else:
            assert lm.awaiting is None
