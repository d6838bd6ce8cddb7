"""The region appraiser: landmark bounds and a licensed region in, a verdict out.

Per proof (the verifier's hot path) it does little: widen each bound (earth model, border
margin, territorial sea if the policy counts it), draw the few disks that matter as outer
polygons and intersect them (:mod:`geoattest.geo.feasible`), then ask the prepared,
STR-tree indexed land pieces which countries that region touches
(:mod:`geoattest.geo.countries`). Everything heavy (reading Natural Earth, cutting and
preparing shapes) happens once, when the policy is loaded.

Decisions, where F is the outer feasible region (it contains every place the chip can be):

- INCONSISTENT: F is provably empty.
- INCONCLUSIVE: F cannot be bounded, or straddles the licensed region's edge, or (policy
  assumes land) touches no land at all.
- ALLOWED (country region, land assumption): F touches land, and only land of the licensed
  countries. Shaped regions: F cut to the land it touches lies inside the region's inner
  shape; without the land assumption F itself must.
- OUTSIDE: F does not touch the licensed region (its outer shape).
- ``embargoed``: F touches land, and only land of embargoed countries (without the land
  assumption: F lies inside them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geoattest.geo.assumption import LocationAssumption
from geoattest.geo.feasible import (
    VERTICES,
    Cut,
    Disks,
    OuterRegion,
    area_km2,
    cut,
    normalised_parts,
    outer_region,
    reach_of_ring,
    ring,
    ring_area_km2,
)
from geoattest.geo.policy import LicensedRegion, RegionPolicy
from geoattest.geo.reach import land_reach
from geoattest.geo.sphere import grow
from geoattest.verdict import LandmarkBound, RegionAppraisal, Verdict

_lowest = np.minimum.reduce
_highest = np.maximum.reduce
"""An array's extremes without ndarray.min's and max's Python wrappers."""


