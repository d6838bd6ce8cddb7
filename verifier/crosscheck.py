"""Landmarks measuring each other: a check on the landmarks themselves.

A landmark answers a peer's timed round with its own key (as a chip would with a device
key). A landmark whose clock under-reports, or that is registered at the wrong place, then
times its peer faster than light allows between the two registered sites. Such a landmark
is a suspect for the operator to revoke. A liar that lies only about chips and times its
peers honestly is not caught here; ``PipelineConfig.landmark_faults`` covers that case.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from geoattest.errors import EvidenceError, Reason
from geoattest.geo.sphere import ABSOLUTE_MARGIN_KM, ELLIPSOID_MARGIN, distance_km
from geoattest.pki import LandmarkRecord
from geoattest.v1 import envelope_pb2, round_pb2
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S
from geoattest.wire.decode import MAX_DATAGRAM_BYTES, decode
from geoattest.wire.envelope import PayloadType, check_shape, open_envelope
from verifier.pipeline import ProofAppraiser


@dataclass(frozen=True, slots=True)
class PeerMeasurement:
    """One landmark (``timer``) timing another (``peer``)."""

    timer: str
    peer: str
    rtt_min_ns: int
    floor_ns: int
    """Light's round trip between the registered sites, rounded down (ellipsoid-safe)."""

    @property
    def impossible(self) -> bool:
        return self.rtt_min_ns < self.floor_ns


def measure_peer(
    receipt: envelope_pb2.Envelope, landmarks: Iterable[LandmarkRecord]
) -> PeerMeasurement:
    """Check a receipt one registered landmark issued for another's round.

    Raises:
        EvidenceError: unknown timer or peer, bad receipt or transcript signature, or a
            transcript inconsistent with the receipt.
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
    ProofAppraiser.check_transcript(timing, peer.verifying_key)
    sphere_km = float(distance_km(timer.latitude, timer.longitude, peer.latitude, peer.longitude))
    km = max(0.0, sphere_km / (1.0 + ELLIPSOID_MARGIN) - ABSOLUTE_MARGIN_KM)
    floor_ns = math.floor(2 * km / SPEED_OF_LIGHT_KM_PER_S * 1e9)
    return PeerMeasurement(timer.landmark_id, peer.landmark_id, timing.rtt_min_ns, floor_ns)


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
