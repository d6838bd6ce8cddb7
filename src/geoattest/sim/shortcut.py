"""Fleet verdicts with numpy: sound shortcuts that imply the geography's own verdict.

A fleet study appraises a million proofs; the real appraiser (:class:`GeoAppraiser`) draws
and intersects polygons for each, about 100 µs a proof. Most proofs are far from a
decision boundary, and for those the verdict follows from a few distances that numpy
computes for all proofs at once. Every shortcut below is an *implication* of the
appraiser's rules (country regions, land assumption; see :mod:`geoattest.geo.appraiser`),
so a decided verdict is exactly the one the appraiser would return; whatever no shortcut
decides goes to the real appraiser. The fleet command checks the equality on a sample.

Let b be the disk with the smallest grown radius (the appraiser's *base* disk, always
drawn and intersected when it can be drawn), F the outer feasible region, P the chip's
true place (on land, inside every disk: delays only ever add, bounds are at c).

- F lies within :func:`~geoattest.geo.feasible.ring_reach` of b's centre. If that reach is
  shorter than the distance from b's landmark to any land outside the licensed countries,
  F touches only licensed land; it touches P's land, so with P licensed: **ALLOWED**.
  With ``landmark_faults = f`` the same must hold for the base disk of whatever remains
  once any f fault domains are left out: those bases are among the disks no larger than
  the smallest disk of the (f+1)-th fault domain in order of size, so all of those must
  pass. Domains are taken over the whole deployment (coarser than a proof's own, so the
  rule asks more, never less).
- If the reach is shorter than the distance to any licensed land: **OUTSIDE** (F touches
  P's land, so some land).
- If no disk can be drawn (each holds a pole or a hemisphere; drawability only gets
  lost as a disk grows), the appraiser has no bounded region: **INCONCLUSIVE**.
- A *probe* point q of land on the other side of the border from P that lies inside every
  cap lies inside F; F then touches licensed and unlicensed land: **INCONCLUSIVE**.

Distances to land are measured to the vertices of the land pieces, segmented to at most
:data:`SEGMENT_DEG`, less :data:`SEGMENT_SLACK_KM` for the stretch between vertices; the
landmark's own land piece counts as distance zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import shapely

from geoattest.demo.scenario import LandmarkSite
from geoattest.geo import Countries, GeoAppraiser, LocationAssumption
from geoattest.geo.feasible import ring_reach
from geoattest.geo.sphere import EARTH_RADIUS_KM, distance_km, grow
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.pipeline import DEFAULT_LANDMARK_FAULTS, fault_domains, survive_faults

SEGMENT_DEG = 0.05
"""Longest straight stretch between two land vertices used for distances (about 5.6 km)."""
SEGMENT_SLACK_KM = 5.0
"""Taken off every distance to land: no point of a segment is farther than this from the
nearer of its ends."""
REACH_STEP_KM = 1.0
"""Resolution of the per-landmark table of polygon reach against disk radius."""
REACH_TABLE_KM = 10_010.0
"""A quarter of the earth's circumference and a little more: no larger cap can be drawn."""
PROBE_MARGIN_KM = 0.01
"""A probe must lie this far inside every cap (floating-point room)."""


class Shortcut(IntEnum):
    """Which rule decided a fleet verdict (kept per proof, for the sample check)."""

    UNDECIDED = 0
    """No rule applied: the real appraiser decides."""
    ALLOWED_BY_REACH = 1
    """The base disk reaches no unlicensed land."""
    OUTSIDE_BY_REACH = 2
    """The base disk reaches no licensed land."""
    INCONCLUSIVE_BY_PROBE = 3
    """Land on the other side of the border lies in every disk."""
    INCONCLUSIVE_UNBOUNDED = 4
    """No disk can be drawn (each holds a pole or a hemisphere): no bounded region."""


VERDICT_CODES: tuple[Verdict, ...] = tuple(Verdict)
"""Verdicts as small integers (their index here) for numpy arrays."""
CODE_OF = {v: i for i, v in enumerate(VERDICT_CODES)}


