"""Timed rounds over real UDP sockets, one landmark or several, from the answering side.

The agent runs them with its device key; a landmark auditing its peers runs them with its
own key, so both parties share this driver from the core. :func:`run_round` drives
:class:`~geoattest.protocol.round.AgentRound` over a socket connected to one landmark.
The landmark's clock times every exchange, so the answering side's path is the RTT: it is
kept to ``recv``, the state machine's compare-hash-append, and ``send`` on a connected
socket, with no ``poll`` before the read (the receive timeout is the kernel's
``SO_RCVTIMEO``, not Python's). After each answer, while the landmark times, the agent
prepares the next challenges' bytes (:meth:`~geoattest.protocol.round.AgentRound.prepare`):
an expected challenge is then read by comparing its head, not by decoding it, and its
Response's head is ready.

The timed phase runs at real-time priority. From the send that starts it to the one that
ends it the answering thread runs at ``SCHED_FIFO`` :attr:`RoundSettings.realtime_priority`
where the process may (:func:`realtime`; ``CAP_SYS_NICE``): when a challenge wakes it, it
preempts the host's ordinary work at once instead of queueing behind it. Without the
capability the round runs at normal priority and says so once in the log. Rounds that one
thread runs one after another (:func:`run_rounds`) hold the priority from the first
round's timed phase to the end of the last (:class:`RealtimeSpan`) instead of switching
twice per round.

The timed phase does not sleep on a short path. A blocking receive puts the thread to sleep
and every challenge then waits for the kernel to wake it: tens of microseconds on an idle
host, more with deep CPU idle states or virtualised timers, and all of it on the landmark's
clock. So when the path's round trip as the agent sees it (from each of its sends to the
next datagram in, the smallest in this round: first the Open's Retry, or the last round's
over a kept socket) is at most :attr:`RoundSettings.spin_below_s` (a data centre's, not the
Internet's) and the host lets it spin (:func:`spin_permitted`: a core to spare, or real-time
priority with a second CPU), the agent polls its socket without blocking (``MSG_DONTWAIT``)
in some of its waits between its first answer and its Close, for at most
:attr:`RoundSettings.spin_s` per wait before it falls back to the blocking receive: the first
:attr:`RoundSettings.spin_waits` (by default all of them), and every one the landmark
extends the round for (:func:`spins_wait`), since the receipt keeps the round's best and a
few spun exchanges can carry it; the rest block. The wait for the first challenge blocks: it spans
the landmark's setting up of the round (a few hundred microseconds of CPU were spun there),
and a wake-up costs only that one exchange, as the receipt keeps the round's best. A longer
path blocks throughout: its few microseconds of wake-up do not matter there, and spinning
through a millisecond round trip would cost that millisecond of CPU per exchange. One round
at a time spins (a process-wide turn, taken before the Open that carries the cookie, off
the clock), so concurrent rounds do not spin against each other for the interpreter lock.
Spinning only changes when the agent notices a challenge; the landmark's clock alone
measures (docs/PROTOCOL.md, "The answer path").

Loss: the landmark replaces a lost challenge and re-sends Complete; the agent re-sends
its Open (nothing heard yet) or its Close (no receipt yet) when the landmark has been
silent for ``resend_s``. Anything that is not a datagram for this round is ignored, and
the round ends with a receipt or a :class:`RoundFailedError` by ``deadline_s``.

Adaptive rounds: given the :class:`PathFloors` it keeps (the best ``rtt_min`` of each
landmark's recent receipts), the agent asks in its Open for up to
:attr:`RoundSettings.extra_exchanges` more exchanges, which the landmark runs while the
round's best exchange is above :attr:`RoundSettings.far_above` times that floor (the chip
was descheduled, the host was busy). The landmark's clock still times every exchange and the
receipt carries the minimum over all of them, so an adversary still can only add delay.

Sockets: without more, each round has a socket of its own, closed after; an agent that
runs rounds again and again keeps one per landmark in :class:`LandmarkSockets` (the
attester's runner and ``bench agent`` do), and with it the landmark's cookie for that
socket's address: the next round's first Open carries it and, while it is valid, opens the
round without a Retry, starting the timed phase.

Several landmarks: :func:`run_rounds` runs them one after another by default. Run
concurrently (one thread each), two answers due at the same moment queue for the
interpreter lock and the later one's RTT grows by the other's answer time; on loopback
that is measurable (BENCHMARKS.md, "Timing path"), over the Internet's millisecond
RTTs it is rare and small, and it only ever loosens a bound.

Example::

    secrets = RoundSecrets(os.urandom)      # one per agent: r is never reused
    receipt = run_round(endpoint, "dev-1", device_signer, secrets)
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from geoattest import priorities
from geoattest.crypto import Signer, VerifyingKey
from geoattest.errors import GeoattestError, Reason, RoundError, WireError
from geoattest.protocol.round import MAX_EXCHANGES, AgentRound, AgentRoundState, RoundSecrets
from geoattest.v1 import envelope_pb2
from geoattest.wire.decode import MAX_DATAGRAM_BYTES

RECEIVE_BYTES = MAX_DATAGRAM_BYTES + 1
CAN_SPIN = sys.platform == "linux"
"""Where the socket's receive timeout is the kernel's, so a ``MSG_DONTWAIT`` read polls."""
SPIN_TURNAROUNDS = 8
"""One wait spins for at most this many of the path's round trips (and ``spin_s``)."""
log = logging.getLogger("geoattest.rounds")
_SPIN_TURN = threading.Lock()
"""Held by the one round of this process that is spinning through its timed phase."""


