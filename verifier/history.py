"""A device's travel history: what its accepted fixes still say about where it can be.

Every accepted, consistent proof is a fix: the chip lay in each of its disks at the
proof's evidence time. A chip carried at most ``speed`` lay, at any later time ``t``, in
each of those disks grown by ``speed * (t - fix time)``. The impossible-travel check asks
whether a new proof's disks can be reached from *every* earlier fix; the pipeline keeps
the answer to that question for all of them in one set of disks, the *history fix*:

- after each accepted proof the history fix is the earlier history fix grown to the new
  evidence time, plus the new proof's disks (:func:`extend`). Growing a fix's disks by the
  travel since and re-timing it is exactly the same constraint on any later proof as the
  fix itself (evidence time never goes back along a chain; the pipeline rejects a proof
  whose newest round is older than the chain's), so nothing any earlier fix proves is
  lost, and a vague proof (huge disks) only adds disks that constrain nothing;
- a disk is dropped only when it can no longer constrain anything: when it covers the
  whole earth (``speed`` times the time since its fix exceeds half the earth's
  circumference), or when another disk of the history fix lies inside it (every later
  proof that the larger disk refuses, the smaller one refuses too).

Disks sit at landmark sites, so after the second rule at most one disk per site remains:
the history fix is bounded by the landmark registry, however many proofs an adversary
interleaves, and a proof is checked against the whole window in one pass.

The gap test between two sets of disks (:func:`travel_gap_km`) takes the largest gap
between any old disk and any new disk. The gap between the feasible regions is at least
that, so it never raises a false alarm; it can miss a jump between two regions whose every
pair of disks overlaps (both fixes vague compared with the jump).
"""

from __future__ import annotations

import functools
import math

from geoattest.geo.sphere import EARTH_RADIUS_KM, ELLIPSOID_MARGIN, distance_km, grow
from geoattest.verdict import LandmarkBound, bound_km

Fix = tuple[LandmarkBound, ...]
"""Disks the chip lay in at one instant (a proof's bounds, or the history fix)."""

HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
"""Farthest two points of the sphere lie apart: a disk this wide constrains nothing."""
_DOMINANCE_SLACK_KM = 1e-6
"""A disk counts as inside another at a different site only with this much room, so
rounding in their distance never drops a disk that still constrains something."""


@functools.lru_cache(maxsize=4096)
def sites_apart_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two landmark sites: the same few pairs recur in
    every proof's travel check and fault domains."""
    return float(distance_km(lat1, lon1, lat2, lon2))


def travel_gap_km(fix: Fix, fix_time_ns: int, bounds: Fix, time_ns: int, km_per_ns: float) -> float:
    """How much further apart ``fix`` and ``bounds`` surely are than the chip could travel
    between their times (> 0: impossible travel; <= 0: possible or unknown).

    Sound without any geometry: every point of the old feasible region lies in each old
    disk and every point of the new one in each new disk, so the gap between the two
    regions is at least the gap between any old disk and any new disk. Disks are grown to
    spherical caps and the spherical gap shrunk back to the ellipsoid, as the geography
    does, so rounding never raises a false alarm.
    """
    if not fix or not bounds:
        return 0.0
    reachable_km = max(0, time_ns - fix_time_ns) * km_per_ns
    # Each disk's grown radius read once, not once per pair.
    old_caps = [(old.latitude, old.longitude, grow(old.bound_km)) for old in fix]
    new_caps = [(new.latitude, new.longitude, grow(new.bound_km)) for new in bounds]
    gap_km = max(
        sites_apart_km(old_lat, old_lon, lat, lon) - old_km - new_km
        for old_lat, old_lon, old_km in old_caps
        for lat, lon, new_km in new_caps
    )
    return gap_km / (1.0 + ELLIPSOID_MARGIN) - reachable_km


def extend(
    fix: Fix, fix_time_ns: int, bounds: Fix, time_ns: int, km_per_ns: float
) -> tuple[Fix, int]:
    """The history fix once a proof with ``bounds`` at ``time_ns`` (not before
    ``fix_time_ns``) is accepted: the old one grown to ``time_ns`` plus the new disks,
    less every disk that constrains nothing any more. The new disks come first, in order,
    so a chip proving the same disks again keeps exactly those."""
    travel_km = max(0, time_ns - fix_time_ns) * km_per_ns
    # (disk, its motion once grown or None for a new disk, its grown radius): an old
    # disk is rebuilt grown only if it is kept, and each radius is read once.
    candidates: list[tuple[LandmarkBound, float | None, float]] = [
        (b, None, grow(b.bound_km)) for b in bounds
    ]
    for b in fix:
        grown_km = b.motion_km + travel_km
        candidates.append((b, grown_km, grow(bound_km(b.rtt_min_ns) + grown_km)))
    kept: list[tuple[LandmarkBound, float]] = []
    for source, motion_km, radius in candidates:
        if radius >= HALF_CIRCUMFERENCE_KM or any(
            _inside(k, k_km, source, radius) for k, k_km in kept
        ):
            continue
        kept = [(k, k_km) for k, k_km in kept if not _inside(source, radius, k, k_km)]
        disk = (
            source
            if motion_km is None
            else LandmarkBound(
                source.landmark_id, source.latitude, source.longitude, source.rtt_min_ns, motion_km
            )
        )
        kept.append((disk, radius))
    if len(kept) == len(bounds) and all(k is b for (k, _), b in zip(kept, bounds, strict=True)):
        return bounds, time_ns  # the same object: the store writes the proof's disks once
    return tuple([k for k, _ in kept]), time_ns


def _inside(inner: LandmarkBound, inner_km: float, outer: LandmarkBound, outer_km: float) -> bool:
    """Whether ``inner``'s cap (grown radius ``inner_km``) lies inside ``outer``'s: then
    every proof ``outer`` refuses, ``inner`` refuses too, with at least the same gap. A
    wider inner cap never does (a sum of non-negative terms rounds to no less than any
    of them), so its sites' distance is not looked up."""
    if inner_km > outer_km:
        return False
    apart = sites_apart_km(inner.latitude, inner.longitude, outer.latitude, outer.longitude)
    slack = _DOMINANCE_SLACK_KM if apart else 0.0
    return apart + slack + inner_km <= outer_km
