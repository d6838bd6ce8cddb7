"""The attack scenarios: what the adversary does, and what the verifier must answer.

Each scenario builds its attack proof in an :class:`~geoattest.attacks.world.AttackWorld`
(honest proofs it needs first are accepted on the way); :meth:`AttackScenario.run` appraises
the attack proof with the real verifier and says whether the outcome is the expected one,
including whether the device's trusted chain head moved. Attacks that play out over time
(a heartbeat that stops, a landmark audit before the proof) run the real verifier service
and agent in a :class:`~geoattest.attacks.served.ServedWorld` and hand back what they
:class:`Observed` instead of a proof.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from geoattest.attacks.served import ServedChip, ServedWorld, Timeline
from geoattest.attacks.world import (
    LANDMARKS,
    MEASUREMENT,
    PLACES,
    AttackWorld,
    LandmarkClock,
    WorldChip,
)
from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.crypto import KeySigner, sha256
from geoattest.errors import EvidenceError, Reason
from geoattest.netsim.adversary import (
    AdaptiveDelay,
    Adversary,
    Compose,
    ConstantDelay,
    DatagramDelivery,
    Direction,
    Drop,
    Duplicate,
    FasterThanFibre,
    HelperRelay,
    Reorder,
    Replay,
    SelectiveDelay,
    Transit,
    to_ns,
)
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import Randomness, decode_datagram
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind, Appraisal

SINGAPORE = PLACES["Singapore"]
SHENZHEN = PLACES["Shenzhen"]
JOHOR_BAHRU = PLACES["Johor Bahru"]
SG_LANDMARKS = ("lm-sin", "lm-jhb", "lm-kul")
MY_NORTH = ("lm-kul", "lm-pen", "lm-kbr")
SG1 = frozenset({"lm-sin", "lm-sin-b"})
"""The Singapore data centre's two landmarks (independent operators, two buildings),
reached over its own network."""
HELPER_SITE = LANDMARKS["lm-sin"]
"""The relay helper rents a rack in the Singapore landmark's own data centre."""


@dataclass(frozen=True)
class Expect:
    """The defended outcome. ``verdicts`` holds None for attacks that end without a proof
    to appraise (a heartbeat that stops)."""

    verdicts: frozenset[Verdict | None]
    reason: Reason | None = None
    alerts: frozenset[AlertKind] = frozenset()
    advances: bool = False
    """Whether the device's trusted chain head may move (only for verdicts on evidence)."""
    device_state: str = ""
    """The device's state at the verifier at the end (a ``DeviceState``); "" unchecked."""
    licence: str = ""
    """The chip's licence at the end (a ``LicenceStatus``, or "expired" for a chip that is
    off and has only its last result); "" unchecked."""

    def describe(self) -> str:
        verdict = "|".join(sorted(v.value if v else "no verdict" for v in self.verdicts))
        parts = [verdict]
        if self.reason is not None:
            parts.append(self.reason.value)
        parts.extend(sorted(a.value for a in self.alerts))
        if self.device_state:
            parts.append(f"device {self.device_state}")
        if self.licence:
            parts.append(f"licence {self.licence}")
        return " ".join(parts)


@dataclass(frozen=True)
class Observed:
    """What an attack that plays out over time saw at its end (instead of one proof for
    :meth:`AttackScenario.judge` to appraise)."""

    verdict: Verdict | None
    """The last appraisal of the attacked device's proof during the attack, if any."""
    reason: Reason | None
    alerts: tuple[AlertKind, ...]
    """Every alert the verifier raised during the attack (device and landmark alerts)."""
    head_moved: bool
    detail: str
    device_state: str = ""
    licence: str = ""


Play = Callable[[AttackWorld], envelope_pb2.Envelope | Observed]
"""Builds the attack in a world: the proof to appraise, or what a timed attack observed."""


@dataclass(frozen=True)
class Outcome:
    """What the verifier answered, and whether that defends against the attack."""

    name: str
    verdict: Verdict | None
    reason: Reason | None
    alerts: tuple[AlertKind, ...]
    head_moved: bool
    expected: str
    defended: bool
    detail: str
    device_state: str = ""
    licence: str = ""


