"""The attack scenarios: what the adversary does, and what the verifier must answer.

Each scenario builds its attack proof in an :class:`~geoattest.attacks.world.AttackWorld`
(honest proofs it needs first are accepted on the way); :meth:`Scenario.run` appraises
the attack proof with the real verifier and says whether the outcome is the expected one,
including whether the device's trusted chain head moved.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from geoattest.attacks.world import (
    LANDMARKS,
    MEASUREMENT,
    PLACES,
    AttackWorld,
    Chip,
    LandmarkClock,
)
from geoattest.crypto import KeySigner, sha256
from geoattest.errors import Reason
from geoattest.netsim.adversary import (
    AdaptiveDelay,
    Adversary,
    Compose,
    ConstantDelay,
    Delivery,
    Direction,
    Drop,
    Duplicate,
    FasterThanFibre,
    HelperRelay,
    Reorder,
    Replay,
    SelectiveDelay,
    Transit,
)
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import decode_datagram
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verdict import Verdict
from verifier.pipeline import AlertKind, Appraisal

SINGAPORE = PLACES["Singapore"]
SHENZHEN = PLACES["Shenzhen"]
JOHOR_BAHRU = PLACES["Johor Bahru"]
SG_LANDMARKS = ("lm-sin", "lm-jhb", "lm-kul")
MY_NORTH = ("lm-kul", "lm-pen", "lm-kbr")
SG1 = frozenset({"lm-sin"})
"""The Singapore data centre's landmark, reached over its own network."""
HELPER_SITE = LANDMARKS["lm-sin"]
"""The relay helper rents a rack in the Singapore landmark's own data centre."""

Play = Callable[[AttackWorld], envelope_pb2.Envelope]


@dataclass(frozen=True)
class Expect:
    """The defended outcome. ``verdicts`` holds more than one only for "never ALLOWED"
    expectations of scenarios not yet defended."""

    verdicts: frozenset[Verdict]
    reason: Reason | None = None
    alerts: frozenset[AlertKind] = frozenset()
    advances: bool = False
    """Whether the device's trusted chain head may move (only for verdicts on evidence)."""

    def describe(self) -> str:
        verdict = "|".join(sorted(v.value for v in self.verdicts))
        parts = [verdict]
        if self.reason is not None:
            parts.append(self.reason.value)
        parts.extend(sorted(a.value for a in self.alerts))
        return " ".join(parts)


@dataclass(frozen=True)
class Outcome:
    """What the verifier answered, and whether that defends against the attack."""

    name: str
    verdict: Verdict
    reason: Reason | None
    alerts: tuple[AlertKind, ...]
    head_moved: bool
    expected: str
    defended: bool
    detail: str


@dataclass(frozen=True)
class Scenario:
    """One attack: a name, what the adversary does, and the expected verifier answer."""

    name: str
    threat: str
    """Threat class (one test module each): location, delay, relay, replay, identity,
    landmark, availability."""
    description: str
    expect: Expect
    play: Play = field(repr=False)
    world: Mapping[str, Any] = field(default_factory=dict)
    """Options for the :class:`AttackWorld` the attack needs (revocations, registry)."""

    def new_world(self, **variant: Any) -> AttackWorld:
        """A fresh seeded world for this attack; ``variant`` swaps in test-only parts."""
        return AttackWorld(**self.world, **variant)

    def run(self, world: AttackWorld | None = None) -> Outcome:
        """Play the attack in ``world`` (a fresh seeded one by default) and appraise it."""
        world = world or self.new_world()
        proof = self.play(world)
        return self.judge(world, proof)

    def judge(self, world: AttackWorld, proof: envelope_pb2.Envelope) -> Outcome:
        before = dict(world.state.heads)
        appraisal: Appraisal = world.appraise(proof)
        moved = world.state.heads != before
        defended = (
            appraisal.verdict in self.expect.verdicts
            and appraisal.reason is self.expect.reason
            and frozenset(appraisal.alerts) == self.expect.alerts
            and moved == self.expect.advances
        )
        return Outcome(
            name=self.name,
            verdict=appraisal.verdict,
            reason=appraisal.reason,
            alerts=appraisal.alerts,
            head_moved=moved,
            expected=self.expect.describe(),
            defended=defended,
            detail=appraisal.detail,
        )


def _expect(
    *verdicts: Verdict,
    reason: Reason | None = None,
    alerts: tuple[AlertKind, ...] = (),
) -> Expect:
    evidence = reason is None
    return Expect(frozenset(verdicts), reason, frozenset(alerts), advances=evidence)