class GeoAppraiser:
    """Implements :class:`geoattest.verdict.RegionAppraiser` for one loaded policy."""

    def __init__(self, policy: RegionPolicy, *, by_reach: bool = True) -> None:
        """``by_reach``: where one disk alone draws the feasible region, decide the
        countries it touches from its reach (:mod:`geoattest.geo.reach`) rather than the
        land index; the same countries either way, which the property tests check."""
        self.policy = policy
        self._countries = policy.countries
        self._land = policy.location is not LocationAssumption.ANYWHERE
        self._reach = land_reach(policy.countries) if by_reach else None
        # Shapes for the no-assumption mode, built once: F must lie inside them.
        self._country_union: dict[str, BaseGeometry] = {}
        if not self._land:
            for region in policy.regions.values():
                if region.is_countries:
                    self._country_union[region.name] = self._union(region.countries)
            if policy.embargo:
                self._embargo_union: BaseGeometry | None = self._union(policy.embargo)
            else:
                self._embargo_union = None

    def _union(self, codes: frozenset[str]) -> BaseGeometry:
        geom = shapely.unary_union([self._countries.get(c).shape for c in sorted(codes)])
        shapely.prepare(geom)
        return geom

    def prepare(self, sites: Iterable[tuple[float, float]]) -> None:
        """Measure the distances from these landmark sites (latitude, longitude) to land
        now, not at their first proofs: a verifier does it before forking its workers,
        which then share them."""
        if self._reach is not None:
            for lat, lon in sites:
                if -180.0 < lon < 180.0:
                    self._reach.at(lat, lon)

    @property
    def policy_id(self) -> str:
        return self.policy.policy_id

    def has_region(self, region: str) -> bool:
        return region in self.policy.regions

    def feasible(self, bounds: Sequence[LandmarkBound]) -> OuterRegion:
        """The outer feasible region for these bounds, widened as the policy says."""
        return outer_region(self._disks(bounds))

    def _disks(self, bounds: Sequence[LandmarkBound]) -> Disks:
        extra = self.policy.extra_km
        return Disks.from_degrees(
            [(b.latitude, b.longitude, grow(b.bound_km + extra)) for b in bounds]
        )

    def appraise(self, bounds: Sequence[LandmarkBound], region: str) -> RegionAppraisal:
        """Verdict for a chip licensed to ``region``; never ALLOWED unless proven inside."""
        judged = self._judge(bounds, region, record=True)
        if isinstance(judged, RegionAppraisal):
            return judged
        if judged.ring is not None:
            region_json, area = _ring_geojson_and_area(judged.ring)
        else:
            assert judged.parts is not None
            assert judged.polygon is not None
            region_json, area = _geojson_and_area(judged.parts, judged.polygon)
        chosen = judged.cut
        return RegionAppraisal(
            verdict=judged.verdict,
            embargoed=self._embargoed(judged.parts, judged.touched),
            feasible_area_km2=area,
            feasible_region=region_json,
            detail=judged.detail,
            decided_by=(
                None
                if chosen.needs is None
                else frozenset(bounds[i].landmark_id for i in chosen.needs)
            ),
            extra={
                "touched": sorted(judged.touched),
                "disks_used": list(chosen.used),
                "disks_dropped": list(chosen.dropped),
                "location": self.policy.location.value,
                "widened_km": self.policy.extra_km,
            },
        )

    def verdict(self, bounds: Sequence[LandmarkBound], region: str) -> Verdict:
        """``appraise(bounds, region).verdict``, without what only the full record needs
        (GeoJSON, area, the embargo test): the fault-domain re-appraisals ask only this.
        Where one disk alone draws the region and its reach decides the countries it
        touches, nothing is drawn."""
        return self._judge(bounds, region, record=False).verdict

    def _judge(
        self, bounds: Sequence[LandmarkBound], region: str, *, record: bool
    ) -> RegionAppraisal | _Judged:
        """The verdict and what it was decided on, or the whole appraisal where the
        feasible region decides nothing (empty, unbounded, unusable input).

        Where one disk alone draws the region (its polygon is then never empty) and its
        reach decides the countries it touches under a land assumption, no polygon is
        built: the verdict needs only those countries, and the record (``record``) the
        ring's vertices, which are the polygon's. A ring that leaves [-180, 180] longitude
        is drawn, to be folded at the antimeridian."""
        licensed = self.policy.regions.get(region)
        if licensed is None:
            return _inconclusive(f"licensed region {region!r} is not defined by {self.policy_id}")
        if not bounds:
            return _inconclusive("no landmark bounds")
        unusable = _unusable(bounds)
        if unusable is not None:
            return _inconclusive(f"landmark {unusable!r} has an unusable bound")
        disks = self._disks(bounds)
        chosen = cut(disks)
        if isinstance(chosen, OuterRegion):
            if chosen.empty:
                return _inconsistent()
            return _inconclusive("no disk can be bounded (each holds a pole or a hemisphere)")
        lone = len(chosen.used) == 1
        by_reach = self._touched_by_reach(bounds, licensed, disks, chosen) if lone else None
        if by_reach is not None and not by_reach[1] and self._land:
            touched: Set[str] = by_reach[0]
            verdict, detail = self._land_verdict(licensed, touched)
            if not record:
                return _Judged(verdict, detail, chosen, touched)
            base = chosen.base
            xy = ring(disks.phi[base], disks.lam[base], chosen.radius[base], disks.lam[base])
            lons = xy[:, 0]
            if _lowest(lons) >= -180.0 and _highest(lons) <= 180.0:
                return _Judged(verdict, detail, chosen, touched, ring=xy.tolist())
        outer = outer_region(disks, chosen=chosen)
        if outer.polygon is None:
            return _inconsistent()
        parts = normalised_parts(outer.polygon)
        if not lone:
            by_reach = self._touched_by_reach(bounds, licensed, disks, chosen)
        if by_reach is not None:
            found, unknown = by_reach
            touched = set(found)
            for part in parts if unknown else ():
                touched |= self._countries.touching_among(part, unknown)
            verdict, detail = self._countries_verdict(licensed, parts, touched)
        else:
            touched_pieces = [self._countries.touching_pieces(p) for p in parts]
            codes_at = self._countries.code_at
            piece_code = self._countries.piece_code
            touched = {codes_at(int(i)) for hit in touched_pieces for i in set(piece_code[hit])}
            if licensed.is_countries:
                verdict, detail = self._countries_verdict(licensed, parts, touched)
            else:
                verdict, detail = self._shape_verdict(licensed, parts, touched_pieces)
        return _Judged(verdict, detail, chosen, touched, polygon=outer.polygon, parts=parts)

    def _touched_by_reach(
        self, bounds: Sequence[LandmarkBound], licensed: LicensedRegion, disks: Disks, chosen: Cut
    ) -> tuple[frozenset[str], frozenset[str]] | None:
        """The countries touched by the non-empty region that the disks ``chosen.used``
        draw (the base, the smallest, first), and those that the distances from the
        base's site to land cannot tell (:mod:`geoattest.geo.reach`), which the land
        index must; None where the site cannot be measured, or the licensed region is a
        shape, which needs the land pieces themselves."""
        if self._reach is None or not licensed.is_countries:
            return None
        base = chosen.base
        site = bounds[base]
        if not -180.0 < site.longitude < 180.0:
            return None
        reach = reach_of_ring(disks.phi[base], chosen.radius[base], VERTICES)
        phi, lam, rho = disks.phi, disks.lam, disks.rho
        caps = [(phi[i], lam[i], rho[i]) for i in chosen.used]
        return self._reach.at(site.latitude, site.longitude).touched(reach, caps)

    def _countries_verdict(
        self, licensed: LicensedRegion, parts: list[BaseGeometry], touched: Set[str]
    ) -> tuple[Verdict, str]:
        if self._land:
            return self._land_verdict(licensed, touched)
        if not touched & licensed.countries:
            return Verdict.OUTSIDE, "the feasible region does not touch the licensed region"
        if all(self._country_union[licensed.name].covers(p) for p in parts):
            return Verdict.ALLOWED, "the feasible region lies inside the licensed region"
        return Verdict.INCONCLUSIVE, "the feasible region straddles the licensed region's edge"

    @staticmethod
    def _land_verdict(licensed: LicensedRegion, touched: Set[str]) -> tuple[Verdict, str]:
        """A countries region under the land assumption: the touched countries decide."""
        if not touched & licensed.countries:
            if not touched:
                return Verdict.INCONCLUSIVE, "the feasible region touches no land"
            return Verdict.OUTSIDE, "the feasible region does not touch the licensed region"
        if touched <= licensed.countries:
            return Verdict.ALLOWED, "all land in the feasible region is licensed"
        return Verdict.INCONCLUSIVE, "the feasible region straddles the licensed region's edge"

    def _shape_verdict(
        self, licensed: LicensedRegion, parts: list[BaseGeometry], touched_pieces: list[Any]
    ) -> tuple[Verdict, str]:
        assert licensed.inner is not None
        assert licensed.outer is not None
        if self.policy.location is LocationAssumption.LAND:
            if not any(len(hit) for hit in touched_pieces):
                return Verdict.INCONCLUSIVE, "the feasible region touches no land"
            pieces = self._countries.pieces
            clipped = [
                shapely.intersection(pieces[hit], part)
                for part, hit in zip(parts, touched_pieces, strict=True)
                if len(hit)
            ]
            if not any(shapely.intersects(licensed.outer, c).any() for c in clipped):
                return Verdict.OUTSIDE, "no land in the feasible region is in the licensed region"
            if all(shapely.covers(licensed.inner, c).all() for c in clipped):
                return Verdict.ALLOWED, "all land in the feasible region is licensed"
        else:
            # Territorial waters or no assumption: judge the whole region (the stronger test).
            if not any(licensed.outer.intersects(p) for p in parts):
                return Verdict.OUTSIDE, "the feasible region does not touch the licensed region"
            if all(licensed.inner.covers(p) for p in parts):
                return Verdict.ALLOWED, "the feasible region lies inside the licensed region"
        return Verdict.INCONCLUSIVE, "the feasible region straddles the licensed region's edge"

    def _embargoed(self, parts: list[BaseGeometry] | None, touched: Set[str]) -> bool:
        embargo = self.policy.embargo
        if not embargo or not touched or not touched <= embargo:
            return False
        if self._land:
            return True
        assert self._embargo_union is not None
        assert parts is not None
        return all(self._embargo_union.covers(p) for p in parts)


