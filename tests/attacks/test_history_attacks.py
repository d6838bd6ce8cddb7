"""History cannot be laundered: what the adversary puts between two fixes never hides an
impossible journey between them, and a vague proof never erases a precise fix."""

from __future__ import annotations

import pytest
from attack_suite import assert_outcome

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.scenarios import SHENZHEN, SINGAPORE
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

TRAVEL = (AlertKind.IMPOSSIBLE_TRAVEL,)


def test_a_slow_round_trip_is_allowed_back_home() -> None:
    assert_outcome("slow_round_trip_is_allowed_back_home", Verdict.ALLOWED)


def test_a_vague_proof_between_honest_fixes_raises_nothing() -> None:
    assert_outcome("vague_proof_between_honest_fixes", Verdict.ALLOWED)


@pytest.mark.parametrize(
    "name",
    [
        "jump_hidden_by_proving_again",
        "vague_proof_erases_a_precise_fix",
        "stepping_stone_proofs_hide_a_jump",
    ],
)
def test_what_comes_between_two_fixes_never_hides_the_jump(name: str) -> None:
    """The Singapore proof's own disks are licensed; the Shenzhen fix, grown by the
    travel since, still keeps it from ALLOWED, and the history fix still holds it."""
    world = AttackWorld(**BY_NAME[name].world)
    outcome = assert_outcome(name, Verdict.INCONCLUSIVE, alerts=TRAVEL, world=world)
    assert outcome.detail.startswith("all land in the feasible region is licensed; but an")
    assert "further than the device could have travelled since" in outcome.detail
    history = world.state.heads["chip-sg"].fix
    shenzhen = set(world.nearest(SHENZHEN)) - set(world.nearest(SINGAPORE))
    assert shenzhen & {disk.landmark_id for disk in history}


def test_a_backdated_proof_is_rejected_and_moves_nothing() -> None:
    world = AttackWorld()
    assert_outcome(
        "backdated_proof_rewinds_evidence_time",
        Verdict.REJECTED,
        reason=Reason.STALE_RECEIPT,
        world=world,
    )
    head = world.state.heads["chip-sg"]
    assert head.counter == 1
    assert head.fix_time_ns == max(head.landmark_times.values())
