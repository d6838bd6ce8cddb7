"""Clocks: evidence time, not arrival time. A backlog delivered late (dripped, or all at
once after the chip left) counts as evidence of where the chip was, never as a sign that
it is still there: the device goes STALE a stale window after its newest evidence."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from attack_suite import assert_outcome
from verifier_world import NOW_NS, UNIX_NS, VerifierWorld

from geoattest.attacks.clock import BACKLOG_CADENCES, drip_backlog, proving_in_singapore
from geoattest.attacks.served import CADENCE_S, STALE_AFTER_CADENCES, SWEEP_EVERY_S, ServedWorld
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import DeviceState, SqlStore, proofs

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


@pytest.mark.parametrize("ends_s", [9, 10])
def test_a_verifier_clock_behind_the_landmarks_stretches_no_licence_past_its_end(
    tmp_path: Path, ends_s: int
) -> None:
    """The verifier's clock runs 3 s behind the landmarks' (within the clock skew, so their
    receipts count) and the licence ends between the two, or at the evidence time itself
    (its end is not in it): the proof is about its evidence time, when the licence had
    ended, so it is REJECTED and nothing moves. Judged by the
    verifier's clock alone it was ALLOWED with a result that expired before its evidence."""
    world = VerifierWorld.create(tmp_path)
    with closing(SqlStore.open(world.db_path)) as store:
        service, chip = world.enrolled(store)
        assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
        licence = service.licences.current(chip.device_id)
        service.licences.change(replace(licence, valid_until_ns=UNIX_NS + ends_s * S), NOW_NS)
        before = store.dump()
        late = world.proof(chip, unix_ns=UNIX_NS + 10 * S)
        result = service.submit(late, UNIX_NS + 7 * S)
        assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.LICENCE_EXPIRED)
        assert store.dump()["chain_heads"] == before["chain_heads"]
        assert store.accepted_counters(chip.device_id) == [1]
