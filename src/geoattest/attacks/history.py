"""History cannot be laundered: the travel check holds every earlier fix, not the last.

A key in two places (a clone taking turns with the original, or a chip flown across a
border between proofs) shows as an impossible journey between two fixes. The adversary
tries to hide it by what it puts between them: another proof from the new place, a vague
proof (huge disks) that any journey can reach, stepping-stone proofs whose disks each
reach the next, or a proof built from rounds older than the chain's newest. Each attack
ends with a proof from Singapore whose own disks are licensed: only the device's history
keeps it from ALLOWED. The verifier's history fix (:mod:`geoattest.verifier.history`)
keeps the Shenzhen fix, grown by the travel since, until the journey becomes possible.
"""

from __future__ import annotations

from geoattest.attacks.scenarios import (
    SG1,
    SHENZHEN,
    SINGAPORE,
    AttackScenario,
    Expect,
)
from geoattest.attacks.world import AttackWorld, Device, WorldChip
from geoattest.errors import Reason
from geoattest.netsim.adversary import ConstantDelay
from geoattest.v1 import envelope_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

CADENCE_S = 600.0
"""Ten minutes between proofs: Singapore to Shenzhen (2,600 km) takes 43 min at 1,000 m/s."""
VAGUE = ConstantDelay(0.05)
"""The host holds every round datagram back 50 ms: each disk grows by 15,000 km."""
STEPPING_STONES = (ConstantDelay(0.008), ConstantDelay(0.004))
"""Singapore rounds held back 8 ms, then 4 ms: disks 2,400 km, then 1,200 km wider, each
reachable from the proof before."""


def _singapore(world: AttackWorld) -> WorldChip:
    return WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)


def _shenzhen(world: AttackWorld) -> WorldChip:
    return WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))


def _proves(
    world: AttackWorld,
    device: Device,
    chip: WorldChip,
    verdict: Verdict,
    delay: ConstantDelay | None = None,
) -> None:
    """``chip`` proves (its host adding ``delay``); the verifier accepts it as ``verdict``."""
    appraisal = world.appraise(world.prove(device, world.measure(chip, delay)))
    assert appraisal.verdict is verdict, appraisal


def _original_in_shenzhen(world: AttackWorld) -> Device:
    """The device proves from Shenzhen (OUTSIDE: it was diverted), one cadence ago."""
    device = world.enrol("chip-sg", "SG")
    _proves(world, device, _shenzhen(world), Verdict.OUTSIDE)
    world.wait(CADENCE_S)
    return device


def _then_from_singapore(world: AttackWorld, device: Device) -> envelope_pb2.Envelope:
    world.wait(CADENCE_S)
    return world.prove(device, world.measure(_singapore(world)))


def play_slow_round_trip(world: AttackWorld) -> envelope_pb2.Envelope:
    """Singapore, Shenzhen two days later, Singapore again two days after that."""
    device = world.enrol("chip-sg", "SG")
    _proves(world, device, _singapore(world), Verdict.ALLOWED)
    world.wait(2 * 24 * 3600)
    _proves(world, device, _shenzhen(world), Verdict.OUTSIDE)
    world.wait(2 * 24 * 3600)
    return world.prove(device, world.measure(_singapore(world)))


def play_vague_proof_between_honest_fixes(world: AttackWorld) -> envelope_pb2.Envelope:
    """An honest Singapore chip whose network was slow for one proof."""
    device = world.enrol("chip-sg", "SG")
    _proves(world, device, _singapore(world), Verdict.ALLOWED)
    world.wait(CADENCE_S)
    _proves(world, device, _singapore(world), Verdict.INCONCLUSIVE, VAGUE)
    return _then_from_singapore(world, device)


def play_jump_hidden_by_proving_again(world: AttackWorld) -> envelope_pb2.Envelope:
    """After Shenzhen, a clone in Singapore proves twice: the first proof is caught; the
    second must be too, though the last fix before it is the clone's own."""
    device = _original_in_shenzhen(world)
    _proves(world, device, _singapore(world), Verdict.INCONCLUSIVE)
    return _then_from_singapore(world, device)


