"""Clocks: evidence time, not arrival time. A backlog delivered late (dripped, or all at
once after the chip left) counts as evidence of where the chip was, never as a sign that
it is still there: the device goes STALE a stale window after its newest evidence."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.clock import BACKLOG_CADENCES, drip_backlog, proving_in_singapore
from geoattest.attacks.served import CADENCE_S, STALE_AFTER_CADENCES, SWEEP_EVERY_S, ServedWorld
from geoattest.attacks.world import AttackWorld
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import DeviceState, proofs

S = 10**9
STALE = (AlertKind.STALE_DEVICE,)


def test_an_honest_backlog_delivered_after_an_outage_revives_the_device() -> None:
    outcome = assert_outcome(
        "honest_backlog_after_an_outage",
        Verdict.ALLOWED,
        alerts=STALE,
        device_state="ATTESTING",
        licence="licensed",
    )
    assert f"{BACKLOG_CADENCES + 2} proofs accepted" in outcome.detail


def test_a_drip_fed_backlog_after_the_chip_left_goes_stale_at_its_evidence_time() -> None:
    outcome = assert_outcome(
        "drip_fed_backlog_after_the_chip_left",
        Verdict.ALLOWED,
        alerts=STALE,
        device_state="STALE",
        licence="degraded",
    )
    # Every queued proof arrived, one every 25 minutes, yet exactly one alert was raised:
    # the proofs that arrived after it were already older than the stale window.
    assert f"{BACKLOG_CADENCES + 1} proofs accepted" in outcome.detail
    assert outcome.detail.count("STALE_DEVICE") == 1


def test_an_old_backlog_delivered_after_the_chip_left_keeps_the_device_stale() -> None:
    """The backlog is accepted as evidence of where the chip was; it neither revives the
    device nor raises a second alert."""
    outcome = assert_outcome(
        "old_backlog_delivered_after_the_chip_left",
        Verdict.ALLOWED,
        alerts=STALE,
        device_state="STALE",
        licence="degraded",
    )
    assert f"{BACKLOG_CADENCES + 1} proofs accepted" in outcome.detail
    assert outcome.detail.count("STALE_DEVICE") == 1


def test_the_stale_alert_comes_one_window_after_the_newest_evidence_not_the_arrival() -> None:
    window_ns = STALE_AFTER_CADENCES * CADENCE_S * S
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving_in_singapore(served)
        (alert,) = drip_backlog(served, chip).alerts
        columns = list(proofs.columns.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in served.store.dump()["proofs"]]
        before = [r for r in rows if r["accepted"] and r["received_at_ns"] < alert.time_ns]
        evidence_ns = max(r["evidence_time_ns"] for r in before)
        arrived_ns = max(r["received_at_ns"] for r in before)
        assert evidence_ns + window_ns < alert.time_ns
        assert alert.time_ns <= evidence_ns + window_ns + (SWEEP_EVERY_S + 5) * S
        assert arrived_ns > alert.time_ns - window_ns, "a proof arrived within the window"
        assert alert.detail == f"no accepted evidence since {evidence_ns // S}"
        status = served.service.device_status("chip-sg", served.world.now_ns())
        assert status.state is DeviceState.STALE
        assert status.last_counter == BACKLOG_CADENCES + 1
