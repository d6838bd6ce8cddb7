"""The appraisal pipeline: pure, no gRPC types, ``now`` passed in.

Order of checks (each failure is a typed :class:`~geoattest.errors.EvidenceError`
whose reason becomes a REJECTED appraisal)::

    envelope and payload type -> device enrolled (by key id), not revoked, certificate
    valid now -> proof signature [from here on the rejection is the device's: it names
    the device and may raise an alert] -> proof fields, agent measurement -> counter and hash
    chain (replay, fork, rollback, gap) -> per receipt: landmark known (by key id) and
    not revoked (by id or by key), receipt signature, same device, transcript signed by
    the device key and consistent, fresh by landmark time, timed after any lift of the
    landmark's exclusion, newer than the chain's last
    receipt from that landmark, one per landmark -> quorum of fault domains -> the proof's
    newest round not older than the chain's -> licence in force (not withdrawn, not
    expired) -> distance bounds at c in vacuum -> region
    appraisal (geography) -> ALLOWED only if it survives any ``landmark_faults`` fault
    domains lying -> impossible travel against the device's history fix (:mod:`.history`)
    -> verdict

A fault domain is what one faulty party controls: the landmarks of one operator, and
landmarks whose surveyed sites lie within :data:`SAME_SITE_KM` of each other (keys on one
host count as one), joined transitively. The quorum counts domains, not receipts.

Nothing is parsed before its signature is checked: keys are found by key id.
A rejected proof yields no new chain head, so the caller has nothing to commit.

``appraise_batch(proofs, state, now_ns)`` gives the same appraisals for several proofs
(each seeing the chains as the ones before it left them), checking all their evidence
before any geography.

Example: a chip near Frankfurt, licensed to a 300 km circle there, proves where it is
with receipts from three landmarks that each timed it at 0.2 ms (30 km at c).

>>> import os
>>> from geoattest.crypto import KeySigner
>>> from geoattest.geo import build_policy, circle_region
>>> from geoattest.pki import LandmarkRecord, LandmarkRegistry, RevocationList
>>> from geoattest.protocol.proof import ProofChain
>>> from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
>>> from geoattest.verifier.state import DeviceRecord, InMemoryState
>>> unix_ns = 1_767_225_600 * SECOND_NS  # the landmarks' wall clocks: 2026-01-01
>>> device = KeySigner.generate()
>>> sites = {"lm-fra": (50.11, 8.68), "lm-wie": (50.08, 8.24), "lm-dar": (49.87, 8.65)}
>>> # three operators, one landmark each: ALLOWED must hold with any one of them lying
>>> landmark_keys = {landmark_id: KeySigner.generate() for landmark_id in sites}
>>> def receipt(landmark_id):  # one round, in memory (see geoattest.protocol.round)
...     key = landmark_keys[landmark_id]
...     agent = AgentRound(
...         "chip-de-01", landmark_id, key.verifying_key, device,
...         secret=os.urandom(32), exchanges=4,
...     )
...     landmark = LandmarkRound(
...         landmark_id, key, decode_datagram(agent.open()).open,
...         round_id=os.urandom(16), randomness=os.urandom,
...     )
...     now_ns, datagram = 0, landmark.next_challenge(0)
...     while (reply := agent.receive(datagram)) is not None:
...         now_ns += 200_000
...         datagram = landmark.receive(reply, now_ns, unix_ns)
...     return agent.receipt
>>> proof, _ = ProofChain("chip-de-01").extend(
...     [receipt(landmark_id) for landmark_id in sites], measurement=bytes(32), signer=device
... )
>>> registry = [LandmarkRecord(i, *sites[i], key.verifying_key) for i, key in landmark_keys.items()]
>>> appraiser = ProofAppraiser(
...     PipelineConfig(quorum=3),
...     registry,
...     RevocationList(),
...     build_policy("example", 1, [circle_region("FRA", 50.11, 8.68, 300)]).appraiser(),
... )
>>> state = InMemoryState()  # the verifier's SqlStore, in memory
>>> state.enrol(DeviceRecord("chip-de-01", device.verifying_key, "FRA", 1, 2 * unix_ns, unix_ns))
>>> appraisal = appraiser.appraise(proof, state, now_ns=unix_ns + SECOND_NS)
>>> appraisal.verdict, appraisal.counter
(<Verdict.ALLOWED: 'ALLOWED'>, 1)
>>> if appraisal.new_head is not None:  # stored durably before the chip hears of it
...     state.advance(appraisal.device_id, appraisal.new_head)
>>> again = appraiser.appraise(proof, state, now_ns=unix_ns + 2 * SECOND_NS)
>>> again.verdict, again.reason, again.new_head
(<Verdict.REJECTED: 'REJECTED'>, <Reason.REPLAYED_PROOF: 'proof.replayed'>, None)
"""

