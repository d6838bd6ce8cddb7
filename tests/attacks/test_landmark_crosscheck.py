"""Landmarks measuring each other, over the same virtual network: a landmark whose clock
under-reports, or that is registered at the wrong place, beats light towards its peers; a
landmark whose challenges repeat is predictable. The verifier service excludes both."""

from __future__ import annotations

import pytest

from geoattest.attacks.scenarios import MY_NORTH, SG1, seeded_randomness, stuck_randomness
from geoattest.attacks.served import ServedWorld
from geoattest.attacks.world import LANDMARKS, PLACES, AttackWorld, LandmarkClock, WorldChip
from geoattest.crypto import KeySigner
from geoattest.errors import EvidenceError, Reason
from geoattest.verdict import Verdict
from geoattest.verifier.crosscheck import cross_check, impossible_pairs, measure_peer, suspects
from geoattest.verifier.pipeline import AlertKind

PEERS = ("lm-sin", "lm-jhb", "lm-kul", "lm-hkg", "lm-can", "lm-tpe")


def peer_suspects(world: AttackWorld) -> frozenset[str]:
    receipts = world.peer_receipts(PEERS)
    assert len(receipts) == len(PEERS) * (len(PEERS) - 1)
    return suspects(measure_peer(r, world.landmark_records()) for r in receipts)


def test_honest_landmarks_raise_no_suspect() -> None:
    assert peer_suspects(AttackWorld()) == frozenset()


def test_lying_landmark_clock_is_caught_by_its_peers() -> None:
    world = AttackWorld()
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)
    assert peer_suspects(world) == {"lm-sin"}


def test_landmark_registered_at_wrong_coordinates_is_caught_by_its_peers() -> None:
    world = AttackWorld(registered_sites={**LANDMARKS, "lm-hkg": LANDMARKS["lm-sin"]})
    assert peer_suspects(world) == {"lm-hkg"}


def test_a_round_answered_by_a_key_that_is_no_landmark_is_refused() -> None:
    world = AttackWorld()
    impostor = KeySigner.generate()
    posing_as_jhb = WorldChip("lm-jhb", LANDMARKS["lm-jhb"], "", ("lm-sin",))
    (receipt,) = world.measure(posing_as_jhb, signer=impostor)
    with pytest.raises(EvidenceError) as err:
        measure_peer(receipt, world.landmark_records())
    assert err.value.reason is Reason.BAD_TRANSCRIPT_SIGNATURE


def test_one_impossible_pair_without_a_second_witness_names_the_pair_only() -> None:
    world = AttackWorld(registered_sites={**LANDMARKS, "lm-hkg": LANDMARKS["lm-sin"]})
    few = ("lm-sin", "lm-hkg", "lm-can")
    measured = [measure_peer(r, world.landmark_records()) for r in world.peer_receipts(few)]
    assert impossible_pairs(measured) == {("lm-can", "lm-hkg")}
    assert suspects(measured) == frozenset()


def test_a_landmark_repeating_its_challenges_across_rounds_is_a_suspect() -> None:
    world = AttackWorld()
    world.landmark_randomness["lm-kul"] = seeded_randomness
    report = cross_check(world.peer_receipts(PEERS), world.landmark_records())
    assert report.predictable == {"lm-kul"}
    assert report.contradicted == frozenset()
    assert report.suspects == {"lm-kul"}
    assert "predictable" in report.describe("lm-kul")


def test_a_landmark_repeating_a_challenge_inside_a_round_is_a_suspect() -> None:
    world = AttackWorld()
    world.landmark_randomness["lm-kul"] = stuck_randomness
    report = cross_check(world.peer_receipts(PEERS), world.landmark_records())
    assert report.predictable == {"lm-kul"}
    assert report.refused == ()
    assert report.contradicted == frozenset()
    # Its rounds are measured (their signatures hold) but void for the light check.
    void = [m for m in report.measurements if m.void]
    assert {m.timer for m in void} == {"lm-kul"}
    assert len(void) == len(PEERS) - 1


def test_a_receipt_that_does_not_check_is_refused_and_counts_for_nothing() -> None:
    world = AttackWorld()
    receipts = world.peer_receipts(("lm-sin", "lm-jhb", "lm-kul"))
    another_registry = AttackWorld().landmark_records()  # the same sites, other keys
    report = cross_check(receipts, another_registry)
    assert report.suspects == frozenset()
    assert {reason for _, reason in report.refused} == {Reason.UNKNOWN_LANDMARK}


def test_verifier_service_excludes_a_contradicted_landmark_and_alerts() -> None:
    world = AttackWorld()
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)
    with ServedWorld.open(world) as served:
        outcome = served.service.submit_peer_receipts(world.peer_receipts(PEERS), world.now_ns())
        assert outcome.excluded == ("lm-sin",)
        (alert,) = served.alerts
        assert served.store.alerts() == [alert]
        assert alert.kind == AlertKind.INCONSISTENT_LANDMARKS
        assert alert.device_id == ""
        assert alert.detail.startswith("landmark lm-sin timed ")
        assert alert.detail.endswith("faster than light between registered sites: excluded")
        # The exclusion holds: a second audit raises nothing new.
        again = served.service.submit_peer_receipts(world.peer_receipts(PEERS), world.now_ns())
        assert again.excluded == ()
        assert len(served.alerts) == 1
        # A chip whose proof needs no lm-sin is still judged on the others.
        chip = served.enrol(WorldChip("chip-kul", PLACES["Kuala Lumpur"], "MY", MY_NORTH))
        served.cycle(chip)
        assert chip.results[-1].reason is None


def test_verifier_service_leaves_honest_landmarks_alone() -> None:
    world = AttackWorld()
    with ServedWorld.open(world) as served:
        outcome = served.service.submit_peer_receipts(world.peer_receipts(PEERS), world.now_ns())
        assert outcome.excluded == ()
        assert outcome.measured == len(PEERS) * (len(PEERS) - 1)
        assert served.alerts == []
        chip = served.enrol(
            WorldChip("chip-sg", PLACES["Singapore"], "SG", world.nearest(PLACES["Singapore"]), SG1)
        )
        served.cycle(chip)
        assert chip.results[-1].verdict is Verdict.ALLOWED
