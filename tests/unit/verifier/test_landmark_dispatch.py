"""The landmark's rounds table with made-up clocks: limits, routing, expiry, counters."""

from __future__ import annotations

import os
import random

import pytest
from conftest import UNIX_NS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.attacks.junk import JUNK_KINDS, junk_datagram
from geoattest.crypto import KeySigner
from geoattest.protocol.round import AgentRound, AgentRoundState, decode_datagram, response_head
from geoattest.verifier.landmark.clock import Bracket
from geoattest.verifier.landmark.dispatch import Dispatcher, Limits, Outgoing, TokenBuckets

AGENT = ("127.0.0.1", 40000)
MS = 1_000_000


def at(now_ns: int) -> Bracket:
    return Bracket(now_ns, UNIX_NS + now_ns, now_ns)


def dispatcher(landmark_signer: KeySigner, **limits: int) -> Dispatcher:
    return Dispatcher("lm-1", landmark_signer, Limits(**limits), os.urandom)  # type: ignore[arg-type]


def agent(device: KeySigner, landmark: KeySigner, exchanges: int = 2) -> AgentRound:
    return AgentRound(
        "dev-1", "lm-1", landmark.verifying_key, device, secret=os.urandom(32), exchanges=exchanges
    )


def opened(d: Dispatcher, a: AgentRound, *, source=AGENT, now_ns: int = 0) -> Outgoing | None:
    """Open a round as an agent does: the cookie-less Open, then the Open with the
    cookie the Retry carried; what the landmark answers to that."""
    retry = d.handle(a.open(), source, at(now_ns), None)
    if retry is None:
        return None
    again = a.receive(retry.datagram)
    assert again is not None
    return d.handle(again, source, at(now_ns), None)


def drive(d: Dispatcher, a: AgentRound, *, source=AGENT, start_ns: int = 0) -> None:
    """Run a round through the table, each exchange 10 us, the timer started at each send."""
    now = start_ns
    out = opened(d, a, source=source, now_ns=now)
    while out is not None:
        if out.timed is not None:
            out.timed.start_timer(at(now))
        now += 10_000
        reply = a.receive(out.datagram)
        if reply is None:
            return
        out = d.handle(reply, source, at(now), None)


def test_an_honest_round_is_signed_and_counted(device_signer, landmark_signer):
    d, a = dispatcher(landmark_signer), agent(device_signer, landmark_signer)
    drive(d, a)
    assert a.state is AgentRoundState.DONE
    c = d.counters
    assert (c.rounds_opened, c.receipts_signed, c.exchanges_timed, c.rounds_failed) == (1, 1, 2, 0)
    assert d.open_rounds == 0  # finished rounds no longer count against the limits


def test_a_datagram_is_counted_received_only_once_its_outcome_is_counted(
    device_signer, landmark_signer
):
    """Another thread reads the counters while the server thread handles a datagram: once
    it sees the datagram received, it sees what came of it (the tests' and the operator's
    "settled" reads rely on this). Inside the hook the finished round runs, the Close that
    signed the receipt is counted signed but not yet received."""
    seen = []

    def hook(_round: object) -> None:
        c = d.counters
        seen.append((c.datagrams_received, c.receipts_signed))

    d = Dispatcher("lm-1", landmark_signer, Limits(), os.urandom, on_finished=hook)
    drive(d, agent(device_signer, landmark_signer))
    assert seen == [(d.counters.datagrams_received - 1, 1)]


def test_datagrams_for_a_round_from_another_address_are_refused(device_signer, landmark_signer):
    d, a = dispatcher(landmark_signer), agent(device_signer, landmark_signer)
    challenge = opened(d, a)
    assert challenge is not None
    response = a.receive(challenge.datagram)
    assert response is not None
    assert d.handle(response, ("127.0.0.2", 40000), at(10_000), None) is None
    assert d.counters.datagrams_rejected == 1
    assert d.counters.exchanges_timed == 0


