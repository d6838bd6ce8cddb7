"""A landmark is its key, its operator and its site, not its id: one party never counts
as two, and a revoked key is untrusted under every id."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.landmark_identity import play_key_registered_under_a_second_id
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict


def test_honest_chip_with_two_operators_in_its_data_centre_is_allowed() -> None:
    assert_outcome("honest_chip_with_two_operators_in_its_data_centre", Verdict.ALLOWED)


def test_one_key_registered_under_two_ids_is_refused_and_the_registry_unchanged() -> None:
    outcome = assert_outcome(
        "one_key_registered_under_two_ids",
        Verdict.REJECTED,
        reason=Reason.LANDMARK_KEY_REUSED,
    )
    assert "already registered as landmark lm-sin" in outcome.detail


def test_the_refused_twin_never_reaches_the_appraiser() -> None:
    world = AttackWorld()
    before = {r.landmark_id for r in world.appraiser.landmarks}
    play_key_registered_under_a_second_id(world)
    assert {r.landmark_id for r in world.appraiser.landmarks} == before


def test_two_ids_of_one_operator_colluding_count_as_one_liar() -> None:
    outcome = assert_outcome("one_operator_two_ids_collude_to_outvote", Verdict.INCONCLUSIVE)
    assert "without lm-sin, lm-sin-b it is INCONCLUSIVE" in outcome.detail


def test_two_colluding_operators_are_what_one_tolerated_fault_cannot_cover() -> None:
    """The same pair as independent operators at two sites is two liars: beyond the
    default's one, so ALLOWED (the setting's stated limit, not a gap in counting)."""
    scenario = BY_NAME["one_operator_two_ids_collude_to_outvote"]
    assert scenario.run(AttackWorld()).verdict is Verdict.ALLOWED
    assert scenario.run(AttackWorld(landmark_faults=2)).verdict is Verdict.INCONCLUSIVE


def test_two_keys_on_one_host_count_as_one_fault_domain() -> None:
    outcome = assert_outcome("two_keys_on_one_host", Verdict.INCONCLUSIVE)
    assert "without lm-sin, lm-sin-b it is INCONCLUSIVE" in outcome.detail


def test_one_operator_cannot_fill_the_quorum_with_two_ids() -> None:
    outcome = assert_outcome(
        "one_operator_fills_the_quorum_with_two_ids",
        Verdict.REJECTED,
        reason=Reason.QUORUM_NOT_MET,
    )
    assert (
        outcome.detail == "3 receipts from 2 fault domain(s) (operators and sites), policy needs 3"
    )


def test_a_key_revoked_under_one_id_is_refused_under_another() -> None:
    outcome = assert_outcome(
        "revoked_key_presents_under_another_id",
        Verdict.REJECTED,
        reason=Reason.REVOKED_LANDMARK,
    )
    assert outcome.detail == "lm-jhb-2"


def test_revoking_only_the_old_id_would_not_have_been_enough() -> None:
    """Why the list revokes keys: with lm-jhb's id alone on it, its key vouches again."""
    scenario = BY_NAME["revoked_key_presents_under_another_id"]
    world = AttackWorld(**{**scenario.world, "revoked_keys_of": frozenset()})
    assert scenario.run(world).verdict is Verdict.ALLOWED
