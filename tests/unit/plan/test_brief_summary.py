"""The brief's summary speaks of one policy: what more landmarks buy is judged at the same
``landmark_faults`` as what the deployment proves."""

from __future__ import annotations

from geoattest.plan.brief import _best_addition
from geoattest.plan.sensitivity import LandmarkPoint, Sensitivity


def point(added: int, faults: int, share: float) -> LandmarkPoint:
    return LandmarkPoint(
        added=added,
        faults=faults,
        landmarks=10 + added,
        certifiable_share=share,
        total_per_year=1000.0 + 100 * added,
        per_certifiable_chip_year=None if share == 0 else 1.0,
    )


SWEEP = Sensitivity(
    regions=(),
    landmarks=(point(0, 0, 0.30), point(1, 0, 0.33), point(0, 1, 0.0), point(1, 1, 0.0)),
    cadence=(),
)


def test_the_addition_is_judged_at_the_fleets_fault_level() -> None:
    at_one = _best_addition(SWEEP, 1)
    assert at_one is not None
    assert "leaves the certifiable share at 0%" in at_one
    assert "30%" not in at_one
    at_zero = _best_addition(SWEEP, 0)
    assert at_zero is not None
    assert "from 30% to 33%" in at_zero
