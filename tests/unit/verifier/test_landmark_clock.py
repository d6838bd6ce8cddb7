"""Kernel receive stamps turned into monotonic arrivals: tight, and never too early."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geoattest.verifier.landmark.clock import Bracket, arrival_monotonic

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
