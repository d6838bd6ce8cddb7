"""Transmit stamps read while the landmark has time, not after each challenge: the server's
own send and settle code driven with a made-up socket and clock, against the truth and
against reading each stamp right after its send."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.errors import RoundError, WireError
from geoattest.protocol.round import CHALLENGE_BYTES, AgentRound, LandmarkRound, decode_datagram
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark import server as landmark_server
from geoattest.verifier.landmark.clock import (
    ERRQUEUE_FLAGS,
    Bracket,
    departure_monotonic,
)
from geoattest.verifier.landmark.dispatch import Limits
from geoattest.verifier.landmark.server import LandmarkIdentity, LandmarkServer

OFFSET = 1_767_225_600 * 10**9
"""Realtime minus monotonic on the made-up clock (it never steps here: the conversions'
step cases are tests/unit/verifier/test_landmark_clock.py's)."""
MS = 1_000_000
TIMEOUT_NS = 100 * MS
IN_TIME = ("in time", "duplicated", "reordered")
"""Stamp fates that queue the send's own stamp, with its own key, during its call."""
FATES = (*IN_TIME, "missing", "late", "the last send's key", "a later key", "numbered failure")


@dataclass
class Clock:
    """Monotonic nanoseconds; every reading is logged, and takes as long as ``widths``
    say in turn (a thread preempted between its two monotonic reads: a wide one), then
    80 ns each."""

    widths: list[int]
    now: int = 0
    readings: list[Bracket] = field(default_factory=list)

    def read(self) -> Bracket:
        taken = len(self.readings)
        width = self.widths[taken] if taken < len(self.widths) else 80
        reading = Bracket(self.now, self.now + width // 2 + OFFSET, self.now + width)
        self.now += width
        self.readings.append(reading)
        return reading


@dataclass
class Send:
    """One challenge's send as the made-up kernel saw it."""

    challenge: bytes
    departure_ns: int
    fate: str
    sent: Bracket
    returned_at: int
    """Index of the bracket read once the call returned."""


class FakeSocket:
    """``sendmsg`` stamps each datagram as its fate says; the error queue is a list."""

    def __init__(self, clock: Clock, fates: Iterator[tuple[str, int]]) -> None:
        self.clock = clock
        self.fates = fates
        self.kernel_key = 0
        self.queue: list[tuple[int, int]] = []
        self.late: list[tuple[int, int]] = []
        self.sends: list[Send] = []
        self.outbox: list[tuple[bytes, object]] = []

    def sendmsg(self, buffers: list[bytes], _ancillary: object, _flags: int, peer: object) -> int:
        clock = self.clock
        fate, stack_ns = next(self.fates)
        sent = clock.readings[-1]
        clock.now += stack_ns
        departure = clock.now
        key = self.kernel_key
        self.kernel_key += 1
        clock.now += 700
        if fate == "numbered failure":
            raise OSError("the send failed after the kernel numbered it")
        stamp = departure + OFFSET
        if fate in ("in time", "duplicated"):
            self.queue.append((key, stamp))
        if fate == "duplicated":
            self.queue.append((key, stamp))
        if fate == "reordered":
            self.queue.insert(max(0, len(self.queue) - 1), (key, stamp))
        if fate == "the last send's key":  # what a wrong count would read as the last send's
            self.queue.append((key - 1, stamp))
        if fate == "a later key":  # as if the kernel had numbered two sends more
            self.queue.append((key + 2, stamp))
        if fate == "late":  # taken after the call returned, queued a step later
            self.late.append((key, clock.now + 900 + OFFSET))
        datagram = buffers[0]
        self.sends.append(
            Send(datagram[-CHALLENGE_BYTES:], departure, fate, sent, len(clock.readings))
        )
        self.outbox.append((datagram, peer))
        return len(datagram)

    def sendto(self, datagram: bytes, peer: object) -> int:
        self.clock.now += 500
        self.outbox.append((datagram, peer))
        return len(datagram)

    def recvmsg(self, _size: int, _ancillary: int, flags: int) -> tuple[bytes, object, int, None]:
        assert flags == ERRQUEUE_FLAGS
        if not self.queue:
            raise BlockingIOError
        return b"", self.queue.pop(0), 0, None


@dataclass
class Run:
    """What one landmark did: every datagram it sent and every round's exchanges."""

    outbox: list[bytes]
    rounds: list[LandmarkRound]
    floor_ns: int | None
    stamped: int
    sends: list[Send]
    readings: list[Bracket]
    truth: dict[bytes, tuple[int, int]]
    """Challenge -> (true departure, true arrival of its answer)."""


def play(
    monkeypatch: pytest.MonkeyPatch,
    signers: tuple[KeySigner, KeySigner],
    scenario: Scenario,
    *,
    eager: bool,
) -> Run:
    """Two agents' rounds through one landmark; ``eager``: the queue is read right after
    each challenge's send, as a landmark that reads each stamp at once does. A stamp read
    takes ``scenario.read_ns`` by the server's own measure (not on the made-up clock, which
    both runs read alike)."""
    device, landmark_key = signers
    clock = Clock(scenario.widths)
    socket = FakeSocket(clock, iter(scenario.fates + [("in time", 1_000)] * 400))
    monkeypatch.setattr(landmark_server, "read_bracket", clock.read)
    monkeypatch.setattr(landmark_server, "transmit_stamp", lambda ancillary: ancillary)
    measured = itertools.count(step=scenario.read_ns)
    monkeypatch.setattr(landmark_server, "_monotonic", lambda: next(measured))
    finished: list[LandmarkRound] = []
    server = LandmarkServer(
        LandmarkIdentity("lm-1", 0.0, 0.0),
        landmark_key,
        limits=Limits(challenge_timeout_ns=TIMEOUT_NS),
        randomness=random.Random(scenario.seed).randbytes,
        on_finished=finished.append,
    )
    server._sock.close()  # never started: the made-up socket stands in
    server._sock = socket  # type: ignore[assignment]
    server.transmit_timestamps = True
    dispatcher = server._dispatcher
    peers = [("127.0.0.1", 40000 + i) for i in range(2)]
    agents = [
        AgentRound(
            f"dev-{i}",
            "lm-1",
            landmark_key.verifying_key,
            device,
            secret=random.Random(scenario.seed + 1 + i).randbytes(32),
            exchanges=2,
            max_exchanges=6,
            extend_above_ns=scenario.extend_above_ns,
        )
        for i in range(2)
    ]
    in_flight: list[list[bytes]] = [[], []]
    truth: dict[bytes, tuple[int, int]] = {}
    departures: dict[bytes, int] = {}

    def deliver(sent_before: int) -> None:
        for datagram, peer in socket.outbox[sent_before:]:
            in_flight[peers.index(peer)].append(datagram)  # type: ignore[arg-type]
        for record in socket.sends:
            departures.setdefault(record.challenge, record.departure_ns)

    def landmark_reads(data: bytes, source: tuple[str, int]) -> None:
        sent_before = len(socket.outbox)
        outgoing = dispatcher.handle(data, source, clock.read(), None)
        if outgoing is not None:
            server._send(outgoing)
            if eager and outgoing.timed is not None:
                server._settle()
        deliver(sent_before)

    for i in range(2):
        landmark_reads(agents[i].open(), peers[i])
    for who, action, flight_ns in scenario.steps:
        queue = in_flight[who]
        if action == "stamps":
            socket.queue.extend(socket.late)
            socket.late.clear()
        elif action == "silence":
            clock.now += TIMEOUT_NS
            sent_before = len(socket.outbox)
            server._sweep(clock.now)
            deliver(sent_before)
        elif queue and action == "lose":
            queue.pop(0)
        elif queue and action == "answer":
            datagram = queue.pop(0)
            try:
                reply = agents[who].receive(datagram)
            except (RoundError, WireError):
                continue
            if reply is None:
                continue
            clock.now += flight_ns
            challenge = datagram[-CHALLENGE_BYTES:]
            if challenge in departures:
                truth.setdefault(challenge, (departures[challenge], clock.now))
            clock.now += 300  # the landmark's wake-up: on the clock only without a kernel stamp
            landmark_reads(reply, peers[who])
    server._settle()  # the stamps still unread, as the landmark's next idle moment reads them
    rounds = finished + [entry.round for entry in dispatcher._active.values()]
    return Run(
        [datagram for datagram, _ in socket.outbox],
        rounds,
        dispatcher.rtt_floor_ns,
        dispatcher.counters.challenges_transmit_stamped,
        socket.sends,
        clock.readings,
        truth,
    )


def _signed_fields(datagram: bytes) -> object:
    """A receipt's fields, less the signatures (ECDSA's differ from one signing to the
    next); any other datagram's bytes."""
    decoded = decode_datagram(datagram)
    if decoded.WhichOneof("kind") != "receipt":
        return datagram
    receipt = round_pb2.TimingReceipt.FromString(decoded.receipt.payload)
    receipt.ClearField("transcript")
    return receipt


steps_strategy = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["answer"] * 6 + ["lose", "silence", "stamps"]),
        st.integers(0, 3_000),
    ),
    min_size=1,
    max_size=50,
)
widths_strategy = st.lists(st.sampled_from([0, 80, 2_000, 6_000, 9_000]), max_size=200)


