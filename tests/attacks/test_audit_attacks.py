"""Landmark audits on the real verifier service: the landmarks time each other, the
verifier stores the measurements, and a suspect's exclusion and alert are stored, survive a
restart, hold in every worker, and can be lifted by an operator."""

from __future__ import annotations

import pytest
from attack_suite import assert_outcome

from geoattest.attacks.audit import (
    AUDITED,
    SUSPECT,
    audit_round,
    forged_receipt,
)
from geoattest.attacks.served import ServedWorld
from geoattest.attacks.world import LANDMARKS, AttackWorld, LandmarkClock, WorldChip
from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError, EvidenceError, Reason, WireError
from geoattest.pki import LandmarkRecord
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

INCONSISTENT = (AlertKind.INCONSISTENT_LANDMARKS,)


def test_honest_landmarks_audited_none_excluded_chip_allowed() -> None:
    assert_outcome("audit_honest_landmarks_none_excluded", Verdict.ALLOWED)


def test_slow_clock_landmark_is_excluded_with_a_stored_alert() -> None:
    outcome = assert_outcome(
        "audit_slow_clock_landmark_excluded",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
    )
    assert outcome.detail == SUSPECT


def test_misplaced_landmark_is_excluded() -> None:
    assert_outcome(
        "audit_misplaced_landmark_excluded",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
    )


def test_exclusion_survives_a_restart() -> None:
    assert_outcome(
        "audit_exclusion_survives_restart",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
    )


def test_exclusion_holds_on_another_worker_over_the_same_database() -> None:
    assert_outcome(
        "audit_exclusion_holds_on_another_worker",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
    )


def test_lifted_exclusion_restores_the_repaired_landmark() -> None:
    assert_outcome("audit_lifted_exclusion_restores", Verdict.ALLOWED, alerts=INCONSISTENT)


def test_a_proof_timed_before_the_lift_is_refused_after_it() -> None:
    assert_outcome(
        "audit_backlog_timed_before_the_lift",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
        alerts=INCONSISTENT,
    )


def test_forged_peer_receipt_is_refused_and_nothing_is_stored() -> None:
    assert_outcome(
        "audit_forged_peer_receipt_refused", Verdict.REJECTED, reason=Reason.BAD_RECEIPT_SIGNATURE
    )


def slow_suspect() -> AttackWorld:
    world = AttackWorld()
    world.landmark_clocks[SUSPECT] = LandmarkClock(rate=0.001)
    return world


def test_the_stored_exclusion_and_alert_name_the_landmark() -> None:
    world = slow_suspect()
    with ServedWorld.open(world) as served:
        assert audit_round(served) == [SUSPECT]
        (exclusion,) = served.store.exclusions()
        assert exclusion.landmark_id == SUSPECT
        assert exclusion.in_force
        (alert,) = served.store.alerts()
        assert alert.kind == AlertKind.INCONSISTENT_LANDMARKS
        assert alert.reason == Reason.REVOKED_LANDMARK.value
        assert alert.device_id == ""
        assert alert.detail == exclusion.detail
        assert alert.detail.startswith(f"landmark {SUSPECT} timed ")
        assert served.alerts == [alert]


def test_witnesses_from_several_hand_ins_add_up() -> None:
    """Each peer hands in only its own rounds, one impossible pair each: the suspect is
    excluded once two peers' hand-ins are stored, whichever worker took them."""
    world = slow_suspect()
    with ServedWorld.open(world) as served:
        second = served.another_worker()
        now = world.now_ns()
        first = served.service.submit_peer_receipts(world.audit_by("lm-jhb", AUDITED), now)
        assert first.excluded == ()
        then = second.submit_peer_receipts(world.audit_by("lm-kul", AUDITED), now)
        assert then.excluded == (SUSPECT,)


def test_a_receipt_handed_in_twice_counts_once() -> None:
    world = AttackWorld()
    with ServedWorld.open(world) as served:
        receipts = world.audit_by("lm-jhb", AUDITED)
        assert served.service.submit_peer_receipts(receipts, world.now_ns()).measured == 5
        again = served.service.submit_peer_receipts(receipts, world.now_ns())
        assert again.measured == 0
        assert served.store.exclusions() == []


def test_a_lifted_landmark_still_at_fault_is_excluded_again_by_new_audits_only() -> None:
    world = slow_suspect()
    with ServedWorld.open(world) as served:
        audit_round(served)
        world.wait(60)
        lifted = served.store.lift_exclusion(SUSPECT, world.now_ns(), by="alice", why="test")
        assert (lifted.lifted_by, lifted.lift_reason) == ("alice", "test")
        assert served.store.excluded_landmarks() == frozenset()
        # The old measurements alone no longer exclude it ...
        world.wait(60)
        receipts = world.audit_by("lm-jhb", AUDITED)
        assert served.service.submit_peer_receipts(receipts, world.now_ns()).excluded == ()
        # ... new ones from a second peer do.
        receipts = world.audit_by("lm-kul", AUDITED)
        assert served.service.submit_peer_receipts(receipts, world.now_ns()).excluded == (SUSPECT,)
        assert [e.in_force for e in served.store.exclusions()] == [False, True]
        assert len(served.store.alerts()) == 2