from __future__ import annotations

import hmac
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import combinations

from geoattest.crypto import VerifyingKey, sha256
from geoattest.errors import ConfigError, EvidenceError, GeoattestError, Reason, WireError
from geoattest.pki import LandmarkRecord, LandmarkRegistry, RevocationList
from geoattest.protocol.proof import proof_digest
from geoattest.protocol.round import SECRET_BYTES, commitment
from geoattest.units import SECOND_NS
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.verdict import LandmarkBound, RegionAppraisal, RegionAppraiser, Verdict
from geoattest.verifier import history
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.state import ChainHead, DeviceRecord, TrustedState
from geoattest.wire.decode import INT64_MAX, MAX_DATAGRAM_BYTES, MAX_PROOF_BYTES, decode
from geoattest.wire.envelope import (
    PayloadType,
    check_shape,
    open_envelope,
    open_shaped,
    payload_type_of,
)

MAX_RECEIPTS = 16
DEFAULT_LANDMARK_FAULTS = 1
"""The safe default: an ALLOWED survives any one landmark operator lying."""
SAME_SITE_KM = 0.1
"""Landmarks whose surveyed sites are closer than this (100 m) share a host, a building
or a campus: one fault domain, whoever their operators."""
DOMAIN_MEMO_SIZE = 4096
"""Most landmark sequences an appraiser keeps the fault-domain grouping of."""


def in_store_range(value: int, what: str) -> int:
    """``value``, checked where evidence is decoded to fit the store's columns: they are
    signed 64-bit (SQLite's INTEGER, PostgreSQL's BIGINT), the wire's unsigned.

    Raises:
        WireError: OUT_OF_RANGE, naming ``what``.
    """
    if value > INT64_MAX:
        raise WireError(Reason.OUT_OF_RANGE, f"{what} {value} is above {INT64_MAX}")
    return value


class AlertKind(StrEnum):
    """Events a compliance team must hear about (after the Chip Security Act's list)."""

    OUTSIDE_LICENSED_REGION = "OUTSIDE_LICENSED_REGION"
    """The chip is provably outside its licensed region."""
    EMBARGOED_LOCATION = "EMBARGOED_LOCATION"
    """The chip is provably inside an embargoed country."""
    CLONE = "CLONE"
    """The proof chain forked: the device key is in use in two places (diversion)."""
    TAMPERING = "TAMPERING"
    """Bad signatures or inconsistent evidence from an enrolled device's key."""
    INCONSISTENT_LANDMARKS = "INCONSISTENT_LANDMARKS"
    """The landmarks' bounds contradict physics: one is faulty or lying."""
    STALE_DEVICE = "STALE_DEVICE"
    """No accepted evidence (by landmark time) for several cadences: powered off, in
    transit, firewalled, or a backlog delivered late."""
    LICENCE_WITHDRAWN = "LICENCE_WITHDRAWN"
    """The operator withdrew an enrolled device's export licence: results it was given
    before stay signed until they expire, so relying parties must hear of it."""
    DEVICE_REVOKED = "DEVICE_REVOKED"
    """The operator revoked the device (the admin API): results it was given before stay
    signed until they expire, so relying parties must hear of it."""
    IMPOSSIBLE_TRAVEL = "IMPOSSIBLE_TRAVEL"
    """The device could not have got from an earlier accepted fix to this one at the
    fastest transport: a clone, swapped chips, or evidence that lied once."""


