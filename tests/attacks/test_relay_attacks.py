"""Relays and faster links: the round secret never leaves the chip, bounds are at c."""

from __future__ import annotations

from attack_suite import assert_outcome, never_allowed

from geoattest.verdict import Verdict


def test_helper_relay_next_to_landmarks_is_inconclusive() -> None:
    assert_outcome("helper_relay_next_to_landmarks", Verdict.INCONCLUSIVE)


def test_faster_than_fibre_links_are_inconclusive_with_bounds_at_c() -> None:
    assert_outcome("faster_than_fibre_links", Verdict.INCONCLUSIVE)


def test_relay_and_fast_links_never_allowed_on_any_seed() -> None:
    verdicts = never_allowed("helper_relay_next_to_landmarks", range(1, 6))
    verdicts += never_allowed("faster_than_fibre_links", range(1, 6))
    assert Verdict.ALLOWED not in verdicts