@dataclass(frozen=True, slots=True)
class _Judged:
    """A verdict decided on a bounded feasible region, with what the full record needs:
    the lone disk's ring, or the drawn polygon and its parts folded into [-180, 180]
    (neither where only the verdict was asked)."""

    verdict: Verdict
    detail: str
    cut: Cut
    touched: Set[str]
    ring: list[list[float]] | None = None
    polygon: BaseGeometry | None = None
    parts: list[BaseGeometry] | None = None


def _unusable(bounds: Sequence[LandmarkBound]) -> str | None:
    """The first landmark whose bound no sound disk can be drawn from, if any: a site off
    the globe (a latitude or longitude out of range: a longitude past +-180 would unwrap
    the region beyond the one turn the antimeridian folding undoes, losing part of it),
    or a radius that is not the light-speed bound of a non-negative RTT widened by a
    non-negative motion allowance (a negative allowance would shrink the disk below
    where the landmark's clock puts the chip)."""
    isfinite = math.isfinite
    for b in bounds:
        lat, lon, radius_km = b.latitude, b.longitude, b.bound_km
        if not (
            isfinite(lat)
            and -90.0 <= lat <= 90.0
            and isfinite(lon)
            and -180.0 <= lon <= 180.0
            and isfinite(radius_km)
            and b.rtt_min_ns >= 0
            and b.motion_km >= 0.0
        ):
            return b.landmark_id
    return None