def test_opens_beyond_the_per_source_share_are_refused(device_signer, landmark_signer):
    d = dispatcher(landmark_signer, max_rounds_per_source=2)
    for _ in range(3):
        opened(d, agent(device_signer, landmark_signer))
    assert (d.counters.rounds_opened, d.counters.rounds_refused) == (2, 1)
    opened(d, agent(device_signer, landmark_signer), source=("10.0.0.9", 1))
    assert d.counters.rounds_opened == 3


def test_an_open_asking_for_more_exchanges_than_allowed_is_refused(device_signer, landmark_signer):
    d = dispatcher(landmark_signer, max_exchanges=4)
    assert d.handle(agent(device_signer, landmark_signer, 5).open(), AGENT, at(0), None) is None
    assert (d.counters.rounds_opened, d.counters.datagrams_rejected) == (0, 1)


def test_a_silent_agent_gets_fresh_challenges_then_the_round_fails(device_signer, landmark_signer):
    d = dispatcher(landmark_signer, challenge_timeout_ns=100 * MS)
    first = opened(d, agent(device_signer, landmark_signer))
    assert first is not None
    sent = [first.datagram]
    for step in range(1, 6):
        sent += [o.datagram for o in d.sweep(step * 100 * MS)]
    kinds = [decode_datagram(s).WhichOneof("kind") for s in sent]
    assert kinds == ["challenge"] * 4 + ["abort"]
    assert len({decode_datagram(s).challenge.challenge for s in sent[:4]}) == 4  # never re-sent
    assert (d.counters.rounds_failed, d.open_rounds) == (1, 0)


def test_rounds_past_their_lifetime_expire(device_signer, landmark_signer):
    d = dispatcher(landmark_signer, round_ttl_ns=50 * MS, challenge_timeout_ns=10**12)
    opened(d, agent(device_signer, landmark_signer))
    assert d.sweep(49 * MS) == []
    assert d.open_rounds == 1
    d.sweep(50 * MS)
    assert (d.counters.rounds_expired, d.open_rounds) == (1, 0)


def test_a_repeated_close_gets_the_same_receipt_until_the_round_is_forgotten(
    device_signer, landmark_signer
):
    d, a = dispatcher(landmark_signer, linger_ns=1000 * MS), agent(device_signer, landmark_signer)
    now = 0
    out = opened(d, a)
    close = receipt = None
    while out is not None:
        reply = a.receive(out.datagram)
        if reply is None:
            receipt = out.datagram
            break
        if decode_datagram(reply).WhichOneof("kind") == "close":
            close = reply
        now += 10_000
        out = d.handle(reply, AGENT, at(now), None)
    assert close is not None
    assert receipt is not None
    again = d.handle(close, AGENT, at(500 * MS), None)
    assert again is not None
    assert again.datagram == receipt
    assert d.counters.receipts_signed == 1
    d.sweep(now + 1000 * MS)
    assert d.handle(close, AGENT, at(now + 1001 * MS), None) is None


