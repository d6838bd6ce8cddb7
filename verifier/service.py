"""The verifier service: enrolment, proof submission, status and alerts; no gRPC types.

``submit_batch`` is the one path for proofs (``submit`` is a batch of one)::

    appraise each proof against the store as it will be once the batch commits
      -> sign a result per proof -> one transaction for the whole batch -> answer

Nothing is answered before its transaction commits, so an acknowledged proof is
durable. The appraiser and the result signer hold no mutable state, so several worker
processes may run this over one database; a chain advanced by another process first
shows up as :class:`~geoattest.verifier.store.StoreConflictError`, and the batch is appraised again.

An exact resubmission of an accepted proof (an agent retrying after a lost answer) is
answered with the stored result, not as an error. Alerts are stored with the commit that
raises them; the sinks that subscribed (the transport's
:class:`~geoattest.verifier.alerts.AlertHub`) are told after it.

A proof whose signature does not verify under an enrolled device's key is answered
REJECTED with no device id and leaves nothing in the store: only its reason is counted
(:attr:`VerifierService.rejections`), so junk can neither speak for a device nor fill the
disk.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from geoattest.crypto import sha256
from geoattest.errors import AccessError, ConfigError, EvidenceError, GeoattestError, Reason
from geoattest.pki import LandmarkRecord, RevocationList, TrustAnchors
from geoattest.units import SECOND_NS
from geoattest.v1 import envelope_pb2, identity_pb2, verifier_service_pb2
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.audit_log import AuditLog, alert_record, appraisal_record
from geoattest.verifier.audits import AuditOutcome, PeerAudits
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.metrics import NO_REASON, VerifierMetrics
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import AlertKind, Appraisal, ProofAppraiser
from geoattest.verifier.rejections import Rejections
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.standing import LicenceState, Standing, licence_state, standing
from geoattest.verifier.state import ChainHead, DeviceRecord
from geoattest.verifier.store import (
    Alert,
    CommitRecord,
    DeviceState,
    EnrolledDevice,
    Store,
    StoreConflictError,
    StoredResult,
    StoredTrust,
)
from geoattest.wire.decode import (
    MAX_DATAGRAM_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_PROOF_BYTES,
    count_field,
    decode,
)
from geoattest.wire.envelope import PayloadType, open_envelope

_log = logging.getLogger("geoattest.verifier")

MIN_NONCE_BYTES = 16
CONFLICT_RETRIES = 3
_BATCH_PROOFS_FIELD = verifier_service_pb2.SubmitProofBatchRequest.PROOFS_FIELD_NUMBER


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    verifier_id: str
    """Names this verifier in possession proofs and as the results' issuer."""
    cadence_ns: int = 3600 * SECOND_NS
    """How often agents are expected to submit a proof."""
    stale_after_cadences: int = 3
    """Missed cadences after which a device is STALE."""
    max_batch: int = 256
    """Most proofs one batch call may carry (and peer receipts one audit call)."""
    audit_window_ns: int = 24 * 3600 * SECOND_NS
    """How long landmarks' peer measurements are kept and judged together."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    device_id: str
    licensed_region: str
    licence_expires_ns: int


@dataclass(frozen=True, slots=True)
class ProofResult:
    """The answer to one proof."""

    device_id: str
    counter: int
    verdict: Verdict
    reason: Reason | None
    detail: str
    bounds: tuple[LandmarkBound, ...]
    token: str
    """EAR JWT; empty when the proof's signer is no enrolled device."""
    resubmitted: bool = False
    """True when this is the stored answer to a proof accepted earlier, or rejected
    earlier with an alert for the reason it is rejected for again."""

    @classmethod
    def stored(cls, stored: StoredResult) -> ProofResult:
        return cls(
            stored.device_id,
            stored.counter,
            stored.verdict,
            stored.reason,
            stored.detail,
            stored.bounds,
            stored.token,
            resubmitted=True,
        )


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    state: DeviceState
    licensed_region: str
    """The region of the licence the device holds now."""
    last_counter: int
    last_verdict: Verdict | None
    last_proof_time_ns: int
    licence: ExportLicence | None = None
    """The licence the device holds now (version 0: none held)."""
    licence_state: LicenceState = LicenceState.NONE
    verdict_licence_version: int = 0
    """The licence version the last verdict was judged under (0: none recorded)."""
    standing: Standing = Standing.NO_VERDICT

    @property
    def verdict_current(self) -> bool:
        """Whether the last verdict still stands: an ALLOWED licenses the chip only then."""
        return self.standing is Standing.STANDS


