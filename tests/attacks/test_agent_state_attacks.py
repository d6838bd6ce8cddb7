"""The agent's state across reboots: an honest restart keeps the licence and its deadline;
a lapsed chip stays lapsed; a rolled-back, edited or deleted sealed state boots the chip
lapsed, with the agent's exact reason, until a fresh verified result arrives; a rolled-back
outbox forks the chain and is refused."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.agent_state import licensed_in_singapore
from geoattest.attacks.served import CADENCE_S, GRACE_S, STALE_AFTER_CADENCES, ServedWorld
from geoattest.attacks.world import AttackWorld
from geoattest.attestor.licence import LicenceStatus
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

S = 10**9


def test_agent_state_honest_reboot_keeps_the_licence_and_proves_again() -> None:
    outcome = assert_outcome(
        "agent_state_honest_reboot",
        Verdict.ALLOWED,
        device_state="ATTESTING",
        licence="licensed",
    )
    assert "restored it: licence licensed" in outcome.detail


def test_agent_state_reboot_after_lapse_stays_lapsed() -> None:
    outcome = assert_outcome(
        "agent_state_reboot_after_lapse", None, device_state="STALE", licence="degraded"
    )
    assert "restored it: licence degraded" in outcome.detail


def test_agent_state_rolled_back_boots_lapsed() -> None:
    assert_outcome(
        "agent_state_rolled_back",
        None,
        reason=Reason.SEALED_ROLLED_BACK,
        device_state="ATTESTING",
        licence="degraded",
    )


def test_agent_state_edited_boots_lapsed() -> None:
    assert_outcome(
        "agent_state_edited",
        None,
        reason=Reason.SEALED_EDITED,
        device_state="STALE",
        licence="degraded",
    )


def test_agent_state_deleted_boots_lapsed() -> None:
    assert_outcome(
        "agent_state_deleted",
        None,
        reason=Reason.SEALED_MISSING,
        device_state="STALE",
        licence="degraded",
    )


def test_agent_state_outbox_rolled_back_forks_and_is_refused() -> None:
    """The outbox is not sealed: rolling it back only forks the chain at the verifier."""
    outcome = assert_outcome(
        "agent_state_outbox_rolled_back",
        Verdict.REJECTED,
        reason=Reason.FORK,
        alerts=(AlertKind.CLONE,),
        device_state="ATTESTING",
        licence="licensed",
    )
    assert "proof 2 extends a predecessor already extended" in outcome.detail


def test_a_reboot_in_the_grace_period_keeps_its_deadline() -> None:
    """Firewalled past the licence's end, the chip is in its grace period; a restart then
    neither ends it early nor starts it again."""
    with ServedWorld.open(AttackWorld()) as served:
        chip, _ = licensed_in_singapore(served)
        expires_s = chip.attester.licence.current.expires_at_s
        served.elapse(chip, STALE_AFTER_CADENCES + 1, verifier_reachable=False)
        assert chip.attester.status(served.now_s()) is LicenceStatus.GRACE
        licence = served.reboot(chip)
        assert licence.refused is None
        assert licence.status(served.now_s()) is LicenceStatus.GRACE
        assert licence.state.degrades_at_s == expires_s + GRACE_S
        served.elapse(chip, 2, verifier_reachable=False)
        assert chip.attester.status(served.now_s()) is LicenceStatus.DEGRADED


def test_the_restarted_agent_keeps_its_outbox_and_chain() -> None:
    """Proofs queued before the restart are delivered after it, in chain order."""
    with ServedWorld.open(AttackWorld()) as served:
        chip, _ = licensed_in_singapore(served)
        served.elapse(chip, 2, verifier_reachable=False)
        served.reboot(chip)
        delivered = served.cycle(chip)
        assert [d.counter for d in delivered] == [2, 3, 4]
        assert all(r.verdict is Verdict.ALLOWED for r in chip.results)


def test_a_tampered_chip_is_licensed_again_only_by_a_fresh_result() -> None:
    with ServedWorld.open(AttackWorld()) as served:
        chip, copy = licensed_in_singapore(served)
        served.elapse(chip, 1)
        chip.licence_state.write_bytes(copy)
        licence = served.reboot(chip)
        assert licence.refused is not None
        assert licence.refused.reason is Reason.SEALED_ROLLED_BACK
        assert licence.status(served.now_s()) is LicenceStatus.DEGRADED
        # A second restart finds the lapsed state the agent sealed: still degraded.
        assert served.reboot(chip).status(served.now_s()) is LicenceStatus.DEGRADED
        served.world.wait(CADENCE_S)
        served.cycle(chip)
        assert chip.results[-1].verdict is Verdict.ALLOWED
        assert chip.attester.status(served.now_s()) is LicenceStatus.LICENSED
        assert served.reboot(chip).status(served.now_s()) is LicenceStatus.LICENSED