def test_lifting_a_landmark_that_is_not_excluded_is_a_clear_error() -> None:
    with ServedWorld.open(AttackWorld()) as served, pytest.raises(ConfigError) as err:
        served.store.lift_exclusion("lm-sin", 1, by="alice", why="")
    assert "lm-sin is not excluded" in str(err.value)


def test_an_audit_answered_by_a_key_that_is_no_landmark_is_refused() -> None:
    world = AttackWorld()
    posing_as_jhb = WorldChip("lm-jhb", LANDMARKS["lm-jhb"], "", ("lm-sin", "lm-kul"))
    receipts = world.measure(posing_as_jhb, signer=KeySigner.generate())
    with ServedWorld.open(world) as served:
        with pytest.raises(EvidenceError) as err:
            served.service.submit_peer_receipts(receipts, world.now_ns())
        assert err.value.reason is Reason.BAD_TRANSCRIPT_SIGNATURE
        assert served.store.dump()["peer_measurements"] == []


def test_one_forged_receipt_refuses_the_whole_hand_in() -> None:
    world = AttackWorld()
    receipts = world.audit_by("lm-jhb", AUDITED)
    receipts[-1] = forged_receipt(receipts[-1])
    with ServedWorld.open(world) as served:
        with pytest.raises(EvidenceError) as err:
            served.service.submit_peer_receipts(receipts, world.now_ns())
        assert err.value.reason is Reason.BAD_RECEIPT_SIGNATURE
        assert served.store.dump()["peer_measurements"] == []


def test_a_receipt_older_than_the_audit_window_is_refused() -> None:
    world = AttackWorld()
    receipts = world.audit_by("lm-jhb", AUDITED)
    with ServedWorld.open(world) as served:
        world.wait(25 * 3600)
        with pytest.raises(EvidenceError) as err:
            served.service.submit_peer_receipts(receipts, world.now_ns())
        assert err.value.reason is Reason.STALE_RECEIPT


def test_measurements_older_than_the_window_are_forgotten() -> None:
    world = slow_suspect()
    with ServedWorld.open(world) as served:
        served.service.submit_peer_receipts(world.audit_by("lm-jhb", AUDITED), world.now_ns())
        world.wait(25 * 3600)
        later = served.service.submit_peer_receipts(
            world.audit_by("lm-kul", AUDITED), world.now_ns()
        )
        assert later.excluded == ()
        assert len(served.store.dump()["peer_measurements"]) == len(AUDITED) - 1


def test_an_empty_or_oversized_hand_in_is_refused() -> None:
    world = AttackWorld()
    with ServedWorld.open(world) as served:
        with pytest.raises(WireError) as empty:
            served.service.submit_peer_receipts([], world.now_ns())
        assert empty.value.reason is Reason.MISSING_FIELD
        receipts = world.audit_by("lm-jhb", AUDITED) * 52
        with pytest.raises(WireError) as oversized:
            served.service.submit_peer_receipts(receipts, world.now_ns())
        assert oversized.value.reason is Reason.OVERSIZED_MESSAGE


def test_a_landmark_registered_through_the_store_is_audited_from_its_first_hand_in() -> None:
    """Registered through the admin API of any replica (a store row), a landmark's peer
    receipts count at the next hand-in: no restart, no file."""
    registry_file = {lid: site for lid, site in LANDMARKS.items() if lid != "lm-jhb"}
    world = AttackWorld(registered_sites=registry_file)
    receipts = world.audit_by("lm-sin", AUDITED)  # lm-jhb times one of the rounds
    with ServedWorld.open(world) as served:
        with pytest.raises(EvidenceError) as unknown:
            served.service.submit_peer_receipts(receipts, world.now_ns())
        assert unknown.value.reason is Reason.UNKNOWN_LANDMARK
        key = world.landmark_signers["lm-jhb"].verifying_key
        record = LandmarkRecord("lm-jhb", *LANDMARKS["lm-jhb"], key)
        served.store.register_landmark(record, world.now_ns(), by="alice")
        outcome = served.service.submit_peer_receipts(receipts, world.now_ns())
        assert outcome.measured == len(receipts)


def test_revoked_landmarks_cannot_have_an_honest_peer_excluded() -> None:
    """Two landmarks the operator revoked (their keys an attacker's, say) time an honest
    peer "faster than light": two witnesses against it, which would exclude it. Their
    rounds count for nothing; the honest peer's rounds with the others still do."""
    colluders = ("lm-hkg", "lm-can")
    honest = "lm-jhb"
    world = AttackWorld()
    for colluder in colluders:
        world.landmark_clocks[colluder] = LandmarkClock(rate=0.001)
    with ServedWorld.open(world) as served:
        now = world.now_ns()
        for colluder in colluders:
            key_id = served.world.landmark_signers[colluder].verifying_key.key_id
            served.store.revoke_landmark(colluder, key_id, now, by="operator", why="key stolen")
        outcome = served.service.submit_peer_receipts(world.audit_by(honest, AUDITED), now)
        assert outcome.excluded == ()
        assert outcome.measured == len(AUDITED) - 1 - len(colluders)
        assert served.store.exclusions() == []
