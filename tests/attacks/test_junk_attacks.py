"""Junk cannot speak for a device: forgeries, oversized batches and datagram floods."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.errors import Reason
from geoattest.verdict import Verdict


def test_the_control_chip_is_allowed_behind_landmark_servers() -> None:
    assert_outcome("junk_control_honest_chip", Verdict.ALLOWED)


def test_a_flood_from_the_chip_s_own_address_does_not_starve_its_rounds() -> None:
    assert_outcome("honest_chip_amid_junk_flood", Verdict.ALLOWED)


def test_forged_proofs_claiming_the_victim_raise_nothing_against_it_and_are_counted() -> None:
    outcome = assert_outcome(
        "forged_proofs_claim_victim_device",
        Verdict.REJECTED,
        reason=Reason.BAD_SIGNATURE,
        device_state="ATTESTING",
    )
    assert outcome.detail == (
        "8 forgeries refused; counted: device.unknown x2, envelope.bad_signature x6"
    )


def test_an_oversized_batch_of_junk_is_refused_before_decoding_and_counted() -> None:
    outcome = assert_outcome(
        "oversized_batch_of_junk",
        Verdict.REJECTED,
        reason=Reason.OVERSIZED_MESSAGE,
        device_state="ATTESTING",
    )
    assert outcome.detail == (
        "257 proofs in one batch; at most 256; counted: wire.oversized_message x1"
    )
