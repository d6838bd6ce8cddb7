"""Answering a round without its secret (the landmark voids it and signs nothing), and
answering ahead of a landmark whose challenges are reused or predictable."""

from __future__ import annotations

from attack_suite import assert_outcome

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.scenarios import (
    SG_LANDMARKS,
    SHENZHEN,
    PredictedChallenges,
    play_reused_challenge,
)
from geoattest.attacks.world import AttackWorld, WorldChip
from geoattest.errors import Reason
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.verdict import Verdict


def test_guessed_responses_injected_next_to_landmarks_yield_no_receipt() -> None:
    outcome = assert_outcome(
        "guessed_responses_injected_next_to_landmarks",
        Verdict.REJECTED,
        reason=Reason.QUORUM_NOT_MET,
    )
    assert outcome.detail.startswith("0 receipts")


def test_responses_to_challenges_never_issued_yield_no_receipt() -> None:
    outcome = assert_outcome(
        "responses_to_challenges_never_issued", Verdict.REJECTED, reason=Reason.QUORUM_NOT_MET
    )
    assert outcome.detail.startswith("0 receipts")


def test_reused_challenge_within_a_round_is_rejected() -> None:
    """A stuck landmark lets the host answer a challenge before it is issued; the verifier
    refuses any round that repeats a challenge."""
    assert_outcome(
        "reused_challenge_within_a_round", Verdict.REJECTED, reason=Reason.CHALLENGE_REUSED
    )


def test_reused_challenge_round_would_otherwise_bound_the_chip_next_to_the_landmark() -> None:
    """Why the check matters: the stuck landmark timed the Shenzhen chip at 10 us."""
    world = AttackWorld()
    proof = play_reused_challenge(world)
    rtt = {r.landmark_id: r.rtt_min_ns for r in map(timing, receipts_of(proof))}
    assert rtt["lm-sin"] < 20_000 < min(rtt["lm-jhb"], rtt["lm-kul"])


def test_predictable_challenges_answered_ahead_are_outvoted_by_default() -> None:
    outcome = assert_outcome("predictable_challenges_answered_ahead", Verdict.INCONCLUSIVE)
    assert "without lm-sin it is INCONCLUSIVE" in outcome.detail


def test_predictable_challenges_attack_needs_a_predictable_landmark() -> None:
    """Control: against a landmark with fresh randomness the same host guesses wrong,
    lm-sin voids the round, and the proof falls short of its quorum."""
    world = AttackWorld()
    sequence = [bytes(16)] * 16
    ahead = PredictedChallenges("lm-sin", lambda index, _seen: sequence[index])
    device = world.enrol("chip-sz", "SG")
    chip = WorldChip("chip-sz", SHENZHEN, "SG", SG_LANDMARKS)
    receipts = world.measure(chip, ahead)
    assert {timing(r).landmark_id for r in receipts} == {"lm-jhb", "lm-kul"}
    outcome = BY_NAME["predictable_challenges_answered_ahead"].judge(
        world, world.prove(device, receipts)
    )
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.reason is Reason.QUORUM_NOT_MET
    assert not outcome.head_moved


def receipts_of(proof: envelope_pb2.Envelope) -> list[envelope_pb2.Envelope]:
    return list(evidence_pb2.LocationProof.FromString(proof.payload).receipts)


def timing(receipt: envelope_pb2.Envelope) -> round_pb2.TimingReceipt:
    return round_pb2.TimingReceipt.FromString(receipt.payload)
