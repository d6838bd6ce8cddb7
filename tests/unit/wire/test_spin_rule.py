"""Which waits of a round's timed phase spin (:func:`spins_wait`), played against the
landmark's adaptive rounds in memory through both state machines: the agent spins through
its first few waits and past the round's base exchanges only while the landmark says the
round's best is above its margin, and how it waits never changes what the landmark times."""

from __future__ import annotations

import os
from dataclasses import dataclass

from conftest import UNIX_NS
from hypothesis import given
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.protocol.round import AgentRound, AgentRoundState, LandmarkRound, decode_datagram
from geoattest.v1 import round_pb2
from geoattest.wire.rounds import RoundSettings, _TimedPhase, spins_wait

DEVICE = KeySigner.generate()
LANDMARK = KeySigner.generate()


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


def played(
    settings: RoundSettings, extend_above_ns: int, spun_ns: int, blocked_ns: int, noise: list[int]
) -> tuple[list[Wait], list[int], round_pb2.TimingReceipt]:
    """One adaptive round in memory whose exchange j takes ``spun_ns`` when the agent spun
    through the wait that brought challenge j and ``blocked_ns`` when it blocked, plus
    ``noise[j]`` (the last repeats); the agent waits as :class:`_TimedPhase` decides. The
    waits, each exchange's true RTT and the receipt."""
    agent = AgentRound(
        "dev-1",
        "lm-1",
        LANDMARK.verifying_key,
        DEVICE,
        secret=os.urandom(32),
        exchanges=settings.exchanges,
        max_exchanges=settings.exchanges + settings.extra_exchanges,
        extend_above_ns=extend_above_ns,
    )
    landmark = LandmarkRound(
        "lm-1",
        LANDMARK,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    phase = _TimedPhase(settings)
    phase.spinning = True  # a short path on a host that lets the agent spin
    waits: list[Wait] = []
    true_ns: list[int] = []
    now = 0
    spun = False  # the first challenge's wait blocks
    datagram = landmark.next_challenge(now)
    while (reply := agent.receive(datagram)) is not None:
        if decode_datagram(reply).WhichOneof("kind") == "response":
            j = len(true_ns)
            true_ns.append((spun_ns if spun else blocked_ns) + noise[min(j, len(noise) - 1)])
            now += true_ns[-1]
        phase.after_send(agent)
        spun = phase.spin_next
        if spun:
            phase.spin(lambda _size, _flags: b"next", 0.0, lambda: 0.0)
        if agent.state is AgentRoundState.ANSWERING:
            waits.append(Wait(agent.highest_index, spun))
        datagram = landmark.receive(reply, now, UNIX_NS)
    receipt = round_pb2.TimingReceipt.FromString(decode_datagram(datagram).receipt.payload)
    return waits, true_ns, receipt


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
    settings = RoundSettings(exchanges=exchanges, extra_exchanges=extra, spin_waits=spin_waits)
    waits, true_ns, receipt = played(settings, extend_above_ns, spun_ns, blocked_ns, noise)
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