_TAMPER_REASONS = frozenset(
    {
        Reason.BAD_SIGNATURE,
        Reason.DEVICE_MISMATCH,
        Reason.BAD_TRANSCRIPT_SIGNATURE,
        Reason.TRANSCRIPT_MISMATCH,
        Reason.BAD_MEASUREMENT,
        Reason.CHAIN_BROKEN,
    }
)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Appraisal policy that is not geography."""

    quorum: int = 3
    """Fewest valid receipts (distinct landmarks) a proof must carry."""
    max_receipt_age_ns: int = 7 * 24 * 3600 * SECOND_NS
    """Receipts older than this, by landmark time against verifier time, are stale. Long,
    so that proofs queued in an agent's outbox during an outage still count as evidence of
    where the chip was *then*; the verdict is about the proof's time, never about now."""
    max_round_spread_ns: int = 300 * SECOND_NS
    """All receipts of one proof must lie within this span of landmark time."""
    max_chip_speed_m_s: float = 1000.0
    """Fastest the chip could be carried between two rounds of one proof. Each bound grows
    by this speed times its round's lead over the proof's newest round, so moving the chip
    between rounds cannot shrink the feasible region below where it could really be.
    Also the speed of the impossible-travel check against every earlier fix of the device
    (see :mod:`geoattest.verifier.history`)."""
    clock_skew_ns: int = 5 * SECOND_NS
    """How far a landmark's clock may run ahead of the verifier's."""
    allowed_measurements: frozenset[bytes] | None = None
    """Agent firmware digests the policy accepts; None accepts any (not recommended)."""
    landmark_faults: int = DEFAULT_LANDMARK_FAULTS
    """How many lying landmark operators (fault domains) an ALLOWED verdict must survive:
    it stands only if it still holds with the receipts of any that many fault domains
    left out, so one operator whose landmarks under-report cannot shrink the feasible
    region into the licence alone. Where the receipts span too few domains for that, the
    verdict is INCONCLUSIVE (the policy is never quietly weakened). 0 trusts every
    registered, unrevoked landmark. It never makes a verdict more permissive."""

    def __post_init__(self) -> None:
        """Refuse settings that would loosen a check: a negative or non-finite chip speed
        would shrink the disks below the light-speed bound, and a quorum below one or a
        negative count of lying operators would accept what the policy means to refuse.

        Raises:
            ConfigError: a setting out of range, named.
        """
        speed = self.max_chip_speed_m_s
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed >= 0):
            raise ConfigError(f"max_chip_speed_m_s must be finite and >= 0, not {speed!r}")
        for name in ("quorum", "max_receipt_age_ns", "max_round_spread_ns"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        for name in ("clock_skew_ns", "landmark_faults"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, not {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Appraisal:
    """The outcome for one proof. ``new_head`` is set only if the chain may advance."""

    verdict: Verdict
    device_id: str = ""
    counter: int = 0
    reason: Reason | None = None
    detail: str = ""
    proof_digest: bytes = b""
    bounds: tuple[LandmarkBound, ...] = ()
    region: RegionAppraisal | None = None
    alerts: tuple[AlertKind, ...] = ()
    new_head: ChainHead | None = None
    licensed_region: str = ""
    licence: ExportLicence | None = None
    """The licence the proof was judged under (its version names the change in force)."""
    evidence_time_ns: int = 0
    """Landmark time of the proof's newest round: the instant the verdict is about."""


@dataclass(frozen=True, slots=True)
class _Evidence:
    """A proof that passed every check but geography, with what its verdict needs."""

    device: DeviceRecord
    counter: int
    digest: bytes
    previous_digest: bytes
    head: ChainHead | None
    """The device's chain head before this proof."""
    landmark_times: dict[str, int]
    """Newest receipt time per landmark, this proof's receipts included."""
    bounds: tuple[LandmarkBound, ...]
    domains: tuple[tuple[LandmarkBound, ...], ...]
    """The bounds by fault domain (:func:`fault_domains`)."""
    time_ns: int
    """Landmark time of the proof's newest round."""


class _PendingChains:
    """Trusted state as a batch's earlier proofs leave it, while they are appraised: an
    accepted proof's chain position counts for the next proof of the same device at once
    (its fix only once its verdict is known; see ``ProofAppraiser._judge``)."""

    def __init__(self, state: TrustedState) -> None:
        self._state = state
        self._heads: dict[str, ChainHead] = {}
        self._successors: dict[tuple[str, bytes], bytes] = {}

    def device_for_key(self, key_id: str) -> DeviceRecord | None:
        return self._state.device_for_key(key_id)

    def head(self, device_id: str) -> ChainHead | None:
        pending = self._heads.get(device_id)
        return pending if pending is not None else self._state.head(device_id)

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        pending = self._successors.get((device_id, previous_digest))
        return pending if pending is not None else self._state.successor(device_id, previous_digest)

    def advance(self, evidence: _Evidence, now_ns: int) -> None:
        device_id = evidence.device.device_id
        self._heads[device_id] = ChainHead(
            counter=evidence.counter,
            digest=evidence.digest,
            previous_digest=evidence.previous_digest,
            accepted_at_ns=now_ns,
            landmark_times=evidence.landmark_times,
        )
        self._successors[(device_id, evidence.previous_digest)] = evidence.digest


class ProofAppraiser:
    """Appraises location proofs against trusted state; holds no mutable state itself
    beyond a memo of fault domains that its fixed registry decides."""

    def __init__(
        self,
        config: PipelineConfig,
        landmarks: Iterable[LandmarkRecord],
        revocations: RevocationList,
        region: RegionAppraiser,
        *,
        lifted: Mapping[str, int] | None = None,
    ) -> None:
        """An appraiser over a registry of landmarks (each key is one landmark). ``lifted``
        maps a landmark whose exclusion was lifted to when (verifier time): a receipt it
        timed at or before then (by its clock, which may run ahead by ``clock_skew_ns``) is
        refused, as the exclusion's evidence speaks against everything it timed until the
        operator found it repaired.

        Raises:
            LandmarkKeyReusedError: two records hold one key.
            ConfigError: a bad quorum or fault count, or a bad landmark record.
        """
        if config.quorum < 1:
            raise ConfigError("quorum must be at least 1")
        if not 0 <= config.landmark_faults < config.quorum:
            raise ConfigError("landmark_faults must be at least 0 and below the quorum")
        self.config = config
        self.revocations = revocations
        self.region = region
        self.lifted: Mapping[str, int] = dict(lifted or {})
        registry = LandmarkRegistry(landmarks)
        self._landmarks_by_key: Mapping[str, LandmarkRecord] = {
            record.verifying_key.key_id: record for record in registry
        }
        self._operators: Mapping[str, str] = {
            record.landmark_id: record.operator for record in self._landmarks_by_key.values()
        }
        self._domain_groups: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = {}
        """Fault domains by the sequence of landmark ids, as positions in that sequence."""

    @property
    def landmarks(self) -> tuple[LandmarkRecord, ...]:
        """The registered landmarks this appraiser accepts receipts from."""
        return tuple(self._landmarks_by_key.values())

    def registered_domains(self) -> int:
        """How many fault domains the registered landmarks that are not revoked make: the
        most a proof's receipts can count towards the quorum."""
        live = [
            LandmarkBound(r.landmark_id, r.latitude, r.longitude, 0)
            for r in self._landmarks_by_key.values()
            if not self.revocations.landmark_revoked(r.landmark_id, r.verifying_key.key_id)
        ]
        return len(fault_domains(live, self._operators))

    def with_revocations(self, revocations: RevocationList) -> ProofAppraiser:
        """The same appraiser under another revocation list (a landmark excluded, say)."""
        return ProofAppraiser(
            self.config, self.landmarks, revocations, self.region, lifted=self.lifted
        )

    def with_landmarks(self, landmarks: Iterable[LandmarkRecord]) -> ProofAppraiser:
        """The same appraiser over another registry (a landmark registered, say)."""
        return ProofAppraiser(
            self.config, landmarks, self.revocations, self.region, lifted=self.lifted
        )

    def appraise(
        self, proof: bytes | envelope_pb2.Envelope, state: TrustedState, now_ns: int
    ) -> Appraisal:
        """Appraise one proof. Never raises for bad input: a REJECTED appraisal instead."""
        return self.appraise_batch([proof], state, now_ns)[0]

    def appraise_batch(
        self, proofs: Sequence[bytes | envelope_pb2.Envelope], state: TrustedState, now_ns: int
    ) -> list[Appraisal]:
        """Appraise proofs in order, each seeing the chains as the ones before it left them.

        The same verdicts as appraising them one by one with each new head applied, in two
        passes: every proof's evidence (signatures, chain, receipts), then every accepted
        proof's geography. The signature checks and the geography each need their own
        working set in the CPU caches (OpenSSL's tables; the land pieces); alternating them
        per proof cost a tenth of the pipeline's time in cache misses. The geography
        never raises (:class:`~geoattest.verdict.RegionAppraiser`'s contract), so every
        proof accepted in the first pass gets its verdict in the second.
        """
        pending = _PendingChains(state)
        checked = [self._check(proof, pending, now_ns) for proof in proofs]
        fixes: dict[str, tuple[tuple[LandmarkBound, ...], int]] = {}
        return [
            self._judge(item, fixes, now_ns) if isinstance(item, _Evidence) else item
            for item in checked
        ]

    def _check(
        self, proof: bytes | envelope_pb2.Envelope, pending: _PendingChains, now_ns: int
    ) -> _Evidence | Appraisal:
        """Everything but geography; a REJECTED appraisal where a check fails.

        A rejection names a device (and may raise an alert against it) only once the
        proof's signature verified under that device's key: the key id is a claim anyone
        can copy, so what fails before or at the signature speaks for nobody.
        """
        device: DeviceRecord | None = None
        """The device whose key signed the proof, once the signature verified."""
        try:
            envelope = (
                proof
                if isinstance(proof, envelope_pb2.Envelope)
                else decode(envelope_pb2.Envelope, proof, limit=MAX_PROOF_BYTES)
            )
            if envelope.ByteSize() > MAX_PROOF_BYTES:
                raise EvidenceError(Reason.OVERSIZED_MESSAGE, "proof envelope too large")
            check_shape(envelope)
            if payload_type_of(envelope) is not PayloadType.LOCATION_PROOF:
                raise EvidenceError(Reason.WRONG_PAYLOAD_TYPE, "expected a location proof")
            claimed = self._device(envelope.key_id, pending, now_ns)
            payload = open_shaped(envelope, PayloadType.LOCATION_PROOF, claimed.verifying_key)
            device = claimed
            evidence = self._check_signed(envelope, payload, device, pending, now_ns)
        except GeoattestError as exc:
            alerts: tuple[AlertKind, ...] = ()
            if device is not None and exc.reason is Reason.FORK:
                alerts = (AlertKind.CLONE,)
            elif device is not None and exc.reason in _TAMPER_REASONS:
                alerts = (AlertKind.TAMPERING,)
            return Appraisal(
                verdict=Verdict.REJECTED,
                device_id=device.device_id if device else "",
                reason=exc.reason,
                detail=exc.detail,
                alerts=alerts,
                licensed_region=device.licensed_region if device else "",
                licence=device.licence if device else None,
            )
        pending.advance(evidence, now_ns)
        return evidence

    def _device(self, key_id: str, state: TrustedState, now_ns: int) -> DeviceRecord:
        device = state.device_for_key(key_id)
        if device is None:
            raise EvidenceError(Reason.UNKNOWN_DEVICE, "signing key belongs to no enrolled device")
        if self.revocations.device_revoked(device.device_id):
            raise EvidenceError(Reason.REVOKED_DEVICE, device.device_id)
        if now_ns > device.not_valid_after_ns:
            raise EvidenceError(Reason.BAD_CHAIN, "device certificate has expired")
        return device

    def _check_signed(
        self,
        envelope: envelope_pb2.Envelope,
        payload: bytes,
        device: DeviceRecord,
        state: TrustedState,
        now_ns: int,
    ) -> _Evidence:
        """The checks of a proof whose signature verified under ``device``'s key."""
        proof = decode(evidence_pb2.LocationProof, payload, limit=MAX_PROOF_BYTES)
        in_store_range(proof.counter, "proof counter")
        if proof.device_id != device.device_id:
            raise EvidenceError(Reason.DEVICE_MISMATCH, "proof names another device")
        allowed = self.config.allowed_measurements
        if allowed is not None and bytes(proof.agent_measurement) not in allowed:
            raise EvidenceError(Reason.BAD_MEASUREMENT, "agent measurement not allowed by policy")
        digest = proof_digest(envelope)
        head = state.head(device.device_id)
        self._check_chain(proof, digest, head, state)
        seen = dict(head.landmark_times) if head else {}
        newest_before = max(seen.values(), default=0)
        bounds, domains, evidence_time_ns = self._check_receipts(proof, device, seen, now_ns)
        if evidence_time_ns < newest_before:
            # The chain's fixes and staleness are measured forward in evidence time.
            raise EvidenceError(
                Reason.STALE_RECEIPT,
                "the proof's newest round is older than evidence the chain already holds",
            )
        if device.licence is not None:
            # Last, so that a resubmitted proof is still known as such and bad evidence
            # still raises its own alerts; no verdict affirms without a licence in force,
            # now and at the instant the verdict is about (receipts may run ahead of the
            # verifier's clock by the clock skew, or the verifier's clock step back).
            device.licence.check_in_force(max(now_ns, evidence_time_ns))
        return _Evidence(
            device,
            proof.counter,
            digest,
            bytes(proof.previous_proof_digest),
            head,
            seen,
            bounds,
            domains,
            evidence_time_ns,
        )

    def _judge(
        self,
        evidence: _Evidence,
        fixes: dict[str, tuple[tuple[LandmarkBound, ...], int]],
        now_ns: int,
    ) -> Appraisal:
        """The verdict for checked evidence; ``fixes`` holds each device's history fix as
        earlier proofs of the same batch left it, and gets this one's."""
        device, bounds, evidence_time_ns = evidence.device, evidence.bounds, evidence.time_ns
        head = evidence.head
        last_fix = fixes.get(device.device_id) or (
            (head.fix, head.fix_time_ns) if head else ((), 0)
        )
        region = survive_faults(
            self.region,
            self.region.appraise(bounds, device.licensed_region),
            evidence.domains,
            device.licensed_region,
            self.config.landmark_faults,
        )
        alerts: list[AlertKind] = []
        if region.verdict is Verdict.OUTSIDE:
            alerts.append(AlertKind.OUTSIDE_LICENSED_REGION)
        if region.embargoed:
            alerts.append(AlertKind.EMBARGOED_LOCATION)
        if region.verdict is Verdict.INCONSISTENT:
            alerts.append(AlertKind.INCONSISTENT_LANDMARKS)
        km_per_ns = self.config.max_chip_speed_m_s / 1e12
        gap_km = history.travel_gap_km(*last_fix, bounds, evidence_time_ns, km_per_ns)
        if gap_km > 0:
            alerts.append(AlertKind.IMPOSSIBLE_TRAVEL)
            if region.verdict is Verdict.ALLOWED:  # only ever less permissive
                region = replace(
                    region,
                    verdict=Verdict.INCONCLUSIVE,
                    detail=f"{region.detail}; but an earlier accepted fix is {gap_km:.0f} km "
                    "further than the device could have travelled since",
                )
        # An INCONSISTENT proof locates nothing: the history fix stands.
        if region.verdict is not Verdict.INCONSISTENT:
            last_fix = history.extend(*last_fix, bounds, evidence_time_ns, km_per_ns)
        fixes[device.device_id] = last_fix
        return Appraisal(
            verdict=region.verdict,
            device_id=device.device_id,
            counter=evidence.counter,
            reason=None,
            detail=region.detail,
            proof_digest=evidence.digest,
            bounds=bounds,
            region=region,
            alerts=tuple(alerts),
            new_head=ChainHead(
                counter=evidence.counter,
                digest=evidence.digest,
                previous_digest=evidence.previous_digest,
                accepted_at_ns=now_ns,
                landmark_times=evidence.landmark_times,
                fix=last_fix[0],
                fix_time_ns=last_fix[1],
            ),
            licensed_region=device.licensed_region,
            licence=device.licence,
            evidence_time_ns=evidence_time_ns,
        )

    @staticmethod
    def _check_chain(
        proof: evidence_pb2.LocationProof,
        digest: bytes,
        head: ChainHead | None,
        state: TrustedState,
    ) -> None:
        previous = bytes(proof.previous_proof_digest)
        if proof.counter == 0:
            raise EvidenceError(Reason.COUNTER_NOT_INCREASING, "counter starts at 1")
        # The head has no successor (TrustedState's invariant): a proof that extends it
        # needs no look-up in the successor index.
        extends_head = previous == (head.digest if head else b"")
        extended = None if extends_head else state.successor(proof.device_id, previous)
        if extended is not None:
            if hmac.compare_digest(extended, digest):
                raise EvidenceError(
                    Reason.REPLAYED_PROOF, f"proof {proof.counter} already accepted"
                )
            raise EvidenceError(
                Reason.FORK, f"proof {proof.counter} extends a predecessor already extended"
            )
        if head is None:
            if previous:
                raise EvidenceError(Reason.CHAIN_BROKEN, "first proof must not name a predecessor")
            return
        if proof.counter <= head.counter:
            raise EvidenceError(
                Reason.COUNTER_NOT_INCREASING, f"counter {proof.counter} <= {head.counter}"
            )
        if not hmac.compare_digest(previous, head.digest):
            raise EvidenceError(
                Reason.CHAIN_BROKEN, "proof does not extend the last accepted proof"
            )

    def _check_receipts(
        self,
        proof: evidence_pb2.LocationProof,
        device: DeviceRecord,
        seen: dict[str, int],
        now_ns: int,
    ) -> tuple[tuple[LandmarkBound, ...], tuple[tuple[LandmarkBound, ...], ...], int]:
        if len(proof.receipts) > MAX_RECEIPTS:
            raise EvidenceError(Reason.OVERSIZED_MESSAGE, f"more than {MAX_RECEIPTS} receipts")
        timed: list[tuple[LandmarkRecord, int, int]] = []
        used: set[str] = set()
        for envelope in proof.receipts:
            landmark, time_ns, rtt_ns = self._check_receipt(envelope, device, now_ns)
            landmark_id = landmark.landmark_id
            if landmark_id in used:
                raise EvidenceError(Reason.DUPLICATE_LANDMARK, landmark_id)
            used.add(landmark_id)
            if time_ns <= seen.get(landmark_id, -1):
                raise EvidenceError(
                    Reason.REPLAYED_RECEIPT, f"receipt from {landmark_id} is not newer"
                )
            seen[landmark_id] = time_ns
            timed.append((landmark, time_ns, rtt_ns))
        newest = max((time_ns for _, time_ns, _ in timed), default=0)
        oldest = min((time_ns for _, time_ns, _ in timed), default=0)
        km_per_ns = self.config.max_chip_speed_m_s / 1e12
        bounds = tuple(
            [
                LandmarkBound(
                    landmark.landmark_id,
                    landmark.latitude,
                    landmark.longitude,
                    rtt_ns,
                    (newest - time_ns) * km_per_ns,
                )
                for landmark, time_ns, rtt_ns in timed
            ]
        )
        domains = self._fault_domains(bounds)
        if len(domains) < self.config.quorum:
            raise EvidenceError(
                Reason.QUORUM_NOT_MET,
                f"{len(timed)} receipts from {len(domains)} fault domain(s) (operators and sites), "
                f"policy needs {self.config.quorum}",
            )
        if newest - oldest > self.config.max_round_spread_ns:
            raise EvidenceError(Reason.STALE_RECEIPT, "the proof's rounds are too far apart")
        return bounds, domains, newest

    def _fault_domains(
        self, bounds: tuple[LandmarkBound, ...]
    ) -> tuple[tuple[LandmarkBound, ...], ...]:
        """:func:`fault_domains` of bounds drawn from this appraiser's registry. Their
        grouping depends only on the landmarks' ids in order: each id names one record,
        and its operator and site, for the appraiser's life. Chips prove with the same
        landmarks proof after proof, so the grouping is worked out once per sequence."""
        ids = tuple(bound.landmark_id for bound in bounds)
        groups = self._domain_groups.get(ids)
        if groups is None:
            domains = fault_domains(bounds, self._operators)
            position = {bound.landmark_id: i for i, bound in enumerate(bounds)}
            if len(self._domain_groups) >= DOMAIN_MEMO_SIZE:
                self._domain_groups.clear()
            self._domain_groups[ids] = tuple(
                tuple(position[bound.landmark_id] for bound in domain) for domain in domains
            )
            return domains
        return tuple([tuple([bounds[i] for i in group]) for group in groups])

    def _check_receipt(
        self, envelope: envelope_pb2.Envelope, device: DeviceRecord, now_ns: int
    ) -> tuple[LandmarkRecord, int, int]:
        """The landmark a receipt is from, its landmark time and its minimum RTT (ns)."""
        check_shape(envelope)
        key_id = envelope.key_id
        landmark = self._landmarks_by_key.get(key_id)
        if landmark is None:
            raise EvidenceError(Reason.UNKNOWN_LANDMARK, "receipt key belongs to no landmark")
        landmark_id = landmark.landmark_id
        if self.revocations.landmark_revoked(landmark_id, key_id):
            raise EvidenceError(Reason.REVOKED_LANDMARK, landmark_id)
        try:
            payload = open_shaped(envelope, PayloadType.TIMING_RECEIPT, landmark.verifying_key)
        except EvidenceError as exc:
            if exc.reason is Reason.BAD_SIGNATURE:
                raise EvidenceError(Reason.BAD_RECEIPT_SIGNATURE, landmark_id) from exc
            raise
        receipt = decode(round_pb2.TimingReceipt, payload, limit=MAX_DATAGRAM_BYTES)
        if receipt.landmark_id != landmark_id:
            raise EvidenceError(Reason.TRANSCRIPT_MISMATCH, "receipt names another landmark")
        if receipt.device_id != device.device_id:
            raise EvidenceError(Reason.RECEIPT_FOR_OTHER_DEVICE, receipt.device_id[:64])
        self.check_transcript(receipt, device.verifying_key)
        time_ns = in_store_range(receipt.landmark_time_ns, "landmark time")
        if time_ns < now_ns - self.config.max_receipt_age_ns:
            raise EvidenceError(Reason.STALE_RECEIPT, f"receipt from {landmark_id}")
        if time_ns > now_ns + self.config.clock_skew_ns:
            raise EvidenceError(Reason.FUTURE_RECEIPT, f"receipt from {landmark_id}")
        lifted_ns = self.lifted.get(landmark_id)
        if lifted_ns is not None and time_ns <= lifted_ns + self.config.clock_skew_ns:
            # The landmark's clock may run ahead of the verifier's by the skew allowed.
            raise EvidenceError(
                Reason.REVOKED_LANDMARK,
                f"{landmark_id}: timed before its exclusion was lifted",
            )
        rtt_ns = in_store_range(receipt.rtt_min_ns, "round trip")
        if rtt_ns == 0 or receipt.exchanges == 0:
            raise EvidenceError(Reason.TRANSCRIPT_MISMATCH, "receipt times no exchange")
        return landmark, time_ns, rtt_ns

    @staticmethod
    def check_transcript(receipt: round_pb2.TimingReceipt, device_key: VerifyingKey) -> None:
        """The transcript is signed by ``device_key``, matches the receipt and repeats no
        challenge.

        Raises:
            EvidenceError: BAD_TRANSCRIPT_SIGNATURE, TRANSCRIPT_MISMATCH or CHALLENGE_REUSED.
        """
        try:
            signed = open_envelope(receipt.transcript, PayloadType.ROUND_TRANSCRIPT, device_key)
        except EvidenceError as exc:
            raise EvidenceError(Reason.BAD_TRANSCRIPT_SIGNATURE, exc.reason.value) from exc
        transcript = decode(round_pb2.RoundTranscript, signed, limit=MAX_DATAGRAM_BYTES)
        secret = receipt.secret
        challenges = transcript.challenges
        count = len(challenges)
        if not (
            transcript.device_id == receipt.device_id
            and transcript.landmark_id == receipt.landmark_id
            and transcript.round_id == receipt.round_id
            and count == receipt.exchanges
            and hmac.compare_digest(sha256(signed), receipt.transcript_digest)
            and len(secret) == SECRET_BYTES
            and hmac.compare_digest(commitment(secret), transcript.commit)
        ):
            raise EvidenceError(Reason.TRANSCRIPT_MISMATCH, f"round of {receipt.landmark_id}")
        if len(set(challenges)) != count:
            # A repeated challenge lets a helper next to the landmark answer it at once
            # with the answer it saw the first time: the round's minimum RTT is void.
            raise EvidenceError(Reason.CHALLENGE_REUSED, f"round of {receipt.landmark_id}")


def operator_key(name: str) -> str:
    """The operator a name means: names that differ only in letter case, Unicode
    normalisation (composed or decomposed accents, full-width letters) or spacing mean one
    operator, so a registry written by hand cannot split one operator into two fault
    domains and let a single lying operator pass for two."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def fault_domains(
    bounds: Sequence[LandmarkBound], operators: Mapping[str, str]
) -> tuple[tuple[LandmarkBound, ...], ...]:
    """The bounds grouped by fault domain: two bounds share one if their landmarks have
    the same operator (``operators`` by landmark id; a landmark it does not name is its
    own operator; names are compared as :func:`operator_key` spells them) or sites within
    :data:`SAME_SITE_KM`, and transitively so. Groups come in the order of their first
    bound."""
    parent = list(range(len(bounds)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner = [operator_key(operators.get(b.landmark_id, b.landmark_id)) for b in bounds]
    for i, j in combinations(range(len(bounds)), 2):
        a, b = bounds[i], bounds[j]
        if owner[i] == owner[j] or (
            history.sites_apart_km(a.latitude, a.longitude, b.latitude, b.longitude) < SAME_SITE_KM
        ):
            parent[root(j)] = root(i)
    groups: dict[int, list[LandmarkBound]] = {}
    for i, bound in enumerate(bounds):
        groups.setdefault(root(i), []).append(bound)
    return tuple(tuple(group) for group in groups.values())


def survive_faults(
    appraiser: RegionAppraiser,
    appraisal: RegionAppraisal,
    domains: Sequence[Sequence[LandmarkBound]],
    licensed_region: str,
    faults: int,
) -> RegionAppraisal:
    """ALLOWED only if it holds without the bounds of any ``faults`` of the fault
    ``domains`` (:func:`fault_domains`): that many lying operators cannot make it.

    With no more domains than ``faults``, nothing is left to judge by and the verdict is
    INCONCLUSIVE: the policy is never weakened to fit the evidence.
    """
    if appraisal.verdict is not Verdict.ALLOWED or faults == 0:
        return appraisal
    tolerates = f"policy tolerates {faults} lying landmark operator(s)"
    if len(domains) <= faults:
        return replace(
            appraisal,
            verdict=Verdict.INCONCLUSIVE,
            detail=f"{appraisal.detail}; but the receipts span only {len(domains)} fault "
            f"domain(s) (operators and sites) and the {tolerates}",
        )
    decided_by = appraisal.decided_by
    for left_out in combinations(range(len(domains)), faults):
        if decided_by is not None and not any(
            b.landmark_id in decided_by for i in left_out for b in domains[i]
        ):
            continue  # these bounds decided nothing: the verdict without them is the same
        kept = tuple(b for i, d in enumerate(domains) if i not in left_out for b in d)
        without = appraiser.verdict(kept, licensed_region)
        if without is not Verdict.ALLOWED:
            ids = sorted(b.landmark_id for i in left_out for b in domains[i])
            return replace(
                appraisal,
                verdict=Verdict.INCONCLUSIVE,
                detail=f"{appraisal.detail}; but without {', '.join(ids)} it is "
                f"{without.value} ({tolerates})",
            )
    return appraisal
