"""The verifier as a service, and a real on-chip agent, next to an :class:`AttackWorld`.

Some attacks play out over time rather than in one proof: a heartbeat that stops, a
landmark audit between proofs. For those, :class:`ServedWorld` runs the real
:class:`geoattest.verifier.service.VerifierService` (SQLite store in a temporary directory, a
manufacturer CA, export licences, a result key, the stale sweep) over the world's appraiser,
and each chip's real :class:`~geoattest.attestor.agent.Attester` (device key store, outbox
and sealed licence state on disk, licence checked with the verifier's JWKS, grace period).
Rounds run on the world's virtual network; every clock is the world's virtual clock::

    with ServedWorld.open(AttackWorld()) as served:
        chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", landmarks))
        served.cycle(chip)                      # rounds, proof, delivery, licence
        timeline = served.elapse(chip, cadences=4, verifier_reachable=False)
        served.reboot(chip)                     # a fresh agent process on the same files
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from geoattest.attacks.world import MEASUREMENT, AttackWorld, WorldChip
from geoattest.attestor.agent import Attester, Delivered, DeliveryError
from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.attestor.licence import (
    LICENCE_SLOT,
    LICENCE_STATE_FILE,
    AgentLicence,
    LicenceStatus,
)
from geoattest.attestor.outbox import Outbox
from geoattest.netsim.adversary import Adversary
from geoattest.pki import ManufacturerCA, ResultKey, TrustAnchors
from geoattest.units import SECOND_NS
from geoattest.v1 import envelope_pb2, evidence_pb2, identity_pb2, round_pb2, verifier_service_pb2
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.service import ProofResult, VerifierConfig, VerifierService
from geoattest.verifier.state import ChainHead
from geoattest.verifier.store import Alert, SqlStore
from geoattest.wire.envelope import PayloadType, seal

VERIFIER_ID = "attack-world-verifier"
CADENCE_S = 600
"""Agents prove every ten minutes."""
STALE_AFTER_CADENCES = 3
"""The verifier calls a device STALE after three missed cadences (30 min)."""
SWEEP_EVERY_S = CADENCE_S // 4
"""How often the verifier sweeps for stale devices (as ``verifier serve`` does)."""
GRACE_S = 2 * CADENCE_S
"""How long an agent keeps full performance after its licence lapses."""
EXPORT_LICENCE_S = 365 * 24 * 3600
"""The export licence runs a year: far longer than any scenario."""


@dataclass
class ServedChip:
    """One enrolled chip: where it is, its key store and files, and its running agent."""

    chip: WorldChip
    signer: DeviceKeyStore
    """The chip's device key store: it signs, and seals the agent's state."""
    directory: Path
    """The chip's files: ``keys/`` (the key store), ``outbox/`` and its sealed licence state."""
    attester: Attester
    results: list[ProofResult] = field(default_factory=list)
    """Every answer the verifier gave this chip's agent."""

    @property
    def device_id(self) -> str:
        return self.chip.device_id

    @property
    def licence_state(self) -> Path:
        """The sealed licence state, on the host's storage."""
        return self.directory / LICENCE_STATE_FILE

    def move(self, location: tuple[float, float], landmarks: tuple[str, ...]) -> None:
        """The host carries the chip elsewhere; its agent measures ``landmarks`` there."""
        self.chip = replace(self.chip, location=location, landmarks=landmarks)
        self.attester.landmark_ids = list(landmarks)


@dataclass
class Timeline:
    """What happened while time passed: alerts, and when the agent's licence changed."""

    alerts: list[Alert] = field(default_factory=list)
    licence_since: dict[LicenceStatus, int] = field(default_factory=dict)
    """First virtual time (ns, the world's wall clock) each licence status was seen."""
    queued: int = 0
    """Proofs waiting in the agent's outbox at the end."""


