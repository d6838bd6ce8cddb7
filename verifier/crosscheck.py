"""Landmarks measuring each other: a check on the landmarks themselves.

A landmark answers a peer's timed round with its own key (as a chip would with a device
key). A landmark whose clock under-reports, or that is registered at the wrong place, then
times its peer faster than light allows between the two registered sites. Such a landmark
is a suspect for the operator to revoke. A liar that lies only about chips and times its
peers honestly is not caught here; ``PipelineConfig.landmark_faults`` covers that case.

The same rounds audit each landmark's challenges: a landmark that repeats a challenge,
within one round or across its rounds with different peers, draws them from a stuck or
seeded source, so a host that watched one round can answer the next before it is asked.
It is a suspect too. :func:`cross_check` runs both checks over one batch of peer receipts
and :func:`judge` over measurements already checked; the verifier keeps the live
landmarks' measurements and excludes the suspects (:mod:`geoattest.verifier.audits`).

Example::

    report = cross_check(peer_receipts, registry)
    for landmark_id in report.suspects:
        ...  # revoke it, or let the service exclude it
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from geoattest.errors import EvidenceError, Reason
from geoattest.geo.sphere import ABSOLUTE_MARGIN_KM, ELLIPSOID_MARGIN, distance_km
from geoattest.pki import LandmarkRecord
from geoattest.v1 import envelope_pb2, round_pb2
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S
from geoattest.verifier.pipeline import ProofAppraiser, in_store_range
from geoattest.wire.decode import MAX_DATAGRAM_BYTES, decode
from geoattest.wire.envelope import PayloadType, check_shape, open_envelope


@dataclass(frozen=True, slots=True)
class PeerMeasurement:
    """One landmark (``timer``) timing another (``peer``)."""

    timer: str
    peer: str
    rtt_min_ns: int
    floor_ns: int
    """Light's round trip between the registered sites, rounded down (ellipsoid-safe)."""
    challenges: tuple[bytes, ...] = ()
    """The challenges the timer issued in this round (from the peer-signed transcript)."""
    time_ns: int = 0
    """The timer's wall clock when it signed the receipt (Unix ns)."""

    @property
    def void(self) -> bool:
        """The round repeated a challenge, so its minimum RTT proves nothing."""
        return len(set(self.challenges)) != len(self.challenges)

    @property
    def impossible(self) -> bool:
        return not self.void and self.rtt_min_ns < self.floor_ns


def light_floor_ns(timer: LandmarkRecord, peer: LandmarkRecord) -> int:
    """Light's round trip between two registered sites, rounded down (ellipsoid-safe)."""
    sphere_km = float(distance_km(timer.latitude, timer.longitude, peer.latitude, peer.longitude))
    km = max(0.0, sphere_km / (1.0 + ELLIPSOID_MARGIN) - ABSOLUTE_MARGIN_KM)
    return math.floor(2 * km / SPEED_OF_LIGHT_KM_PER_S * 1e9)


def measure_peer(
    receipt: envelope_pb2.Envelope, landmarks: Iterable[LandmarkRecord]
) -> PeerMeasurement:
    """Check a receipt one registered landmark issued for another's round.

    A round that repeated a challenge is measured too (its signatures hold): it is
    :attr:`~PeerMeasurement.void` for the light check and marks its timer predictable.

    Raises:
        EvidenceError: unknown timer or peer, bad receipt or transcript signature, or a
            transcript inconsistent with the receipt.
        WireError: OUT_OF_RANGE, a round trip or time the store cannot hold.
    """
    records = list(landmarks)
    by_key = {r.verifying_key.key_id: r for r in records}
    by_id = {r.landmark_id: r for r in records}
    check_shape(receipt)
    timer = by_key.get(receipt.key_id)
    if timer is None:
        raise EvidenceError(Reason.UNKNOWN_LANDMARK, "receipt key belongs to no landmark")
    try:
        payload = open_envelope(receipt, PayloadType.TIMING_RECEIPT, timer.verifying_key)
    except EvidenceError as exc:
        raise EvidenceError(Reason.BAD_RECEIPT_SIGNATURE, timer.landmark_id) from exc
    timing = decode(round_pb2.TimingReceipt, payload, limit=MAX_DATAGRAM_BYTES)
    peer = by_id.get(timing.device_id)
    if peer is None or timing.landmark_id != timer.landmark_id:
        raise EvidenceError(Reason.UNKNOWN_LANDMARK, "the round was not between two landmarks")
    try:
        ProofAppraiser.check_transcript(timing, peer.verifying_key)
    except EvidenceError as exc:
        if exc.reason is not Reason.CHALLENGE_REUSED:
            raise
    transcript = decode(
        round_pb2.RoundTranscript, timing.transcript.payload, limit=MAX_DATAGRAM_BYTES
    )
    return PeerMeasurement(
        timer.landmark_id,
        peer.landmark_id,
        in_store_range(timing.rtt_min_ns, "round trip"),
        light_floor_ns(timer, peer),
        tuple(bytes(c) for c in transcript.challenges),
        in_store_range(timing.landmark_time_ns, "landmark time"),
    )


