"""A heartbeat that stops (powered off, firewalled, in transit): the verifier calls the
device STALE within one sweep of the missed cadences, the chip's licence runs out at the
same time, and its agent degrades after its grace period; nothing trusted moves. The
export licence's end degrades the chip the same way."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.scenarios import SG1, SHENZHEN, SINGAPORE
from geoattest.attacks.served import (
    CADENCE_S,
    GRACE_S,
    STALE_AFTER_CADENCES,
    SWEEP_EVERY_S,
    ServedChip,
    ServedWorld,
)
from geoattest.attacks.world import AttackWorld, WorldChip
from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import DeviceState

S = 10**9
STALE = (AlertKind.STALE_DEVICE,)


def test_heartbeat_stops_powered_off_goes_stale_and_its_last_result_expires() -> None:
    assert_outcome(
        "heartbeat_stops_powered_off",
        None,
        alerts=STALE,
        device_state="STALE",
        licence="expired",
    )


def test_heartbeat_firewalled_goes_stale_and_the_agent_degrades() -> None:
    outcome = assert_outcome(
        "heartbeat_firewalled",
        None,
        alerts=STALE,
        device_state="STALE",
        licence="degraded",
    )
    assert "6 proofs queued in the outbox" in outcome.detail


def test_heartbeat_stops_in_transit_goes_stale_then_proves_outside() -> None:
    assert_outcome(
        "heartbeat_stops_in_transit",
        Verdict.OUTSIDE,
        alerts=(AlertKind.STALE_DEVICE, AlertKind.OUTSIDE_LICENSED_REGION),
        device_state="ATTESTING",
        licence="degraded",
    )


def proving_in_singapore(served: ServedWorld) -> ServedChip:
    chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", served.world.nearest(SINGAPORE), SG1))
    served.cycle(chip)
    assert chip.results[-1].verdict is Verdict.ALLOWED
    return chip


def test_stale_alert_comes_on_the_first_sweep_after_the_missed_cadences_and_only_once() -> None:
    window_ns = STALE_AFTER_CADENCES * CADENCE_S * S
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        accepted_ns = served.head(chip).accepted_at_ns
        timeline = served.elapse(chip, 8, verifier_reachable=False)
        (alert,) = timeline.alerts
        assert alert.device_id == "chip-sg"
        assert alert.kind == AlertKind.STALE_DEVICE
        assert accepted_ns + window_ns < alert.time_ns
        assert alert.time_ns <= accepted_ns + window_ns + (SWEEP_EVERY_S + 5) * S
        status = served.service.device_status("chip-sg", served.world.now_ns())
        assert status.state is DeviceState.STALE
        assert status.last_counter == 1


def test_licence_runs_out_with_the_stale_window_and_degrades_after_grace() -> None:
    """The result licenses the chip for the stale window after its evidence, not until
    the export licence ends (a year): a silent chip cannot keep running licensed."""
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        evidence_s = served.head(chip).fix_time_ns // S
        expires_s = chip.attester.licence.current.expires_at_s
        assert expires_s == evidence_s + STALE_AFTER_CADENCES * CADENCE_S
        timeline = served.elapse(chip, 8, verifier_reachable=False)
        since = {status: at // S for status, at in timeline.licence_since.items()}
        assert since[LicenceStatus.GRACE] >= expires_s
        assert since[LicenceStatus.GRACE] <= expires_s + SWEEP_EVERY_S + 5
        assert since[LicenceStatus.DEGRADED] >= expires_s + GRACE_S
        assert since[LicenceStatus.DEGRADED] <= expires_s + GRACE_S + SWEEP_EVERY_S + 5


def test_firewall_lifted_delivers_the_queued_proofs_but_they_do_not_relicense() -> None:
    """The queued proofs still count as evidence of where the chip was, in order; their
    results expired a stale window after their own rounds, so the chip stays degraded
    until a fresh proof arrives."""
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        served.elapse(chip, 6, verifier_reachable=False)
        queued = [p.counter for p in chip.attester.outbox.pending()]
        assert queued == [2, 3, 4, 5, 6, 7]
        delivered = served.cycle(chip, landmarks_reachable=False)
        assert [d.counter for d in delivered] == queued
        assert all(r.verdict is Verdict.ALLOWED for r in chip.results[1:])
        assert chip.attester.status(served.now_s()) is LicenceStatus.LICENSED
        # The newest queued proof is under one cadence old: it licenses until its own
        # stale window ends; the older ones could not.
        assert chip.attester.licence.current.expires_at_s > served.now_s()
        status = served.service.device_status("chip-sg", served.world.now_ns())
        assert status.state is DeviceState.ATTESTING


def test_a_result_that_does_not_affirm_after_the_licence_lapsed_starts_no_new_grace() -> None:
    """Reappearing abroad must not buy the chip a second grace period."""
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        expires_s = chip.attester.licence.current.expires_at_s
        served.elapse(chip, 12, landmarks_reachable=False, verifier_reachable=False)
        chip.move(SHENZHEN, served.world.nearest(SHENZHEN))
        served.cycle(chip)
        assert chip.results[-1].verdict is Verdict.OUTSIDE
        assert served.now_s() < expires_s + GRACE_S + 12 * CADENCE_S
        assert chip.attester.status(served.now_s()) is LicenceStatus.DEGRADED


def test_the_last_result_of_a_powered_off_chip_licenses_nothing_after_the_window() -> None:
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        token = chip.results[-1].token
        served.elapse(chip, 2, powered=False)
        holder = AgentLicence("chip-sg", served.service.jwks(), grace_s=0, booted_at_s=0)
        assert holder.offer(token, served.now_s())
        served.elapse(chip, 2, powered=False)
        assert not holder.offer(token, served.now_s())


def test_export_licence_end_rejects_the_next_proofs_and_degrades_the_chip() -> None:
    """No proof affirms once the licence in force has ended: the proofs after it are
    REJECTED, so the device goes STALE and its agent degrades after the grace period."""
    outcome = assert_outcome(
        "export_licence_ends",
        Verdict.REJECTED,
        reason=Reason.LICENCE_EXPIRED,
        alerts=(AlertKind.STALE_DEVICE,),
        device_state="STALE",
        licence="degraded",
    )
    assert "licence grace from +10 min" in outcome.detail