def test_token_bucket_allows_the_burst_then_the_rate():
    buckets = TokenBuckets(rate_per_s=10, burst=3, max_sources=2)
    assert [buckets.allow("a", 0) for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("a", 100 * MS)  # one token back after 100 ms at 10/s
    assert not buckets.allow("a", 100 * MS)


def test_token_buckets_stay_bounded_forgetting_the_least_recent_source():
    buckets = TokenBuckets(rate_per_s=1e-9, burst=1, max_sources=2)
    assert buckets.allow("a", 0)
    assert not buckets.allow("a", 0)
    buckets.allow("b", 0)
    buckets.allow("c", 0)  # evicts a
    assert buckets.allow("a", 0)


@pytest.mark.parametrize("data", [b"", b"\xff" * 10, b"\x00" * 2049])
def test_garbage_is_counted_malformed_and_changes_nothing(landmark_signer, data):
    d = dispatcher(landmark_signer)
    assert d.handle(data, AGENT, at(0), None) is None
    assert d.counters.datagrams_malformed + d.counters.datagrams_rejected == 1  # b"": no kind
    assert (d.counters.rounds_opened, d.open_rounds) == (0, 0)


def test_an_open_without_a_valid_cookie_gets_a_retry_and_leaves_no_state(
    device_signer, landmark_signer
):
    d, a = dispatcher(landmark_signer), agent(device_signer, landmark_signer)
    retry = d.handle(a.open(), AGENT, at(0), None)
    assert retry is not None
    assert decode_datagram(retry.datagram).WhichOneof("kind") == "retry"
    assert len(retry.datagram) < len(a.open())  # nothing to amplify
    with_cookie = a.receive(retry.datagram)
    assert with_cookie is not None
    elsewhere = ("127.0.0.1", 40001)  # the cookie was issued to AGENT only
    again = d.handle(with_cookie, elsewhere, at(0), None)
    assert again is not None
    assert decode_datagram(again.datagram).WhichOneof("kind") == "retry"
    expired = d.handle(with_cookie, AGENT, at(Limits().cookie_epoch_ns * 2), None)
    assert expired is not None
    assert decode_datagram(expired.datagram).WhichOneof("kind") == "retry"
    assert (d.counters.opens_retried, d.counters.rounds_opened, d.open_rounds) == (3, 0, 0)


def test_a_cookie_opens_later_rounds_of_its_device_from_its_address_only(
    device_signer, landmark_signer
):
    """A cookie proves its source address: it opens the device's next rounds from there
    (another commit, other adaptive asks) while its epoch lasts, and nothing else."""
    d, first = dispatcher(landmark_signer), agent(device_signer, landmark_signer)
    retry = d.handle(first.open(), AGENT, at(0), None)
    assert retry is not None
    first.receive(retry.datagram)
    later = AgentRound(
        "dev-1",
        "lm-1",
        landmark_signer.verifying_key,
        device_signer,
        secret=os.urandom(32),
        exchanges=4,
        max_exchanges=8,
        extend_above_ns=20_000,
    )
    later.cookie = first.cookie
    opened_at_once = d.handle(later.open(), AGENT, at(MS), None)
    assert opened_at_once is not None
    assert decode_datagram(opened_at_once.datagram).WhichOneof("kind") == "challenge"
    other_device = AgentRound(
        "dev-2",
        "lm-1",
        landmark_signer.verifying_key,
        device_signer,
        secret=os.urandom(32),
        exchanges=2,
    )
    other_device.cookie = first.cookie
    for datagram, source in [(other_device.open(), AGENT), (later.open(), ("127.0.0.1", 40001))]:
        refused = d.handle(datagram, source, at(MS), None)
        assert refused is not None
        assert decode_datagram(refused.datagram).WhichOneof("kind") == "retry"
    assert (d.counters.opens_retried, d.counters.rounds_opened) == (3, 1)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flood=st.lists(
        st.lists(st.tuples(st.sampled_from(JUNK_KINDS), st.binary(max_size=64)), max_size=30),
        min_size=8,
        max_size=8,
    )
)
def test_junk_from_the_chip_s_own_address_never_starves_its_round(
    device_signer, landmark_signer, flood
):
    """Between every two datagrams of an honest round, any junk an off-path adversary can
    send from the chip's own address and port: the round still completes, with one
    round's room and one Open's worth of rate at that address."""
    d = dispatcher(landmark_signer, max_rounds_per_source=1, rate_per_s=1e-9, burst=1)
    a = agent(device_signer, landmark_signer, exchanges=4)
    replayed: list[bytes] = [a.open()]
    now, bursts = 0, iter(flood)

    def send_junk() -> None:
        for kind, seed in next(bursts, []):
            d.handle(junk_datagram(kind, seed, replayed), AGENT, at(now), None)

    send_junk()
    out = d.handle(a.open(), AGENT, at(now), None)
    while out is not None:
        send_junk()
        if out.timed is not None:
            out.timed.start_timer(at(now))
        now += 10_000
        reply = a.receive(out.datagram)
        if reply is None:
            break
        send_junk()
        out = d.handle(reply, AGENT, at(now), None)
    assert a.state is AgentRoundState.DONE
    assert (d.counters.rounds_opened, d.counters.receipts_signed) == (1, 1)
    assert d.counters.datagrams_rate_limited == 0


