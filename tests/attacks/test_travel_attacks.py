"""Moving between proofs: a device cannot be in two far places one cadence apart."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind


def test_verify_then_move_raises_impossible_travel_within_one_cadence() -> None:
    assert_outcome(
        "verify_then_move",
        Verdict.OUTSIDE,
        alerts=(AlertKind.OUTSIDE_LICENSED_REGION, AlertKind.IMPOSSIBLE_TRAVEL),
    )


def test_cloned_key_taking_turns_with_the_original_is_downgraded_from_allowed() -> None:
    outcome = assert_outcome(
        "cloned_key_takes_turns_with_original",
        Verdict.INCONCLUSIVE,
        alerts=(AlertKind.IMPOSSIBLE_TRAVEL,),
    )
    # The clone's own disks lie in Singapore: only the travel check keeps it from ALLOWED.
    assert outcome.detail.startswith("all land in the feasible region is licensed; but")


def test_a_journey_slower_than_the_fastest_transport_raises_no_travel_alert() -> None:
    assert_outcome(
        "slow_journey_is_not_impossible_travel",
        Verdict.OUTSIDE,
        alerts=(AlertKind.OUTSIDE_LICENSED_REGION,),
    )