@dataclass(frozen=True)
class AttackScenario:
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

    def judge(self, world: AttackWorld, played: envelope_pb2.Envelope | Observed) -> Outcome:
        """Appraise the attack proof (or take what a timed attack observed) and compare."""
        seen = played if isinstance(played, Observed) else _appraised(world, played)
        expect = self.expect
        defended = (
            seen.verdict in expect.verdicts
            and seen.reason is expect.reason
            and frozenset(seen.alerts) == expect.alerts
            and seen.head_moved == expect.advances
            and expect.device_state in ("", seen.device_state)
            and expect.licence in ("", seen.licence)
        )
        return Outcome(
            name=self.name,
            verdict=seen.verdict,
            reason=seen.reason,
            alerts=seen.alerts,
            head_moved=seen.head_moved,
            expected=expect.describe(),
            defended=defended,
            detail=seen.detail,
            device_state=seen.device_state,
            licence=seen.licence,
        )


def _appraised(world: AttackWorld, proof: envelope_pb2.Envelope) -> Observed:
    """Appraise ``proof`` as the verifier does, noting whether trusted state moved."""
    before = dict(world.state.heads)
    appraisal: Appraisal = world.appraise(proof)
    return Observed(
        appraisal.verdict,
        appraisal.reason,
        appraisal.alerts,
        world.state.heads != before,
        appraisal.detail,
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
    chip = WorldChip(device_id, where, region, landmarks or world.nearest(where), datacentre)
    return world.prove(device, world.measure(chip, adversary))


def _accepted_then(world: AttackWorld) -> envelope_pb2.Envelope:
    """An honest Singapore chip whose first proof the verifier accepted."""
    device = world.enrol("chip-sg", "SG")
    chip = WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
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
    chip = WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SINGAPORE))
    receipts = world.measure(chip, signer=forger)
    proof, _ = ProofChain("chip-sg").extend(receipts, measurement=MEASUREMENT, signer=forger)
    return proof


def play_revoked_device(world: AttackWorld) -> envelope_pb2.Envelope:
    return play_honest(world)


def play_unmeasured_agent(world: AttackWorld) -> envelope_pb2.Envelope:
    device = world.enrol("chip-sg", "SG")
    chip = WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    downgraded = sha256(b"geoattest agent 0.9 (downgraded)")
    return world.prove(device, world.measure(chip), measurement=downgraded)


def play_chip_a_for_chip_b(world: AttackWorld) -> envelope_pb2.Envelope:
    """Chip A (in Singapore) runs the rounds under B's name; B (in Shenzhen) submits them."""
    chip_a = world.enrol("chip-a", "SG")
    chip_b = world.enrol("chip-b", "SG")
    under_b = WorldChip("chip-b", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    receipts = world.measure(under_b, signer=chip_a.signer)
    return world.prove(chip_b, receipts)


def play_clone_fork(world: AttackWorld) -> envelope_pb2.Envelope:
    """The original (Shenzhen) and a clone of its key (Singapore) extend the same head."""
    device = world.enrol("chip-sg", "SG")
    start = device.chain
    clone = WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    assert world.appraise(world.prove(device, world.measure(clone))).verdict is Verdict.ALLOWED
    device.chain = start  # the original never saw the clone's proof
    original = WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    return world.prove(device, world.measure(original))


CADENCE_S = 600.0
"""Ten minutes between proofs: Singapore to Shenzhen (2,600 km) takes 43 min at 1,000 m/s."""


def play_verify_then_move(world: AttackWorld) -> envelope_pb2.Envelope:
    """Proved in Singapore, then flown to Shenzhen and proving again one cadence later."""
    _accepted_then(world)
    world.wait(CADENCE_S)
    moved = WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    return world.prove(world.devices["chip-sg"], world.measure(moved))


def play_clone_takes_turns(world: AttackWorld) -> envelope_pb2.Envelope:
    """The original in Shenzhen proves; the host copies the agent's chain state to a clone
    of the key in Singapore, which proves next: no fork, but an impossible journey."""
    device = world.enrol("chip-sg", "SG")
    original = WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
    assert world.appraise(world.prove(device, world.measure(original))).verdict is Verdict.OUTSIDE
    world.wait(CADENCE_S)
    clone = WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1)
    return world.prove(device, world.measure(clone))


