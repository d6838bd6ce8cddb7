"""The real verifier service and store, around a world that knows where every chip really is.

:class:`SoundnessWorld` is a :class:`~geoattest.attacks.served.ServedWorld` (the real
:class:`~geoattest.verifier.service.VerifierService` over its SQLite file, real agents with
outboxes on disk) on a :class:`KnowingWorld`: the attack world's virtual network and real
round protocol, which also notes, for every receipt any party measures, where the
measuring chip really was. Every answer the verifier gives is judged against that truth as
it is given:

- an affirming answer (ALLOWED) is sound only if every place its proof's receipts were
  measured lies inside the licence in force at appraisal (an answer repeated for a proof
  accepted earlier must be the very token given then);
- an alert names a device only if that device's key signed the evidence.

A broken promise is kept in :attr:`SoundnessWorld.violations`, with what led to it.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from geoattest.attacks.served import ServedChip, ServedWorld
from geoattest.attacks.world import (
    LANDMARKS,
    MEASUREMENT,
    PLACES,
    AttackWorld,
    LandmarkClock,
    WorldChip,
)
from geoattest.crypto import KeySigner, Signer, VerifyingKey, sha256
from geoattest.errors import GeoattestError
from geoattest.geo import build_policy, country_region
from geoattest.netsim.adversary import Adversary
from geoattest.netsim.latency import LatLon, great_circle_km
from geoattest.pki import RevocationList
from geoattest.protocol.proof import ProofChain
from geoattest.units import SECOND_NS
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verdict import RegionAppraiser, Verdict
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import Alert
from geoattest.wire.decode import MAX_PROOF_BYTES, decode
from geoattest.wire.envelope import PayloadType, open_envelope


@dataclass(frozen=True)
class Site:
    """A place a chip can be: where it is, the country it is in (the truth), the
    landmarks an honest agent there measures, and those in its own data centre."""

    location: LatLon
    country: str
    landmarks: tuple[str, ...]
    datacentre: frozenset[str] = frozenset()


SITES: dict[str, Site] = {
    "Singapore": Site(
        PLACES["Singapore"],
        "SG",
        ("lm-sin", "lm-sin-b", "lm-jhb", "lm-kul"),
        frozenset({"lm-sin", "lm-sin-b"}),
    ),
    "Johor Bahru": Site(PLACES["Johor Bahru"], "MY", ("lm-jhb", "lm-sin", "lm-sin-b", "lm-kul")),
    "Kuala Lumpur": Site(
        PLACES["Kuala Lumpur"],
        "MY",
        ("lm-kul", "lm-pen", "lm-jhb", "lm-kbr"),
        frozenset({"lm-kul"}),
    ),
    "Shenzhen": Site(PLACES["Shenzhen"], "CN", ("lm-hkg", "lm-can", "lm-tpe", "lm-sin")),
    "Hong Kong": Site(
        LANDMARKS["lm-hkg"], "HK", ("lm-hkg", "lm-can", "lm-tpe", "lm-sin"), frozenset({"lm-hkg"})
    ),
    "Frankfurt": Site(
        LANDMARKS["lm-fra"], "DE", ("lm-fra", "lm-sin", "lm-hkg", "lm-kul"), frozenset({"lm-fra"})
    ),
}
"""Where chips can be. The countries are written down here, not looked up in the
verifier's geography, so the truth does not lean on what it judges."""

REGIONS: dict[str, tuple[str, ...]] = {
    "SG": ("SG",),
    "MY": ("MY",),
    "SG+MY": ("SG", "MY"),
    "HK": ("HK",),
    "CN": ("CN",),
    "DE": ("DE",),
}
"""Licensed regions by the countries they cover: the policy's and the truth's."""

UNREGISTERED = frozenset({"lm-cgk", "lm-kbr"})
"""Landmarks built but not yet in the registry: the operator may register them."""
FAULTS = 1
"""Lying landmark operators an ALLOWED verdict must survive."""
TRAVEL_M_S = 250.0
"""How fast a chip is carried between sites (an airliner), below the pipeline's
``max_chip_speed_m_s``, so an honest journey is never impossible travel."""
LICENCE_S = 365 * 24 * 3600


