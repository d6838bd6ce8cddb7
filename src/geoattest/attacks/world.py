"""A small world to attack: real rounds on the virtual network, appraised by the real verifier.

The agent and landmark state machines of :mod:`geoattest.protocol.round` run unchanged over
:class:`~geoattest.netsim.virtual.VirtualNetwork` (latency model, seeded jitter, adversary
hooks); the proof they produce goes through the real
:class:`~geoattest.verifier.pipeline.ProofAppraiser` with an
:class:`~geoattest.verifier.state.InMemoryState` and a real country-region policy. So every
verdict in the attack suite comes from product code; only the adversary is scripted.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from geoattest.crypto import KeySigner, Signer, sha256
from geoattest.errors import GeoattestError
from geoattest.geo import build_policy, country_region
from geoattest.netsim.adversary import Adversary, Compose, DatagramDelivery, Role, Transit
from geoattest.netsim.latency import LatencyModel, LatLon, great_circle_km
from geoattest.netsim.virtual import VirtualClock, VirtualNetwork
from geoattest.pki import LandmarkRecord, LandmarkRegistry, RevocationList
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import AgentRound, LandmarkRound, Randomness, decode_datagram
from geoattest.v1 import envelope_pb2
from geoattest.verdict import RegionAppraiser
from geoattest.verifier.landmark.clock import Bracket
from geoattest.verifier.landmark.dispatch import Dispatcher, Limits
from geoattest.verifier.pipeline import (
    DEFAULT_LANDMARK_FAULTS,
    Appraisal,
    PipelineConfig,
    ProofAppraiser,
)
from geoattest.verifier.state import DeviceRecord, InMemoryState

UNIX_BASE_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: landmark wall clocks read this plus the virtual clock."""
MEASUREMENT = sha256(b"geoattest agent 1.0 (measured)")
"""The one agent firmware the attack world's policy allows."""
EXCHANGES = 8
LAN_DELAY_NS = 20_000
"""One way across a data centre's own network (no Internet on the path)."""

LANDMARKS: dict[str, LatLon] = {
    "lm-sin": (1.3349, 103.8920),
    "lm-sin-b": (1.3394, 103.8920),
    "lm-jhb": (1.4927, 103.7414),
    "lm-kul": (3.1390, 101.6869),
    "lm-pen": (5.4141, 100.3288),
    "lm-kbr": (6.1254, 102.2381),
    "lm-cgk": (-6.2088, 106.8456),
    "lm-hkg": (22.3193, 114.1694),
    "lm-can": (23.1291, 113.2644),
    "lm-tpe": (25.0330, 121.5654),
    "lm-fra": (50.1109, 8.6821),
}
"""Surveyed landmark sites (the registry's coordinates unless a scenario lies about them).
The Singapore data centre holds two, lm-sin and lm-sin-b, of independent operators at
buildings 500 m apart (two fault domains), so its chips are ALLOWED under the default
``landmark_faults = 1``."""

PLACES: dict[str, LatLon] = {
    "Singapore": (1.3349, 103.8920),
    "Johor Bahru": (1.4655, 103.7578),
    "Shenzhen": (22.5431, 114.0579),
    "Kuala Lumpur": (3.1390, 101.6869),
}

POLICY_REGIONS = {
    "SG": ["SG"],
    "HK": ["HK"],
    "MY": ["MY"],
    "CN": ["CN"],
    "DE": ["DE"],
    "SG-MY": ["SG", "MY"],
}


@dataclass(frozen=True)
class WorldChip:
    """A chip in the attack world: where it really is (only the simulation knows), and
    what its agent measures."""

    device_id: str
    location: LatLon
    licensed_region: str
    landmarks: tuple[str, ...]
    """The landmarks its agent runs rounds with (the host picks them: it is adversarial)."""
    datacentre_landmarks: frozenset[str] = frozenset()
    """Landmarks in the chip's own data centre, reached over the data centre's network."""


@dataclass
class Device:
    """An enrolled device's key and its agent's proof chain."""

    device_id: str
    signer: KeySigner
    chain: ProofChain