def play_slow_honest_journey(world: AttackWorld) -> envelope_pb2.Envelope:
    """Proved in Singapore, shipped to Shenzhen, proving again two days later: possible."""
    _accepted_then(world)
    world.wait(2 * 24 * 3600)
    moved = WorldChip("chip-sg", SHENZHEN, "SG", world.nearest(SHENZHEN))
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
    """Two landmarks of independent operators in the chip's data centre, so either may be
    left out."""
    landmarks = ("lm-sin", "lm-sin-b", "lm-jhb", "lm-kul")
    return _honest(world, "chip-sg", SINGAPORE, "SG", landmarks=landmarks, datacentre=SG1)


@dataclass(frozen=True)
class GuessResponses:
    """On the path next to the landmark: replace every Response with a guessed answer, as
    if answering from there without the round secret (or for a challenge never issued,
    when ``skip_ahead`` names a later index)."""

    skip_ahead: int = 0

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        if transit.direction is not Direction.UPLINK:
            return [transit.deliver()]
        datagram = decode_datagram(transit.payload)
        if datagram.WhichOneof("kind") != "response":
            return [transit.deliver()]
        datagram.response.answer = rng.randbytes(32)
        datagram.response.index += self.skip_ahead
        return [DatagramDelivery(transit.delay_ns, datagram.SerializeToString(), transit.action)]


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


# --- predictable and reused challenges ------------------------------------------------


class PredictedChallenges:
    """On the chip's path to a landmark whose challenges can be predicted: right behind
    each challenge the landmark sends, hand the chip the one it will send next. The chip
    answers both; its answer to the next one is held just behind its answer to this one,
    so it reaches the landmark moments after the landmark issues that challenge. The chip
    answers every challenge honestly (its round secret never leaves it): only the
    landmark's predictability is exploited.

    ``predict(index, challenge)`` is the challenge expected at ``index``, given the one
    just seen (None: no guess).
    """

    def __init__(
        self,
        landmark_id: str,
        predict: Callable[[int, bytes], bytes | None],
        *,
        gap_s: float = 10e-6,
        uplink_s: float = 0.2,
    ) -> None:
        self.landmark_id = landmark_id
        self.predict = predict
        self.gap_ns = to_ns(gap_s)
        self.uplink_ns = to_ns(uplink_s)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        if transit.landmark_id != self.landmark_id:
            return [transit.deliver()]
        datagram = decode_datagram(transit.payload)
        kind = datagram.WhichOneof("kind")
        if transit.direction is Direction.UPLINK:
            if kind != "response":
                return [transit.deliver()]
            # Every answer takes the same time uplink, so answers arrive in the order sent.
            return [DatagramDelivery(max(transit.delay_ns, self.uplink_ns), transit.payload)]
        if kind != "challenge":
            return [transit.deliver()]
        seen = datagram.challenge
        ahead = self.predict(seen.index + 1, bytes(seen.challenge))
        if ahead is None:
            return [transit.deliver()]
        early = round_pb2.Datagram(
            challenge=round_pb2.Challenge(
                round_id=seen.round_id, index=seen.index + 1, challenge=ahead
            )
        )
        return [
            transit.deliver(),
            DatagramDelivery(
                transit.delay_ns + self.gap_ns, early.SerializeToString(), transit.action
            ),
        ]


class ChallengeRecorder:
    """Watches a landmark's challenges go by (and changes nothing)."""

    def __init__(self, landmark_id: str) -> None:
        self.landmark_id = landmark_id
        self.challenges: list[bytes] = []

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        if transit.landmark_id == self.landmark_id and transit.direction is Direction.DOWNLINK:
            datagram = decode_datagram(transit.payload)
            if datagram.WhichOneof("kind") == "challenge":
                self.challenges.append(bytes(datagram.challenge.challenge))
        return [transit.deliver()]