def _inconclusive(detail: str) -> RegionAppraisal:
    return RegionAppraisal(verdict=Verdict.INCONCLUSIVE, detail=detail)


def _inconsistent() -> RegionAppraisal:
    return RegionAppraisal(
        verdict=Verdict.INCONSISTENT, detail="the landmark disks have no common point"
    )


def _geojson_and_area(
    parts: list[BaseGeometry], region: BaseGeometry
) -> tuple[dict[str, Any], float]:
    """The region's GeoJSON and area; a single ring is read once."""
    if len(parts) == 1 and isinstance(parts[0], Polygon) and not parts[0].interiors:
        xy = shapely.get_coordinates(parts[0]).tolist()
        return {"type": "Polygon", "coordinates": [xy]}, ring_area_km2(xy)
    return _geojson(parts), area_km2(region)


def _ring_geojson_and_area(xy: list[list[float]]) -> tuple[dict[str, Any], float]:
    """The GeoJSON and area of the polygon a ring's vertices draw, closed as its polygon
    closes it: the same coordinates :func:`_geojson_and_area` reads back from it."""
    closed = [*xy, list(xy[0])]
    return {"type": "Polygon", "coordinates": [closed]}, ring_area_km2(closed)


def _geojson(parts: list[BaseGeometry]) -> dict[str, Any]:
    polygons = [p for part in parts for p in shapely.get_parts(part) if p.geom_type == "Polygon"]
    if not polygons:
        # A region of zero area (disks that only touch): report its hull as a polygon.
        hull = shapely.convex_hull(shapely.union_all(parts)).buffer(1e-9)
        polygons = [hull]
    coords = [
        [shapely.get_coordinates(p.exterior).tolist()]
        + [shapely.get_coordinates(h).tolist() for h in p.interiors]
        for p in polygons
    ]
    if len(coords) == 1:
        return {"type": "Polygon", "coordinates": coords[0]}
    return {"type": "MultiPolygon", "coordinates": coords}