def play_vague_proof_erases_a_precise_fix(world: AttackWorld) -> envelope_pb2.Envelope:
    """After Shenzhen, the host submits a vague proof (every round held back 50 ms), then
    the clone in Singapore proves."""
    device = _original_in_shenzhen(world)
    _proves(world, device, _singapore(world), Verdict.INCONCLUSIVE, VAGUE)
    return _then_from_singapore(world, device)


def play_stepping_stone_proofs(world: AttackWorld) -> envelope_pb2.Envelope:
    """After Shenzhen, the clone proves from Singapore with its rounds held back less
    each time, every proof's disks reaching the proof before, then proves honestly."""
    device = _original_in_shenzhen(world)
    for delay in STEPPING_STONES:
        _proves(world, device, _singapore(world), Verdict.INCONCLUSIVE, delay)
        world.wait(CADENCE_S / 2)
    return world.prove(device, world.measure(_singapore(world)))


def play_backdated_proof(world: AttackWorld) -> envelope_pb2.Envelope:
    """The host keeps a round set from Shenzhen with other landmarks, lets the chip prove
    from Singapore, then submits the older rounds: each landmark's receipt is newer than
    that landmark's last, but the proof as a whole is about an earlier time."""
    device = world.enrol("chip-sg", "SG")
    kept = world.measure(_shenzhen(world))
    world.wait(CADENCE_S)
    _proves(world, device, _singapore(world), Verdict.ALLOWED)
    return world.prove(device, kept)


TRAVEL_CAUGHT = Expect(
    frozenset({Verdict.INCONCLUSIVE}),
    alerts=frozenset({AlertKind.IMPOSSIBLE_TRAVEL}),
    advances=True,
)
"""The clone's licensed disks, downgraded by the device's history (never ALLOWED)."""

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "slow_round_trip_is_allowed_back_home",
        "history",
        "Control: proves from Singapore, from Shenzhen two days later, and from Singapore "
        "two days after that.",
        Expect(frozenset({Verdict.ALLOWED}), advances=True),
        play_slow_round_trip,
    ),
    AttackScenario(
        "vague_proof_between_honest_fixes",
        "history",
        "Control: an honest Singapore chip proves, proves once through a slow network "
        "(50 ms each way), and proves again.",
        Expect(frozenset({Verdict.ALLOWED}), advances=True),
        play_vague_proof_between_honest_fixes,
    ),
    AttackScenario(
        "jump_hidden_by_proving_again",
        "history",
        "After a proof from Shenzhen, a clone in Singapore proves twice, ten minutes apart.",
        TRAVEL_CAUGHT,
        play_jump_hidden_by_proving_again,
    ),
    AttackScenario(
        "vague_proof_erases_a_precise_fix",
        "history",
        "After a proof from Shenzhen, the host submits a vague proof (rounds held back "
        "50 ms), then the clone in Singapore proves.",
        TRAVEL_CAUGHT,
        play_vague_proof_erases_a_precise_fix,
    ),
    AttackScenario(
        "stepping_stone_proofs_hide_a_jump",
        "history",
        "After a proof from Shenzhen, the clone in Singapore proves with its rounds held "
        "back 8 ms, then 4 ms (each proof within reach of the one before), then honestly.",
        TRAVEL_CAUGHT,
        play_stepping_stone_proofs,
    ),
    AttackScenario(
        "backdated_proof_rewinds_evidence_time",
        "history",
        "The host keeps Shenzhen rounds, lets the chip prove from Singapore, then submits "
        "the older Shenzhen rounds as the next proof.",
        Expect(frozenset({Verdict.REJECTED}), Reason.STALE_RECEIPT),
        play_backdated_proof,
    ),
)
"""The history group: two controls, four attacks."""
