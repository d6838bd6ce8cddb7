"""The landmark's clock readings for a timed exchange: tight, and never too short.

An RTT is measured from just before a challenge is handed to the socket to the moment
the answer arrived. "Arrived" is best taken from the kernel: with ``SO_TIMESTAMPNS``
Linux stamps each datagram as it enters the stack, before the landmark's thread is woken,
so the wake-up (tens of microseconds on an idle machine, more under load, and any time
the thread spends on other rounds) stays off the measured RTT.

The kernel stamp is ``CLOCK_REALTIME``, which an operator or NTP can *step*; a backward
step inside an exchange would shorten the RTT, which must never happen. So every send and
every receive reads the realtime clock bracketed by two monotonic readings
(:class:`Bracket`). Each bracket bounds the realtime-minus-monotonic offset at that
moment. The kernel stamp is converted to the monotonic clock only when the two brackets
admit one common offset, and then with a margin equal to both bracket widths: the largest
step that could hide inside them. Otherwise the monotonic reading taken after ``recvmsg``
returned stands in for the arrival: later than the true arrival, so the RTT is only ever
over-measured. (Slewing moves both clocks alike and changes no offset.) The one case this
cannot see is two opposite steps of equal size inside one exchange; landmark hosts step
their clock only at boot.

The send side likewise: a challenge's timer starts at the bracket read immediately before
``sendmsg``, and where the kernel offers transmit stamps (``SO_TIMESTAMPING`` with
``SOF_TIMESTAMPING_TX_SOFTWARE``, read back from the socket's error queue; software stamps
work on loopback) it moves later to the moment the datagram left the stack, so the
syscall and the stack's own work stay off the RTT too (:func:`departure_monotonic`). That
conversion errs the other way, early, with the same margins: a start can only move later up
to the true departure, never past it.

Example::

    sent = read_bracket()          # immediately before sendto
    ...                            # recvmsg returns the answer with its kernel stamp
    received = read_bracket()
    arrival_ns, from_kernel = arrival_monotonic(sent, received, kernel_realtime_ns)
    rtt_ns = arrival_ns - sent.after
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import NamedTuple

SO_TIMESTAMPNS = 35
"""Linux's ``SO_TIMESTAMPNS`` (``SCM_TIMESTAMPNS`` likewise); Python 3.11 does not name it."""
SO_TIMESTAMPING = 37
"""Linux's ``SO_TIMESTAMPING`` (``SCM_TIMESTAMPING`` likewise)."""
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0
_SOL_SOCKET = socket.SOL_SOCKET
_RECVERR = {11: socket.IPPROTO_IP, 25: socket.IPPROTO_IPV6}
"""``IP_RECVERR`` and ``IPV6_RECVERR`` and their levels: the error-queue message that carries
a stamp's key."""
_TIMESPEC = struct.Struct("@qq")
_read_timespec = _TIMESPEC.unpack_from
_TIMESPEC_BYTES = _TIMESPEC.size
_EXTENDED_ERR = struct.Struct("=IBBBBII")
"""``struct sock_extended_err``: errno, origin, type, code, pad, info, data (the key)."""
_read_extended_err = _EXTENDED_ERR.unpack_from
_EXTENDED_ERR_BYTES = _EXTENDED_ERR.size
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(3 * _TIMESPEC.size)
"""Room for a received datagram's ``SCM_TIMESTAMPNS`` and, on a socket that also asked
for transmit stamps, the ``SCM_TIMESTAMPING`` the kernel adds."""
ERRQUEUE_ANCILLARY_BYTES = 256
ERRQUEUE_FLAGS = socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
"""``recvmsg`` flags that read the error queue without waiting for it."""
TRANSMIT_STAMP_REQUEST = [
    (socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("@I", SOF_TIMESTAMPING_TX_SOFTWARE))
]
"""``sendmsg`` ancillary data asking for this one datagram's software transmit stamp."""


class Bracket(NamedTuple):
    """A realtime reading between two monotonic readings (all nanoseconds). A named tuple:
    the landmark reads three per exchange between an answer and its next receive, where a
    frozen dataclass took about a microsecond more each to build."""

    before: int
    realtime: int
    after: int

    @property
    def offset_low(self) -> int:
        """Smallest realtime-minus-monotonic offset consistent with this reading."""
        return self.realtime - self.after

    @property
    def offset_high(self) -> int:
        return self.realtime - self.before

    @property
    def width(self) -> int:
        return self.after - self.before


_monotonic = time.monotonic_ns
_realtime = time.time_ns
_new_tuple = tuple.__new__