def placed(
    measurements: Iterable[PeerMeasurement], landmarks: Iterable[LandmarkRecord]
) -> list[PeerMeasurement]:
    """The measurements with light's floor between the sites the registry lists now; one
    naming a landmark the registry no longer lists is left out."""
    by_id = {r.landmark_id: r for r in landmarks}
    return [
        replace(m, floor_ns=light_floor_ns(by_id[m.timer], by_id[m.peer]))
        for m in measurements
        if m.timer in by_id and m.peer in by_id
    ]


def suspects(measurements: Iterable[PeerMeasurement]) -> frozenset[str]:
    """Landmarks to investigate: those that beat light with two or more distinct peers.

    One impossible pair alone cannot say which of the two is wrong (a misregistered peer
    makes an honest timer look fast); a landmark at odds with several peers is the odd one
    out. A pair with no second witness is reported by :func:`impossible_pairs` only.
    """
    partners: dict[str, set[str]] = defaultdict(set)
    for a, b in impossible_pairs(measurements):
        partners[a].add(b)
        partners[b].add(a)
    return frozenset(lid for lid, seen in partners.items() if len(seen) >= 2)


def impossible_pairs(measurements: Iterable[PeerMeasurement]) -> frozenset[tuple[str, str]]:
    """Pairs of landmarks (sorted ids) of which at least one is lying or misregistered."""
    return frozenset(
        (min(m.timer, m.peer), max(m.timer, m.peer)) for m in measurements if m.impossible
    )


def repeating_timers(measurements: Iterable[PeerMeasurement]) -> frozenset[str]:
    """Landmarks that issued one challenge value twice across their rounds: predictable."""
    seen: dict[str, set[bytes]] = defaultdict(set)
    repeated: set[str] = set()
    for m in measurements:
        for challenge in m.challenges:
            if challenge in seen[m.timer]:
                repeated.add(m.timer)
            seen[m.timer].add(challenge)
    return frozenset(repeated)


@dataclass(frozen=True, slots=True)
class CrossCheckReport:
    """What one batch of peer rounds says about the landmarks."""

    measurements: tuple[PeerMeasurement, ...]
    impossible: frozenset[tuple[str, str]]
    """Pairs that beat light between their registered sites (see :func:`impossible_pairs`)."""
    contradicted: frozenset[str]
    """Landmarks at odds with two or more peers (see :func:`suspects`)."""
    predictable: frozenset[str]
    """Landmarks that repeated a challenge, within a round or across rounds."""
    refused: tuple[tuple[str, Reason], ...]
    """Receipts that did not check, by timer key id (or landmark id) and reason."""

    @property
    def suspects(self) -> frozenset[str]:
        """Landmarks whose evidence should no longer count."""
        return self.contradicted | self.predictable

    def describe(self, landmark_id: str) -> str:
        """Why ``landmark_id`` is a suspect, for an alert."""
        why = []
        if landmark_id in self.contradicted:
            peers = sorted(
                b if a == landmark_id else a for a, b in self.impossible if landmark_id in (a, b)
            )
            why.append(f"timed {', '.join(peers)} faster than light between registered sites")
        if landmark_id in self.predictable:
            why.append("repeated a challenge (predictable challenges)")
        return f"landmark {landmark_id} " + "; ".join(why)


def judge(
    measurements: Iterable[PeerMeasurement], refused: Iterable[tuple[str, Reason]] = ()
) -> CrossCheckReport:
    """What checked peer measurements say about the landmarks."""
    measured = tuple(measurements)
    return CrossCheckReport(
        measurements=measured,
        impossible=impossible_pairs(measured),
        contradicted=suspects(measured),
        predictable=repeating_timers(measured),
        refused=tuple(refused),
    )


def cross_check(
    receipts: Iterable[envelope_pb2.Envelope], landmarks: Iterable[LandmarkRecord]
) -> CrossCheckReport:
    """Check a batch of peer receipts: light between registered sites, fresh challenges.

    A receipt that does not check is listed as refused and counts for nothing.
    """
    records = list(landmarks)
    by_key = {r.verifying_key.key_id: r.landmark_id for r in records}
    measured: list[PeerMeasurement] = []
    refused: list[tuple[str, Reason]] = []
    for receipt in receipts:
        try:
            measured.append(measure_peer(receipt, records))
        except EvidenceError as exc:
            refused.append((by_key.get(receipt.key_id, receipt.key_id), exc.reason))
    return judge(measured, refused)