STUCK_CHALLENGE = bytes(range(16))
CHALLENGE_SEED = 2026


def stuck_randomness() -> Randomness:
    """A landmark's broken source: the same bytes every time."""
    return lambda n: STUCK_CHALLENGE[:n]


def seeded_randomness() -> Randomness:
    """A landmark's predictable source: one fixed seed, so every round the same sequence."""
    return random.Random(CHALLENGE_SEED).randbytes  # noqa: S311 (predictable on purpose)


def play_reused_challenge(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-sin repeats one challenge; the host feeds it to the Shenzhen chip ahead of time."""
    world.landmark_randomness["lm-sin"] = stuck_randomness
    ahead = PredictedChallenges("lm-sin", lambda _index, seen: seen)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS, adversary=ahead)


def _observe_a_round(world: AttackWorld, landmark_id: str) -> list[bytes]:
    """The adversary watches one round of ``landmark_id`` (its own chip's, say)."""
    recorder = ChallengeRecorder(landmark_id)
    watcher = WorldChip("chip-watcher", SHENZHEN, "SG", (landmark_id,))
    world.measure(watcher, recorder, signer=KeySigner.generate())
    return recorder.challenges


# --- landmarks audited by the verifier service ----------------------------------------

AUDIT_PEERS = ("lm-sin", "lm-jhb", "lm-kul", "lm-hkg", "lm-can", "lm-tpe")
"""The landmarks the verifier audits by having them time each other."""


def _served_attack(
    world: AttackWorld, attack: Callable[[AttackWorld], Adversary | None]
) -> Observed:
    """Set up ``attack`` (it returns its on-path part), let the verifier service audit the
    landmarks, then submit a Shenzhen chip's proof over the Singapore-area landmarks."""
    adversary = attack(world)
    with ServedWorld.open(world) as served:
        served.service.submit_peer_receipts(world.peer_receipts(AUDIT_PEERS), world.now_ns())
        chip = served.enrol(WorldChip("chip-sz", SHENZHEN, "SG", SG_LANDMARKS))
        before = served.head(chip)
        served.cycle(chip, adversary=adversary)
        result = chip.results[-1]
        return Observed(
            result.verdict,
            result.reason,
            tuple(AlertKind(a.kind) for a in served.alerts),
            served.head(chip) != before,
            result.detail,
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
        )


def _lying_clock(world: AttackWorld) -> None:
    """lm-sin's clock runs at a thousandth of real time, for chips and peers alike."""
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)


def _predicted(world: AttackWorld) -> PredictedChallenges:
    """lm-sin draws challenges from a fixed seed; the host has watched one of its rounds."""
    world.landmark_randomness["lm-sin"] = seeded_randomness
    sequence = _observe_a_round(world, "lm-sin")
    return PredictedChallenges(
        "lm-sin", lambda index, _seen: sequence[index] if index < len(sequence) else None
    )


def play_predictable_challenges(world: AttackWorld) -> envelope_pb2.Envelope:
    """Having watched one round of lm-sin, the host feeds each next challenge to the
    Shenzhen chip before lm-sin issues it."""
    ahead = _predicted(world)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=SG_LANDMARKS, adversary=ahead)


def play_lying_landmark_excluded_by_crosscheck(world: AttackWorld) -> Observed:
    return _served_attack(world, _lying_clock)


def play_predictable_landmark_excluded_by_crosscheck(world: AttackWorld) -> Observed:
    return _served_attack(world, _predicted)


# --- identity at enrolment, and the export licence's end ---------------------------------


def play_certificate_not_chained_to_manufacturer(world: AttackWorld) -> Observed:
    """The host enrols a key certified by a root of its own making, as chip-sg."""
    with ServedWorld.open(world) as served:
        forged_root = served.manufacturer("Attack World Accelerators")
        try:
            served.enrol(
                WorldChip("chip-sg", SINGAPORE, "SG", SG_LANDMARKS), manufacturer=forged_root
            )
        except EvidenceError as refused:
            enrolled = served.store.summary("chip-sg") is not None
            return Observed(
                Verdict.REJECTED,
                refused.reason,
                tuple(AlertKind(a.kind) for a in served.alerts),
                enrolled,
                refused.detail,
            )
        return Observed(Verdict.ALLOWED, None, (), True, "enrolled with a forged root")