def _rejected(reason: Reason, *alerts: AlertKind) -> Expect:
    return Expect(frozenset({Verdict.REJECTED}), reason, frozenset(alerts), advances=False)


# --- plays ---------------------------------------------------------------------------


def _honest(
    world: AttackWorld,
    device_id: str,
    where: tuple[float, float],
    region: str,
    *,
    landmarks: tuple[str, ...] | None = None,
    datacentre: frozenset[str] = frozenset(),
    adversary: Adversary | None = None,
) -> envelope_pb2.Envelope:
    """Enrol a chip, let it measure (under ``adversary``), return its proof."""
    device = world.enrol(device_id, region)
    chip = Chip(device_id, where, region, landmarks or world.nearest(where), datacentre)
    return world.prove(device, world.measure(chip, adversary))


def _accepted_then(world: AttackWorld) -> envelope_pb2.Envelope:
    """An honest Singapore chip whose first proof the verifier accepted."""
    device = world.enrol("chip-sg", "SG")
    chip = Chip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    first = world.prove(device, world.measure(chip))
    appraisal = world.appraise(first)
    assert appraisal.verdict is Verdict.ALLOWED, appraisal
    return first


def play_honest(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1)


def play_honest_messy_network(world: AttackWorld) -> envelope_pb2.Envelope:
    messy = Compose(Duplicate(copies=2, spacing_s=0.0001), Reorder(0.3, 0.002), Replay(0.05))
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1, adversary=messy)


def play_diverted(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sz", SHENZHEN, "SG")


def play_constant_delay(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sz", SHENZHEN, "SG", adversary=ConstantDelay(0.005))


def play_selective_delay(world: AttackWorld) -> envelope_pb2.Envelope:
    delay = SelectiveDelay({"lm-hkg": 0.02, "lm-can": 0.02})
    return _honest(world, "chip-sz", SHENZHEN, "SG", adversary=delay)


def play_adaptive_delay(world: AttackWorld) -> envelope_pb2.Envelope:
    delay = AdaptiveDelay(world.model, SINGAPORE)
    landmarks = (*SG_LANDMARKS, "lm-hkg")
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=landmarks, adversary=delay)


def play_helper_relay(world: AttackWorld) -> envelope_pb2.Envelope:
    relay = HelperRelay(world.model, HELPER_SITE)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS, adversary=relay)


def play_faster_than_fibre(world: AttackWorld) -> envelope_pb2.Envelope:
    links = Compose(
        *(FasterThanFibre(world.model, SINGAPORE, LANDMARKS[lid], 0.997) for lid in MY_NORTH)
    )
    return _honest(world, "chip-sg", SINGAPORE, "MY", landmarks=MY_NORTH, adversary=links)


