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

The timed receive and the challenge's send run in C where the package's extension built
(``_timed_io``: the system calls, the clock readings and the ancillary parsing, one call
each, the interpreter lock released around them; ``landmark_io`` says which runs): every
microsecond off the landmark's turn is one the chip's agent does not spin through, some 30
per proof. What they return is what the Python reference path (the methods here) computes,
and the conversions and soundness rules stay in Python (:mod:`clock`) for both.

Example::

    identity = LandmarkIdentity("lm-fra", 50.11, 8.68)
    with LandmarkServer(identity, signer, host="127.0.0.1", port=0) as server:
        print(server.address, server.counters())
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial

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
)
from geoattest.wire.decode import MAX_DATAGRAM_BYTES
from geoattest.wire.rounds import realtime, receive_timeout, spin_permitted

log = logging.getLogger("geoattest.landmark")

try:
    from geoattest.verifier.landmark import _timed_io
except ImportError:  # not built (no compiler, not Linux): the Python reference path runs
    NATIVE_IO = False
else:
    NATIVE_IO = True
    _timed_io.bind_bracket(Bracket)

Received = tuple[bytes, Address, Bracket, int | None]
"""A datagram, its source, the readings right after its receive and its kernel stamp:
what :meth:`Dispatcher.handle` takes."""

RECEIVE_BYTES = MAX_DATAGRAM_BYTES + 1
"""One byte more than the protocol allows, so a longer datagram is seen as too long."""
RECEIVE_BUFFER_BYTES = 1 << 20


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
        native: bool = True,
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
        at its interpreter lock).

        ``native``: time the receive and the challenge's send in C where the extension
        built and the socket is an internet one (:attr:`landmark_io`); False: the Python
        reference path."""
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
        self._fd = self._sock.fileno()
        self._family = int(self._sock.family)
        self.address: Address = self._sock.getsockname()
        self._native = (
            native
            and NATIVE_IO
            and sys.platform == "linux"
            and self._sock.family in (socket.AF_INET, socket.AF_INET6)
        )
        self.landmark_io = "native" if self._native else "python"
        """Which path times the receive and the send: ``native`` (C) or ``python``."""
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
        before the send, or later at its departure where the kernel stamped it; it is set
        once the send returned, as nothing reads it before the answer, which this thread
        reads after."""
        timed = outgoing.timed
        counters = self._dispatcher.counters
        if timed is None:
            try:
                self._sock.sendto(outgoing.datagram, outgoing.peer)
            except OSError:
                counters.send_errors += 1
            return
        departed_ns = 0
        if self._native:
            sent, error, self._stamped_sends, stamp, after = _timed_io.send_timed(
                self._fd,
                self._family,
                outgoing.datagram,
                outgoing.peer,
                self._stamped_sends,
                self.transmit_timestamps,
            )
            if error:
                counters.send_errors += 1
            elif after is not None:
                departed_ns = _departed(sent, after, stamp)
        else:
            sent = read_bracket()
            try:
                if self.transmit_timestamps:
                    self._sock.sendmsg(
                        [outgoing.datagram], TRANSMIT_STAMP_REQUEST, 0, outgoing.peer
                    )
                    departed_ns = self._departure(sent)
                else:
                    self._sock.sendto(outgoing.datagram, outgoing.peer)
            except OSError:
                counters.send_errors += 1
        timed.start_timer(sent, departed_ns)
        if departed_ns:
            counters.challenges_transmit_stamped += 1

    def _departure(self, sent: Bracket) -> int:
        """When the datagram just sent (``sent``: the reading before its send) left, from
        its transmit stamp (:func:`departure_monotonic`), if the kernel queued the stamp
        already; 0 if not. Stamps of earlier sends (queued late) are dropped; the queue is
        read no further than this send's stamp, so the answer to the challenge just sent
        never waits behind a read that finds the queue empty."""
        recvmsg = self._sock.recvmsg
        key = self._stamped_sends
        stamp = None
        while stamp is None:
            try:
                _, ancillary, _, _ = recvmsg(0, ERRQUEUE_ANCILLARY_BYTES, ERRQUEUE_FLAGS)
            except OSError:  # BlockingIOError: the queue is empty
                break
            queued = transmit_stamp(ancillary)
            if queued is None:
                continue
            queued_key, queued_stamp = queued
            if queued_key == key:
                stamp = queued_stamp
            elif queued_key > key:
                key = queued_key
        self._stamped_sends = key + 1
        if stamp is None:
            return 0
        return _departed(sent, read_bracket(), stamp)

    def _receive(self, until_ns: int) -> Received | None:
        """The reference path's receive: the next datagram, polled for until ``until_ns``
        (monotonic; None if none came by then) or, at 0, waited for as the socket's receive
        timeout lets; the readings right after it came (errors: as ``socket.recvmsg``)."""
        if until_ns:
            polled = self._poll(until_ns)
            if polled is None:
                return None
        else:
            polled = self._sock.recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES)
        data, ancillary, _, source = polled
        return data, source, read_bracket(), kernel_stamp(ancillary)

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
        receive = (
            partial(_timed_io.receive, self._fd, RECEIVE_BYTES) if self._native else self._receive
        )
        dispatcher = self._dispatcher
        handle = dispatcher.handle
        send = self._send
        spin_ns = self._spin_ns
        may_spin = False
        spin_until_ns = next_sweep_ns = 0
        while not self._stopping:
            try:
                until_ns, spin_until_ns = spin_until_ns, 0
                got = receive(until_ns) if until_ns else None
                if got is None:
                    got = receive(0)
                    assert got is not None  # a blocking receive returns or raises
                else:
                    dispatcher.counters.datagrams_polled += 1
                data, source, received, stamp = got
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
                    outgoing = handle(data, source, received, stamp)
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
                    for outgoing in dispatcher.sweep(now_ns):
                        self._send(outgoing)
            except Exception:
                log.exception("landmark dropped a datagram on an internal error")
                dispatcher.counters.internal_errors += 1


def _departed(sent: Bracket, after: Bracket, stamp: int) -> int:
    """The departure a transmit stamp read between the readings ``sent`` (before the send)
    and ``after`` gives (:func:`departure_monotonic`); 0 where the conversion refuses it
    and the timer keeps the reading before the send. Both paths apply it."""
    departed_ns, stamped = departure_monotonic(sent, after, stamp)
    return departed_ns if stamped else 0