def play_export_licence_ends(world: AttackWorld) -> Observed:
    """An honest Singapore chip whose export licence ends before its second proof keeps
    proving for an hour."""
    with ServedWorld.open(world) as served:
        chip = served.enrol(
            WorldChip("chip-sg", SINGAPORE, "SG", world.nearest(SINGAPORE), SG1), licence_s=480
        )
        served.cycle(chip)
        before, t0 = served.head(chip), world.now_ns()
        timeline = served.elapse(chip, 6)
        result = chip.results[-1]
        return Observed(
            result.verdict,
            result.reason,
            tuple(AlertKind(a.kind) for a in served.alerts),
            served.head(chip) != before,
            f"{result.detail}; {_silence_detail(timeline, t0)}",
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            chip.attester.status(served.now_s()).value,
        )


# --- heartbeat ---------------------------------------------------------------------------


def _proving_in_singapore(served: ServedWorld) -> ServedChip:
    """An honest Singapore chip whose first proof was accepted and licenses it."""
    chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", served.world.nearest(SINGAPORE), SG1))
    served.cycle(chip)
    assert chip.results[-1].verdict is Verdict.ALLOWED, chip.results[-1]
    assert chip.attester.status(served.now_s()) is LicenceStatus.LICENSED
    return chip


def _silence_detail(timeline: Timeline, t0: int) -> str:
    def minutes(at_ns: int) -> str:
        return f"+{(at_ns - t0) / 60e9:.0f} min"

    parts = [f"{a.kind} at {minutes(a.time_ns)}" for a in timeline.alerts]
    parts += [
        f"licence {status.value} from {minutes(at)}"
        for status, at in sorted(timeline.licence_since.items(), key=lambda kv: kv[1])
    ]
    if timeline.queued:
        parts.append(f"{timeline.queued} proofs queued in the outbox")
    return "; ".join(parts) or "nothing happened"


def play_heartbeat_powered_off(world: AttackWorld) -> Observed:
    """Proves in Singapore, then is switched off for four cadences."""
    with ServedWorld.open(world) as served:
        chip = _proving_in_singapore(served)
        before, t0, token = served.head(chip), world.now_ns(), chip.results[-1].token
        timeline = served.elapse(chip, 4, powered=False)
        # The last result now licenses nothing, for the chip or anyone else who holds it.
        holder = AgentLicence(chip.device_id, served.service.jwks(), grace_s=0, booted_at_s=0)
        licence = "licensed" if holder.offer(token, served.now_s()) else "expired"
        return Observed(
            None,
            None,
            tuple(AlertKind(a.kind) for a in timeline.alerts),
            served.head(chip) != before,
            _silence_detail(timeline, t0),
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            licence,
        )


def play_heartbeat_firewalled(world: AttackWorld) -> Observed:
    """Proves in Singapore; then the host drops everything to the verifier for an hour
    while the chip keeps working (and its agent keeps measuring)."""
    with ServedWorld.open(world) as served:
        chip = _proving_in_singapore(served)
        before, t0 = served.head(chip), world.now_ns()
        timeline = served.elapse(chip, 6, verifier_reachable=False)
        return Observed(
            None,
            None,
            tuple(AlertKind(a.kind) for a in timeline.alerts),
            served.head(chip) != before,
            _silence_detail(timeline, t0),
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            chip.attester.status(served.now_s()).value,
        )


def play_heartbeat_stops_in_transit(world: AttackWorld) -> Observed:
    """Proves in Singapore; the host cuts every link and carries the running chip to
    Shenzhen over six hours, where it connects and proves again."""
    with ServedWorld.open(world) as served:
        chip = _proving_in_singapore(served)
        before = served.head(chip)
        timeline = served.elapse(chip, 36, landmarks_reachable=False, verifier_reachable=False)
        chip.move(SHENZHEN, world.nearest(SHENZHEN))
        served.cycle(chip)
        result = chip.results[-1]
        return Observed(
            result.verdict,
            result.reason,
            tuple(AlertKind(a.kind) for a in served.alerts),
            served.head(chip) != before,
            f"{result.detail}; {timeline.alerts[0].kind} during the journey",
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            chip.attester.status(served.now_s()).value,
        )


