"""Where the chip really is: honest, diverted, and at a border."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind


def test_honest_chip_in_licensed_region_is_allowed() -> None:
    assert_outcome("honest_chip_in_licensed_region", Verdict.ALLOWED)


def test_diverted_chip_in_shenzhen_licensed_to_singapore_is_outside_with_alert() -> None:
    assert_outcome(
        "diverted_chip_shenzhen_licensed_singapore",
        Verdict.OUTSIDE,
        alerts=(AlertKind.OUTSIDE_LICENSED_REGION,),
    )


def test_border_chip_in_johor_bahru_licensed_to_singapore_is_inconclusive() -> None:
    assert_outcome("border_chip_johor_bahru_licensed_singapore", Verdict.INCONCLUSIVE)


def test_border_chip_in_shenzhen_licensed_to_hong_kong_is_inconclusive() -> None:
    assert_outcome("border_chip_shenzhen_licensed_hong_kong", Verdict.INCONCLUSIVE)