class ServedWorld:
    """The real verifier service and agents, on an :class:`AttackWorld`'s clock and network."""

    def __init__(self, world: AttackWorld, directory: Path) -> None:
        self.world = world
        self.directory = directory
        self._ca = self.manufacturer("Attack World Accelerators")
        self._result_key = ResultKey.generate()
        self.store = SqlStore.open(directory / "verifier.db")
        self.licences = LiveLicences(self.store)
        """The licences in force: the operator issues one as a chip is provisioned."""
        self.alerts: list[Alert] = []
        self.service = self._serve()
        self._workers: list[SqlStore] = []

    def _serve(self, store: SqlStore | None = None) -> VerifierService:
        """The verifier service over ``store`` (default: the world's), with the world's
        appraiser as it is now."""
        service = VerifierService(
            VerifierConfig(
                VERIFIER_ID,
                cadence_ns=CADENCE_S * SECOND_NS,
                stale_after_cadences=STALE_AFTER_CADENCES,
            ),
            anchors=TrustAnchors([self._ca.certificate]),
            appraiser=self.world.appraiser,
            licences=self.licences,
            signer=ResultSigner(
                self._result_key,
                verifier_id=VERIFIER_ID,
                policy_id=self.world.appraiser.region.policy_id,
            ),
            store=store or self.store,
        )
        service.subscribe(self.alerts.extend)
        return service

    def another_worker(self) -> VerifierService:
        """A second verifier worker process over the same database, as ``verifier serve
        --workers 2`` runs: a store connection and a service of its own (closed with the
        world)."""
        store = SqlStore.open(self.directory / "verifier.db")
        self._workers.append(store)
        return self._serve(store)

    def restart(self) -> None:
        """The verifier process restarts: a new service over the same database file (and
        the same result key), with the world's appraiser as it is now. Whatever the old
        service held only in memory is gone."""
        self.store.close()
        self.store = SqlStore.open(self.directory / "verifier.db")
        self.licences = LiveLicences(self.store)
        self.service = self._serve()

    @classmethod
    @contextmanager
    def open(cls, world: AttackWorld) -> Iterator[ServedWorld]:
        """A served world in a temporary directory, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="geoattest-attack-") as directory:
            served = cls(world, Path(directory))
            try:
                yield served
            finally:
                for store in (served.store, *served._workers):
                    store.close()

    def manufacturer(self, name: str) -> ManufacturerCA:
        """A manufacturer root valid from a day ago (only the first is trusted)."""
        return ManufacturerCA.create(name, self._at(-86400))

    def _at(self, offset_s: int = 0) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.world.now_ns() / SECOND_NS + offset_s, dt.UTC)

    def now_s(self) -> int:
        return self.world.now_ns() // SECOND_NS

    # --- parties ------------------------------------------------------------------------

    def enrol(
        self,
        chip: WorldChip,
        *,
        manufacturer: ManufacturerCA | None = None,
        licence_s: int = EXPORT_LICENCE_S,
    ) -> ServedChip:
        """Provision ``chip`` (key, certificate, export licence for ``licence_s`` from now)
        and enrol it as its agent does. ``manufacturer`` issues the certificate (default:
        the one the verifier trusts).

        Raises:
            EvidenceError: the verifier refused the enrolment.
        """
        directory = self.directory / chip.device_id
        keystore = DeviceKeyStore.provision(
            directory / "keys",
            manufacturer or self._ca,
            device_id=chip.device_id,
            model="H100",
            now=self._at(-3600),
        )
        self.licences.change(
            ExportLicence(
                chip.device_id,
                chip.licensed_region,
                (self.now_s() + licence_s) * SECOND_NS,
            ),
            self.world.now_ns(),
        )
        claim = verifier_service_pb2.EnrolmentClaim(
            device_id=chip.device_id, verifier_id=VERIFIER_ID, nonce=os.urandom(32)
        )
        self.service.enrol(
            identity_pb2.DeviceIdentity(
                device_id=chip.device_id, certificate_der=keystore.certificate_der()
            ),
            seal(PayloadType.ENROLMENT, claim.SerializeToString(), keystore),
            self.world.now_ns(),
        )
        return ServedChip(chip, keystore, directory, self._boot(chip, keystore, directory))

    def _boot(self, chip: WorldChip, keystore: DeviceKeyStore, directory: Path) -> Attester:
        """Start the chip's agent on its files, as ``geoattest attestor run`` does."""
        licence = AgentLicence(
            chip.device_id,
            self.service.jwks(),
            grace_s=GRACE_S,
            booted_at_s=self.now_s(),
            slot=keystore.sealed_slot(LICENCE_SLOT, directory / LICENCE_STATE_FILE),
        )
        return Attester(
            keystore,
            chip.device_id,
            chip.landmarks,
            Outbox(directory / "outbox", chip.device_id),
            licence,
            measurement=MEASUREMENT,
        )

    def reboot(self, served: ServedChip) -> AgentLicence:
        """The agent process restarts: everything in memory is gone, a new agent starts on
        the chip's files (key store, outbox, sealed licence state). Returns its licence."""
        served.attester = self._boot(served.chip, served.signer, served.directory)
        return served.attester.licence

    def head(self, served: ServedChip) -> ChainHead | None:
        """The device's trusted chain head at the verifier."""
        return self.store.head(served.device_id)

    # --- time passing -------------------------------------------------------------------

    def cycle(
        self,
        served: ServedChip,
        *,
        landmarks_reachable: bool = True,
        verifier_reachable: bool = True,
        adversary: Adversary | None = None,
        via: VerifierService | None = None,
    ) -> list[Delivered]:
        """One agent cycle: rounds with its landmarks, a proof into the outbox, delivery
        (to ``via``, another worker of the verifier, if given)."""
        if landmarks_reachable:
            self.measure(served, adversary)
        return self.deliver(served, verifier_reachable=verifier_reachable, via=via)

    def measure(self, served: ServedChip, adversary: Adversary | None = None) -> None:
        """Rounds with the chip's landmarks where it is now; its agent keeps the proof."""
        receipts = self.world.measure(served.chip, adversary, signer=served.signer)
        by_landmark = {_landmark_of(r): r for r in receipts}
        served.attester.attest(by_landmark.get)

    def deliver(
        self,
        served: ServedChip,
        *,
        verifier_reachable: bool = True,
        most: int | None = None,
        via: VerifierService | None = None,
    ) -> list[Delivered]:
        """The agent delivers its outbox, oldest first; ``most`` proofs at the most (a host
        that drip-feeds the backlog); to ``via``, another worker, if given."""
        sent = 0

        def submit(proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult:
            nonlocal sent
            if not verifier_reachable or (most is not None and sent >= most):
                raise DeliveryError("the host drops everything to the verifier")
            sent += 1
            return self.submit(served, proof, via=via)

        return served.attester.deliver(submit, self.now_s)

    def submit(
        self,
        served: ServedChip,
        proof: envelope_pb2.Envelope,
        *,
        via: VerifierService | None = None,
    ) -> evidence_pb2.AttestationResult:
        """Hand one proof of ``served``'s agent to the verifier (or its worker ``via``); its
        answer, as the agent receives it."""
        result = (via or self.service).submit(proof, self.world.now_ns())
        served.results.append(result)
        return evidence_pb2.AttestationResult(
            device_id=result.device_id,
            counter=result.counter,
            verdict=evidence_pb2.Verdict.Value(f"VERDICT_{result.verdict.value}"),
            reason=result.reason.value if result.reason else "",
            detail=result.detail,
            result_token=result.token,
        )

    def elapse(
        self,
        served: ServedChip,
        cadences: int,
        *,
        powered: bool = True,
        landmarks_reachable: bool = True,
        verifier_reachable: bool = True,
    ) -> Timeline:
        """Let ``cadences`` pass: the verifier sweeps four times a cadence, and a powered
        agent runs a cycle each cadence under the reachability given."""
        timeline = Timeline()
        for tick in range(1, 4 * cadences + 1):
            self.world.wait(SWEEP_EVERY_S)
            if powered and tick % 4 == 0:
                self.cycle(
                    served,
                    landmarks_reachable=landmarks_reachable,
                    verifier_reachable=verifier_reachable,
                )
            now_ns = self.world.now_ns()
            timeline.alerts += self.service.sweep_stale(now_ns)
            if powered:
                status = served.attester.status(now_ns // SECOND_NS)
                timeline.licence_since.setdefault(status, now_ns)
        timeline.queued = len(served.attester.outbox.pending())
        return timeline


def _landmark_of(receipt: envelope_pb2.Envelope) -> str:
    """The landmark a receipt names (its signature is the verifier's to check)."""
    return round_pb2.TimingReceipt.FromString(receipt.payload).landmark_id