@dataclass(frozen=True)
class DataCentreLan:
    """Not an attacker: the chip's data-centre landmark is reached over the local network.

    Deliveries between the chip and its data-centre landmark take the light floor plus a
    LAN hop instead of an Internet path; everything else passes unchanged.
    """

    chip: str
    landmarks: frozenset[str]

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        ends = {transit.src.name, transit.dst.name}
        if self.chip in ends and ends & self.landmarks:
            return [DatagramDelivery(transit.floor_ns + LAN_DELAY_NS, transit.payload)]
        return [transit.deliver()]


@dataclass(frozen=True)
class LocalHop:
    """Not an attacker: no datagram crosses even one rack faster than a LAN hop, so a
    party placed at a landmark's own site still takes ``LAN_DELAY_NS`` beyond light."""

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        fastest = transit.floor_ns + LAN_DELAY_NS
        return [DatagramDelivery(max(transit.delay_ns, fastest), transit.payload, transit.action)]


class ChipAgent:
    """The honest on-chip agent: one :class:`AgentRound` per landmark, at the chip's site.

    Subclasses in tests model broken agents (for negative controls); the product has only
    this one.
    """

    def answering_site(self, chip: WorldChip) -> LatLon:
        """Where the round secret lives, so where challenges are answered: the chip."""
        return chip.location


class LandmarkClock:
    """How a landmark reads its monotonic clock: honestly, or (a lying landmark) scaled."""

    def __init__(self, rate: float = 1.0) -> None:
        self.rate = rate
        self._origin: int | None = None

    def read(self, now_ns: int) -> int:
        if self._origin is None:
            self._origin = now_ns
        return self._origin + math.floor((now_ns - self._origin) * self.rate)