@dataclass(frozen=True, slots=True)
class LandmarkEndpoint:
    """Where a landmark listens and the key its receipts must verify with."""

    landmark_id: str
    host: str
    port: int
    key: VerifyingKey


@dataclass(frozen=True, slots=True)
class RoundSettings:
    exchanges: int = 8
    deadline_s: float = 5.0
    """The whole round, from Open to receipt."""
    resend_s: float = 0.25
    """Silence after which the agent re-sends its Open or its Close."""
    spin_below_s: float = 0.001
    """Spin through the timed phase only when the path's round trip, as the agent saw it,
    is at most this (a data centre's); 0 never spins (:func:`spins`)."""
    spin_s: float = 0.0005
    """Longest one wait for a datagram spins before it blocks."""
    spin_waits: int = MAX_EXCHANGES
    """A spinning round spins through only its first this many waits after its first
    answer, and through every wait past its ``exchanges`` (the landmark runs those only
    while the round's best is above its margin); it blocks in the rest
    (:func:`spins_wait`). By default every wait: fewer saved the agent CPU per proof on the
    hosts measured, but not against its baseline, and cost the receipt microseconds
    (BENCHMARKS.md, "Timing path")."""
    realtime_priority: int = priorities.AGENT_TIMED_PHASE
    """During the timed phase the answering thread runs at this ``SCHED_FIFO`` priority
    where the process may (:func:`realtime`), so a challenge's wake-up preempts the host's
    other work; 0 never."""
    extra_exchanges: int = 24
    """Adaptive rounds: how many more exchanges a round may run (0: none), within
    ``MAX_EXCHANGES`` in all."""
    far_above: float = 1.5
    """Adaptive rounds: the landmark runs them while the round's best exchange is above
    this many times the path's floor."""


class PathFloors:
    """The smallest ``rtt_min`` among each landmark's last few receipts: the agent's idea of
    its paths' floors, so that a round whose best exchange is far above its path's floor asks
    for more exchanges. A floor is learned, never trusted for a bound: the receipt alone is."""

    def __init__(self, remembered: int = 16) -> None:
        self._remembered = remembered
        self._recent: dict[str, deque[int]] = {}

    def record(self, landmark_id: str, rtt_min_ns: int) -> None:
        recent = self._recent.setdefault(landmark_id, deque(maxlen=self._remembered))
        recent.append(rtt_min_ns)

    def floor_ns(self, landmark_id: str) -> int | None:
        recent = self._recent.get(landmark_id)
        return min(recent) if recent else None

    def extend_above_ns(self, landmark_id: str, settings: RoundSettings) -> int:
        """The round's ``extend_above_ns``: 0 never extends; until a floor is known, 1, so
        that the first round with a landmark runs every extra exchange and learns the floor
        from its best."""
        if settings.extra_exchanges <= 0:
            return 0
        floor = self.floor_ns(landmark_id)
        return 1 if floor is None else max(1, int(floor * settings.far_above))


