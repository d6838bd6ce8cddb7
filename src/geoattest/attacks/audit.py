"""Landmark audits on the real verifier service: live peer rounds, stored exclusions.

Each landmark times a round with each of its peers and hands the receipts in
(``SubmitPeerReceipts``, here :meth:`~geoattest.verifier.service.VerifierService.
submit_peer_receipts`), one hand-in per landmark as ``landmark serve --audit-peer`` does.
The verifier judges the landmarks over every stored measurement: a landmark whose clock
under-reports, or that is registered at the wrong place, is excluded, the exclusion and its
alert are stored, and they hold after a restart and in a second worker over the same
database. Then a Singapore chip that measures the excluded landmark proves.
"""

from __future__ import annotations

from typing import Any

from geoattest.attacks.scenarios import (
    SG1,
    SINGAPORE,
    AttackScenario,
    Expect,
    Observed,
)
from geoattest.attacks.served import ServedChip, ServedWorld
from geoattest.attacks.world import LANDMARKS, AttackWorld, LandmarkClock, WorldChip
from geoattest.errors import EvidenceError, Reason
from geoattest.v1 import envelope_pb2, round_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.service import VerifierService

AUDITED = ("lm-sin", "lm-jhb", "lm-kul", "lm-hkg", "lm-can", "lm-tpe")
"""The landmarks that audit each other (each names the others with ``--audit-peer``)."""
SUSPECT = "lm-sin"
"""The landmark at fault in the attacks: the one the Singapore chip measures closest."""
AUDIT_TABLES = ("peer_measurements", "landmark_exclusions", "alerts")


def audit_round(served: ServedWorld, service: VerifierService | None = None) -> list[str]:
    """Every audited landmark audits its peers and hands the receipts in; the landmarks
    the verifier (``service``, or the world's) excluded."""
    via = service or served.service
    now_ns = served.world.now_ns()
    return [
        lid
        for auditor in AUDITED
        for lid in via.submit_peer_receipts(
            served.world.audit_by(auditor, AUDITED), now_ns
        ).excluded
    ]


def _chip(served: ServedWorld) -> ServedChip:
    world = served.world
    return served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1))


def _observed(served: ServedWorld, chip: ServedChip, head_moved: bool) -> Observed:
    """The chip's last answer, and the alerts as the verifier STORED them."""
    result = chip.results[-1]
    return Observed(
        result.verdict,
        result.reason,
        tuple(AlertKind(a.kind) for a in served.store.alerts()),
        head_moved,
        result.detail,
    )


def _prove_after(
    served: ServedWorld, chip: ServedChip, via: VerifierService | None = None
) -> Observed:
    before = served.head(chip)
    served.cycle(chip, via=via)
    return _observed(served, chip, served.head(chip) != before)


def _slow_clock(world: AttackWorld) -> None:
    """The suspect's clock runs at a thousandth of real time, for chips and peers alike."""
    world.landmark_clocks[SUSPECT] = LandmarkClock(rate=0.001)


def play_honest_landmarks_audited(world: AttackWorld) -> Observed:
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        excluded = audit_round(served)
        assert excluded == [], excluded
        return _prove_after(served, chip)


def _excluded_then_proof(world: AttackWorld) -> Observed:
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        excluded = audit_round(served)
        assert excluded == [SUSPECT], excluded
        return _prove_after(served, chip)


def play_slow_clock_landmark_excluded(world: AttackWorld) -> Observed:
    _slow_clock(world)
    return _excluded_then_proof(world)


def play_misplaced_landmark_excluded(world: AttackWorld) -> Observed:
    return _excluded_then_proof(world)


def play_exclusion_survives_restart(world: AttackWorld) -> Observed:
    _slow_clock(world)
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        audit_round(served)
        served.restart()
        return _prove_after(served, chip)


def play_exclusion_holds_on_another_worker(world: AttackWorld) -> Observed:
    """Worker 2 appraises the chip once before worker 1 excludes the suspect, then again."""
    _slow_clock(world)
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        second = served.another_worker()
        served.cycle(chip, via=second)
        assert chip.results[-1].verdict is Verdict.ALLOWED, chip.results[-1]
        audit_round(served)
        world.wait(60)
        return _prove_after(served, chip, via=second)


def play_lifted_exclusion_restores(world: AttackWorld) -> Observed:
    """The suspect's clock is repaired and the operator lifts its exclusion; the next
    audits find it honest and do not exclude it again."""
    _slow_clock(world)
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        audit_round(served)
        world.landmark_clocks[SUSPECT] = LandmarkClock()
        world.wait(60)
        served.store.lift_exclusion(SUSPECT, world.now_ns(), by="operator", why="clock repaired")
        world.wait(60)
        excluded = audit_round(served)
        assert excluded == [], excluded
        return _prove_after(served, chip)