OUTSIDE = (AlertKind.OUTSIDE_LICENSED_REGION,)

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "honest_chip_in_licensed_region",
        "location",
        "Chip in a Singapore data centre licensed to SG; normal jitter, no adversary.",
        _expect(Verdict.ALLOWED),
        play_honest,
    ),
    AttackScenario(
        "honest_chip_duplicated_reordered_replayed_datagrams",
        "replay",
        "Every round datagram duplicated, some reordered, each replayed 50 ms later.",
        _expect(Verdict.ALLOWED),
        play_honest_messy_network,
    ),
    AttackScenario(
        "diverted_chip_shenzhen_licensed_singapore",
        "location",
        "Chip licensed to SG sits in Shenzhen and measures its nearest landmarks honestly.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_diverted,
    ),
    AttackScenario(
        "border_chip_johor_bahru_licensed_singapore",
        "location",
        "Chip licensed to SG sits in Johor Bahru, a few km across the strait.",
        _expect(Verdict.INCONCLUSIVE),
        play_border_johor,
    ),
    AttackScenario(
        "border_chip_shenzhen_licensed_hong_kong",
        "location",
        "Chip licensed to HK sits in Shenzhen, next to the border.",
        _expect(Verdict.INCONCLUSIVE),
        play_border_shenzhen,
    ),
    AttackScenario(
        "constant_delay_to_look_elsewhere",
        "delay",
        "Shenzhen chip licensed to SG; the host adds 5 ms to every datagram.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_constant_delay,
    ),
    AttackScenario(
        "selective_delay_on_near_landmarks",
        "delay",
        "Shenzhen chip licensed to SG; 20 ms added only towards the landmarks near it.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_selective_delay,
    ),
    AttackScenario(
        "adaptive_delay_mimics_singapore",
        "delay",
        "Shenzhen chip measures Singapore-area landmarks and Hong Kong, padding each path "
        "to the delay it would have from Singapore.",
        _expect(Verdict.INCONCLUSIVE),
        play_adaptive_delay,
    ),
    AttackScenario(
        "helper_relay_next_to_landmarks",
        "relay",
        "A helper in the Singapore landmark's data centre forwards the Singapore "
        "landmarks' rounds to the chip in Shenzhen (the round secret never leaves it).",
        _expect(Verdict.INCONCLUSIVE),
        play_helper_relay,
    ),
    AttackScenario(
        "faster_than_fibre_links",
        "relay",
        "Chip in Singapore licensed to MY; hollow-core links (0.997 c) to three Malaysian "
        "landmarks north of it.",
        _expect(Verdict.INCONCLUSIVE),
        play_faster_than_fibre,
    ),
    AttackScenario(
        "guessed_responses_injected_next_to_landmarks",
        "round",
        "An on-path helper next to the Singapore landmarks answers every challenge with a "
        "guess (it has no round secret) for a chip in Shenzhen.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_guessed_responses,
    ),
    AttackScenario(
        "responses_to_challenges_never_issued",
        "round",
        "The helper answers the next challenge before the landmark has issued it.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_responses_to_challenges_never_issued,
    ),
    AttackScenario(
        "reused_challenge_within_a_round",
        "round",
        "lm-sin's randomness is stuck (every challenge the same); the host feeds each "
        "challenge to the Shenzhen chip before lm-sin issues it, so its answers arrive at once.",
        _rejected(Reason.CHALLENGE_REUSED),
        play_reused_challenge,
    ),
    AttackScenario(
        "predictable_challenges_answered_ahead",
        "round",
        "lm-sin draws its challenges from a fixed seed; having watched one of its rounds, "
        "the host feeds each next challenge to the Shenzhen chip before lm-sin issues it. "
        "The default policy outvotes lm-sin: ALLOWED must hold with any one operator left out.",
        _expect(Verdict.INCONCLUSIVE),
        play_predictable_challenges,
    ),
    AttackScenario(
        "replayed_proof",
        "replay",
        "An accepted proof is submitted again.",
        _rejected(Reason.REPLAYED_PROOF),
        play_replayed_proof,
    ),
    AttackScenario(
        "replayed_receipts_in_new_proof",
        "replay",
        "A new proof carries the receipts of the last accepted one.",
        _rejected(Reason.REPLAYED_RECEIPT),
        play_replayed_receipts,
    ),
    AttackScenario(
        "forged_device_key",
        "identity",
        "A key the manufacturer never certified runs the rounds and signs the proof.",
        _rejected(Reason.UNKNOWN_DEVICE),
        play_forged_device_key,
    ),
    AttackScenario(
        "revoked_device",
        "identity",
        "An honest proof from a device on the revocation list.",
        _rejected(Reason.REVOKED_DEVICE),
        play_revoked_device,
        {"revoked_devices": frozenset({"chip-sg"})},
    ),
    AttackScenario(
        "downgraded_agent_firmware",
        "identity",
        "The proof carries an agent measurement the policy does not allow.",
        _rejected(Reason.BAD_MEASUREMENT, AlertKind.TAMPERING),
        play_unmeasured_agent,
    ),
    AttackScenario(
        "certificate_not_chained_to_manufacturer",
        "identity",
        "The host enrols a key under chip-sg's name with a certificate from a root of its own.",
        _rejected(Reason.BAD_CHAIN),
        play_certificate_not_chained_to_manufacturer,
    ),
    AttackScenario(
        "chip_a_answers_for_chip_b",
        "identity",
        "Chip A in Singapore runs the rounds under chip B's name; B submits them.",
        _rejected(Reason.BAD_TRANSCRIPT_SIGNATURE, AlertKind.TAMPERING),
        play_chip_a_for_chip_b,
    ),
    AttackScenario(
        "cloned_key_forks_the_chain",
        "identity",
        "A clone in Singapore and the original in Shenzhen both extend the same proof.",
        _rejected(Reason.FORK, AlertKind.CLONE),
        play_clone_fork,
    ),
    AttackScenario(
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
    AttackScenario(
        "cloned_key_takes_turns_with_original",
        "travel",
        "Original in Shenzhen proves; its chain state is copied to a clone in Singapore "
        "that proves next (no fork).",
        _expect(Verdict.INCONCLUSIVE, alerts=(AlertKind.IMPOSSIBLE_TRAVEL,)),
        play_clone_takes_turns,
    ),
    AttackScenario(
        "slow_journey_is_not_impossible_travel",
        "travel",
        "Control: proves from Singapore, then from Shenzhen two days later.",
        _expect(Verdict.OUTSIDE, alerts=OUTSIDE),
        play_slow_honest_journey,
    ),
    AttackScenario(
        "rogue_unregistered_landmark",
        "landmark",
        "A landmark the registry does not list vouches for the chip.",
        _rejected(Reason.UNKNOWN_LANDMARK),
        play_rogue_landmark,
        {"registered_sites": {k: v for k, v in LANDMARKS.items() if k != "lm-sin"}},
    ),
    AttackScenario(
        "revoked_landmark",
        "landmark",
        "A receipt from a revoked landmark.",
        _rejected(Reason.REVOKED_LANDMARK),
        play_revoked_landmark,
        {"revoked_landmarks": frozenset({"lm-jhb"})},
    ),
    AttackScenario(
        "landmark_registered_at_wrong_coordinates",
        "landmark",
        "lm-hkg is registered at Singapore's coordinates; a Shenzhen chip measures it.",
        _expect(Verdict.INCONSISTENT, alerts=(AlertKind.INCONSISTENT_LANDMARKS,)),
        play_misplaced_landmark,
        {"registered_sites": {**LANDMARKS, "lm-hkg": LANDMARKS["lm-sin"]}},
    ),
    AttackScenario(
        "lying_landmark_contradicted_by_others",
        "landmark",
        "lm-sin under-reports a Shenzhen chip's RTT; Hong Kong and Guangzhou are honest.",
        _expect(Verdict.INCONSISTENT, alerts=(AlertKind.INCONSISTENT_LANDMARKS,)),
        play_lying_landmark_contradicted,
    ),
    AttackScenario(
        "lying_landmark_among_distant_honest_ones",
        "landmark",
        "Shenzhen chip licensed to SG measures only Singapore-area landmarks; lm-sin "
        "under-reports, the honest ones are far and their disks cover it. The default "
        "policy outvotes lm-sin: ALLOWED must hold with any one operator left out.",
        _expect(Verdict.INCONCLUSIVE),
        play_lying_landmark_colludes,
    ),
    AttackScenario(
        "lying_landmark_excluded_by_crosscheck",
        "landmark",
        "As above, but lm-sin's clock also under-reports its peers' rounds, and the verifier "
        "audits its landmarks (they time each other) before the chip's proof arrives.",
        _rejected(Reason.REVOKED_LANDMARK, AlertKind.INCONSISTENT_LANDMARKS),
        play_lying_landmark_excluded_by_crosscheck,
    ),
    AttackScenario(
        "predictable_landmark_excluded_by_crosscheck",
        "landmark",
        "lm-sin's challenges come from a fixed seed (as in predictable_challenges_answered_"
        "ahead); the verifier's landmark audit sees it repeat its challenges across rounds.",
        _rejected(Reason.REVOKED_LANDMARK, AlertKind.INCONSISTENT_LANDMARKS),
        play_predictable_landmark_excluded_by_crosscheck,
    ),
    AttackScenario(
        "honest_chip_with_two_datacentre_landmarks_tolerating_one_liar",
        "landmark",
        "Control: honest Singapore chip with two landmarks of independent operators in its "
        "data centre, under the default policy (it tolerates one lying operator).",
        _expect(Verdict.ALLOWED),
        play_honest_two_datacentre_landmarks,
    ),
    AttackScenario(
        "near_landmarks_flooded",
        "availability",
        "The chip's two nearest landmarks are flooded (200 ms queues).",
        _expect(Verdict.INCONCLUSIVE),
        play_near_landmarks_flooded,
    ),
    AttackScenario(
        "landmarks_unreachable",
        "availability",
        "Every datagram to and from the landmarks is dropped: no round completes.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_landmarks_unreachable,
    ),
    AttackScenario(
        "heartbeat_stops_powered_off",
        "heartbeat",
        "Chip proves from Singapore, then is switched off for four cadences (40 min).",
        Expect(
            frozenset({None}),
            alerts=frozenset({AlertKind.STALE_DEVICE}),
            device_state="STALE",
            licence="expired",
        ),
        play_heartbeat_powered_off,
    ),
    AttackScenario(
        "heartbeat_firewalled",
        "heartbeat",
        "Chip proves from Singapore; then the host drops all its traffic to the verifier for "
        "an hour while the chip keeps working and its agent keeps measuring.",
        Expect(
            frozenset({None}),
            alerts=frozenset({AlertKind.STALE_DEVICE}),
            device_state="STALE",
            licence="degraded",
        ),
        play_heartbeat_firewalled,
    ),
    AttackScenario(
        "heartbeat_stops_in_transit",
        "heartbeat",
        "Chip proves from Singapore; the host cuts every link and carries the running chip "
        "to Shenzhen over six hours, where it connects and proves again.",
        Expect(
            frozenset({Verdict.OUTSIDE}),
            alerts=frozenset({AlertKind.STALE_DEVICE, AlertKind.OUTSIDE_LICENSED_REGION}),
            advances=True,
            device_state="ATTESTING",
            licence="degraded",
        ),
        play_heartbeat_stops_in_transit,
    ),
    AttackScenario(
        "export_licence_ends",
        "heartbeat",
        "An honest Singapore chip keeps proving every cadence past the end of its export "
        "licence (8 min after enrolment, before its second proof).",
        Expect(
            frozenset({Verdict.REJECTED}),
            Reason.LICENCE_EXPIRED,
            frozenset({AlertKind.STALE_DEVICE}),
            device_state="STALE",
            licence="degraded",
        ),
        play_export_licence_ends,
    ),
)