@functools.cache
def region_appraiser() -> RegionAppraiser:
    """The real geography over :data:`REGIONS` (built once)."""
    regions = [country_region(name, codes) for name, codes in REGIONS.items()]
    return build_policy("soundness-world", 1, regions, embargo=["KP"]).appraiser()


def country_of(location: LatLon) -> str:
    """The country of a site (the world only ever puts chips on its sites)."""
    return next(site.country for site in SITES.values() if site.location == location)


class KnowingWorld(AttackWorld):
    """The attack world, noting where the chip was for every receipt measured in it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.measured_at: dict[bytes, LatLon] = {}
        """Where the answering chip was, by the digest of each receipt's payload."""

    def measure(
        self,
        chip: WorldChip,
        adversary: Adversary | None = None,
        *,
        signer: Signer | None = None,
    ) -> list[envelope_pb2.Envelope]:
        receipts = super().measure(chip, adversary, signer=signer)
        for receipt in receipts:
            self.measured_at[sha256(receipt.payload)] = self.agent.answering_site(chip)
        return receipts


@dataclass
class Clone:
    """The adversary's copy of a device key, proving on its own chain somewhere else."""

    device_id: str
    signer: Signer
    chain: ProofChain
    site: str


@dataclass(frozen=True)
class Licence:
    """A licence as the operator issued it (the truth about what is in force)."""

    region: str
    valid_until_ns: int