def play_backlog_timed_before_the_lift(world: AttackWorld) -> Observed:
    """The suspect's slow clock times the chip's rounds; the host holds that proof back
    while the audits exclude the suspect, and lets it through once the suspect is repaired
    and the operator has lifted the exclusion."""
    _slow_clock(world)
    with ServedWorld.open(world) as served:
        chip = _chip(served)
        served.measure(chip)  # the proof waits in the agent's outbox
        audit_round(served)
        world.landmark_clocks[SUSPECT] = LandmarkClock()
        world.wait(60)
        served.store.lift_exclusion(SUSPECT, world.now_ns(), by="operator", why="clock repaired")
        world.wait(60)
        before = served.head(chip)
        served.deliver(chip)
        return _observed(served, chip, served.head(chip) != before)


def forged_receipt(receipt: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
    """A peer's receipt with its RTT cut to 1 ns, the signature left as it was: it would
    make its two landmarks impossible if it counted."""
    timing = round_pb2.TimingReceipt.FromString(receipt.payload)
    timing.rtt_min_ns = 1
    forged = envelope_pb2.Envelope()
    forged.CopyFrom(receipt)
    forged.payload = timing.SerializeToString()
    return forged


def play_forged_peer_receipt_refused(world: AttackWorld) -> Observed:
    """A host on the path hands in lm-jhb's audit with every RTT cut, to frame it."""
    with ServedWorld.open(world) as served:
        before = {table: served.store.dump()[table] for table in AUDIT_TABLES}
        forged = [forged_receipt(r) for r in world.audit_by("lm-jhb", AUDITED)]
        try:
            served.service.submit_peer_receipts(forged, world.now_ns())
        except EvidenceError as refused:
            after = {table: served.store.dump()[table] for table in AUDIT_TABLES}
            return Observed(
                Verdict.REJECTED,
                refused.reason,
                tuple(AlertKind(a.kind) for a in served.store.alerts()),
                after != before,
                refused.detail,
            )
        raise AssertionError("the forged receipts were taken")


EXCLUDED = Expect(
    frozenset({Verdict.REJECTED}),
    Reason.REVOKED_LANDMARK,
    frozenset({AlertKind.INCONSISTENT_LANDMARKS}),
    advances=False,
)
MISPLACED: dict[str, Any] = {"registered_sites": {**LANDMARKS, SUSPECT: LANDMARKS["lm-tpe"]}}
"""The suspect registered at Taipei's coordinates while it stands in Singapore."""

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "audit_honest_landmarks_none_excluded",
        "audit",
        "Six honest landmarks audit each other and hand the receipts to the verifier; none "
        "is excluded and a Singapore chip is ALLOWED.",
        Expect(frozenset({Verdict.ALLOWED}), advances=True),
        play_honest_landmarks_audited,
    ),
    AttackScenario(
        "audit_slow_clock_landmark_excluded",
        "audit",
        "lm-sin's clock runs slow, for chips and peers alike; its peers' audits exclude it "
        "(a stored exclusion and alert) before the Singapore chip, which measures it, proves.",
        EXCLUDED,
        play_slow_clock_landmark_excluded,
    ),
    AttackScenario(
        "audit_misplaced_landmark_excluded",
        "audit",
        "lm-sin is registered at Taipei's coordinates; its rounds with the Singapore-area "
        "peers beat light between the registered sites and it is excluded.",
        EXCLUDED,
        play_misplaced_landmark_excluded,
        MISPLACED,
    ),
    AttackScenario(
        "audit_exclusion_survives_restart",
        "audit",
        "lm-sin is excluded by the audits, then the verifier restarts: the new service reads "
        "the exclusion from the store and still refuses lm-sin's receipts.",
        EXCLUDED,
        play_exclusion_survives_restart,
    ),
    AttackScenario(
        "audit_exclusion_holds_on_another_worker",
        "audit",
        "Two verifier workers share one database; worker 1 excludes lm-sin, and worker 2, "
        "which appraised the chip before, refuses lm-sin's receipts at its next batch.",
        EXCLUDED,
        play_exclusion_holds_on_another_worker,
    ),
    AttackScenario(
        "audit_lifted_exclusion_restores",
        "audit",
        "lm-sin, excluded for its slow clock, is repaired and the operator lifts the "
        "exclusion; fresh audits find it honest and the chip is ALLOWED again.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            alerts=frozenset({AlertKind.INCONSISTENT_LANDMARKS}),
            advances=True,
        ),
        play_lifted_exclusion_restores,
    ),
    AttackScenario(
        "audit_backlog_timed_before_the_lift",
        "audit",
        "lm-sin's slow clock times a chip's rounds; the host holds the proof back while the "
        "audits exclude lm-sin, and delivers it once lm-sin is repaired and its exclusion "
        "lifted.",
        Expect(
            frozenset({Verdict.REJECTED}),
            Reason.REVOKED_LANDMARK,
            frozenset({AlertKind.INCONSISTENT_LANDMARKS}),
        ),
        play_backlog_timed_before_the_lift,
    ),
    AttackScenario(
        "audit_forged_peer_receipt_refused",
        "audit",
        "A host hands in lm-jhb's audit receipts with every RTT cut to 1 ns, to have it "
        "excluded; the receipt signatures fail and the hand-in is refused whole.",
        Expect(
            frozenset({Verdict.REJECTED}),
            Reason.BAD_RECEIPT_SIGNATURE,
            advances=False,
        ),
        play_forged_peer_receipt_refused,
    ),
)