class RoundFailedError(GeoattestError):
    """A round with one landmark ended without a receipt; the reason says why."""

    def __init__(self, landmark_id: str, reason: Reason, detail: str = "") -> None:
        super().__init__(reason, f"landmark {landmark_id}: {detail}" if detail else landmark_id)
        self.landmark_id = landmark_id


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    landmark_id: str
    receipt: envelope_pb2.Envelope | None
    failure: RoundFailedError | None


_Resolved = tuple[int, int, int, Any]
"""An address as ``getaddrinfo`` gives it: family, socket type, protocol, address."""


def _resolve(endpoint: LandmarkEndpoint) -> _Resolved:
    literal = _ip_literal(endpoint.host, endpoint.port)
    if literal is not None:
        return literal
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_DGRAM
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise RoundFailedError(endpoint.landmark_id, Reason.UNREACHABLE, str(exc)) from exc
    return family, kind, proto, address


@functools.lru_cache(maxsize=1024)
def _ip_literal(host: str, port: int) -> _Resolved | None:
    """What the resolver answers for an IP address written out (itself), without asking it:
    every round resolves its landmark's address again, and a resolver call takes about
    8 µs of CPU on a virtual machine. An agent has a few landmarks and the answer depends
    on the text alone, so each is kept. None for anything else (a name, an address with a
    scope, a port the resolver would refuse or wrap)."""
    if not 0 <= port <= 0xFFFF:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        text = socket.inet_ntop(family, packed)
        address = (text, port) if family == socket.AF_INET else (text, port, 0, 0)
        return family, socket.SOCK_DGRAM, socket.IPPROTO_UDP, address
    return None


def _connect(endpoint: LandmarkEndpoint, resolved: _Resolved, timeout_s: float) -> socket.socket:
    family, kind, proto, address = resolved
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(address)  # the kernel drops datagrams from anyone else
    except OSError as exc:
        sock.close()
        raise RoundFailedError(endpoint.landmark_id, Reason.UNREACHABLE, str(exc)) from exc
    receive_timeout(sock, timeout_s)
    return sock


@dataclass(slots=True)
class LandmarkPath:
    """A socket connected to one landmark, and what the rounds over it learned."""

    sock: socket.socket
    resolved: _Resolved
    """The address it is connected to, as :func:`_resolve` gave it."""
    cookie: bytes = b""
    """The landmark's last cookie for this socket's address (the next Open carries it)."""
    turnaround_s: float = math.inf
    """The shortest round trip the last round saw, as the agent sees it (:func:`spins`)."""


class LandmarkSockets:
    """One connected UDP socket per landmark, kept from one round to the next.

    Setting a socket up for each round (resolving, ``socket``, ``connect``, its receive
    timeout, ``close``) cost the agent more CPU than its ``Open`` on a virtual machine. The
    address is still resolved for every round, and a socket is replaced when it changes.
    What an earlier round left in the socket (a receipt sent again, an ICMP error) is read
    and dropped before the next round starts; a round that fails closes its socket. A
    socket is taken out while its round runs, so concurrent rounds never share one. With
    the socket go the landmark's cookie for its address, so that the next round's Open
    carries it and needs no Retry while it is valid, and the path's last round trip, so
    that the next round starts its timed phase with its Open.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], LandmarkPath] = {}
        self._lock = threading.Lock()

    def take(self, endpoint: LandmarkEndpoint, timeout_s: float) -> LandmarkPath:
        """The path kept for ``endpoint`` (its socket emptied), or a newly connected one,
        for one round.

        Raises:
            RoundFailedError: UNREACHABLE (the host does not resolve, or no route).
        """
        resolved = _resolve(endpoint)
        with self._lock:
            kept = self._idle.pop((endpoint.host, endpoint.port), None)
        if kept is not None:
            if kept.resolved == resolved:
                _drain(kept.sock)
                return kept
            kept.sock.close()
        return LandmarkPath(_connect(endpoint, resolved, timeout_s), resolved)

    def give_back(self, endpoint: LandmarkEndpoint, path: LandmarkPath, *, failed: bool) -> None:
        """Keep ``path`` for the next round with ``endpoint``; closed after a failure, or
        when another round's socket is already kept."""
        if not failed:
            with self._lock:
                if (endpoint.host, endpoint.port) not in self._idle:
                    self._idle[(endpoint.host, endpoint.port)] = path
                    return
        path.sock.close()

    def close(self) -> None:
        """Close every kept socket."""
        with self._lock:
            kept, self._idle = list(self._idle.values()), {}
        for path in kept:
            path.sock.close()


