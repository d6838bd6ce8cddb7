"""The landmark's UDP timing server: one thread, one blocking socket, kernel receive stamps.

Why this shape (measured; see BENCHMARKS.md, "Timing path"): the landmark's own wake-up
after an answer arrives would otherwise sit inside every RTT, and on an idle machine it is
about half of a loopback round trip. With ``SO_TIMESTAMPNS`` the kernel stamps the answer
on arrival, so neither the wake-up nor anything the thread was doing at the time (another
round's signature, a sweep) is measured. The send side stamps the clock immediately before
``sendmsg``, after the challenge datagram is built, and where the kernel offers transmit
stamps it asks for the challenge's own and moves the timer's start to it: the syscall and
the stack's work before the datagram left stay off the RTT (the fallback, where there are
none, is the stamp before ``sendmsg``). asyncio's datagram transport cannot
return ancillary data, and its loop adds a callback hop; a thread blocked in ``recvmsg``
needs neither. See :mod:`geoattest.verifier.landmark.clock` for why a realtime kernel stamp still
never yields an RTT shorter than the true one.

The transmit stamps are read back where the thread would otherwise wait, not after each
challenge: a spinning agent's answer comes some microseconds after the send, and a read in
between would return the thread to its socket late. Each stamped send is remembered with the
readings before and after its system call. A stamp is read right after the send only where
the round's last answer came later after its challenge's send than a read takes; otherwise
the error queue is read after the thread sends a datagram no timer waits on (a round's
Complete, while the agent signs), at each sweep, once enough sends wait, and whenever a
round needs its RTTs (its adaptive decision to extend, its receipt:
:attr:`LandmarkRound.settle`). A stamp is applied to the send whose key it carries only if
it lies inside that send's own system call
(:func:`~geoattest.verifier.landmark.clock.departure_monotonic`), so a wrong key is dropped
and that exchange keeps its start before the send; a stamp not queued by the time the queue
is found empty is dropped the same way. Either way a start moves only later, up to the true
departure.

Example::

    identity = LandmarkIdentity("lm-fra", 50.11, 8.68)
    with LandmarkServer(identity, signer, host="127.0.0.1", port=0) as server:
        print(server.address, server.counters())
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from geoattest.crypto import Signer
from geoattest.errors import ConfigError
from geoattest.lifecycle import Running
from geoattest.protocol.round import Randomness
from geoattest.verifier.landmark.clock import (
    ANCILLARY_BYTES,
    ERRQUEUE_ANCILLARY_BYTES,
    ERRQUEUE_FLAGS,
    TRANSMIT_STAMP_REQUEST,
    Bracket,
    departure_monotonic,
    enable_kernel_timestamps,
    enable_transmit_timestamps,
    kernel_stamp,
    read_bracket,
    transmit_stamp,
)
from geoattest.verifier.landmark.dispatch import (
    Address,
    Counters,
    Dispatcher,
    FinishedHook,
    Limits,
    Outgoing,
    RoundEntry,
)
from geoattest.wire.decode import MAX_DATAGRAM_BYTES
from geoattest.wire.rounds import realtime, receive_timeout, spin_permitted

log = logging.getLogger("geoattest.landmark")

RECEIVE_BYTES = MAX_DATAGRAM_BYTES + 1
"""One byte more than the protocol allows, so a longer datagram is seen as too long."""
RECEIVE_BUFFER_BYTES = 1 << 20
MAX_UNREAD_STAMPS = 64
"""Stamped sends whose stamps wait in the error queue (which shares the receive buffer)
before the thread reads them, whatever else it does."""


class StampedSend(NamedTuple):
    """A challenge sent with a transmit stamp requested, its stamp not read yet."""

    entry: RoundEntry
    challenge_index: int
    sent: Bracket
    """Read immediately before ``sendmsg``."""
    returned: Bracket
    """Read once ``sendmsg`` returned."""


@dataclass(frozen=True, slots=True)
class LandmarkIdentity:
    """Who the landmark is and where it was surveyed."""

    landmark_id: str
    latitude: float
    longitude: float


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host:port``; any failure is a one-line config error."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc}") from exc
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class RandomPool:
    """Random bytes drawn from ``source`` a page at a time and handed out in order, each
    byte once. Every challenge needs 16 fresh bytes between an answer's arrival and the next
    challenge's send, where a ``getrandom`` call of its own cost the landmark (and the agent
    spinning through its turn) a system call per exchange."""

    def __init__(self, source: Randomness, page_bytes: int = 4096) -> None:
        self._source = source
        self._page_bytes = page_bytes
        self._page = b""
        self._at = 0

    def __call__(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._page):
            if size > self._page_bytes:
                return self._source(size)
            self._page, self._at, end = self._source(self._page_bytes), 0, size
        drawn = self._page[self._at : end]
        self._at = end
        return drawn


class LandmarkServer(Running):
    """Serves timed rounds on one UDP socket from one thread until stopped.

    The socket is bound by the constructor (so a port in use fails there, before
    anything starts); :meth:`start` and :meth:`stop` run and end the thread.
    """

    def __init__(
        self,
        identity: LandmarkIdentity,
        signer: Signer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits | None = None,
        randomness: Randomness = os.urandom,
        kernel_timestamps: bool = True,
        sweep_interval_s: float = 0.02,
        on_finished: FinishedHook | None = None,
        realtime_priority: int = 0,
        spin_s: float = 0.0,
    ) -> None:
        """``realtime_priority``: the serving thread's ``SCHED_FIFO`` priority where the
        process may (0: normal priority; :func:`~geoattest.wire.rounds.realtime`,
        :mod:`geoattest.priorities`).

        ``spin_s``: after a round's challenge on a path whose last exchange took at most
        this long, poll the socket for the answer for up to this long before blocking, so
        that a short path's answer is read as it lands instead of waking the thread (the
        chip's agent spins through its side of the turn meanwhile). Only where the host
        lets a thread spin, by the agent's own rule
        (:func:`~geoattest.wire.rounds.spin_permitted`, checked once a sweep interval);
        never after a round's first challenge or on a longer (Internet) path. 0: never,
        as for a server that shares its process with an agent (the polls would take turns
        at its interpreter lock)."""
        self.identity = identity
        self.signer = signer
        self._dispatcher = Dispatcher(
            identity.landmark_id, signer, limits or Limits(), RandomPool(randomness), on_finished
        )
        self._sweep_interval_ns = int(sweep_interval_s * 1e9)
        self._realtime_priority = realtime_priority
        self._spin_ns = int(spin_s * 1e9)
        self._sock = bind_udp(host, port)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        receive_timeout(self._sock, sweep_interval_s)
        self.kernel_timestamps = kernel_timestamps and enable_kernel_timestamps(self._sock)
        self.transmit_timestamps = kernel_timestamps and enable_transmit_timestamps(self._sock)
        self._stamped_sends = 0
        """Key the kernel gives the next stamped send's transmit stamp."""
        self._unread: dict[int, StampedSend] = {}
        """Stamped sends by their stamps' keys, until :meth:`_settle` reads the stamps."""
        self._stamp_read_ns = 0
        """How long the last stamp read right after a send took."""
        self.address: Address = self._sock.getsockname()
        self._stopping = False
        """Set by :meth:`stop`; the thread reads it once per datagram or sweep interval
        (a plain attribute: ``Event.is_set`` is a call per datagram)."""
        self._thread = threading.Thread(
            target=self._serve, name=f"landmark-{identity.landmark_id}", daemon=True
        )

    def counters(self) -> Counters:
        return self._dispatcher.counters.snapshot()

    @property
    def rtt_floor_ns(self) -> int | None:
        """The shortest exchange timed so far (None before the first)."""
        return self._dispatcher.rtt_floor_ns

    @property
    def open_rounds(self) -> int:
        return self._dispatcher.open_rounds

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within one sweep interval) and close the socket."""
        self._stopping = True
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()

    def _send(self, outgoing: Outgoing) -> None:
        """Send a datagram. A challenge's timer starts at the reading taken immediately
        before the send; where the kernel stamps its departure, the send is remembered and
        a stamp is read right away only if the round's last answer came later after its
        challenge's send than a stamp read takes (as after a round's first challenge, when
        the agent is woken): the read is then over before the answer comes. Otherwise the
        stamps wait until a datagram no timer waits on is sent (the peer has work to do
        before it answers), or a round needs them (:meth:`_settle_one`)."""
        timed = outgoing.timed
        counters = self._dispatcher.counters
        if timed is None:
            try:
                self._sock.sendto(outgoing.datagram, outgoing.peer)
            except OSError:
                counters.send_errors += 1
            if self._unread:
                self._settle()
            return
        sent = read_bracket()
        read_now = False
        try:
            if self.transmit_timestamps:
                self._sock.sendmsg([outgoing.datagram], TRANSMIT_STAMP_REQUEST, 0, outgoing.peer)
                returned = read_bracket()
                key = self._stamped_sends
                self._stamped_sends = key + 1
                self._unread[key] = _new_tuple(
                    StampedSend, (timed, timed.answer_index, sent, returned)
                )
                landmark_round = timed.round
                landmark_round.settle = self._settle_one
                exchanges = landmark_round.timed
                if exchanges:
                    last = exchanges[-1]
                    answered_after_ns = last.started_ns + last.rtt_ns - timed.returned_ns
                    read_now = answered_after_ns > self._stamp_read_ns
                else:
                    read_now = True
                timed.returned_ns = returned.after
            else:
                self._sock.sendto(outgoing.datagram, outgoing.peer)
        except OSError:
            counters.send_errors += 1
        timed.start_timer(sent)
        if read_now:
            began_ns = _monotonic()
            self._settle_one()
            self._stamp_read_ns = _monotonic() - began_ns
        elif len(self._unread) >= MAX_UNREAD_STAMPS:
            self._settle()

    def _settle(self) -> None:
        """Read every transmit stamp queued (:meth:`_settle_one`)."""
        settle_one = self._settle_one
        while settle_one():
            pass

    def _settle_one(self) -> bool:
        """Read the error queue's next message. A transmit stamp moves the remembered send
        its key names to its departure, if it lies inside that send's own system call
        (:func:`departure_monotonic`); if not, the send keeps its start. False once the
        queue is empty: every send still remembered is then forgotten, keeping its start
        (its stamp was not queued during its call). A key past the next one expected (a send
        the kernel numbered but that failed) renumbers the sends that follow."""
        try:
            _, ancillary, _, _ = self._sock.recvmsg(0, ERRQUEUE_ANCILLARY_BYTES, ERRQUEUE_FLAGS)
        except OSError:  # BlockingIOError: the queue is empty
            unread = self._unread
            self._unread = {}
            for stamped in unread.values():
                stamped.entry.round.settle = None
            return False
        queued = transmit_stamp(ancillary)
        if queued is None:
            return True
        key, stamp = queued
        if key >= self._stamped_sends:
            self._stamped_sends = key + 1
        send = self._unread.get(key)
        if send is None:
            return True
        entry, index, sent, returned = send
        departed_ns, believed = departure_monotonic(sent, returned, stamp)
        if believed:
            del self._unread[key]
            self._dispatcher.depart(entry, index, departed_ns)
        return True

    def _sweep(self, now_ns: int) -> None:
        """Read the stamps waiting, then re-send what loss left unanswered and fail silent
        rounds (:meth:`Dispatcher.sweep`), whose RTTs are then settled."""
        if self._unread:
            self._settle()
        for outgoing in self._dispatcher.sweep(now_ns):
            self._send(outgoing)

    def _poll(
        self, until_ns: int
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, Address] | None:
        """The next datagram as ``recvmsg`` returns it, read without sleeping until
        ``until_ns`` (monotonic); None if none came by then."""
        recvmsg = self._sock.recvmsg
        while True:
            try:
                return recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.monotonic_ns() >= until_ns:
                    return None

    def _serve(self) -> None:
        """The receive loop. Nothing a peer sends may end it; only :meth:`stop` does."""
        # For the thread's life: nothing to put back.
        realtime_held = realtime(self._realtime_priority) is not None
        recvmsg = self._sock.recvmsg
        dispatcher = self._dispatcher
        handle = dispatcher.handle
        send = self._send
        spin_ns = self._spin_ns
        may_spin = False
        spin_until_ns = next_sweep_ns = 0
        while not self._stopping:
            try:
                polled = self._poll(spin_until_ns) if spin_until_ns else None
                spin_until_ns = 0
                if polled is None:
                    polled = recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES)
                else:
                    dispatcher.counters.datagrams_polled += 1
                data, ancillary, _, source = polled
            except (TimeoutError, BlockingIOError):  # the sweep interval passed
                data = None
            except OSError:
                if not self._stopping:
                    log.exception("landmark receive failed")
                    dispatcher.counters.internal_errors += 1
                continue
            try:
                if data is None:
                    now_ns = time.monotonic_ns()
                else:
                    received = read_bracket()
                    outgoing = handle(data, source, received, kernel_stamp(ancillary))
                    if outgoing is not None:
                        send(outgoing)
                        timed = outgoing.timed
                        if may_spin and timed is not None:
                            exchanges = timed.round.timed
                            if exchanges and exchanges[-1].rtt_ns <= spin_ns:
                                spin_until_ns = time.monotonic_ns() + spin_ns
                    now_ns = received.after  # a sweep a turn late loses nothing
                if now_ns >= next_sweep_ns:
                    next_sweep_ns = now_ns + self._sweep_interval_ns
                    may_spin = spin_ns > 0 and spin_permitted(realtime_held)
                    self._sweep(now_ns)
            except Exception:
                log.exception("landmark dropped a datagram on an internal error")
                dispatcher.counters.internal_errors += 1


_new_tuple = tuple.__new__
"""Builds each :class:`StampedSend` without the named tuple's Python ``__new__``."""
_monotonic = time.monotonic_ns