@dataclass(frozen=True)
class Scenario:
    """What happens to two agents' rounds at one landmark (:func:`play`)."""

    steps: list[tuple[int, str, int]]
    fates: list[tuple[str, int]]
    extend_above_ns: int
    seed: int
    widths: list[int]
    read_ns: int


def scenarios(fates: st.SearchStrategy[str]) -> st.SearchStrategy[Scenario]:
    return st.builds(
        Scenario,
        steps=steps_strategy,
        fates=st.lists(st.tuples(fates, st.integers(1, 3_000)), max_size=60),
        extend_above_ns=st.integers(500, 4_000),
        seed=st.integers(0, 2**32),
        widths=widths_strategy,
        read_ns=st.sampled_from([0, 1_000, 3_000, 10**7]),  # 10 ms: every stamp waits
    )


stamp_settings = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@stamp_settings
@given(scenario=scenarios(st.sampled_from(FATES)))
def test_stamps_read_later_never_shorten_an_rtt_and_apply_only_to_their_own_send(
    monkeypatch, device_signer, landmark_signer, scenario
):
    """Whatever the answers, losses, silences and the stamps' fates (queued in time,
    missing, taken late, duplicated, reordered, carrying another send's key, a failed send
    the kernel numbered), every exchange's start is its send's own reading before the call
    or its own stamp converted with its own readings (never another send's), and no RTT is
    shorter than the true departure to the true arrival."""
    run = play(monkeypatch, (device_signer, landmark_signer), scenario, eager=False)
    sends = {send.challenge: send for send in run.sends}
    for landmark_round in run.rounds:
        for exchange in landmark_round.timed:
            departure_ns, arrival_ns = run.truth[exchange.challenge]
            assert exchange.rtt_ns >= arrival_ns - departure_ns
            send = sends[exchange.challenge]
            own, _ = departure_monotonic(
                send.sent, run.readings[send.returned_at], departure_ns + OFFSET
            )
            assert exchange.started_ns in (send.sent.after, own)


