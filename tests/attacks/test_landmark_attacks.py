"""Landmarks that are rogue, revoked, misplaced or lying."""

from __future__ import annotations

import pytest
from attack_suite import assert_outcome

from geoattest.attacks.scenarios import BY_NAME
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from verifier.pipeline import AlertKind

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


@pytest.mark.xfail(
    strict=True,
    reason="not yet defended: one lying landmark whose disk lies inside the honest ones' "
    "can shrink the feasible region into the licensed region (needs landmark cross-checks)",
)
def test_lying_landmark_among_distant_honest_ones_is_never_allowed() -> None:
    outcome = BY_NAME["lying_landmark_among_distant_honest_ones"].run()
    assert outcome.verdict is not Verdict.ALLOWED, outcome
