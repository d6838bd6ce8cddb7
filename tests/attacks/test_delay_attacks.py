"""Stalling to look elsewhere: delay only widens the disks, so never ALLOWED."""

from __future__ import annotations

import pytest
from attack_suite import assert_outcome, never_allowed

from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

OUTSIDE = (AlertKind.OUTSIDE_LICENSED_REGION,)


def test_constant_delay_to_look_elsewhere_stays_outside() -> None:
    assert_outcome("constant_delay_to_look_elsewhere", Verdict.OUTSIDE, alerts=OUTSIDE)


def test_selective_delay_on_near_landmarks_stays_outside() -> None:
    assert_outcome("selective_delay_on_near_landmarks", Verdict.OUTSIDE, alerts=OUTSIDE)


def test_adaptive_delay_mimicking_singapore_is_inconclusive() -> None:
    assert_outcome("adaptive_delay_mimics_singapore", Verdict.INCONCLUSIVE)


@pytest.mark.parametrize(
    "name",
    [
        "constant_delay_to_look_elsewhere",
        "selective_delay_on_near_landmarks",
        "adaptive_delay_mimics_singapore",
    ],
)
def test_delay_never_allows_a_chip_in_shenzhen_for_singapore_on_any_seed(name: str) -> None:
    assert Verdict.ALLOWED not in never_allowed(name, range(1, 6))
