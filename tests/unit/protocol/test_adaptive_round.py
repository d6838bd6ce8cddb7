"""Adaptive rounds: the landmark times more exchanges while the round's best is above what
the agent's Open names, and the receipt still carries the minimum of what it timed, so an
adversary (who owns the host and the network) can still only add delay."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import UNIX_NS
from hypothesis import given
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError, RoundError
from geoattest.protocol.round import (
    MAX_EXCHANGES,
    AgentRound,
    AgentRoundState,
    Exchange,
    LandmarkRound,
    decode_datagram,
)
from geoattest.v1 import round_pb2
from geoattest.wire.rounds import RoundSettings, _TimedPhase, spins_wait

DEVICE = KeySigner.generate()
LANDMARK = KeySigner.generate()


@dataclass
class Timed:
    agent: AgentRound
    landmark: LandmarkRound
    receipt: round_pb2.TimingReceipt


def timed_round(
    rtts_ns: list[int] | Callable[[int], int],
    *,
    exchanges: int,
    max_exchanges: int,
    extend_above_ns: int,
    landmark_round: type[LandmarkRound] = LandmarkRound,
    after_reply: Callable[[AgentRound], None] = lambda _agent: None,
) -> Timed:
    """One round in memory whose j-th exchange truly takes ``rtts_ns[j]`` (the last one
    repeats) or ``rtts_ns(j)``, as bytes through both state machines; ``after_reply`` sees
    the agent after each datagram it answers with."""
    rtt_ns = rtts_ns if callable(rtts_ns) else lambda j: rtts_ns[min(j, len(rtts_ns) - 1)]
    agent = AgentRound(
        "dev-1",
        "lm-1",
        LANDMARK.verifying_key,
        DEVICE,
        secret=os.urandom(32),
        exchanges=exchanges,
        max_exchanges=max_exchanges,
        extend_above_ns=extend_above_ns,
    )
    landmark = landmark_round(
        "lm-1",
        LANDMARK,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    now = 0
    datagram = landmark.next_challenge(now)
    while (reply := agent.receive(datagram)) is not None:
        if decode_datagram(reply).WhichOneof("kind") == "response":
            now += rtt_ns(len(landmark.timed))
        after_reply(agent)
        datagram = landmark.receive(reply, now, UNIX_NS)
    assert agent.state is AgentRoundState.DONE
    envelope = decode_datagram(datagram).receipt
    return Timed(agent, landmark, round_pb2.TimingReceipt.FromString(envelope.payload))


def test_a_round_far_above_its_floor_runs_more_exchanges_until_one_comes_close():
    run = timed_round(
        [500_000, 400_000, 300_000, 200_000, 150_000, 50_000, 40_000],
        exchanges=4,
        max_exchanges=12,
        extend_above_ns=100_000,
    )
    assert run.receipt.exchanges == 6
    assert run.receipt.rtt_min_ns == 50_000 == run.agent.rtt_min_ns
    assert len(run.receipt.transcript.payload) > 0


def test_a_round_never_runs_more_than_its_max_exchanges():
    run = timed_round([500_000], exchanges=4, max_exchanges=12, extend_above_ns=100_000)
    assert run.receipt.exchanges == 12
    assert run.receipt.rtt_min_ns == 500_000


def test_a_round_at_its_floor_runs_only_the_exchanges_it_asked_for():
    run = timed_round([90_000], exchanges=4, max_exchanges=12, extend_above_ns=100_000)
    assert run.receipt.exchanges == 4


def test_the_landmark_caps_an_adaptive_round_at_its_own_limit():
    agent = AgentRound(
        "dev-1",
        "lm-1",
        LANDMARK.verifying_key,
        DEVICE,
        secret=os.urandom(32),
        exchanges=4,
        max_exchanges=MAX_EXCHANGES,
        extend_above_ns=1,
    )
    landmark = LandmarkRound(
        "lm-1",
        LANDMARK,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
        max_exchanges=6,
    )
    assert landmark.max_exchanges == 6


def test_an_open_whose_max_is_below_its_exchanges_is_refused():
    message = round_pb2.Open(device_id="d", commit=bytes(32), exchanges=8, max_exchanges=4)
    with pytest.raises(RoundError):
        LandmarkRound("lm-1", LANDMARK, message, round_id=os.urandom(16), randomness=os.urandom)


@pytest.mark.parametrize(("exchanges", "max_exchanges"), [(8, 4), (8, MAX_EXCHANGES + 1)])
def test_an_agent_round_with_an_impossible_max_is_a_config_error(exchanges, max_exchanges):
    with pytest.raises(ConfigError):
        AgentRound(
            "dev-1",
            "lm-1",
            LANDMARK.verifying_key,
            DEVICE,
            secret=os.urandom(32),
            exchanges=exchanges,
            max_exchanges=max_exchanges,
            extend_above_ns=1,
        )


def test_the_agent_refuses_a_complete_listing_more_than_its_max():
    run = timed_round([500_000], exchanges=2, max_exchanges=4, extend_above_ns=100_000)
    assert run.receipt.exchanges == 4
    agent = AgentRound(
        "dev-1", "lm-1", LANDMARK.verifying_key, DEVICE, secret=os.urandom(32), exchanges=2
    )
    landmark = LandmarkRound(
        "lm-1",
        LANDMARK,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    landmark.max_exchanges, landmark.extend_above_ns = 4, 1  # a landmark that over-extends
    now = 0
    datagram = landmark.next_challenge(now)
    while decode_datagram(datagram).WhichOneof("kind") == "challenge":
        reply = agent.receive(datagram)
        assert reply is not None
        now += 500_000
        datagram = landmark.receive(reply, now, UNIX_NS)
    assert len(landmark.timed) == 4
    with pytest.raises(RoundError):
        agent.receive(datagram)


class ShorteningLandmarkRound(LandmarkRound):
    """A broken variant: it takes 10 us off each extra exchange, as a "calibration" for
    the time the extension costs might."""

    def on_response(self, response: round_pb2.Response, now_ns: int) -> bytes | None:
        reply = super().on_response(response, now_ns)
        last = self.timed[-1]
        if len(self.timed) > self.exchanges:
            self.timed[-1] = Exchange(last.index, last.challenge, last.answer, last.rtt_ns - 10_000)
        return reply


def never_shorter(run: Timed, floor_ns: int) -> bool:
    """The soundness property: the receipt's rtt_min is the minimum of what the landmark
    timed, and nothing the adversary did brought it below the path's true round trip."""
    timed = [e.rtt_ns for e in run.landmark.timed]
    return run.receipt.rtt_min_ns == min(timed) and run.receipt.rtt_min_ns >= floor_ns


