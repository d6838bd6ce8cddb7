"""Landmarks measuring each other, over the same virtual network: a landmark whose clock
under-reports, or that is registered at the wrong place, beats light towards its peers."""

from __future__ import annotations

import pytest

from geoattest.attacks.world import LANDMARKS, AttackWorld, Chip, LandmarkClock
from geoattest.crypto import KeySigner
from geoattest.errors import EvidenceError, Reason
from verifier.crosscheck import impossible_pairs, measure_peer, suspects

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
    posing_as_jhb = Chip("lm-jhb", LANDMARKS["lm-jhb"], "", ("lm-sin",))
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
