"""Who answered: forged, revoked, downgraded, borrowed and cloned identities."""

from __future__ import annotations

import pytest
from attack_suite import assert_outcome

from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind


def test_forged_device_key_is_rejected() -> None:
    assert_outcome("forged_device_key", Verdict.REJECTED, reason=Reason.UNKNOWN_DEVICE)


def test_revoked_device_is_rejected() -> None:
    assert_outcome("revoked_device", Verdict.REJECTED, reason=Reason.REVOKED_DEVICE)


@pytest.mark.parametrize(
    "name",
    [
        "revocation_list_rolled_back",
        "revocation_list_rolled_back_across_restart",
        "revocation_list_removed",
    ],
)
def test_a_revocation_list_that_is_not_newer_lifts_no_revocation(name: str) -> None:
    """The verifier host's list put back one version (while it runs, or before it
    restarts), or removed: the list in force stays, the chip is still refused and its
    chain does not move."""
    assert_outcome(
        name,
        Verdict.REJECTED,
        reason=Reason.REVOKED_DEVICE,
        device_state="REVOKED, last verdict taken away: DEVICE_REVOKED",
        licence="licensed",
    )


def test_downgraded_agent_firmware_is_rejected_as_tampering() -> None:
    assert_outcome(
        "downgraded_agent_firmware",
        Verdict.REJECTED,
        reason=Reason.BAD_MEASUREMENT,
        alerts=(AlertKind.TAMPERING,),
    )


def test_chip_a_answering_for_chip_b_is_rejected_as_tampering() -> None:
    assert_outcome(
        "chip_a_answers_for_chip_b",
        Verdict.REJECTED,
        reason=Reason.BAD_TRANSCRIPT_SIGNATURE,
        alerts=(AlertKind.TAMPERING,),
    )


def test_cloned_key_answering_from_singapore_while_original_in_shenzhen_raises_clone() -> None:
    assert_outcome(
        "cloned_key_forks_the_chain",
        Verdict.REJECTED,
        reason=Reason.FORK,
        alerts=(AlertKind.CLONE,),
    )


def test_certificate_not_chained_to_the_manufacturer_is_refused_at_enrolment() -> None:
    """The verifier enrols nothing: the device never exists for it."""
    assert_outcome(
        "certificate_not_chained_to_manufacturer", Verdict.REJECTED, reason=Reason.BAD_CHAIN
    )