class LandVertices:
    """The vertices of every land piece of the policy's countries, closely spaced."""

    def __init__(self, appraiser: GeoAppraiser) -> None:
        countries = appraiser.policy.countries
        segmented = shapely.segmentize(countries.pieces, SEGMENT_DEG)
        xy, piece = shapely.get_coordinates(segmented, return_index=True)
        self.lon = np.ascontiguousarray(xy[:, 0])
        self.lat = np.ascontiguousarray(xy[:, 1])
        self.code = countries.piece_code[piece]
        self._countries = countries

    def codes_mask(self, codes: frozenset[str]) -> npt.NDArray[np.bool_]:
        """Which vertices belong to land of ``codes``."""
        return np.isin(self.code, _indices(self._countries, codes))


class FleetVerdicts:
    """Verdicts for many proofs: shortcuts in bulk, the real appraiser for the rest."""

    def __init__(
        self,
        appraiser: GeoAppraiser,
        landmarks: Sequence[LandmarkSite],
        regions: Sequence[str],
        *,
        landmark_faults: int = DEFAULT_LANDMARK_FAULTS,
        land: LandVertices | None = None,
    ) -> None:
        self.appraiser = appraiser
        self.landmarks = tuple(landmarks)
        self._operators = {s.landmark_id: s.operator for s in self.landmarks}
        sites = tuple(LandmarkBound(s.landmark_id, s.latitude, s.longitude, 0) for s in landmarks)
        domain_of = {
            bound.landmark_id: i
            for i, group in enumerate(fault_domains(sites, self._operators))
            for bound in group
        }
        self._domain = np.asarray([domain_of[s.landmark_id] for s in self.landmarks])
        """Each landmark's fault domain over the whole deployment (operator, or site)."""
        self.regions = tuple(regions)
        self.landmark_faults = landmark_faults
        policy = appraiser.policy
        self._extra_km = policy.extra_km
        self._enabled = policy.location is LocationAssumption.LAND and all(
            policy.regions[r].is_countries for r in self.regions
        )
        self.land = land if land is not None else LandVertices(appraiser)
        lat = np.asarray([s.latitude for s in self.landmarks])
        lon = np.asarray([s.longitude for s in self.landmarks])
        self._lat, self._lon = lat, lon
        raw = np.stack([_reach_table(math.radians(p)) for p in lat])
        # Drawability only gets lost as a cap grows: past the first radius on the grid
        # that cannot be drawn, none can.
        undrawable = ~np.isfinite(raw)
        self._undrawable_km = np.where(
            undrawable.any(axis=1), undrawable.argmax(axis=1) * REACH_STEP_KM, np.inf
        )
        self._reach = np.maximum.accumulate(raw, axis=1)
        # Distance from each landmark to land outside / inside each region's countries.
        self.to_foreign = np.zeros((len(self.landmarks), len(self.regions)))
        self.to_licensed = np.zeros_like(self.to_foreign)
        codes = [policy.regions[name].countries for name in self.regions]
        self._inside_mask = [self.land.codes_mask(c) for c in codes]
        pieces = policy.countries.pieces
        self._sides = []
        for licensed in codes:
            inside = np.isin(policy.countries.piece_code, _indices(policy.countries, licensed))
            self._sides.append(
                tuple((pieces[m], shapely.STRtree(pieces[m])) for m in (~inside, inside))
            )
        # The nearest land on either side of each region's border to each landmark.
        self._near = np.full((len(self.landmarks), len(self.regions), 2, 2), np.nan)
        for j in range(len(self.regions)):
            for side, flag in ((0, True), (1, False)):
                self._near[:, j, side, 0], self._near[:, j, side, 1] = self.probes(
                    lat, lon, j, np.full(lat.shape, flag)
                )
        for i in range(len(self.landmarks)):
            d = distance_km(lat[i], lon[i], self.land.lat, self.land.lon)
            on = policy.countries.touching(shapely.Point(lon[i], lat[i]))
            for j, (inside, licensed) in enumerate(zip(self._inside_mask, codes, strict=True)):
                self.to_foreign[i, j] = 0.0 if on - licensed else _floor(d[~inside])
                self.to_licensed[i, j] = 0.0 if on & licensed else _floor(d[inside])

    def probes(
        self,
        lat: npt.NDArray[np.float64],
        lon: npt.NDArray[np.float64],
        region: int,
        licensed: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """For each place, the nearest point of land on the other side of the region's
        border (foreign land for a licensed place, licensed land otherwise)."""
        qlat = np.full(lat.shape, np.nan)
        qlon = np.full(lat.shape, np.nan)
        for side, rows in ((0, licensed), (1, ~licensed)):
            if not rows.any():
                continue
            pieces, tree = self._sides[region][side]
            if not len(pieces):
                continue
            points = shapely.points(lon[rows], lat[rows])
            _, nearest = tree.query_nearest(points, all_matches=False)
            ends = shapely.get_coordinates(shapely.shortest_line(points, pieces[nearest]))
            qlon[rows], qlat[rows] = ends[1::2, 0], ends[1::2, 1]
        return qlat, qlon

    def by_reach(
        self,
        region: npt.NDArray[np.int64],
        landmark: npt.NDArray[np.int64],
        bound_km: npt.NDArray[np.float64],
        licensed: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.int8]:
        """The reach rules in bulk: a :class:`Shortcut` per proof.

        Args:
            region: index into ``regions`` of each proof's licensed region, shape (n,).
            landmark: landmark indices of each proof's bounds, shape (n, k).
            bound_km: each bound's radius (light-speed bound plus motion), shape (n, k).
            licensed: whether the chip's true place is licensed land, shape (n,).
        """
        out = np.zeros(region.shape[0], dtype=np.int8)
        if not self._enabled:
            return out
        grown, base_lm, reach = self._base_reach(landmark, bound_km)
        out[licensed & self._inside_whatever_is_left_out(region, landmark, grown)] = (
            Shortcut.ALLOWED_BY_REACH
        )
        outside = (out == 0) & (reach < self.to_licensed[base_lm, region])
        out[outside] = Shortcut.OUTSIDE_BY_REACH
        unbounded = np.all(grown >= self._undrawable_km[landmark], axis=1)
        out[(out == 0) & unbounded] = Shortcut.INCONCLUSIVE_UNBOUNDED
        out[~np.all(np.isfinite(bound_km), axis=1)] = Shortcut.UNDECIDED
        return out

    def _inside_whatever_is_left_out(
        self,
        region: npt.NDArray[np.int64],
        landmark: npt.NDArray[np.int64],
        grown: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Per proof: whether every disk that could be the base once any
        ``landmark_faults`` domains are left out reaches no unlicensed land."""
        rows = np.arange(landmark.shape[0])
        order = np.argsort(grown, axis=1, kind="stable")
        domain = np.take_along_axis(self._domain[landmark], order, axis=1)
        first = np.ones(domain.shape, dtype=bool)
        for j in range(1, domain.shape[1]):
            first[:, j] = ~np.any(domain[:, :j] == domain[:, j : j + 1], axis=1)
        seen = np.cumsum(first, axis=1)
        enough = seen[:, -1] > self.landmark_faults
        limit = np.take_along_axis(grown, order, axis=1)[
            rows, np.argmax(seen > self.landmark_faults, axis=1)
        ]
        inside = self._reach_km(landmark, grown) < self.to_foreign[landmark, region[:, None]]
        passes: npt.NDArray[np.bool_] = np.all(inside | (grown > limit[:, None]), axis=1)
        return enough & passes

    def contradictions(
        self,
        region: npt.NDArray[np.int64],
        landmark: npt.NDArray[np.int64],
        bound_km: npt.NDArray[np.float64],
        licensed: npt.NDArray[np.bool_],
    ) -> int:
        """Proofs whose chip's own place contradicts the distance tables: the chip is
        inside its base disk, so that disk must reach land of the chip's side. Any count
        above zero means a table (or the physics of the study) is wrong."""
        if not self._enabled:
            return 0
        _, base_lm, reach = self._base_reach(landmark, bound_km)
        own_side = np.where(
            licensed, self.to_licensed[base_lm, region], self.to_foreign[base_lm, region]
        )
        return int(np.count_nonzero(reach < own_side))

    def _base_reach(
        self, landmark: npt.NDArray[np.int64], bound_km: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Grown radii, the base disk's landmark and the base polygon's reach per proof."""
        grown = self.grown(bound_km)
        base = np.argmin(grown, axis=1)
        rows = np.arange(landmark.shape[0])
        base_lm = landmark[rows, base]
        return grown, base_lm, self._reach_km(base_lm, grown[rows, base])

    def by_probe(  # noqa: PLR0917  (parallel arrays, one per proof attribute)
        self,
        region: npt.NDArray[np.int64],
        landmark: npt.NDArray[np.int64],
        bound_km: npt.NDArray[np.float64],
        licensed: npt.NDArray[np.bool_],
        probe_lat: npt.NDArray[np.float64],
        probe_lon: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Whether land across the border from each chip lies inside every one of its
        caps: then the verdict is INCONCLUSIVE. The probes tried are the given point (the
        nearest such land to the chip, NaN if none) and the nearest such land to each of
        the proof's landmarks."""
        if not self._enabled:
            return np.zeros(landmark.shape[0], dtype=bool)
        side = np.where(licensed, 0, 1)[:, None]
        near = self._near[landmark, region[:, None], side]
        lat = np.concatenate([probe_lat[:, None], near[..., 0]], axis=1)
        lon = np.concatenate([probe_lon[:, None], near[..., 1]], axis=1)
        d = distance_km(
            self._lat[landmark][:, :, None],
            self._lon[landmark][:, :, None],
            lat[:, None, :],
            lon[:, None, :],
        )
        inside = d < (self.grown(bound_km) - PROBE_MARGIN_KM)[:, :, None]
        return np.asarray(np.any(np.all(inside, axis=1), axis=1))

    def grown(self, bound_km: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Each bound widened by the policy and grown to the sphere, as the appraiser does."""
        return grow(np.asarray(bound_km + self._extra_km, dtype=np.float64))

    def _reach_km(
        self, landmark: npt.NDArray[np.int64], grown_km: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        reach = np.full(grown_km.shape, np.inf)
        inside = np.isfinite(grown_km) & (grown_km < REACH_TABLE_KM - 2 * REACH_STEP_KM)
        step = np.ceil(grown_km[inside] / REACH_STEP_KM).astype(np.int64) + 1
        reach[inside] = self._reach[landmark[inside], step]
        return reach

    def exact(self, bounds: Sequence[LandmarkBound], region: str) -> Verdict:
        """The real appraiser's verdict, with the pipeline's tolerance of lying landmarks."""
        appraisal = self.appraiser.appraise(bounds, region)
        return survive_faults(
            self.appraiser,
            appraisal,
            fault_domains(bounds, self._operators),
            region,
            self.landmark_faults,
        ).verdict


def shortcut_verdict(rule: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """The verdict code (index into :data:`VERDICT_CODES`) each decided rule implies."""
    codes = np.full(rule.shape, -1, dtype=np.int8)
    codes[rule == Shortcut.ALLOWED_BY_REACH] = CODE_OF[Verdict.ALLOWED]
    codes[rule == Shortcut.OUTSIDE_BY_REACH] = CODE_OF[Verdict.OUTSIDE]
    codes[rule == Shortcut.INCONCLUSIVE_BY_PROBE] = CODE_OF[Verdict.INCONCLUSIVE]
    codes[rule == Shortcut.INCONCLUSIVE_UNBOUNDED] = CODE_OF[Verdict.INCONCLUSIVE]
    return codes


def _indices(countries: Countries, codes: frozenset[str]) -> list[int]:
    return [countries.code_index(c) for c in sorted(codes) if countries.has(c)]


def _floor(d: npt.NDArray[np.float64]) -> float:
    """A lower bound on the distance to a set of land from distances to its vertices."""
    return max(0.0, float(d.min()) - SEGMENT_SLACK_KM) if d.size else math.inf


def _reach_table(phi: float) -> npt.NDArray[np.float64]:
    """Polygon reach (km) against grown disk radius on a grid of REACH_STEP_KM (inf where
    no polygon can be drawn). Made non-decreasing by the caller, looking up the next step
    up bounds the reach from above."""
    radii = np.arange(0.0, REACH_TABLE_KM + REACH_STEP_KM, REACH_STEP_KM)
    return np.asarray([ring_reach(phi, r / EARTH_RADIUS_KM) * EARTH_RADIUS_KM for r in radii])
