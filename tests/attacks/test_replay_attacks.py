"""Replays: of datagrams inside a round, of receipts, of whole proofs."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.errors import Reason
from geoattest.verdict import Verdict


def test_duplicated_reordered_replayed_datagrams_do_not_change_the_honest_verdict() -> None:
    assert_outcome("honest_chip_duplicated_reordered_replayed_datagrams", Verdict.ALLOWED)


def test_replayed_proof_is_rejected() -> None:
    assert_outcome("replayed_proof", Verdict.REJECTED, reason=Reason.REPLAYED_PROOF)


def test_replayed_receipts_in_a_new_proof_are_rejected() -> None:
    assert_outcome(
        "replayed_receipts_in_new_proof", Verdict.REJECTED, reason=Reason.REPLAYED_RECEIPT
    )
