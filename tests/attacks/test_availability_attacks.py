"""Landmarks flooded or unreachable: never ALLOWED, and nothing trusted moves."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.errors import Reason
from geoattest.verdict import Verdict


def test_near_landmarks_flooded_is_inconclusive() -> None:
    assert_outcome("near_landmarks_flooded", Verdict.INCONCLUSIVE)


def test_landmarks_unreachable_is_rejected_for_want_of_quorum() -> None:
    assert_outcome("landmarks_unreachable", Verdict.REJECTED, reason=Reason.QUORUM_NOT_MET)