def read_bracket() -> Bracket:
    """Monotonic, realtime, monotonic, read in that order (a tuple display is evaluated
    left to right); built without the named tuple's Python ``__new__``, as the landmark reads
    three per exchange."""
    return _new_tuple(Bracket, (_monotonic(), _realtime(), _monotonic()))


def arrival_monotonic(
    sent: Bracket, received: Bracket, kernel_realtime_ns: int | None
) -> tuple[int, bool]:
    """The arrival time on the monotonic clock, never earlier than the true arrival.

    Args:
        sent: the bracket read immediately before the challenge was sent.
        received: the bracket read after ``recvmsg`` returned the answer.
        kernel_realtime_ns: the kernel's receive stamp, if the socket gave one.

    Returns:
        The arrival time and whether the kernel stamp was used.
    """
    # In Bracket's terms: both readings admit one offset (each one's offset_low at most
    # the other's offset_high), and the estimate is the stamp less sent.offset_low plus
    # both widths. Written out with the readings unpacked, as this runs for every answer
    # (tests/unit/verifier/test_landmark_clock.py holds it to those terms).
    sent_before, sent_realtime, sent_after = sent
    received_before, received_realtime, received_after = received
    offset_low = sent_realtime - sent_after
    if kernel_realtime_ns is None or not (
        offset_low <= received_realtime - received_before
        and received_realtime - received_after <= sent_realtime - sent_before
    ):
        return received_before, False
    estimate = (
        kernel_realtime_ns
        - offset_low
        + (sent_after - sent_before)
        + (received_after - received_before)
    )
    return (estimate if estimate < received_before else received_before), True


def departure_monotonic(
    sent: Bracket, after: Bracket, kernel_realtime_ns: int | None
) -> tuple[int, bool]:
    """When the challenge left, on the monotonic clock, never later than it truly left.

    Args:
        sent: the bracket read immediately before ``sendmsg`` (the timer's start so far).
        after: a bracket read after the transmit stamp was read back.
        kernel_realtime_ns: the kernel's transmit stamp for that datagram, if any.

    Returns:
        The departure time and whether the kernel stamp moved it later than ``sent``.
    """
    # In Bracket's terms: both readings admit one offset, and the estimate is the stamp
    # less sent.offset_high and both widths, believed only between the two readings;
    # written out as in arrival_monotonic (this runs for every transmit stamp).
    sent_before, sent_realtime, sent_after = sent
    offset_high = sent_realtime - sent_before
    after_before, after_realtime, after_after = after
    if kernel_realtime_ns is None or not (
        sent_realtime - sent_after <= after_realtime - after_before
        and after_realtime - after_after <= offset_high
    ):
        return sent_after, False
    estimate = (
        kernel_realtime_ns - offset_high - (sent_after - sent_before) - (after_after - after_before)
    )
    if not sent_after < estimate <= after_before:
        return sent_after, False
    return estimate, True


def enable_kernel_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each received datagram; False where it cannot."""
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The ``SCM_TIMESTAMPNS`` stamp in ``recvmsg`` ancillary data, in nanoseconds."""
    for level, kind, data in ancillary:
        if kind == SO_TIMESTAMPNS and level == _SOL_SOCKET and len(data) >= _TIMESPEC_BYTES:
            seconds, nanoseconds = _read_timespec(data)
            return seconds * 1_000_000_000 + nanoseconds  # type: ignore[no-any-return]
    return None


def enable_transmit_timestamps(sock: socket.socket) -> bool:
    """Let ``sendmsg`` ask for a datagram's software transmit stamp (each stamp numbered,
    payload not looped back); False where the kernel cannot."""
    if sys.platform != "linux":
        return False
    flags = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
    except OSError:
        return False
    return True


def transmit_stamp(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
    """The transmit stamp in one error-queue message's ancillary data, as (key, realtime
    ns); the key counts the stamped sends from 0. None: the message carries no stamp."""
    stamp = key = None
    for level, kind, data in ancillary:
        if kind == SO_TIMESTAMPING and level == _SOL_SOCKET:
            seconds, nanoseconds = _read_timespec(data)
            stamp = seconds * 1_000_000_000 + nanoseconds
        elif _RECVERR.get(kind) == level and len(data) >= _EXTENDED_ERR_BYTES:
            _, origin, _, _, _, info, data_key = _read_extended_err(data)
            if origin == SO_EE_ORIGIN_TIMESTAMPING and info == SCM_TSTAMP_SND:
                key = data_key
    if stamp is None or key is None:
        return None
    return key, stamp