@stamp_settings
@given(scenario=scenarios(st.sampled_from((*IN_TIME, "missing", "late"))))
@example(  # completes on its stamped RTTs, would extend on those before the stamps
    scenario=Scenario(
        [(0, "answer", 0), (0, "answer", 1), (0, "answer", 0)], [], 1280, 0, [], 1_000
    )
)
def test_stamps_read_later_time_decide_and_sign_as_stamps_read_at_once(
    monkeypatch, device_signer, landmark_signer, scenario
):
    """Where every stamp is queued with its own key during its call (or never, or late),
    reading the stamps while the landmark has time yields the very same datagrams (the
    same adaptive extensions, Completes and receipts, their rtt_min included), the same
    RTTs, the same floor and the same count of stamped challenges as reading each stamp
    right after its send."""
    signers = (device_signer, landmark_signer)
    lazy, eager = (play(monkeypatch, signers, scenario, eager=eager) for eager in (False, True))
    assert [_signed_fields(d) for d in lazy.outbox] == [_signed_fields(d) for d in eager.outbox]
    assert [[e.rtt_ns for e in r.timed] for r in lazy.rounds] == [
        [e.rtt_ns for e in r.timed] for r in eager.rounds
    ]
    assert (lazy.floor_ns, lazy.stamped) == (eager.floor_ns, eager.stamped)
    in_time = sum(send.fate in IN_TIME for send in lazy.sends)
    assert lazy.stamped <= in_time
