"""Peer audits as the verifier keeps them: receipts in, stored measurements, exclusions.

The live landmarks time each other on a schedule (``geoattest landmark serve --audit-peer``)
and hand in the receipts (``SubmitPeerReceipts``). :class:`PeerAudits` checks every receipt
against the landmark registry, stores the measurements, and judges the landmarks over
every measurement of the audit window, whichever landmark handed it in: a landmark whose
clock under-reports is at odds with each peer that times it, but each peer hands in only
its own rounds, so no single call holds the two witnesses :func:`~geoattest.verifier.
crosscheck.suspects` needs. A suspect's exclusion and its ``INCONSISTENT_LANDMARKS`` alert
are stored in the same transaction as the measurements; every worker reads the exclusions
in force before it appraises a batch (:meth:`~geoattest.verifier.store.SqlStore.
excluded_landmarks`). An operator lifts one with ``geoattest verifier lift``: from then on
only measurements that arrive after the lift count against that landmark. A round timed by,
or with, a landmark the operator revoked counts for nothing.

Example::

    audits = PeerAudits(
        store,
        registry_records,
        revoked=lambda record: revocations.landmark_revoked(record.landmark_id),
        window_ns=24 * 3600 * SECOND_NS,
    )
    outcome = audits.submit(receipts, now_ns)
    outcome.excluded        # landmarks excluded by this call
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geoattest.crypto import sha256
from geoattest.errors import EvidenceError, Reason, WireError
from geoattest.pki import LandmarkRecord
from geoattest.v1 import envelope_pb2
from geoattest.verifier.crosscheck import PeerMeasurement, judge, measure_peer, placed
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import Alert, AuditedPeers, Store


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """What one hand-in of peer receipts did."""

    measured: int
    """New measurements stored (a receipt handed in before counts once)."""
    excluded: tuple[str, ...]
    """Landmarks this hand-in excluded."""
    alerts: tuple[Alert, ...]


class PeerAudits:
    """Checks peer receipts, stores them, and excludes suspects over the audit window."""

    def __init__(
        self,
        store: Store,
        landmarks: Callable[[], Sequence[LandmarkRecord]],
        *,
        revoked: Callable[[LandmarkRecord], bool],
        window_ns: int,
        max_receipts: int,
    ) -> None:
        """``landmarks`` gives the landmarks registered now (files and store), read at each
        hand-in, so a landmark registered meanwhile is audited from its first; ``revoked``
        whether the operator revoked one (by id or key: not an exclusion, which these
        audits make and lift themselves)."""
        self._store = store
        self._landmarks = landmarks
        self._revoked = revoked
        self._window_ns = window_ns
        self._max_receipts = max_receipts

    def submit(self, receipts: Sequence[envelope_pb2.Envelope], now_ns: int) -> AuditOutcome:
        """Check every receipt, store the measurements, exclude the suspects.

        A hand-in with any receipt that does not check is refused whole and stores
        nothing: the live landmark checked each receipt with its peer's key, so one that
        fails here is not a peer's honest answer.

        Raises:
            WireError: MISSING_FIELD (no receipt), OVERSIZED_MESSAGE (too many).
            EvidenceError: a receipt from no registered landmark, for a round with no
                registered landmark, with a bad receipt or transcript signature, a
                transcript that does not match, or older than the audit window
                (STALE_RECEIPT).
        """
        if not receipts:
            raise WireError(Reason.MISSING_FIELD, "no peer receipts")
        if len(receipts) > self._max_receipts:
            raise WireError(
                Reason.OVERSIZED_MESSAGE,
                f"{len(receipts)} peer receipts in one call; at most {self._max_receipts}",
            )
        since_ns = now_ns - self._window_ns
        landmarks = tuple(self._landmarks())
        by_id = {record.landmark_id: record for record in landmarks}
        measured: list[tuple[bytes, PeerMeasurement]] = []
        for receipt in receipts:
            measurement = measure_peer(receipt, landmarks)
            if measurement.time_ns < since_ns:
                raise EvidenceError(
                    Reason.STALE_RECEIPT,
                    f"round of {measurement.timer} with {measurement.peer} is older than "
                    "the audit window",
                )
            if self._revoked(by_id[measurement.timer]) or self._revoked(by_id[measurement.peer]):
                # A revoked landmark's rounds count for nothing, as its receipts in proofs
                # do: its key may be an attacker's, who would time honest peers "faster
                # than light" to have them excluded. The rest of the hand-in counts.
                continue
            measured.append((sha256(receipt.payload), measurement))

        def decide(audited: AuditedPeers) -> list[tuple[str, Alert]]:
            return self._exclusions(audited, now_ns, landmarks)

        stored, raised = self._store.record_peer_audit(measured, now_ns, since_ns, decide)
        return AuditOutcome(
            stored, tuple(lid for lid, _ in raised), tuple(alert for _, alert in raised)
        )

    def _exclusions(
        self, audited: AuditedPeers, now_ns: int, landmarks: Sequence[LandmarkRecord]
    ) -> list[tuple[str, Alert]]:
        """The suspects not yet excluded; one lifted before counts only on measurements
        that arrived after its lift."""
        report = judge(placed((m for m, _ in audited.measurements), landmarks))
        fresh: list[tuple[str, Alert]] = []
        for landmark_id in sorted(report.suspects - audited.excluded):
            lifted_ns = audited.last_lifted_ns.get(landmark_id)
            evidence = report
            if lifted_ns is not None:
                since_lift = [m for m, at in audited.measurements if at > lifted_ns]
                evidence = judge(placed(since_lift, landmarks))
                if landmark_id not in evidence.suspects:
                    continue
            fresh.append(
                (
                    landmark_id,
                    Alert(
                        alert_id=uuid.uuid4().hex,
                        device_id="",
                        kind=AlertKind.INCONSISTENT_LANDMARKS,
                        reason=Reason.REVOKED_LANDMARK.value,
                        detail=f"{evidence.describe(landmark_id)}: excluded",
                        time_ns=now_ns,
                    ),
                )
            )
        return fresh