@dataclass
class AttackWorld:
    """Landmarks, one verifier, enrolled devices, and a virtual network between them."""

    seed: int = 7
    quorum: int = 3
    landmark_faults: int = DEFAULT_LANDMARK_FAULTS
    """Lying landmark operators an ALLOWED verdict must survive (the verifier's option)."""
    registered_sites: dict[str, LatLon] = field(default_factory=lambda: dict(LANDMARKS))
    """Coordinates the registry lists (a scenario may register a landmark wrongly)."""
    operators: dict[str, str] = field(default_factory=dict)
    """Operators the registry lists by landmark id; a landmark not named here is its own
    operator (every landmark of the world is independent unless a scenario says not)."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Extra landmark servers by id, each the named landmark's own key and site under a
    second id (an operator presenting one key as two landmarks). The registry lists an
    alias only where ``registered_sites`` names it."""
    revoked_devices: frozenset[str] = frozenset()
    revoked_landmarks: frozenset[str] = frozenset()
    revoked_keys_of: frozenset[str] = frozenset()
    """Landmarks whose keys (not ids) the revocation list names."""
    region_wrapper: Callable[[RegionAppraiser], RegionAppraiser] | None = None
    """Tests wrap the geography to build verifier variants (negative controls)."""
    agent: ChipAgent = field(default_factory=ChipAgent)
    landmark_clocks: dict[str, LandmarkClock] = field(default_factory=dict)
    landmark_randomness: dict[str, Callable[[], Randomness]] = field(default_factory=dict)
    """Where a landmark draws its challenges from: a fresh source per round (default: the
    OS's randomness). A scenario gives a landmark a stuck or seeded one."""
    model: LatencyModel = field(default_factory=LatencyModel.default)
    dispatched_landmarks: dict[str, Limits] = field(default_factory=dict)
    """Landmarks whose datagrams go through the landmark server's own dispatcher (cookies,
    rate limits, bounded round tables; these limits) rather than a bare round per source."""

    def __post_init__(self) -> None:
        self.landmark_signers = {lid: KeySigner.generate() for lid in LANDMARKS}
        self.sites: dict[str, LatLon] = dict(LANDMARKS)
        """Where each landmark server really stands (aliases included)."""
        for alias, landmark_id in self.aliases.items():
            self.landmark_signers[alias] = self.landmark_signers[landmark_id]
            self.sites[alias] = LANDMARKS[landmark_id]
        self.state = InMemoryState()
        self.devices: dict[str, Device] = {}
        self.clock = VirtualClock(start_ns=10**9)
        policy = build_policy(
            "attack-world",
            1,
            [country_region(name, codes) for name, codes in POLICY_REGIONS.items()],
            embargo=["KP"],
        )
        region: RegionAppraiser = policy.appraiser()
        if self.region_wrapper is not None:
            region = self.region_wrapper(region)
        revoked_keys = frozenset(
            self.landmark_signers[lid].verifying_key.key_id for lid in self.revoked_keys_of
        )
        self.appraiser = ProofAppraiser(
            PipelineConfig(
                quorum=self.quorum,
                allowed_measurements=frozenset({MEASUREMENT}),
                landmark_faults=self.landmark_faults,
            ),
            self.landmark_records(),
            RevocationList(1, self.revoked_devices, self.revoked_landmarks, revoked_keys),
            region,
        )
        self._rounds = 0

    def now_ns(self) -> int:
        """The verifier's wall clock: the landmarks' base plus virtual time."""
        return UNIX_BASE_NS + self.clock.now_ns()

    def wait(self, seconds: float) -> None:
        """Let time pass (between proofs, say one cadence)."""
        self.clock.run_until(self.clock.now_ns() + math.ceil(seconds * 1e9))

    def enrol(self, device_id: str, licensed_region: str) -> Device:
        signer = KeySigner.generate()
        self.state.enrol(
            DeviceRecord(
                device_id,
                signer.verifying_key,
                licensed_region,
                len(self.devices) + 1,
                UNIX_BASE_NS + 10**18,
                UNIX_BASE_NS,
            )
        )
        device = Device(device_id, signer, ProofChain(device_id))
        self.devices[device_id] = device
        return device

    def measure(
        self,
        chip: WorldChip,
        adversary: Adversary | None = None,
        *,
        signer: Signer | None = None,
    ) -> list[envelope_pb2.Envelope]:
        """Run one round with each of the chip's landmarks at once; return the receipts.

        ``signer`` is the key inside the answering chip (default: the enrolled device's).
        """
        self._rounds += 1
        key = signer or self.devices[chip.device_id].signer
        stages: list[Adversary] = []
        if chip.datacentre_landmarks:
            stages.append(DataCentreLan(chip.device_id, chip.datacentre_landmarks))
        if adversary is not None:
            stages.append(adversary)
        net = VirtualNetwork(
            self.clock,
            self.model,
            seed=f"{self.seed}/{self._rounds}",
            adversary=Compose(*stages, LocalHop()),
        )
        agents = {
            lid: AgentRound(
                chip.device_id,
                lid,
                self.landmark_signers[lid].verifying_key,
                key,
                secret=os.urandom(32),
                exchanges=EXCHANGES,
            )
            for lid in chip.landmarks
        }
        for lid in chip.landmarks:
            net.attach(lid, self.sites[lid], Role.LANDMARK, self._landmark_handler(lid))
        net.attach(
            chip.device_id, self.agent.answering_site(chip), Role.CHIP, _agent_handler(agents)
        )
        for lid, agent in agents.items():
            net.send(chip.device_id, lid, agent.open())
        self.clock.run()
        self.clock.run_until(self.clock.now_ns() + 10**9)
        return [a.receipt for a in agents.values() if a.receipt is not None]

    def peer_receipts(self, landmark_ids: Sequence[str]) -> list[envelope_pb2.Envelope]:
        """Each landmark answers a timed round from each of the others, with its own key:
        receipts for :func:`geoattest.verifier.crosscheck.measure_peer`."""
        return [r for peer in landmark_ids for r in self.audit_by(peer, landmark_ids)]

    def audit_by(self, auditor: str, landmark_ids: Sequence[str]) -> list[envelope_pb2.Envelope]:
        """``auditor`` answers a timed round from each of the others, with its own key, as
        ``landmark serve --audit-peer`` does: the receipts it hands to the verifier."""
        timers = tuple(lid for lid in landmark_ids if lid != auditor)
        as_chip = WorldChip(auditor, self.sites[auditor], "", timers)
        return self.measure(as_chip, signer=self.landmark_signers[auditor])

    def register(self, record: LandmarkRecord) -> None:
        """The registry authority adds a landmark; the verifier appraises with it from now.

        Raises:
            LandmarkKeyReusedError: the record's key is registered under another id.
        """
        registry = LandmarkRegistry(self.appraiser.landmarks)
        registry.add(record)
        self.appraiser = self.appraiser.with_landmarks(registry)

    def landmark_records(self) -> list[LandmarkRecord]:
        """The registry as the verifier has it (registered, possibly wrong, coordinates)."""
        return [
            LandmarkRecord(
                lid,
                *self.registered_sites[lid],
                signer.verifying_key,
                operator=self.operators.get(lid, ""),
            )
            for lid, signer in self.landmark_signers.items()
            if lid in self.registered_sites
        ]

    def _landmark_handler(
        self, lid: str
    ) -> Callable[[bytes, str, int], Iterable[tuple[str, bytes]]]:
        clock = self.landmark_clocks.get(lid, LandmarkClock())
        randomness = self.landmark_randomness.get(lid, lambda: os.urandom)
        limits = self.dispatched_landmarks.get(lid)
        if limits is not None:
            return _dispatched(
                Dispatcher(lid, self.landmark_signers[lid], limits, randomness()), clock
            )
        rounds: dict[str, LandmarkRound] = {}

        def handle(payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
            local_ns = clock.read(now_ns)
            try:
                round_ = rounds.get(src)
                if round_ is None:
                    round_ = LandmarkRound(
                        lid,
                        self.landmark_signers[lid],
                        decode_datagram(payload).open,
                        round_id=os.urandom(16),
                        randomness=randomness(),
                    )
                    rounds[src] = round_
                    return [(src, round_.next_challenge(local_ns))]
                reply = round_.receive(payload, local_ns, UNIX_BASE_NS + now_ns)
            except GeoattestError:
                return []  # a landmark ignores what it cannot accept
            return [] if reply is None else [(src, reply)]

        return handle

    def prove(
        self,
        device: Device,
        receipts: Sequence[envelope_pb2.Envelope],
        *,
        measurement: bytes = MEASUREMENT,
    ) -> envelope_pb2.Envelope:
        """The agent's next proof over ``receipts``; the device's chain moves on."""
        envelope, device.chain = device.chain.extend(
            receipts, measurement=measurement, signer=device.signer
        )
        return envelope

    def appraise(self, proof: envelope_pb2.Envelope) -> Appraisal:
        """Appraise as the verifier service does: commit the new head, if any."""
        appraisal = self.appraiser.appraise(proof, self.state, self.now_ns())
        if appraisal.new_head is not None:
            self.state.advance(appraisal.device_id, appraisal.new_head)
        return appraisal

    def nearest(self, location: LatLon, k: int = 4) -> tuple[str, ...]:
        """The ``k`` landmarks nearest ``location``: what an honest agent measures."""
        return tuple(
            sorted(LANDMARKS, key=lambda lid: great_circle_km(location, LANDMARKS[lid]))[:k]
        )


def _dispatched(
    dispatcher: Dispatcher, clock: LandmarkClock
) -> Callable[[bytes, str, int], Iterable[tuple[str, bytes]]]:
    """A landmark as its server runs it: every datagram through ``dispatcher``, each
    challenge's timer started at its send."""

    def handle(payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
        local_ns = clock.read(now_ns)
        reading = Bracket(local_ns, UNIX_BASE_NS + now_ns, local_ns)
        out = dispatcher.handle(payload, (src, 0), reading, None)
        if out is None:
            return []
        if out.timed is not None:
            out.timed.start_timer(reading)
        return [(src, out.datagram)]

    return handle


def _agent_handler(
    agents: dict[str, AgentRound],
) -> Callable[[bytes, str, int], Iterable[tuple[str, bytes]]]:
    def handle(payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:  # noqa: ARG001
        agent = agents.get(src)
        if agent is None:
            return []
        try:
            reply = agent.receive(payload)
        except GeoattestError:
            return []
        return [] if reply is None else [(src, reply)]

    return handle
