"""Answering a round without its secret: the landmark voids it and signs nothing."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.errors import Reason
from geoattest.verdict import Verdict


def test_guessed_responses_injected_next_to_landmarks_yield_no_receipt() -> None:
    outcome = assert_outcome(
        "guessed_responses_injected_next_to_landmarks",
        Verdict.REJECTED,
        reason=Reason.QUORUM_NOT_MET,
    )
    assert outcome.detail.startswith("0 receipts")


def test_responses_to_challenges_never_issued_yield_no_receipt() -> None:
    outcome = assert_outcome(
        "responses_to_challenges_never_issued", Verdict.REJECTED, reason=Reason.QUORUM_NOT_MET
    )
    assert outcome.detail.startswith("0 receipts")
