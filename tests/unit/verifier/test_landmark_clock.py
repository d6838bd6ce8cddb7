"""Kernel receive and transmit stamps turned into monotonic times: tight, and never making
an RTT shorter than it was."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoattest.verifier.landmark.clock import (
    Bracket,
    arrival_monotonic,
    departure_monotonic,
    transmit_stamp,
)

OFFSET = 1_767_225_600 * 10**9
"""Realtime minus monotonic before any step."""


def bracket(before: int, after: int, offset: int) -> Bracket:
    return Bracket(before, (before + after) // 2 + offset, after)


def test_without_a_step_the_kernel_stamp_is_used_with_only_the_bracket_margin():
    sent = bracket(1_000, 1_100, OFFSET)
    received = bracket(60_000, 60_100, OFFSET)
    arrival, from_kernel = arrival_monotonic(sent, received, 30_000 + OFFSET)
    assert from_kernel
    assert 30_000 <= arrival <= 30_000 + sent.width + received.width + 100


def test_no_kernel_stamp_falls_back_to_the_reading_after_recvmsg():
    received = bracket(60_000, 60_100, OFFSET)
    assert arrival_monotonic(bracket(0, 100, OFFSET), received, None) == (60_000, False)


def test_a_backward_step_during_the_exchange_falls_back_to_monotonic():
    sent = bracket(1_000, 1_100, OFFSET)
    received = bracket(60_000, 60_100, OFFSET - 10_000_000)
    arrival, from_kernel = arrival_monotonic(sent, received, 30_000 + OFFSET - 10_000_000)
    assert (arrival, from_kernel) == (60_000, False)


def test_a_forward_step_during_the_exchange_falls_back_to_monotonic():
    sent = bracket(1_000, 1_100, OFFSET)
    received = bracket(60_000, 60_100, OFFSET + 5_000)
    assert arrival_monotonic(sent, received, 30_000 + OFFSET + 5_000) == (60_000, False)


def test_the_estimate_never_passes_the_reading_after_recvmsg():
    sent = bracket(1_000, 1_100, OFFSET)
    received = bracket(30_050, 30_060, OFFSET)
    arrival, _ = arrival_monotonic(sent, received, 30_049 + OFFSET)
    assert arrival <= 30_050


@given(
    send_at=st.integers(0, 10**9),
    read_ns=st.lists(st.integers(0, 5_000), min_size=4, max_size=4),
    flight_ns=st.integers(0, 10**8),
    wake_ns=st.integers(0, 10**7),
    step_ns=st.integers(-(10**9), 10**9),
    step_fraction=st.floats(0.0, 1.0),
)
def test_no_single_clock_step_anywhere_makes_the_rtt_shorter_than_it_was(
    send_at, read_ns, flight_ns, wake_ns, step_ns, step_fraction
):
    """The true clock is monotonic; realtime steps once by ``step_ns`` somewhere in the
    exchange (from before the send bracket to after the receive bracket)."""
    a = send_at
    r_send = a + read_ns[0]
    b = r_send + read_ns[1]
    arrival = b + flight_ns
    c = arrival + wake_ns
    r_recv = c + read_ns[2]
    d = r_recv + read_ns[3]
    step_at = a + int(step_fraction * (d - a))

    def realtime(t: int) -> int:
        return t + OFFSET + (step_ns if t >= step_at else 0)

    sent = Bracket(a, realtime(r_send), b)
    received = Bracket(c, realtime(r_recv), d)
    estimate, _ = arrival_monotonic(sent, received, realtime(arrival))
    assert estimate >= arrival


def test_a_transmit_stamp_moves_the_start_to_the_departure_with_only_the_bracket_margin():
    sent = bracket(1_000, 1_100, OFFSET)
    after = bracket(9_000, 9_100, OFFSET)
    departure, stamped = departure_monotonic(sent, after, 6_000 + OFFSET)
    assert stamped
    assert 6_000 - sent.width - after.width - 100 <= departure <= 6_000


def test_no_transmit_stamp_keeps_the_start_before_the_send():
    sent = bracket(1_000, 1_100, OFFSET)
    assert departure_monotonic(sent, bracket(9_000, 9_100, OFFSET), None) == (1_100, False)


def test_a_step_between_the_send_and_the_read_back_keeps_the_start_before_the_send():
    sent = bracket(1_000, 1_100, OFFSET)
    after = bracket(9_000, 9_100, OFFSET + 50_000)
    assert departure_monotonic(sent, after, 6_000 + OFFSET + 50_000) == (1_100, False)


def test_a_stamp_past_the_read_back_is_not_believed():
    sent = bracket(1_000, 1_100, OFFSET)
    after = bracket(9_000, 9_100, OFFSET)
    assert departure_monotonic(sent, after, 20_000 + OFFSET) == (1_100, False)


@given(
    send_at=st.integers(0, 10**9),
    read_ns=st.lists(st.integers(0, 5_000), min_size=6, max_size=6),
    stack_ns=st.integers(0, 10**6),
    readback_ns=st.integers(0, 10**6),
    flight_ns=st.integers(0, 10**8),
    wake_ns=st.integers(0, 10**7),
    step_ns=st.integers(-(10**9), 10**9),
    step_fraction=st.floats(0.0, 1.0),
)
def test_no_single_clock_step_makes_a_transmit_stamped_rtt_shorter_than_it_was(
    send_at, read_ns, stack_ns, readback_ns, flight_ns, wake_ns, step_ns, step_fraction
):
    """Send bracket, the datagram leaving, the read-back bracket, the answer arriving,
    the receive bracket; realtime steps once by ``step_ns`` anywhere in between."""
    a = send_at
    r_send = a + read_ns[0]
    b = r_send + read_ns[1]
    departure = b + stack_ns
    c = departure + readback_ns
    r_back = c + read_ns[2]
    d = r_back + read_ns[3]
    arrival = d + flight_ns
    e = arrival + wake_ns
    r_recv = e + read_ns[4]
    f = r_recv + read_ns[5]
    step_at = a + int(step_fraction * (f - a))

    def realtime(t: int) -> int:
        return t + OFFSET + (step_ns if t >= step_at else 0)

    sent = Bracket(a, realtime(r_send), b)
    start, _ = departure_monotonic(sent, Bracket(c, realtime(r_back), d), realtime(departure))
    stop, _ = arrival_monotonic(sent, Bracket(e, realtime(r_recv), f), realtime(arrival))
    assert b <= start <= departure
    assert stop - start >= arrival - departure


def _consistent(first: Bracket, second: Bracket) -> bool:
    return first.offset_low <= second.offset_high and second.offset_low <= first.offset_high


def _arrival_reference(sent: Bracket, received: Bracket, stamp: int | None) -> tuple[int, bool]:
    """The conversion in the terms of the module's docstring, with Bracket's properties."""
    if stamp is None or not _consistent(sent, received):
        return received.before, False
    return min(stamp - sent.offset_low + sent.width + received.width, received.before), True


def _departure_reference(sent: Bracket, after: Bracket, stamp: int | None) -> tuple[int, bool]:
    if stamp is None or not _consistent(sent, after):
        return sent.after, False
    estimate = stamp - sent.offset_high - sent.width - after.width
    if not sent.after < estimate <= after.before:
        return sent.after, False
    return estimate, True


readings = st.tuples(
    st.integers(0, 10**6), st.integers(-(10**4), 10**4), st.integers(0, 10**4)
).map(lambda r: Bracket(r[0], r[0] + OFFSET + r[1], r[0] + r[2]))


@given(
    first=readings,
    second=readings,
    stamp=st.one_of(st.none(), st.integers(-(10**4), 2 * 10**6).map(lambda t: t + OFFSET)),
)
def test_the_conversions_written_out_equal_them_in_bracket_terms(first, second, stamp):
    """The conversions run per exchange with the brackets unpacked; on any readings
    (steps between them or not, stamps anywhere or none) they give what the properties
    give."""
    assert arrival_monotonic(first, second, stamp) == _arrival_reference(first, second, stamp)
    assert departure_monotonic(first, second, stamp) == _departure_reference(first, second, stamp)


@given(
    start=st.integers(0, 10**6),
    widths=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    gap_ns=st.integers(0, 100),
    step_ns=st.integers(-80, 80),
    stamp_at=st.floats(-0.2, 1.2),
)
def test_the_conversions_written_out_equal_them_near_their_edges(
    start, widths, gap_ns, step_ns, stamp_at
):
    """As above, with the second reading after the first, a step about as large as the
    brackets' widths, and the stamp near the span between them: where each comparison of
    the conversions decides."""
    first = Bracket(start, start + widths[0] // 2 + OFFSET, start + widths[0])
    begin = first.after + gap_ns
    second = Bracket(begin, begin + widths[1] // 2 + OFFSET + step_ns, begin + widths[1])
    stamp = first.before + int(stamp_at * (second.after - first.before)) + OFFSET
    assert arrival_monotonic(first, second, stamp) == _arrival_reference(first, second, stamp)
    assert departure_monotonic(first, second, stamp) == _departure_reference(first, second, stamp)


def _error_queue_message(
    level: int = socket.IPPROTO_IP, kind: int = 11, origin: int = 4, info: int = 0
) -> list[tuple[int, int, bytes]]:
    """What Linux puts in an error-queue message for transmit stamp number 7 (1.5 s):
    the ``SCM_TIMESTAMPNS`` copy, ``SCM_TIMESTAMPING``, and the extended error with its key."""
    stamp = struct.pack("@qq", 1, 500_000_000)
    error = struct.pack("=IBBBBII", 42, origin, 0, 0, 0, info, 7) + bytes(16)
    return [
        (socket.SOL_SOCKET, 35, stamp),
        (socket.SOL_SOCKET, 37, stamp + bytes(32)),
        (level, kind, error),
    ]


@pytest.mark.parametrize(
    ("message", "read"),
    [
        (_error_queue_message(), (7, 1_500_000_000)),
        (_error_queue_message(socket.IPPROTO_IPV6, 25), (7, 1_500_000_000)),
        (_error_queue_message(socket.IPPROTO_IPV6, 11), None),  # IP_RECVERR's kind, not its level
        (_error_queue_message(origin=2), None),  # an ICMP error, not a stamp
        (_error_queue_message(info=1), None),  # a scheduling stamp, not the send's
        (_error_queue_message()[2:], None),  # a key without a stamp
        (_error_queue_message()[:2], None),  # a stamp without a key
    ],
)
def test_a_transmit_stamp_is_read_only_from_a_send_stamp_with_its_key(message, read):
    assert transmit_stamp(message) == read