class SoundnessWorld(ServedWorld):
    """The served world, judging every answer and alert against the truth."""

    def __init__(self, directory: Path) -> None:
        self.knowing = KnowingWorld(landmark_faults=FAULTS)
        self.registered: set[str] = set(LANDMARKS) - UNREGISTERED
        self.revoked_landmarks: set[str] = set()
        self.lying: set[str] = set()
        self._region = region_appraiser()
        self._revocation_version = 1
        self.knowing.appraiser = self._appraiser()
        super().__init__(self.knowing, directory)
        self.chips: dict[str, ServedChip] = {}
        self.sites: dict[str, str] = {}
        """Where each chip is now (a site name)."""
        self.keys: dict[str, VerifyingKey] = {}
        self.issued: dict[str, Licence | None] = {}
        """The licence in force for each device (None: withdrawn), as the operator issued it."""
        self.clones: list[Clone] = []
        self.sent: list[envelope_pb2.Envelope] = []
        """Every proof envelope handed to the verifier, for replays and mutations."""
        self.tokens: set[str] = set()
        """Every affirming result token the verifier has given."""
        self.violations: list[str] = []
        self.verdicts: Counter[Verdict] = Counter()
        self.reasons: Counter[str] = Counter()

    def _appraiser(self) -> ProofAppraiser:
        """The appraiser for the registry and revocation list as they are now."""
        config = PipelineConfig(
            quorum=self.knowing.quorum,
            allowed_measurements=frozenset({MEASUREMENT}),
            landmark_faults=FAULTS,
        )
        records = [r for r in self.knowing.landmark_records() if r.landmark_id in self.registered]
        revocations = RevocationList(
            self._revocation_version, frozenset(), frozenset(self.revoked_landmarks)
        )
        return ProofAppraiser(config, records, revocations, self._region)

    def close(self) -> None:
        self.store.close()

    # --- the chips ----------------------------------------------------------------------

    def enrol_chip(self, site: str, region: str) -> None:
        """Provision and enrol a new chip at ``site``, licensed for ``region``."""
        device_id = f"chip-{len(self.chips)}"
        here = SITES[site]
        chip = WorldChip(device_id, here.location, region, here.landmarks, here.datacentre)
        served = self.enrol(chip, licence_s=LICENCE_S)
        self.chips[device_id] = served
        self.sites[device_id] = site
        self.keys[device_id] = served.signer.verifying_key
        self.issued[device_id] = Licence(region, (self.now_s() + LICENCE_S) * SECOND_NS)

    def move(self, device_id: str, site: str, *, teleport: bool) -> None:
        """Carry the chip to ``site``: at an airliner's speed, the clock running, or at
        once (no chip can; the verifier must still never affirm a wrong place)."""
        served, there = self.chips[device_id], SITES[site]
        if not teleport:
            km = great_circle_km(served.chip.location, there.location)
            self.world.wait(math.ceil(km * 1000 / TRAVEL_M_S))
        served.chip = replace(
            served.chip,
            location=there.location,
            landmarks=there.landmarks,
            datacentre_landmarks=there.datacentre,
        )
        served.attester.landmark_ids = list(there.landmarks)
        self.sites[device_id] = site

    def choose_landmarks(self, device_id: str, landmarks: Sequence[str]) -> None:
        """The host makes the agent measure landmarks of its choosing."""
        served = self.chips[device_id]
        served.chip = replace(served.chip, landmarks=tuple(landmarks))
        served.attester.landmark_ids = list(landmarks)

    # --- evidence -----------------------------------------------------------------------

    def submit(
        self,
        served: ServedChip,
        proof: envelope_pb2.Envelope,
        *,
        via: VerifierService | None = None,
    ) -> evidence_pb2.AttestationResult:
        """An agent's proof goes to the verifier, and its answer is judged."""
        before = len(self.alerts)
        answer = super().submit(served, proof, via=via)
        self.sent.append(proof)
        self.judge(proof, served.results[-1], self.alerts[before:])
        return answer

    def submit_evidence(self, evidence: envelope_pb2.Envelope | bytes) -> ProofResult:
        """The adversary hands the verifier evidence of its making; the answer is judged."""
        before = len(self.alerts)
        result = self.service.submit(evidence, self.world.now_ns())
        if isinstance(evidence, envelope_pb2.Envelope):
            self.sent.append(evidence)
        self.judge(evidence, result, self.alerts[before:])
        return result

    def clone(self, device_id: str, site: str) -> None:
        """The adversary copies the device's key and its agent's chain as it is now."""
        served = self.chips[device_id]
        chain = served.attester.outbox.chain()
        self.clones.append(Clone(device_id, served.signer, chain, site))

    def clone_proves(self, clone: Clone) -> None:
        """A clone measures where it is and submits on its own chain."""
        here = SITES[clone.site]
        chip = WorldChip(clone.device_id, here.location, "", here.landmarks, here.datacentre)
        receipts = self.world.measure(chip, signer=clone.signer)
        proof, clone.chain = clone.chain.extend(
            receipts, measurement=MEASUREMENT, signer=clone.signer
        )
        self.submit_evidence(proof)

    def forge(self, victim: str, site: str, signer: KeySigner) -> None:
        """A proof naming ``victim``, measured at ``site`` and signed by ``signer`` (a key
        the verifier never enrolled, or another device's)."""
        here = SITES[site]
        chip = WorldChip(victim, here.location, "", here.landmarks, here.datacentre)
        receipts = self.world.measure(chip, signer=signer)
        proof, _ = ProofChain(victim).extend(receipts, measurement=MEASUREMENT, signer=signer)
        self.submit_evidence(proof)

    # --- licences and landmarks ---------------------------------------------------------

    def license(self, device_id: str, region: str, valid_for_s: int) -> None:
        """The operator issues the device a licence for ``region`` from now."""
        licence = Licence(region, (self.now_s() + valid_for_s) * SECOND_NS)
        self.licences.change(
            ExportLicence(device_id, region, licence.valid_until_ns), self.world.now_ns()
        )
        self.issued[device_id] = licence

    def withdraw(self, device_id: str) -> None:
        """The operator withdraws the device's licence."""
        self.licences.withdraw(device_id, self.world.now_ns())
        self.issued[device_id] = None

    def lie(self, landmark_id: str) -> None:
        """A landmark's operator turns: its clock runs a thousand times slow, so every
        round it times looks a thousand times shorter than it was."""
        self.knowing.landmark_clocks[landmark_id] = LandmarkClock(rate=0.001)
        self.lying.add(landmark_id)

    def reconfigure(self, *, register: str = "", revoke: str = "") -> None:
        """The operator edits the registry or the revocation list and restarts."""
        if register:
            self.registered.add(register)
        if revoke:
            self.revoked_landmarks.add(revoke)
            self._revocation_version += 1
        self.knowing.appraiser = self._appraiser()
        self.restart()

    def audit(self, landmarks: Iterable[str]) -> None:
        """The registered ones of ``landmarks`` time each other; the service excludes
        suspects."""
        landmark_ids = sorted(set(landmarks) & self.registered - self.revoked_landmarks)
        receipts = self.knowing.peer_receipts(landmark_ids)
        if receipts:
            self.service.submit_peer_receipts(receipts, self.world.now_ns())

    # --- the truth ----------------------------------------------------------------------

    def judge(
        self,
        evidence: envelope_pb2.Envelope | bytes,
        result: ProofResult,
        alerts: Sequence[Alert],
    ) -> None:
        """Note any broken promise in the verifier's answer to ``evidence``."""
        self.verdicts[result.verdict] += 1
        self.reasons[result.reason.value if result.reason else ""] += 1
        for alert in alerts:
            key = self.keys.get(alert.device_id)
            if alert.device_id and (key is None or not _signed_by(evidence, key)):
                self.violations.append(
                    f"{alert.kind} alert against {alert.device_id} ({alert.reason}) from "
                    "evidence its key did not sign"
                )
        if result.verdict is not Verdict.ALLOWED:
            return
        if result.resubmitted:
            if result.token not in self.tokens:
                self.violations.append(f"a resubmission of {result.device_id} got a new token")
            return
        self.tokens.add(result.token)
        problem = self._unsound(evidence, result.device_id, result.token)
        if problem:
            self.violations.append(
                f"ALLOWED for {result.device_id} proof {result.counter} ({result.detail}): "
                f"{problem}"
            )

    def _unsound(self, evidence: envelope_pb2.Envelope | bytes, device_id: str, token: str) -> str:
        """Why an ALLOWED answer to ``evidence`` is false ("" when it is true)."""
        licence = self.issued.get(device_id)
        now_ns = self.world.now_ns()
        if licence is None:
            return "its licence was withdrawn"
        if licence.valid_until_ns <= now_ns:
            return "its licence had expired"
        if _token_expiry_ns(token) > licence.valid_until_ns:
            return "its result outlives the licence"
        try:
            envelope = _envelope(evidence)
            proof = decode(evidence_pb2.LocationProof, envelope.payload, limit=MAX_PROOF_BYTES)
        except GeoattestError as exc:
            return f"the evidence does not even decode ({exc})"
        countries = set()
        for receipt in proof.receipts:
            where = self.knowing.measured_at.get(sha256(receipt.payload))
            if where is None:
                return "a receipt no chip measured"
            countries.add(country_of(where))
        outside = countries - set(REGIONS[licence.region])
        if outside:
            return f"measured in {', '.join(sorted(outside))}, licensed for {licence.region}"
        return ""


def _token_expiry_ns(token: str) -> int:
    """The ``exp`` claim of a result token (its signature is the agent's to check)."""
    claims = token.split(".")[1]
    return (
        int(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"])
        * SECOND_NS
    )


def _envelope(evidence: envelope_pb2.Envelope | bytes) -> envelope_pb2.Envelope:
    if isinstance(evidence, envelope_pb2.Envelope):
        return evidence
    return decode(envelope_pb2.Envelope, evidence, limit=MAX_PROOF_BYTES)


def _signed_by(evidence: envelope_pb2.Envelope | bytes, key: VerifyingKey) -> bool:
    """Whether ``key`` signed this location proof (the verifier's own check, by the
    world's copy of the device key)."""
    try:
        open_envelope(_envelope(evidence), PayloadType.LOCATION_PROOF, key)
    except GeoattestError:
        return False
    return True