@given(
    floor_ns=st.integers(1, 10**7),
    added_ns=st.lists(st.integers(0, 10**7), min_size=1, max_size=MAX_EXCHANGES),
    exchanges=st.integers(1, 8),
    extra=st.integers(0, 16),
    extend_above_ns=st.integers(0, 2 * 10**7),
)
def test_an_adaptive_round_never_reports_less_than_the_true_round_trip(
    floor_ns, added_ns, exchanges, extra, extend_above_ns
):
    """Whatever delay the adversary adds to each exchange and whatever the agent asks for,
    the receipt's rtt_min is at least the true round trip."""
    run = timed_round(
        [floor_ns + a for a in added_ns],
        exchanges=exchanges,
        max_exchanges=exchanges + extra,
        extend_above_ns=extend_above_ns,
    )
    assert exchanges <= run.receipt.exchanges <= exchanges + extra
    assert never_shorter(run, floor_ns)


def test_negative_control_the_property_catches_a_landmark_that_shortens_extra_exchanges():
    floor_ns = 40_000
    run = timed_round(
        [floor_ns + 100_000, floor_ns],
        exchanges=1,
        max_exchanges=4,
        extend_above_ns=60_000,
        landmark_round=ShorteningLandmarkRound,
    )
    assert run.receipt.exchanges == 2
    assert not never_shorter(run, floor_ns)


@given(
    spin_waits=st.integers(0, 8),
    exchanges=st.integers(1, 32),
    spun=st.integers(0, 40),
    index=st.integers(0, 40),
)
def test_a_wait_spins_while_few_have_or_once_the_landmark_extends_the_round(
    spin_waits, exchanges, spun, index
):
    settings = RoundSettings(exchanges=exchanges, spin_waits=spin_waits)
    assert spins_wait(settings, spun, index) is (spun < spin_waits or index >= exchanges)


@dataclass
class Wait:
    """A wait of the agent's for the datagram after its answer to challenge ``index``."""

    index: int
    spun: bool


@given(
    exchanges=st.integers(1, 8),
    extra=st.integers(0, 8),
    spin_waits=st.integers(0, 4),
    extend_above_ns=st.integers(1, 100_000),
    spun_ns=st.integers(1, 100_000),
    blocked_ns=st.integers(1, 100_000),
    noise=st.lists(st.integers(0, 100_000), min_size=1, max_size=16),
)
def test_a_round_spins_its_first_waits_and_then_only_while_its_best_is_above_the_margin(
    exchanges, extra, spin_waits, extend_above_ns, spun_ns, blocked_ns, noise
):
    """The agent waits as its timed phase decides (:func:`spins_wait`), and exchange j
    takes ``spun_ns`` when the wait that brought challenge j spun, ``blocked_ns`` when it
    blocked, plus ``noise[j]``: which waits spun, against what the landmark timed."""
    settings = RoundSettings(exchanges=exchanges, extra_exchanges=extra, spin_waits=spin_waits)
    phase = _TimedPhase(settings)
    phase.spinning = True  # a short path on a host that lets the agent spin
    waits: list[Wait] = []
    true_ns: list[int] = []

    def rtt_ns(j: int) -> int:
        spun = bool(waits) and waits[-1].spun  # the first challenge's wait blocks
        true_ns.append((spun_ns if spun else blocked_ns) + noise[min(j, len(noise) - 1)])
        return true_ns[-1]

    def after_reply(agent: AgentRound) -> None:
        phase.after_send(agent)
        spun = phase.spin_next
        if spun:
            phase.spin(lambda _size, _flags: b"next", 0.0, lambda: 0.0)
        if agent.state is AgentRoundState.ANSWERING:
            waits.append(Wait(agent.highest_index, spun))

    receipt = timed_round(
        rtt_ns,
        exchanges=exchanges,
        max_exchanges=exchanges + extra,
        extend_above_ns=extend_above_ns,
        after_reply=after_reply,
    ).receipt
    spun = [w for w in waits if w.spun]
    # never more spun waits than the rule allows: the first few, then the extension's
    assert sum(w.index < exchanges for w in spun) <= spin_waits
    assert len(spun) <= spin_waits + receipt.exchanges - exchanges
    # past the first few, a wait spins only while the round's best is above the margin
    for n, wait in enumerate(spun):
        if n >= spin_waits:
            assert wait.index >= exchanges
            assert min(true_ns[: wait.index]) > extend_above_ns
    # and every wait the landmark extends the round for spins
    assert all(w.spun for w in waits if w.index >= exchanges)
    # how the agent waits never shortens what the landmark times
    assert receipt.exchanges == len(true_ns)
    assert receipt.rtt_min_ns == min(true_ns)