def _reordered(response: bytes) -> bytes:
    """The same Response in another valid encoding (its fields last to first), which the
    landmark can only read by decoding it."""
    message = decode_datagram(response).response
    fields = b"\x1a\x20" + message.answer
    if message.index:
        fields += b"\x10" + bytes((message.index,))
    fields += b"\x0a" + bytes((len(message.round_id),)) + message.round_id
    return b"\x1a" + bytes((len(fields),)) + fields


def _play(d: Dispatcher, a: AgentRound, steps: list[str], *, reencode: bool) -> list[object]:
    """Run one round through ``d`` as ``steps`` say; what the landmark answered each time."""
    log: list[object] = []
    now = 0
    out = opened(d, a)
    answers: dict[bytes, bytes] = {}  # challenge datagram -> the agent's Response
    superseded: list[bytes] = []

    def answer(challenge: bytes) -> bytes:
        if challenge not in answers:
            reply = a.receive(challenge)
            assert reply is not None
            answers[challenge] = _reordered(reply) if reencode else reply
        return answers[challenge]

    def send(data: bytes, source: tuple[str, int] = AGENT) -> Outgoing | None:
        sent = d.handle(data, source, at(now), None)
        kind = None if sent is None else decode_datagram(sent.datagram).WhichOneof("kind")
        log.append((kind, sent.datagram if kind in ("challenge", "complete") else None))
        return sent

    for step in steps:
        if out is None or decode_datagram(out.datagram).WhichOneof("kind") != "challenge":
            break
        if out.timed is not None:
            out.timed.start_timer(at(now))
        now += 10_000
        if step == "answer":
            out = send(answer(out.datagram)) or out
        elif step == "stranger":
            send(answer(out.datagram), ("127.0.0.2", AGENT[1]))
        elif step == "superseded" and superseded:
            send(answer(superseded[-1]))
        elif step == "silence":
            now += 100 * MS
            resent = d.sweep(now)
            log.append([decode_datagram(o.datagram).WhichOneof("kind") for o in resent])
            if resent:
                superseded.append(out.datagram)
                out = resent[-1]
    c = d.counters
    log.append((c.exchanges_timed, c.datagrams_rejected, c.rounds_failed, d.rtt_floor_ns))
    return log


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.sampled_from(["answer", "stranger", "superseded", "silence"]), min_size=1, max_size=30
    ),
    seed=st.integers(min_value=0),
)
def test_an_answer_read_by_its_head_fares_exactly_as_one_decoded(
    device_signer, landmark_signer, steps, seed
):
    """The landmark reads an answer in the protocol's own encoding without decoding it;
    the same answers in another encoding, which it must decode, get the very same
    challenges, timings, refusals and failures, whatever the order of answers, answers
    from another address, answers to superseded challenges and silences."""
    secret = os.urandom(32)
    logs = []
    for reencode in (False, True):
        randomness = random.Random(seed).randbytes
        d = Dispatcher("lm-1", landmark_signer, Limits(challenge_timeout_ns=100 * MS), randomness)
        a = AgentRound(
            "dev-1",
            "lm-1",
            landmark_signer.verifying_key,
            device_signer,
            secret=secret,
            exchanges=4,
        )
        logs.append(_play(d, a, steps, reencode=reencode))
    assert logs[0] == logs[1]


def test_a_reordered_response_is_the_same_message():
    response = response_head(os.urandom(16), 3) + os.urandom(32)
    assert _reordered(response) != response
    assert decode_datagram(_reordered(response)) == decode_datagram(response)