class BatchTooLargeError(GeoattestError):
    """A batch carries more proofs than ``max_batch``: an oversized message, refused whole."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(Reason.OVERSIZED_MESSAGE, f"{size} proofs in one batch; at most {limit}")


class _BatchState:
    """The store as a batch finds it: a TrustedState that reads the devices and heads of
    every key the batch names in one statement (a key not named up front, in a proof given
    as bytes, is read when the pipeline asks for it)."""

    def __init__(self, store: Store, key_ids: Collection[str] = ()) -> None:
        self._store = store
        self._by_key = store.enrolled_for_keys(key_ids) if key_ids else {}
        self._read = set(key_ids)
        self._devices: dict[str, EnrolledDevice] = {}
        self._heads: dict[str, ChainHead | None] = {}

    def device_for_key(self, key_id: str) -> DeviceRecord | None:
        if key_id not in self._read:
            self._by_key.update(self._store.enrolled_for_keys([key_id]))
            self._read.add(key_id)
        found = self._by_key.get(key_id)
        if found is None:
            return None
        device, head = found
        device_id = device.record.device_id
        self._devices[device_id] = device
        self._heads[device_id] = head
        return device.record

    @property
    def heads_read(self) -> dict[str, bytes]:
        """Each device's head digest as read (``b""``: none): the commit checks that none
        has moved, for a rejection is as stale as an acceptance if another writer got in."""
        return {device_id: head.digest if head else b"" for device_id, head in self._heads.items()}

    @property
    def licences_read(self) -> dict[str, int]:
        """Each device's licence version as read (0: none): the commit checks that none
        has changed, for a verdict must be judged under the licence in force when it is
        stored."""
        return {
            device_id: device.record.licence.version if device.record.licence else 0
            for device_id, device in self._devices.items()
        }

    def enrolled(self, device_id: str) -> EnrolledDevice:
        return self._devices[device_id]

    def head(self, device_id: str) -> ChainHead | None:
        return self._heads[device_id]

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        return self._store.successor(device_id, previous_digest)


def check_signed_by(key_id: str, proofs: Sequence[envelope_pb2.Envelope]) -> None:
    """Every proof names ``key_id`` as its signer (the signature itself is the pipeline's
    to check).

    Raises:
        AccessError: ``access.other_device``.
    """
    for proof in proofs:
        if proof.key_id != key_id:
            raise AccessError(
                Reason.OTHER_DEVICE, "a device may submit only proofs signed by its own key"
            )


def with_stored_landmarks(
    registered: Iterable[LandmarkRecord], stored: Iterable[LandmarkRecord]
) -> list[LandmarkRecord]:
    """The registry file's landmarks and the store's. A stored landmark whose id or key
    the file holds already is left out: the file's entry counts, and one key stays one
    landmark."""
    landmarks = list(registered)
    ids = {record.landmark_id for record in landmarks}
    keys = {record.verifying_key.key_id for record in landmarks}
    for record in stored:
        if record.landmark_id in ids or record.verifying_key.key_id in keys:
            _log.warning(
                "landmark %s registered in the store is left out: the registry file holds"
                " its id or its key",
                record.landmark_id,
            )
            continue
        landmarks.append(record)
    return landmarks


def _with_stored(appraiser: ProofAppraiser, trust: StoredTrust) -> ProofAppraiser:
    """``appraiser`` (the operator's files) with what the store adds: the newest revocation
    list any replica followed in place of an older file's, the admin API's revocations and
    landmarks, the exclusions and the lifted exclusions."""
    revocations = trust.revocations_with(appraiser.revocations).including(
        RevocationList(landmarks=trust.excluded)
    )
    return ProofAppraiser(
        appraiser.config,
        with_stored_landmarks(appraiser.landmarks, trust.landmarks),
        revocations,
        appraiser.region,
        lifted=trust.lifted,
    )


def _alert_record(alert: Alert) -> dict[str, object]:
    return alert_record(
        alert_id=alert.alert_id,
        device_id=alert.device_id,
        kind=str(alert.kind),
        reason=alert.reason,
        detail=alert.detail,
    )


def _alerted_rejection(appraisal: Appraisal, digest: bytes) -> tuple[str, bytes, Reason] | None:
    """The device, proof digest and reason of a rejection that raises an alert (None for
    anything else): the same proof rejected again for the same reason is a retry."""
    reason = appraisal.reason
    if appraisal.new_head is not None or not appraisal.alerts or not appraisal.device_id:
        return None
    return None if reason is None else (appraisal.device_id, digest, reason)


def _envelope_digest(proof: bytes | envelope_pb2.Envelope) -> bytes:
    """Chain identity of a proof the pipeline rejected (it only reports accepted digests)."""
    if isinstance(proof, envelope_pb2.Envelope):
        return sha256(proof.payload)
    try:
        return sha256(decode(envelope_pb2.Envelope, proof, limit=MAX_PROOF_BYTES).payload)
    except GeoattestError:
        return b""


def _evidence_bytes(proof: bytes | envelope_pb2.Envelope) -> bytes:
    return proof.SerializeToString() if isinstance(proof, envelope_pb2.Envelope) else proof


class VerifierService:
    """Orchestrates enrolment and appraisal over a store.

    Submissions may come from several threads at once: each holds :meth:`exclusive` while
    it appraises and while it answers, and lets go of it while its transaction commits, so
    that another batch is appraised while one waits on the database. Call everything else
    under :meth:`exclusive` (or from one thread only); never submit while holding it.
    """

    def __init__(
        self,
        config: VerifierConfig,
        *,
        anchors: TrustAnchors,
        appraiser: ProofAppraiser,
        licences: LiveLicences,
        signer: ResultSigner,
        store: Store,
        metrics: VerifierMetrics | None = None,
        audit: AuditLog | None = None,
        files: OperatorFiles | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or VerifierMetrics()
        self.files = files
        """The registry and revocation files, re-read when they change; None: fixed."""
        self.audit = audit
        """Where every appraisal and alert is recorded, tamper-evidently; None: nowhere."""
        self._anchors = anchors
        self._appraiser = appraiser
        self._licences = licences
        self._signer = signer
        self._store = store
        self._alert_sinks: list[Callable[[Sequence[Alert]], None]] = []
        self._audits = PeerAudits(
            store,
            lambda: self.in_force().landmarks,
            revoked=self._revoked_by_operator,
            window_ns=config.audit_window_ns,
            max_receipts=config.max_batch,
        )
        self._trust_version = -1
        """The stored trust version ``_in_force`` holds (-1: none read yet)."""
        self._in_force = appraiser
        self._operator_revocations = appraiser.revocations
        """What the operator revoked (the files' and the store's revocations), without the
        exclusions that ``_in_force``'s revocations also hold."""
        self._followed: RevocationList | None = None
        """The files' revocation list last offered to the store (None: none yet), which
        keeps the newest list any replica followed."""
        self._newest_list = appraiser.revocations
        """The newer of the files' revocation list and the store's: a changed file must
        not be older (:meth:`_reload_files`)."""
        self._in_force_lock = threading.Lock()
        self._lock = threading.RLock()
        self.rejections = Rejections(on_count=self._count_refusals)
        """Proofs and requests refused before any device's key vouched for them: counted
        by reason here, never stored (see :mod:`geoattest.verifier.rejections`)."""

    @property
    def store(self) -> Store:
        return self._store

    def exclusive(self) -> AbstractContextManager[bool]:
        """Held while the service's own state (metrics, counts, the audit log, licences,
        the appraiser in force) is read or changed: see the class docstring."""
        return self._lock

    def subscribe(self, sink: Callable[[Sequence[Alert]], None]) -> None:
        """Call ``sink`` with the alerts of every commit, after it is durable."""
        self._alert_sinks.append(sink)

    def _count_refusals(self, reason: Reason, refused: int) -> None:
        self.metrics.refusals.labels(reason=reason.value).inc(refused)

    def _publish(self, alerts: Sequence[Alert]) -> None:
        for kind, count in Counter(alert.kind for alert in alerts).items():
            self.metrics.alerts.labels(kind=kind).inc(count)
        if alerts:
            for sink in self._alert_sinks:
                sink(alerts)

    def jwks(self) -> dict[str, object]:
        return self._signer.jwks()

    # --- enrolment ----------------------------------------------------------------------

    def enrol(
        self,
        identity: identity_pb2.DeviceIdentity,
        possession: envelope_pb2.Envelope,
        now_ns: int,
    ) -> Enrolment:
        """Enrol a device: chain to a trusted root at ``now``, possession, licence.

        Raises:
            EvidenceError: BAD_CHAIN, DEVICE_MISMATCH, REVOKED_DEVICE, BAD_POSSESSION,
                MISSING_FIELD, NO_LICENCE, LICENCE_EXPIRED, or an envelope reason.
            AlreadyEnrolledError: another certificate holds the id or the key.
        """
        at = dt.datetime.fromtimestamp(now_ns / SECOND_NS, dt.UTC)
        cert = self._anchors.verify_device(
            bytes(identity.certificate_der), [bytes(d) for d in identity.intermediates_der], at
        )
        if identity.device_id != cert.device_id:
            raise EvidenceError(Reason.DEVICE_MISMATCH, "identity names another device")
        if self.in_force().revocations.device_revoked(cert.device_id):
            raise EvidenceError(Reason.REVOKED_DEVICE, cert.device_id)
        try:
            payload = open_envelope(possession, PayloadType.ENROLMENT, cert.verifying_key)
        except EvidenceError as exc:
            if exc.reason in {Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY}:
                raise EvidenceError(Reason.BAD_POSSESSION, exc.detail) from exc
            raise
        claim = decode(verifier_service_pb2.EnrolmentClaim, payload, limit=MAX_DATAGRAM_BYTES)
        if claim.device_id != cert.device_id:
            raise EvidenceError(Reason.DEVICE_MISMATCH, "possession proof names another device")
        if claim.verifier_id != self.config.verifier_id:
            raise EvidenceError(Reason.BAD_POSSESSION, "possession proof names another verifier")
        if len(claim.nonce) < MIN_NONCE_BYTES:
            raise EvidenceError(Reason.MISSING_FIELD, f"nonce shorter than {MIN_NONCE_BYTES}")
        licence = self._licences.in_force(cert.device_id, now_ns)
        stored = self._store.enrol(
            EnrolledDevice(
                record=DeviceRecord(
                    device_id=cert.device_id,
                    verifying_key=cert.verifying_key,
                    licensed_region=licence.region,
                    certificate_serial=cert.serial_number,
                    not_valid_after_ns=int(cert.certificate.not_valid_after_utc.timestamp())
                    * SECOND_NS,
                    enrolled_at_ns=now_ns,
                    licence=licence,
                ),
                model=cert.model,
                licence_expires_ns=licence.valid_until_ns,
                state=DeviceState.ENROLLED,
            )
        )
        return Enrolment(
            stored.record.device_id, stored.record.licensed_region, stored.licence_expires_ns
        )

    # --- proofs -------------------------------------------------------------------------

    def device_revoked(self, device_id: str) -> bool:
        """Whether the device is revoked (its TLS calls are refused), as of this process's
        last look at the files and the store: at most a :meth:`probe` ago, as the
        transport probes every second, and at every batch. It never waits for the
        database, so the transport may ask on every call from its event loop; the proofs
        themselves are judged by what is in force at their batch."""
        return self._in_force.revocations.device_revoked(device_id)

    def probe(self) -> None:
        """Reach the store and follow what is in force there (the transport's health
        check): a device revoked through another replica is refused at its calls here
        within a probe, not only at its next proof.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        self.in_force()

    def _reload_files(self) -> bool:
        """Judge by the operator's files as they are now, if they changed (an edit on this
        host); whether they did. Files that do not load, or a revocation list that would
        lift revocations in force without a newer version
        (:meth:`~geoattest.verifier.operator_files.OperatorFiles.revocations_after`), are
        refused in the log: the files before stay in force."""
        if self.files is None or not self.files.changed():
            return False
        try:
            self._appraiser = ProofAppraiser(
                self._appraiser.config,
                self.files.load_registry(),
                self.files.revocations_after(self._newest_list),
                self._appraiser.region,
            )
        except ConfigError as exc:
            _log.error("the operator's files are refused; judging by the ones before: %s", exc)
            return False
        return True

    def submit(self, proof: bytes | envelope_pb2.Envelope, now_ns: int) -> ProofResult:
        return self.submit_batch([proof], now_ns)[0]

    def submit_batch(
        self, proofs: Sequence[bytes | envelope_pb2.Envelope], now_ns: int
    ) -> list[ProofResult]:
        """Appraise, sign and durably store proofs; results in the order given.

        Raises:
            BatchTooLargeError: more than ``max_batch`` proofs.
            StoreConflictError: other writers kept advancing these chains; nothing stored.
        """
        metrics = self.metrics
        with self._lock:
            if len(proofs) > self.config.max_batch:
                self.rejections.count(Reason.OVERSIZED_MESSAGE, now_ns)
                raise BatchTooLargeError(len(proofs), self.config.max_batch)
            metrics.batch_proofs.observe(len(proofs))
        for attempt in range(CONFLICT_RETRIES):
            with self._lock, metrics.appraisal_seconds.time():
                answers, records, state = self._appraise_batch(proofs, now_ns)
            try:
                # Without the lock: the store is safe from any thread (a connection each).
                with metrics.commit_seconds.time():
                    self._store.commit(
                        records, heads_read=state.heads_read, licences_read=state.licences_read
                    )
            except StoreConflictError:
                metrics.store_errors.labels(reason=Reason.STORE_CONFLICT.value).inc()
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                continue
            with self._lock:
                # One increment per (verdict, reason) in the batch: each costs a labels
                # lookup and, with workers, a write to the metrics file.
                counted = Counter(
                    (answer.verdict.value, answer.reason.value if answer.reason else NO_REASON)
                    for answer in answers
                )
                for (verdict, reason), count in counted.items():
                    metrics.proofs.labels(verdict=verdict, reason=reason).inc(count)
                self._publish([alert for record in records for alert in record.alerts])
                self._record(records, now_ns)
                for answer in answers:
                    if not answer.device_id and answer.reason is not None:
                        self.rejections.count(answer.reason, now_ns)
            return answers
        raise AssertionError("unreachable")  # pragma: no cover

    def submit_batch_request(
        self, request: bytes, now_ns: int, *, signer_key_id: str | None = None
    ) -> list[ProofResult]:
        """:meth:`submit_batch` for a batch as it came off the wire: its entries are
        counted from their tags first, so a batch of too many is refused before any entry
        is decoded or built. With ``signer_key_id`` (a device calling for itself), a batch
        holding a proof signed by any other key is refused whole before it is appraised.

        Raises:
            AccessError: ``access.other_device``, a proof signed by another key.
            WireError: the request is malformed or too large (counted, see ``rejections``).
            BatchTooLargeError: more than ``max_batch`` entries (counted likewise).
            StoreConflictError: as for :meth:`submit_batch`.
        """
        try:
            entries = count_field(request, _BATCH_PROOFS_FIELD, limit=MAX_MESSAGE_BYTES)
            if entries > self.config.max_batch:
                raise BatchTooLargeError(entries, self.config.max_batch)
            batch = decode(
                verifier_service_pb2.SubmitProofBatchRequest, request, limit=MAX_MESSAGE_BYTES
            )
        except GeoattestError as refused:
            with self._lock:
                self.rejections.count(refused.reason, now_ns)
            raise
        if signer_key_id is not None:
            check_signed_by(signer_key_id, [entry.proof for entry in batch.proofs])
        return self.submit_batch([entry.proof for entry in batch.proofs], now_ns)

    def _appraise_batch(
        self, proofs: Sequence[bytes | envelope_pb2.Envelope], now_ns: int
    ) -> tuple[list[ProofResult], list[CommitRecord], _BatchState]:
        """Answers and records for the proofs, and the state they were judged on (the
        heads and licences read)."""
        state = _BatchState(
            self._store,
            [proof.key_id for proof in proofs if isinstance(proof, envelope_pb2.Envelope)],
        )
        answers: list[ProofResult] = []
        records: list[CommitRecord] = []
        accepted_now: dict[tuple[str, bytes], ProofResult] = {}
        alerted_now: dict[tuple[str, bytes, Reason], ProofResult] = {}
        appraiser, trust_version = self._in_force_versioned()
        appraisals = appraiser.appraise_batch(proofs, state, now_ns)
        for proof, appraisal in zip(proofs, appraisals, strict=True):
            digest = appraisal.proof_digest or (
                _envelope_digest(proof) if appraisal.device_id else b""
            )
            if appraisal.reason is Reason.REPLAYED_PROOF:
                earlier = self._earlier_answer(appraisal.device_id, digest, accepted_now)
                if earlier is not None:
                    answers.append(earlier)
                    continue
            alerted = _alerted_rejection(appraisal, digest)
            if alerted is not None:
                earlier = self._earlier_rejection(alerted, alerted_now)
                if earlier is not None:
                    answers.append(earlier)
                    continue
            token = (
                self._signer.sign(
                    appraisal,
                    expires_ns=self.result_expiry_ns(
                        appraisal, state.enrolled(appraisal.device_id).licence_expires_ns, now_ns
                    ),
                    now_ns=now_ns,
                )
                if appraisal.device_id
                else ""
            )
            answer = ProofResult(
                appraisal.device_id,
                appraisal.counter,
                appraisal.verdict,
                appraisal.reason,
                appraisal.detail,
                appraisal.bounds,
                token,
            )
            if appraisal.new_head is not None:
                accepted_now[(appraisal.device_id, digest)] = answer
            if alerted is not None:
                alerted_now[alerted] = answer
            answers.append(answer)
            records.append(
                CommitRecord(
                    appraisal=appraisal,
                    evidence=_evidence_bytes(proof),
                    digest=digest,
                    token=token,
                    alerts=self._alerts_for(appraisal, now_ns),
                    received_at_ns=now_ns,
                    stale=appraisal.evidence_time_ns < self.stale_cutoff(now_ns),
                    trust_version=trust_version,
                )
            )
        return answers, records, state

    def _record(self, records: Sequence[CommitRecord], now_ns: int) -> None:
        """Append the committed appraisals of enrolled devices, and their alerts, to the
        audit log (junk that no device's key signed is only counted, never recorded)."""
        if self.audit is None:
            return
        entries: list[dict[str, object]] = []
        for record in records:
            appraisal = record.appraisal
            if not appraisal.device_id:
                continue
            entries.append(
                appraisal_record(
                    device_id=appraisal.device_id,
                    counter=appraisal.counter,
                    proof_digest=record.digest,
                    verdict=appraisal.verdict.value,
                    reason=appraisal.reason.value if appraisal.reason else "",
                    token=record.token,
                )
            )
            entries.extend(_alert_record(alert) for alert in record.alerts)
        self.audit.append(entries, now_ns)

    def _earlier_answer(
        self,
        device_id: str,
        digest: bytes,
        accepted_now: dict[tuple[str, bytes], ProofResult],
    ) -> ProofResult | None:
        """The answer already given for an accepted proof (in this batch or before)."""
        earlier = accepted_now.get((device_id, digest))
        if earlier is not None:
            return replace(earlier, resubmitted=True)
        stored = self._store.stored_result(device_id, digest)
        return None if stored is None else ProofResult.stored(stored)

    def _earlier_rejection(
        self,
        alerted: tuple[str, bytes, Reason],
        alerted_now: dict[tuple[str, bytes, Reason], ProofResult],
    ) -> ProofResult | None:
        """The answer already given for these exact proof bytes, rejected for the same
        reason with an alert (in this batch or before): a retry of a forked or tampered
        proof is the same event, so it raises no second alert and stores no second row."""
        earlier = alerted_now.get(alerted)
        if earlier is not None:
            return replace(earlier, resubmitted=True)
        device_id, digest, reason = alerted
        stored = self._store.stored_result(device_id, digest, rejected_for=reason)
        return None if stored is None else ProofResult.stored(stored)

    @staticmethod
    def _alerts_for(appraisal: Appraisal, now_ns: int) -> tuple[Alert, ...]:
        return tuple(
            Alert(
                alert_id=uuid.uuid4().hex,
                device_id=appraisal.device_id,
                kind=kind.value,
                reason=appraisal.reason.value if appraisal.reason else "",
                detail=appraisal.detail,
                time_ns=now_ns,
            )
            for kind in appraisal.alerts
        )

    # --- status and staleness -----------------------------------------------------------

    @property
    def licences(self) -> LiveLicences:
        """The licences in force: a change holds for the next proof."""
        return self._licences

    @property
    def stale_window_ns(self) -> int:
        """How long an accepted proof keeps a device from being STALE."""
        return self.config.stale_after_cadences * self.config.cadence_ns

    def result_expiry_ns(self, appraisal: Appraisal, licence_expires_ns: int, now_ns: int) -> int:
        """When a result stops licensing the chip: the stale window after the evidence,
        never past the end of the export licence in force (as read for this appraisal).

        A chip whose heartbeat stops (powered off, in transit, firewalled) must lose its
        licence about when the verifier calls it STALE, not when the export licence ends.
        """
        evidence_ns = appraisal.evidence_time_ns or now_ns
        return min(licence_expires_ns, evidence_ns + self.stale_window_ns)

    def stale_cutoff(self, now_ns: int) -> int:
        return now_ns - self.stale_window_ns

    def device_status(self, device_id: str, now_ns: int) -> DeviceStatus:
        """Where the device stands now, and whether its last verdict still stands
        (:mod:`geoattest.verifier.standing`).

        Raises:
            EvidenceError: UNKNOWN_DEVICE.
        """
        summary = self._store.summary(device_id)
        if summary is None:
            raise EvidenceError(Reason.UNKNOWN_DEVICE, f"{device_id[:128]} is not enrolled")
        device, head = summary.device, summary.head
        last_seen = summary.last_evidence_time_ns if head else device.record.enrolled_at_ns
        state = device.state
        in_force = self.in_force()
        if in_force.revocations.device_revoked(device_id):
            state = DeviceState.REVOKED
        elif last_seen < self.stale_cutoff(now_ns):
            state = DeviceState.STALE
        return DeviceStatus(
            device_id=device_id,
            state=state,
            licensed_region=device.record.licensed_region,
            last_counter=head.counter if head else 0,
            last_verdict=summary.last_verdict,
            last_proof_time_ns=summary.last_evidence_time_ns,
            licence=device.record.licence,
            licence_state=licence_state(device.record.licence, now_ns),
            verdict_licence_version=summary.verdict_licence_version,
            standing=standing(
                summary,
                in_force.revocations,
                in_force.landmarks,
                stale_cutoff_ns=self.stale_cutoff(now_ns),
                now_ns=now_ns,
            ),
        )

    # --- landmarks ----------------------------------------------------------------------

    def submit_peer_receipts(
        self, receipts: Sequence[envelope_pb2.Envelope], now_ns: int
    ) -> AuditOutcome:
        """Audit the landmarks with rounds they ran with each other; exclude the suspects.

        A landmark that timed two peers faster than light between the registered sites, or
        that repeated a challenge, over the stored measurements of the audit window, is
        excluded: the exclusion is stored, so it survives restarts and holds in every
        worker process, and its receipts make a proof REJECTED ``receipt.revoked_landmark``
        until an operator lifts it (``geoattest verifier lift``). Each exclusion raises a
        stored ``INCONSISTENT_LANDMARKS`` alert (no device id; the detail names the
        landmark).

        Raises:
            WireError: no receipt, or more than ``max_batch``.
            EvidenceError: a receipt that does not check (see
                :meth:`~geoattest.verifier.audits.PeerAudits.submit`); nothing stored.
        """
        outcome = self._audits.submit(receipts, now_ns)
        self._publish(outcome.alerts)
        return outcome

    def in_force(self) -> ProofAppraiser:
        """The appraiser by the operator's files and by what the store adds to them
        (revocations and landmarks made through the admin API, exclusions). Checked before
        every batch at the cost of one ``stat`` per file and one read of the store's trust
        version; the rest is read again only when either moved, so a change made through
        any replica holds here from the next proof. Safe from any thread (the transport's
        probe calls it beside the batches).

        A changed operator file that is refused (:meth:`_reload_files`) is logged, and the
        files before stay in force.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        return self._in_force_versioned()[0]

    def _in_force_versioned(self) -> tuple[ProofAppraiser, int]:
        """:meth:`in_force` with the stored trust version it holds (every change stored
        after that version is one it may not hold)."""
        with self._in_force_lock:
            files_changed = self._reload_files()
            if self._appraiser.revocations is not self._followed:
                self._follow(self._appraiser.revocations)
            if files_changed or self._store.trust_version() != self._trust_version:
                trust = self._store.trust()
                self._in_force = _with_stored(self._appraiser, trust)
                self._newest_list = self._appraiser.revocations.merged_with(trust.revocation_list)
                self._operator_revocations = self._newest_list.including(trust.revocations)
                self._trust_version = trust.version
            return self._in_force, self._trust_version

    def _follow(self, offered: RevocationList) -> None:
        """Offer the files' revocation list to the store, where every replica follows the
        newest; a file older than that one is judged by the newer, and logged."""
        where = self.files.revocations if self.files is not None else None
        by = f"revocation list {where}" if where else "the verifier's revocation list"
        followed = self._store.follow_revocation_list(offered, time.time_ns(), by=by)
        self._followed = offered
        if followed.version > offered.version:
            _log.warning(
                "revocation list %s holds version %d; version %d, followed before (by this"
                " or another replica), stays in force",
                where,
                offered.version,
                followed.version,
            )

    def _revoked_by_operator(self, landmark: LandmarkRecord) -> bool:
        """Whether the operator revoked ``landmark`` (by id or by key), as of the last
        :meth:`in_force`; an exclusion by the peer audits is not a revocation."""
        with self._in_force_lock:
            revoked = self._operator_revocations
        return revoked.landmark_revoked(landmark.landmark_id, landmark.verifying_key.key_id)

    def sweep_stale(self, now_ns: int) -> list[Alert]:
        """Mark devices with no accepted evidence for ``stale_after_cadences`` STALE,
        alerting: measured from the landmark time of the newest accepted round."""

        def alert_for(device_id: str, last_seen_ns: int) -> Alert:
            return Alert(
                alert_id=uuid.uuid4().hex,
                device_id=device_id,
                kind=AlertKind.STALE_DEVICE,
                reason="",
                detail=f"no accepted evidence since {last_seen_ns // SECOND_NS}",
                time_ns=now_ns,
            )

        raised = self._store.mark_stale(self.stale_cutoff(now_ns), alert_for)
        self._publish(raised)
        if self.audit is not None:
            self.audit.append([_alert_record(a) for a in raised], now_ns)
        return raised
