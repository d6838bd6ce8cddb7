"""Landmarks that are rogue, revoked, misplaced or lying."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

INCONSISTENT = (AlertKind.INCONSISTENT_LANDMARKS,)


def test_rogue_unregistered_landmark_is_rejected() -> None:
    assert_outcome("rogue_unregistered_landmark", Verdict.REJECTED, reason=Reason.UNKNOWN_LANDMARK)


def test_revoked_landmark_is_rejected() -> None:
    assert_outcome("revoked_landmark", Verdict.REJECTED, reason=Reason.REVOKED_LANDMARK)


def test_landmark_registered_at_wrong_coordinates_is_flagged_inconsistent() -> None:
    assert_outcome(
        "landmark_registered_at_wrong_coordinates", Verdict.INCONSISTENT, alerts=INCONSISTENT
    )


def test_lying_landmark_contradicted_by_honest_ones_is_flagged_inconsistent() -> None:
    assert_outcome(
        "lying_landmark_contradicted_by_others", Verdict.INCONSISTENT, alerts=INCONSISTENT
    )


def test_lying_landmark_among_distant_honest_ones_is_outvoted_by_default() -> None:
    outcome = assert_outcome("lying_landmark_among_distant_honest_ones", Verdict.INCONCLUSIVE)
    assert "without lm-sin it is INCONCLUSIVE" in outcome.detail


def test_a_policy_that_trusts_every_landmark_lets_the_liar_vouch() -> None:
    """Why the default tolerates one liar: at landmark_faults = 0 the same attack is
    ALLOWED (the setting exists only to be chosen knowingly)."""
    scenario = BY_NAME["lying_landmark_among_distant_honest_ones"]
    outcome = scenario.run(AttackWorld(landmark_faults=0))
    assert outcome.verdict is Verdict.ALLOWED


def test_honest_chip_with_two_datacentre_landmarks_stays_allowed_tolerating_one_liar() -> None:
    assert_outcome("honest_chip_with_two_datacentre_landmarks_tolerating_one_liar", Verdict.ALLOWED)


def test_tolerating_a_liar_costs_allowed_where_only_one_landmark_is_close() -> None:
    """The price of the default, stated: where both close landmarks have one operator,
    that operator cannot be left out, and the verdict says so instead of trusting it."""
    scenario = BY_NAME["honest_chip_with_two_datacentre_landmarks_tolerating_one_liar"]
    outcome = scenario.run(AttackWorld(operators={"lm-sin-b": "lm-sin"}))
    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert "policy tolerates 1 lying landmark operator" in outcome.detail


def test_lying_landmark_is_excluded_by_the_verifiers_landmark_audit() -> None:
    """Under the default policy too, once the liar also times its peers: the audit
    excludes it, and a proof that leans on it is refused."""
    assert_outcome(
        "lying_landmark_excluded_by_crosscheck",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
        device_state="ENROLLED",
    )


def test_predictable_landmark_is_excluded_by_the_verifiers_landmark_audit() -> None:
    assert_outcome(
        "predictable_landmark_excluded_by_crosscheck",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
        device_state="ENROLLED",
    )
