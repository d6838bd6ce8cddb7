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
from collections.abc import Callable
from dataclasses import dataclass

SO_TIMESTAMPNS = 35
"""Linux's ``SO_TIMESTAMPNS`` (``SCM_TIMESTAMPNS`` likewise); Python 3.11 does not name it."""
_TIMESPEC = struct.Struct("@qq")
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class Bracket:
    """A realtime reading between two monotonic readings (all nanoseconds)."""

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


def read_bracket(monotonic: Clock = time.monotonic_ns, realtime: Clock = time.time_ns) -> Bracket:
    before = monotonic()
    wall = realtime()
    return Bracket(before, wall, monotonic())


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
    if kernel_realtime_ns is None or not (
        sent.offset_low <= received.offset_high and received.offset_low <= sent.offset_high
    ):
        return received.before, False
    estimate = kernel_realtime_ns - sent.offset_low + sent.width + received.width
    return min(estimate, received.before), True


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
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds * 1_000_000_000 + nanoseconds)
    return None