def play_border_johor(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-jb", JOHOR_BAHRU, "SG")


def play_border_shenzhen(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sz", SHENZHEN, "HK")


def play_replayed_proof(world: AttackWorld) -> envelope_pb2.Envelope:
    return _accepted_then(world)


def play_replayed_receipts(world: AttackWorld) -> envelope_pb2.Envelope:
    first = _accepted_then(world)
    old_receipts = evidence_pb2.LocationProof.FromString(first.payload).receipts
    return world.prove(world.devices["chip-sg"], list(old_receipts))


def play_forged_device_key(world: AttackWorld) -> envelope_pb2.Envelope:
    world.enrol("chip-sg", "SG")
    forger = KeySigner.generate()
    chip = Chip("chip-sg", SHENZHEN, "SG", world.nearest(SINGAPORE))
    receipts = world.measure(chip, signer=forger)
    proof, _ = ProofChain("chip-sg").extend(receipts, measurement=MEASUREMENT, signer=forger)
    return proof


def play_revoked_device(world: AttackWorld) -> envelope_pb2.Envelope:
    return play_honest(world)


def play_unmeasured_agent(world: AttackWorld) -> envelope_pb2.Envelope:
    device = world.enrol("chip-sg", "SG")
    chip = Chip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    downgraded = sha256(b"geoattest agent 0.9 (downgraded)")
    return world.prove(device, world.measure(chip), measurement=downgraded)


def play_chip_a_for_chip_b(world: AttackWorld) -> envelope_pb2.Envelope:
    """Chip A (in Singapore) runs the rounds under B's name; B (in Shenzhen) submits them."""
    chip_a = world.enrol("chip-a", "SG")
    chip_b = world.enrol("chip-b", "SG")
    under_b = Chip("chip-b", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    receipts = world.measure(under_b, signer=chip_a.signer)
    return world.prove(chip_b, receipts)


def play_clone_fork(world: AttackWorld) -> envelope_pb2.Envelope:
    """The original (Shenzhen) and a clone of its key (Singapore) extend the same head."""
    device = world.enrol("chip-sg", "SG")
    start = device.chain
    clone = Chip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    assert world.appraise(world.prove(device, world.measure(clone))).verdict is Verdict.ALLOWED
    device.chain = start  # the original never saw the clone's proof
    original = Chip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    return world.prove(device, world.measure(original))


CADENCE_S = 600.0
"""Ten minutes between proofs: Singapore to Shenzhen (2,600 km) takes 43 min at 1,000 m/s."""


def play_verify_then_move(world: AttackWorld) -> envelope_pb2.Envelope:
    """Proved in Singapore, then flown to Shenzhen and proving again one cadence later."""
    _accepted_then(world)
    world.wait(CADENCE_S)
    moved = Chip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    return world.prove(world.devices["chip-sg"], world.measure(moved))


def play_clone_takes_turns(world: AttackWorld) -> envelope_pb2.Envelope:
    """The original in Shenzhen proves; the host copies the agent's chain state to a clone
    of the key in Singapore, which proves next: no fork, but an impossible journey."""
    device = world.enrol("chip-sg", "SG")
    original = Chip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    assert world.appraise(world.prove(device, world.measure(original))).verdict is Verdict.OUTSIDE
    world.wait(CADENCE_S)
    clone = Chip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    return world.prove(device, world.measure(clone))


def play_slow_honest_journey(world: AttackWorld) -> envelope_pb2.Envelope:
    """Proved in Singapore, shipped to Shenzhen, proving again two days later: possible."""
    _accepted_then(world)
    world.wait(2 * 24 * 3600)
    moved = Chip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    return world.prove(world.devices["chip-sg"], world.measure(moved))


def play_rogue_landmark(world: AttackWorld) -> envelope_pb2.Envelope:
    """A landmark in Singapore that the registry never listed vouches for a Shenzhen chip."""
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=("lm-sin", "lm-hkg", "lm-can"))


def play_revoked_landmark(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1)


def play_misplaced_landmark(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-hkg is registered at Singapore's coordinates; a Shenzhen chip measures it."""
    return _honest(world, "chip-sz", SHENZHEN, "SG")


def play_lying_landmark_contradicted(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-sin's clock runs at a hundredth of real time for a Shenzhen chip's round."""
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.01)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=("lm-sin", "lm-hkg", "lm-can"))


def play_lying_landmark_colludes(world: AttackWorld) -> envelope_pb2.Envelope:
    """Only Singapore-area landmarks measure; lm-sin lies, the others are honest."""
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS)


def play_honest_two_datacentre_landmarks(world: AttackWorld) -> envelope_pb2.Envelope:
    """Two independent landmarks in the chip's data centre, so one may be left out."""
    landmarks = ("lm-sin", "lm-sin-b", "lm-jhb", "lm-kul")
    both = frozenset({"lm-sin", "lm-sin-b"})
    return _honest(world, "chip-sg", SINGAPORE, "SG", landmarks=landmarks, datacentre=both)


@dataclass(frozen=True)
class GuessResponses:
    """On the path next to the landmark: replace every Response with a guessed answer, as
    if answering from there without the round secret (or for a challenge never issued,
    when ``skip_ahead`` names a later index)."""

    skip_ahead: int = 0

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[Delivery]:
        if transit.direction is not Direction.UPLINK:
            return [transit.deliver()]
        datagram = decode_datagram(transit.payload)
        if datagram.WhichOneof("kind") != "response":
            return [transit.deliver()]
        datagram.response.answer = rng.randbytes(32)
        datagram.response.index += self.skip_ahead
        return [Delivery(transit.delay_ns, datagram.SerializeToString(), transit.action)]


def play_guessed_responses(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(
        world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS, adversary=GuessResponses()
    )


def play_responses_to_challenges_never_issued(world: AttackWorld) -> envelope_pb2.Envelope:
    forger = GuessResponses(skip_ahead=1)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS, adversary=forger)


def play_near_landmarks_flooded(world: AttackWorld) -> envelope_pb2.Envelope:
    flood = SelectiveDelay({"lm-sin": 0.2, "lm-jhb": 0.2})
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1, adversary=flood)


def play_landmarks_unreachable(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sg", SINGAPORE, "SG", adversary=Drop(1.0))


NEVER_ALLOWED = (Verdict.OUTSIDE, Verdict.INCONCLUSIVE, Verdict.INCONSISTENT, Verdict.REJECTED)
OUTSIDE = (AlertKind.OUTSIDE_LICENSED_REGION,)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "honest_chip_in_licensed_region",
        "location",
        "Chip in a Singapore data centre licensed to SG; normal jitter, no adversary.",
        _expect(Verdict.ALLOWED),
        play_honest,
    ),
    Scenario(
        "honest_chip_duplicated_reordered_replayed_datagrams",
        "replay",
        "Every round datagram duplicated, some reordered, each replayed 50 ms later.",
        _expect(Verdict.ALLOWED),
        play_honest_messy_network,
    ),
    Scenario(
        "diverted_chip_shenzhen_licensed_singapore",
        "location",
        "Chip licensed to SG sits in Shenzhen and measures its nearest landmarks honestly.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_diverted,
    ),
    Scenario(
        "border_chip_johor_bahru_licensed_singapore",
        "location",
        "Chip licensed to SG sits in Johor Bahru, a few km across the strait.",
        _expect(Verdict.INCONCLUSIVE),
        play_border_johor,
    ),
    Scenario(
        "border_chip_shenzhen_licensed_hong_kong",
        "location",
        "Chip licensed to HK sits in Shenzhen, next to the border.",
        _expect(Verdict.INCONCLUSIVE),
        play_border_shenzhen,
    ),
    Scenario(
        "constant_delay_to_look_elsewhere",
        "delay",
        "Shenzhen chip licensed to SG; the host adds 5 ms to every datagram.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_constant_delay,
    ),
    Scenario(
        "selective_delay_on_near_landmarks",
        "delay",
        "Shenzhen chip licensed to SG; 20 ms added only towards the landmarks near it.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_selective_delay,
    ),
    Scenario(
        "adaptive_delay_mimics_singapore",
        "delay",
        "Shenzhen chip measures Singapore-area landmarks and Hong Kong, padding each path "
        "to the delay it would have from Singapore.",
        _expect(Verdict.INCONCLUSIVE),
        play_adaptive_delay,
    ),
    Scenario(
        "helper_relay_next_to_landmarks",
        "relay",
        "A helper in the Singapore landmark's data centre forwards the Singapore "
        "landmarks' rounds to the chip in Shenzhen (the round secret never leaves it).",
        _expect(Verdict.INCONCLUSIVE),
        play_helper_relay,
    ),
    Scenario(
        "faster_than_fibre_links",
        "relay",
        "Chip in Singapore licensed to MY; hollow-core links (0.997 c) to three Malaysian "
        "landmarks north of it.",
        _expect(Verdict.INCONCLUSIVE),
        play_faster_than_fibre,
    ),
    Scenario(
        "guessed_responses_injected_next_to_landmarks",
        "round",
        "An on-path helper next to the Singapore landmarks answers every challenge with a "
        "guess (it has no round secret) for a chip in Shenzhen.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_guessed_responses,
    ),
    Scenario(
        "responses_to_challenges_never_issued",
        "round",
        "The helper answers the next challenge before the landmark has issued it.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_responses_to_challenges_never_issued,
    ),
    Scenario(
        "replayed_proof",
        "replay",
        "An accepted proof is submitted again.",
        _rejected(Reason.REPLAYED_PROOF),
        play_replayed_proof,
    ),
    Scenario(
        "replayed_receipts_in_new_proof",
        "replay",
        "A new proof carries the receipts of the last accepted one.",
        _rejected(Reason.REPLAYED_RECEIPT),
        play_replayed_receipts,
    ),
    Scenario(
        "forged_device_key",
        "identity",
        "A key the manufacturer never certified runs the rounds and signs the proof.",
        _rejected(Reason.UNKNOWN_DEVICE),
        play_forged_device_key,
    ),
    Scenario(
        "revoked_device",
        "identity",
        "An honest proof from a device on the revocation list.",
        _rejected(Reason.REVOKED_DEVICE),
        play_revoked_device,
        {"revoked_devices": frozenset({"chip-sg"})},
    ),
    Scenario(
        "downgraded_agent_firmware",
        "identity",
        "The proof carries an agent measurement the policy does not allow.",
        _rejected(Reason.BAD_MEASUREMENT, AlertKind.TAMPERING),
        play_unmeasured_agent,
    ),
    Scenario(
        "chip_a_answers_for_chip_b",
        "identity",
        "Chip A in Singapore runs the rounds under chip B's name; B submits them.",
        _rejected(Reason.BAD_TRANSCRIPT_SIGNATURE, AlertKind.TAMPERING),
        play_chip_a_for_chip_b,
    ),
    Scenario(
        "cloned_key_forks_the_chain",
        "identity",
        "A clone in Singapore and the original in Shenzhen both extend the same proof.",
        _rejected(Reason.FORK, AlertKind.CLONE),
        play_clone_fork,
    ),
    Scenario(
        "verify_then_move",
        "travel",
        "Chip proves from Singapore, is flown to Shenzhen and proves again one cadence "
        "(10 min) later.",
        _expect(
            Verdict.OUTSIDE,
            alerts=(AlertKind.OUTSIDE_LICENSED_REGION, AlertKind.IMPOSSIBLE_TRAVEL),
        ),
        play_verify_then_move,
    ),
    Scenario(
        "cloned_key_takes_turns_with_original",
        "travel",
        "Original in Shenzhen proves; its chain state is copied to a clone in Singapore "
        "that proves next (no fork).",
        _expect(Verdict.INCONCLUSIVE, alerts=(AlertKind.IMPOSSIBLE_TRAVEL,)),
        play_clone_takes_turns,
    ),
    Scenario(
        "slow_journey_is_not_impossible_travel",
        "travel",
        "Control: proves from Singapore, then from Shenzhen two days later.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_slow_honest_journey,
    ),
    Scenario(
        "rogue_unregistered_landmark",
        "landmark",
        "A landmark the registry does not list vouches for the chip.",
        _rejected(Reason.UNKNOWN_LANDMARK),
        play_rogue_landmark,
        {"registered_sites": {k: v for k, v in LANDMARKS.items() if k != "lm-sin"}},
    ),
    Scenario(
        "revoked_landmark",
        "landmark",
        "A receipt from a revoked landmark.",
        _rejected(Reason.REVOKED_LANDMARK),
        play_revoked_landmark,
        {"revoked_landmarks": frozenset({"lm-jhb"})},
    ),
    Scenario(
        "landmark_registered_at_wrong_coordinates",
        "landmark",
        "lm-hkg is registered at Singapore's coordinates; a Shenzhen chip measures it.",
        _expect(Verdict.INCONSISTENT, alerts=(AlertKind.INCONSISTENT_LANDMARKS,)),
        play_misplaced_landmark,
        {"registered_sites": {**LANDMARKS, "lm-hkg": LANDMARKS["lm-sin"]}},
    ),
    Scenario(
        "lying_landmark_contradicted_by_others",
        "landmark",
        "lm-sin under-reports a Shenzhen chip's RTT; Hong Kong and Guangzhou are honest.",
        _expect(Verdict.INCONSISTENT, alerts=(AlertKind.INCONSISTENT_LANDMARKS,)),
        play_lying_landmark_contradicted,
    ),
    Scenario(
        "lying_landmark_among_distant_honest_ones",
        "landmark",
        "Shenzhen chip licensed to SG measures only Singapore-area landmarks; lm-sin "
        "under-reports, the honest ones are far and their disks cover it.",
        Expect(frozenset(NEVER_ALLOWED) - {Verdict.REJECTED}, advances=True),
        play_lying_landmark_colludes,
    ),
    Scenario(
        "lying_landmark_outvoted_when_policy_tolerates_one",
        "landmark",
        "As above, against a verifier whose policy tolerates one lying landmark: ALLOWED "
        "must hold with any one receipt left out.",
        _expect(Verdict.INCONCLUSIVE),
        play_lying_landmark_colludes,
        {"landmark_faults": 1},
    ),
    Scenario(
        "honest_chip_with_two_datacentre_landmarks_tolerating_one_liar",
        "landmark",
        "Control: honest Singapore chip with two landmarks in its data centre, against the "
        "policy that tolerates one lying landmark.",
        _expect(Verdict.ALLOWED),
        play_honest_two_datacentre_landmarks,
        {"landmark_faults": 1},
    ),
    Scenario(
        "near_landmarks_flooded",
        "availability",
        "The chip's two nearest landmarks are flooded (200 ms queues).",
        _expect(Verdict.INCONCLUSIVE),
        play_near_landmarks_flooded,
    ),
    Scenario(
        "landmarks_unreachable",
        "availability",
        "Every datagram to and from the landmarks is dropped: no round completes.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_landmarks_unreachable,
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