def _drain(sock: socket.socket) -> None:
    """Read and drop whatever is waiting in ``sock``."""
    while True:
        try:
            sock.recv(RECEIVE_BYTES, socket.MSG_DONTWAIT)
        except ConnectionRefusedError:
            continue  # an earlier send's ICMP error, now cleared
        except (BlockingIOError, TimeoutError):
            return


def receive_timeout(sock: socket.socket, timeout_s: float) -> None:
    """Let a blocking receive give up after ``timeout_s``. On Linux the kernel's
    ``SO_RCVTIMEO`` (a timed-out read raises BlockingIOError), so Python polls nothing before
    a read and a ``MSG_DONTWAIT`` read returns at once; elsewhere Python's timeout
    (TimeoutError)."""
    if sys.platform == "linux":
        seconds, micros = divmod(max(1, int(timeout_s * 1e6)), 1_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", seconds, micros))
    else:
        sock.settimeout(timeout_s)


def run_round(
    endpoint: LandmarkEndpoint,
    device_id: str,
    signer: Signer,
    secrets: RoundSecrets,
    settings: RoundSettings = RoundSettings(),
    *,
    floors: PathFloors | None = None,
    sockets: LandmarkSockets | None = None,
    span: RealtimeSpan | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> envelope_pb2.Envelope:
    """Run one timed round with one landmark and return its checked receipt; with
    ``floors``, an adaptive round, whose receipt's rtt_min joins them; with ``sockets``, over
    the socket kept for that landmark (a fresh one, closed after, without); with ``span``,
    its timed phase at the real-time priority the span holds for the calling thread's
    rounds (without, the round switches to it and back itself).

    Raises:
        RoundFailedError: UNREACHABLE (nothing was ever heard from the landmark),
            ROUND_TIMEOUT, ROUND_ABORTED, or the receipt's own check (bad signature,
            transcript mismatch).
        ConfigError: the settings ask for an impossible round (too many exchanges).
        RoundError: the round could not start (a repeated secret).
    """
    extend_above_ns = floors.extend_above_ns(endpoint.landmark_id, settings) if floors else 0
    agent = AgentRound(
        device_id,
        endpoint.landmark_id,
        endpoint.key,
        signer,
        secret=secrets.draw(),
        exchanges=settings.exchanges,
        max_exchanges=min(MAX_EXCHANGES, settings.exchanges + settings.extra_exchanges)
        if extend_above_ns
        else 0,
        extend_above_ns=extend_above_ns,
    )
    if sockets is None:
        resolved = _resolve(endpoint)
        path = LandmarkPath(_connect(endpoint, resolved, settings.resend_s), resolved)
    else:
        path = sockets.take(endpoint, settings.resend_s)
    agent.cookie = path.cookie
    deadline = clock() + settings.deadline_s
    failed = True
    try:
        receipt = _drive(agent, path, deadline, _TimedPhase(settings, span), clock)
        failed = False
    finally:
        if sockets is None:
            path.sock.close()
        else:
            path.cookie = agent.cookie
            sockets.give_back(endpoint, path, failed=failed)
    if floors is not None and agent.rtt_min_ns:
        floors.record(endpoint.landmark_id, agent.rtt_min_ns)
    return receipt


LOADAVG = "/proc/loadavg"


class _LoadAverage:
    """``/proc/loadavg``, opened once and re-read with ``pread``: opening it for each round
    took tens of microseconds of the agent's CPU on a virtual machine, a re-read takes one
    or two."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._lock = threading.Lock()

    def runnable(self) -> int:
        """Threads runnable now on the host, this one included.

        Raises:
            OSError: the file cannot be opened or read (not Linux, no ``/proc``).
            ValueError: it does not read as the kernel writes it.
        """
        with self._lock:
            if self._fd is None:
                self._fd = os.open(LOADAVG, os.O_RDONLY | os.O_CLOEXEC)
            line = os.pread(self._fd, 128, 0)
        return int(line.split()[3].split(b"/")[0])


_LOAD = _LoadAverage()


def spare_core() -> bool:
    """Whether the host has a core to spare for a spinning thread: fewer threads runnable
    now (this one included, ``/proc/loadavg``) than cores this process may use. On a full
    host a spinning agent uses up its share of the CPU and is then descheduled just when a
    challenge comes; a blocked one is woken ahead of the busy threads."""
    try:
        runnable = _LOAD.runnable()
    except (OSError, ValueError, IndexError):
        return False
    return runnable < len(os.sched_getaffinity(0))


def spin_permitted(realtime_held: bool) -> bool:
    """Whether the host lets the timed phase spin: it has a core to spare, or the thread
    holds real-time priority (``realtime_held``) and the process may use a second CPU. At
    real-time priority the host's ordinary work cannot deschedule the spinning thread, so a
    full host does not stop it; the second CPU is for everything else, the landmark answering
    it included (on one CPU it would spin through its window while holding the answer back).
    That is checked first: the load is then not read (a read of ``/proc/loadavg`` costs
    several microseconds of CPU)."""
    if not CAN_SPIN:
        return False
    return (realtime_held and len(os.sched_getaffinity(0)) > 1) or spare_core()


def spins(settings: RoundSettings, turnaround_s: float, may_spin: bool) -> bool:
    """The rule: spin through the timed phase when the path's round trip as the agent saw
    it (``turnaround_s``) is at most ``spin_below_s``, the host lets a thread spin
    (``may_spin``: a core to spare, or the thread at real-time priority with another core
    for everything else), and the socket can be polled."""
    return CAN_SPIN and may_spin and settings.spin_s > 0 and turnaround_s <= settings.spin_below_s


def spins_wait(settings: RoundSettings, spun: int, index: int) -> bool:
    """Whether a spinning round spins through the wait after its answer to challenge
    ``index``, ``spun`` of its waits having spun: while fewer than ``spin_waits`` have (a
    few spun exchanges carry the round's best, which is all the receipt keeps), and once
    the landmark has sent a challenge past the round's ``exchanges``, which it does only
    while the round's best is above its margin (adaptive rounds). At most ``spin_waits``
    waits spin before the landmark extends the round, and none once it completes it."""
    return spun < settings.spin_waits or index >= settings.exchanges


def spin_window_s(settings: RoundSettings, turnaround_s: float) -> float:
    """How long one wait spins before it blocks: a few of the path's round trips, at most
    ``spin_s``."""
    return min(settings.spin_s, SPIN_TURNAROUNDS * turnaround_s)


class _TimedPhase:
    """What the round does from the send that starts its timed phase to the send that ends
    it: spin on a short path (holding the process's spinning turn meanwhile), and run the
    thread at real-time priority where permitted."""

    def __init__(self, settings: RoundSettings, span: RealtimeSpan | None = None) -> None:
        self.settings = settings
        self._own_span = span is None
        self._span = RealtimeSpan(settings.realtime_priority) if span is None else span
        """Holds the real-time priority: the caller's across its thread's rounds, or this
        round's own, closed when its timed phase ends."""
        self.may_spin = False
        self.on = False
        self.spinning = False
        self.spin_next = False
        """Whether the next wait spins (:meth:`after_send`)."""
        self.spun = 0
        """Waits of this round that spun."""

    def before_send(self, timed: bool, turnaround_s: float, wait_s: float) -> None:
        """Called before each send; ``timed``: the round is (still) in its timed phase."""
        if self.on and not timed:
            self.stop()
        elif timed:
            if not self.on:
                self.on = True
                self.may_spin = spin_permitted(self._span.hold())
            if not self.spinning and spins(self.settings, turnaround_s, self.may_spin):
                self.spinning = _SPIN_TURN.acquire(timeout=max(0.0, wait_s))

    def before_open(self, cookie: bytes, turnaround_s: float, wait_s: float) -> None:
        """Called before the first Open: one that carries a kept cookie may open the round
        at once, so the timed phase starts with it (on the path's last round trip)."""
        if cookie:
            self.before_send(True, turnaround_s, wait_s)

    def after_send(self, agent: AgentRound) -> None:
        """Called after each datagram the round sends, while the landmark times: the next
        challenges' bytes are prepared, and whether the wait for the next datagram spins is
        decided (the round spins, it is answering still, and :func:`spins_wait` picks this
        wait)."""
        agent.prepare()
        self.spin_next = (
            self.spinning
            and agent.state is AgentRoundState.ANSWERING
            and spins_wait(self.settings, self.spun, agent.highest_index)
        )

    def spin(
        self, recv: Callable[[int, int], bytes], turnaround_s: float, clock: Callable[[], float]
    ) -> bytes | None:
        """Spin through the wait :meth:`after_send` picked: the next datagram, or None once
        a few of the path's round trips (``turnaround_s``) have passed without one."""
        self.spin_next = False
        self.spun += 1
        return poll(recv, clock() + spin_window_s(self.settings, turnaround_s), clock)

    def stop(self) -> None:
        if self.spinning:
            self.spinning = False
            _SPIN_TURN.release()
        if self._own_span:
            self._span.close()
        self.on = False


class RealtimeSpan:
    """Real-time priority held by one thread from the first :meth:`hold` to :meth:`close`.
    A lone round holds its own for its timed phase. Rounds that one thread runs one after
    another (:func:`run_rounds`) share one: switched on at the first round's timed phase
    and back once after the last round, where each round alone would switch on and back (two
    ``sched_setscheduler`` calls, about 10 µs of CPU each on a virtual machine, twice the
    rounds). Between the rounds the thread checks a receipt and sends the next Open at that
    priority: a few hundred microseconds of bounded work, under the kernel's real-time
    throttling as the timed phase is. Used by its thread only."""

    def __init__(self, priority: int) -> None:
        self._priority = priority
        self._entered = False
        self._restore: Scheduling | None = None

    def hold(self) -> bool:
        """Run the thread at the priority from now on (the first call switches); whether
        it does (:func:`realtime` may be refused)."""
        if not self._entered:
            self._entered = True
            self._restore = realtime(self._priority)
        return self._restore is not None

    def close(self) -> None:
        """Put the thread's scheduling back as the first :meth:`hold` found it."""
        if self._restore is not None:
            restore_scheduling(self._restore)
        self._entered = False
        self._restore = None


class Scheduling(NamedTuple):
    """A thread's scheduling policy and priority, to put back after the timed phase."""

    policy: int
    priority: int


_REFUSED_LOGGED = threading.Event()


def realtime(priority: int) -> Scheduling | None:
    """Run the calling thread at ``SCHED_FIFO`` ``priority``; returns the scheduling to put
    back, or None when the priority is 0 or the process may not (it needs ``CAP_SYS_NICE``
    or an ``RLIMIT_RTPRIO`` of at least ``priority``; refused once, logged once). The
    kernel's real-time throttling (``sched_rt_runtime_us``) still leaves the host's other
    work its share, and a spinning wait is bounded by ``spin_s`` in any case."""
    if priority <= 0 or not CAN_SPIN:
        return None
    try:
        before = Scheduling(os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:  # PermissionError without the capability, EINVAL past the maximum
        if not _REFUSED_LOGGED.is_set():
            _REFUSED_LOGGED.set()
            log.warning(
                "timed exchanges at normal priority: SCHED_FIFO %d refused (%s); grant "
                "CAP_SYS_NICE for them to preempt the host's other work",
                priority,
                exc.strerror,
            )
        return None
    return before


def restore_scheduling(scheduling: Scheduling) -> None:
    """Put the calling thread's scheduling back as :func:`realtime` found it."""
    os.sched_setscheduler(0, scheduling.policy, os.sched_param(scheduling.priority))


def _drive(
    agent: AgentRound,
    path: LandmarkPath,
    deadline: float,
    phase: _TimedPhase,
    clock: Callable[[], float],
) -> envelope_pb2.Envelope:
    recv, send, receive = path.sock.recv, path.sock.send, agent.receive
    resend_s = phase.settings.resend_s
    last_sent = agent.open()
    heard = False
    refused: GeoattestError | None = None
    turnaround = math.inf  # the shortest wait from a send to the next datagram in
    phase.before_open(agent.cookie, path.turnaround_s, deadline - clock())
    _send_quietly(send, last_sent)
    sent_at = clock()
    resend_at = sent_at + resend_s
    try:
        while True:
            data = phase.spin(recv, turnaround, clock) if phase.spin_next else None
            if data is None:
                try:
                    data = recv(RECEIVE_BYTES)
                except (BlockingIOError, TimeoutError, ConnectionRefusedError):
                    data = None
            now = clock()
            if data is not None:
                heard = True
                turnaround = min(turnaround, now - sent_at)
                try:
                    reply = receive(data)
                except (WireError, RoundError) as exc:
                    if agent.state is AgentRoundState.FAILED:
                        raise RoundFailedError(agent.landmark_id, exc.reason, exc.detail) from exc
                    refused, reply = exc, None  # not for this round, or not now: ignore it
                if reply is not None:
                    phase.before_send(agent.state in _TIMED, turnaround, deadline - now)
                    _send_quietly(send, reply)
                    last_sent = reply
                    sent_at = clock()
                    resend_at = sent_at + resend_s
                    phase.after_send(agent)
                elif agent.state is AgentRoundState.DONE:
                    assert agent.receipt is not None
                    path.turnaround_s = turnaround
                    return agent.receipt
            if now >= deadline:
                reason = Reason.ROUND_TIMEOUT if heard else Reason.UNREACHABLE
                why = f"; last datagram refused: {refused}" if refused else ""
                raise RoundFailedError(
                    agent.landmark_id, reason, f"no receipt in state {agent.state.value}{why}"
                )
            if now >= resend_at and agent.state in _RESENT:
                _send_quietly(send, last_sent)
                sent_at = now
                resend_at = now + resend_s
    finally:
        phase.stop()


_TIMED = (AgentRoundState.OPENED, AgentRoundState.ANSWERING)
"""States in which the next datagram may be a timed challenge."""
_RESENT = (AgentRoundState.OPENED, AgentRoundState.REVEALED)
"""States in which the agent re-sends its last datagram after silence."""


def poll(
    recv: Callable[[int, int], bytes], until: float, clock: Callable[[], float]
) -> bytes | None:
    """The next datagram, read without sleeping until ``until``; None if none came."""
    while True:
        try:
            return recv(RECEIVE_BYTES, socket.MSG_DONTWAIT)
        except (BlockingIOError, ConnectionRefusedError):
            if clock() >= until:
                return None


def _send_quietly(send: Callable[[bytes], int], datagram: bytes) -> None:
    """A refused send (nothing listening yet) is loss; the deadline decides."""
    try:  # noqa: SIM105  (a try costs nothing in 3.11; suppress() builds an object per answer)
        send(datagram)
    except ConnectionRefusedError:
        pass


def run_rounds(
    endpoints: Sequence[LandmarkEndpoint],
    device_id: str,
    signer: Signer,
    secrets: RoundSecrets,
    settings: RoundSettings = RoundSettings(),
    *,
    concurrent: bool = False,
    floors: PathFloors | None = None,
    sockets: LandmarkSockets | None = None,
) -> list[RoundOutcome]:
    """One round with each landmark, in the order given; failures are outcomes, not raised.
    Run one after another, the rounds share one :class:`RealtimeSpan`: the thread's real-time
    priority is switched on once, at the first timed phase, and back once, after the last
    round; run concurrently, each round's thread switches for its own timed phase."""

    def one(endpoint: LandmarkEndpoint, span: RealtimeSpan | None = None) -> RoundOutcome:
        try:
            receipt = run_round(
                endpoint,
                device_id,
                signer,
                secrets,
                settings,
                floors=floors,
                sockets=sockets,
                span=span,
            )
        except RoundFailedError as failure:
            return RoundOutcome(endpoint.landmark_id, None, failure)
        return RoundOutcome(endpoint.landmark_id, receipt, None)

    if not concurrent or len(endpoints) < 2:
        span = RealtimeSpan(settings.realtime_priority)
        try:
            return [one(e, span) for e in endpoints]
        finally:
            span.close()
    with ThreadPoolExecutor(len(endpoints), thread_name_prefix="round") as pool:
        return list(pool.map(one, endpoints))
