"""The feasible region: an outer polygon around the intersection of the landmarks' disks.

Each landmark's disk (a spherical cap of radius :func:`~geoattest.geo.sphere.grow` of its
bound) is replaced by a polygon in longitude/latitude that provably contains it:

1. Vertices are placed on a circle of angular radius ``rho_v`` around the landmark, with
   ``tan(rho_v) = tan(rho + eps) / cos(pi / n)``: the spherical polygon whose edges are
   great-circle arcs through them then has inscribed radius ``rho + eps``, so every point
   of each edge's great circle is at least ``rho + eps`` from the centre.
2. The polygon's edges are straight in longitude/latitude, not great-circle arcs. Along a
   straight edge ``x(t)`` (unit vector, ``t`` in [0, 1]) the distance to the arc's plane
   ``g(t) = n . x(t)`` vanishes at both ends and ``|g''| <= |x''| <= (|dphi| + |dlam|)^2``,
   so the edge strays at most ``asin((|dphi| + |dlam|)^2 / 8)`` from the great circle. That
   is ``eps``: it is computed from the actual vertices and checked after placing them.

The polygon boundary therefore lies wholly outside the open cap; the cap is connected and
contains its centre, which is inside the polygon, so the cap lies inside the polygon. This
needs a cap that does not contain a pole (and so spans less than 180 degrees of longitude):
such caps (and caps of a hemisphere or more) cannot be drawn and are *left out* of the
intersection, which only makes it larger (sound). If no cap can be drawn, there is no
bounded outer region and the caller fails closed.

Longitudes are unwrapped around the meridian of the drawn cap with the smallest radius, so
the region is one polygon even across the antimeridian; its longitudes may leave
[-180, 180] and :func:`normalised_parts` folds them back for lookups.

Emptiness is claimed only when outer polygons (or a pair of grown caps) are disjoint, so
INCONSISTENT is never claimed for measurements that a real chip could produce.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from geoattest.geo.sphere import EARTH_RADIUS_KM, FloatArray, angle_between

VERTICES = 48
"""Vertices per disk polygon; the circumscription costs a factor 1/cos(pi/48), i.e. 0.21%."""
POLE_CLEARANCE = math.radians(0.5)
"""A drawable cap stays this far from either pole."""
_TINY = 1e-12
_DEGREES = 180.0 / math.pi
_RADIANS = math.pi / 180.0


@dataclass(frozen=True, slots=True)
class Disks:
    """Landmark disks on the sphere: centres in radians and grown angular radii, as plain
    floats (a proof has a handful of disks, where numpy's per-call cost would dominate)."""

    phi: list[float]
    lam: list[float]
    rho: list[float]

    @classmethod
    def from_degrees(cls, disks: Iterable[tuple[float, float, float]]) -> Disks:
        """Disks from (latitude, longitude, radius) each, the centre in degrees and the
        radius in km already grown."""
        phi: list[float] = []
        lam: list[float] = []
        rho: list[float] = []
        radians = math.radians
        for lat, lon, radius_km in disks:
            phi.append(radians(lat))
            lam.append(radians(lon))
            rho.append(radius_km / EARTH_RADIUS_KM)
        return cls(phi, lam, rho)

    def __len__(self) -> int:
        return len(self.rho)


@dataclass(frozen=True, slots=True)
class OuterRegion:
    """The outcome of bounding the intersection of the disks.

    Exactly one holds: ``empty`` (provably no common point), ``polygon`` is a region that
    contains every common point, or neither (no bounded outer region could be drawn).
    """

    empty: bool
    polygon: BaseGeometry | None
    used: tuple[int, ...] = ()
    """Indices of the disks whose polygons were intersected."""
    dropped: tuple[int, ...] = ()
    """Indices of disks that could not be drawn (a pole, a hemisphere) and were left out."""
    needs: frozenset[int] | None = None
    """Indices of the disks the outcome depends on: the disks of any subset holding these,
    in any order, give the same region (the others each contain the chosen base cap and
    cut nothing). None where no such promise is made (another cap's radius ties the
    base's, so the base could change)."""


_COS_HALF = {n: math.cos(math.pi / n) for n in (48, 128, 180)}
_SIN_HALF = {n: math.sin(math.pi / n) for n in (48, 128, 180)}


def _circumscribed(rho: float, vertices: int) -> float:
    """Vertex radius of the n-gon of great-circle arcs whose inscribed radius is ``rho``."""
    c = _COS_HALF.get(vertices) or math.cos(math.pi / vertices)
    return math.atan(math.tan(rho) / c)


def _stray_bound(phi: float, rho_v: float, vertices: int) -> float:
    """How far (radians) a straight lon/lat edge can stray from its great-circle arc.

    An edge spans the arc ``s = 2 asin(sin(rho_v) sin(pi / n))``; along it latitude moves at
    most ``s`` and longitude at most ``s / cos(phi_max)``, ``phi_max = |phi| + rho_v`` the
    highest latitude the cap reaches, so ``|dphi| + |dlam| <= s (1 + 1 / cos(phi_max))``.
    """
    sin_half = _SIN_HALF.get(vertices) or math.sin(math.pi / vertices)
    s = 2.0 * math.asin(min(1.0, math.sin(rho_v) * sin_half))
    reach = abs(phi) + rho_v
    if reach >= math.pi / 2 - POLE_CLEARANCE:
        return math.inf
    g = (s * (1.0 + 1.0 / math.cos(reach))) ** 2 / 8.0
    return math.asin(g) if g < 1.0 else math.inf


def ring_radius(phi: float, rho: float, vertices: int = VERTICES, *, outward: bool = True) -> float:
    """The vertex radius (radians) of a sound ring around the cap, or NaN if none can be drawn.

    Outward: the lon/lat ring encloses the cap. Inward: the ring lies inside the cap.
    """
    if not (0.0 <= rho < math.pi / 2 - 1e-6):
        return math.nan
    if outward:
        # Bound the stray at a radius at least as large as the one we end up using.
        first = _stray_bound(phi, _circumscribed(rho, vertices), vertices)
        if not math.isfinite(first) or rho + 2.0 * first >= math.pi / 2 - 1e-6:
            return math.nan
        trial = _circumscribed(rho + 2.0 * first + 1e-12, vertices)
        eps = _stray_bound(phi, trial, vertices)
        if not math.isfinite(eps) or rho + eps >= math.pi / 2 - 1e-6:
            return math.nan
        rho_v = _circumscribed(rho + eps, vertices)
        return rho_v if rho_v <= trial else math.nan
    eps = _stray_bound(phi, rho, vertices)
    if not math.isfinite(eps) or eps >= rho:
        return math.nan
    return rho - eps


def ring_reach(phi: float, rho: float, vertices: int = VERTICES) -> float:
    """How far (radians) any point of the outer polygon drawn around a cap can lie from its
    centre, or inf if none can be drawn; fleet studies use this to decide a verdict from
    one disk without drawing it."""
    rho_v = ring_radius(phi, rho, vertices)
    if not math.isfinite(rho_v):
        return math.inf
    return reach_of_ring(phi, rho_v, vertices)


def reach_of_ring(phi: float, rho_v: float, vertices: int = VERTICES) -> float:
    """:func:`ring_reach` of a ring whose vertex radius ``rho_v`` is known: vertices sit at
    it and each straight edge strays at most the stray bound beyond the arc between them."""
    return rho_v + _stray_bound(phi, rho_v, vertices)


_UNIT: dict[int, tuple[FloatArray, FloatArray]] = {}


def _bearings(vertices: int) -> tuple[FloatArray, FloatArray]:
    """cos and sin of each vertex's bearing, clockwise from north."""
    if vertices not in _UNIT:
        theta = np.linspace(0.0, 2 * math.pi, vertices, endpoint=False)
        _UNIT[vertices] = (np.cos(theta), np.sin(theta))
    return _UNIT[vertices]


def ring(
    phi: float, lam: float, rho_v: float, lam_ref: float, vertices: int = VERTICES
) -> FloatArray:
    """The ring (degrees, shape ``(vertices, 2)``, longitude then latitude, not closed)
    with vertices at ``rho_v`` around the centre, longitudes unwrapped around ``lam_ref``
    (all radians).

    One ring per call, with the centre's terms as plain floats: a proof draws one or two
    rings of 48 vertices, where each numpy call costs more than its arithmetic."""
    cos_t, sin_t = _bearings(vertices)
    lam_c = lam_ref + (lam - lam_ref + math.pi) % (2 * math.pi) - math.pi
    sp, cp, sr, cr = math.sin(phi), math.cos(phi), math.sin(rho_v), math.cos(rho_v)
    # Each step a ufunc written into its place: np.clip's wrapper and the temporaries
    # cost more than the arithmetic on 48 values.
    sin_p2 = cos_t * (cp * sr)
    sin_p2 += sp * cr
    np.minimum(np.maximum(sin_p2, -1.0, out=sin_p2), 1.0, out=sin_p2)
    out = np.empty((vertices, 2))
    lon, lat = out[:, 0], out[:, 1]
    np.arcsin(sin_p2, out=lat)
    east = sin_t * sr
    east *= cp
    north = sin_p2 * sp
    np.subtract(cr, north, out=north)
    np.arctan2(east, north, out=lon)
    lon += lam_c
    out *= _DEGREES
    return out


def cap_rings(
    phi: FloatArray,
    lam: FloatArray,
    rho: FloatArray,
    lam_ref: float,
    vertices: int = VERTICES,
    *,
    outward: bool = True,
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Sound rings (shape ``(m, vertices, 2)``) around (``outward``) or inside caps, and
    whether each could be drawn. A ring whose flag is False is garbage and must not be used.
    """
    rho_v = [
        ring_radius(p, r, vertices, outward=outward)
        for p, r in zip(phi.tolist(), rho.tolist(), strict=True)
    ]
    ok = np.isfinite(rho_v)
    xy = [
        ring(p, la, r if math.isfinite(r) else 0.0, lam_ref, vertices)
        for p, la, r in zip(phi.tolist(), lam.tolist(), rho_v, strict=True)
    ]
    return np.asarray(xy, dtype=float).reshape(len(rho_v), vertices, 2), ok


@dataclass(frozen=True, slots=True)
class Cut:
    """Which disks bound the region, before any is drawn."""

    base: int
    """The smallest drawable disk: its polygon is always intersected."""
    used: tuple[int, ...]
    """The disks that cut the base cap and can be drawn (the base first)."""
    dropped: tuple[int, ...]
    """The disks that cut the base cap and cannot be drawn."""
    radius: dict[int, float]
    """Vertex radius of each drawable disk of ``used``."""
    needs: frozenset[int] | None
    """See :attr:`OuterRegion.needs`."""


def cut(disks: Disks, vertices: int = VERTICES) -> Cut | OuterRegion:
    """The disks to draw, or the outcome where drawing would decide nothing (no disk,
    provably empty, or no disk drawable). Where only the base is used, its polygon alone
    is the (non-empty) outer region."""
    k = len(disks)
    if k == 0:
        return OuterRegion(empty=False, polygon=None)
    rho_list, phi_list = disks.rho, disks.phi
    radius: dict[int, float] = {}
    """Vertex radius of the base and of each disk that cuts it (of every disk where the
    smallest cannot be drawn)."""
    base = min(range(k), key=rho_list.__getitem__)
    radius[base] = ring_radius(phi_list[base], rho_list[base], vertices)
    if not math.isfinite(radius[base]):
        for i in range(k):
            if i not in radius:
                radius[i] = ring_radius(phi_list[i], rho_list[i], vertices)
        drawable = [(rho_list[i], i) for i in range(k) if math.isfinite(radius[i])]
        if not drawable:
            return _pairwise_only(disks)
        base = min(drawable)[1]
    lam_list = disks.lam
    phi_b, lam_b, rho_b = phi_list[base], lam_list[base], rho_list[base]
    cos_b = math.cos(phi_b)
    sin, cos, asin, sqrt = math.sin, math.cos, math.asin, math.sqrt
    rel = [base]
    for i in range(k):
        if i == base:
            continue
        # The central angle from the base's centre (haversine, in plain floats: a proof
        # has a handful of disks, where numpy's per-call cost would dominate).
        p, rho_i = phi_list[i], rho_list[i]
        h = sin((p - phi_b) / 2) ** 2 + cos_b * cos(p) * sin((lam_list[i] - lam_b) / 2) ** 2
        d = 2 * asin(sqrt(min(1.0, max(0.0, h))))
        if d > rho_b + rho_i + _TINY:
            # Two caps farther apart than their radii have no common point.
            return OuterRegion(empty=True, polygon=None)
        if d + rho_b > rho_i:
            rel.append(i)  # cap i does not wholly contain the base cap: it cuts the region
    used: list[int] = []
    dropped: list[int] = []
    for i in rel:
        if i not in radius:
            radius[i] = ring_radius(phi_list[i], rho_list[i], vertices)
        (used if math.isfinite(radius[i]) else dropped).append(i)
    # Every disk smaller than the base is in ``rel`` (it cannot contain the base cap), so
    # a subset holding ``rel`` picks the same base, unless a radius ties the base's.
    ties = any(r == rho_b for i, r in enumerate(rho_list) if i != base)
    return Cut(base, tuple(used), tuple(dropped), radius, None if ties else frozenset(rel))


def outer_region(
    disks: Disks, vertices: int = VERTICES, *, chosen: Cut | None = None
) -> OuterRegion:
    """An outer polygon of the disks' intersection (see the module docstring); ``chosen``
    is :func:`cut` of these disks where the caller has it already."""
    found = cut(disks, vertices) if chosen is None else chosen
    if isinstance(found, OuterRegion):
        return found
    lam_ref = disks.lam[found.base]
    xy = [ring(disks.phi[i], disks.lam[i], found.radius[i], lam_ref, vertices) for i in found.used]
    polygons = np.asarray(shapely.polygons(np.stack(xy)), dtype=object)
    region: BaseGeometry = (
        polygons[0] if len(found.used) == 1 else shapely.intersection_all(polygons)
    )
    if region.is_empty:
        return OuterRegion(empty=True, polygon=None, used=found.used, dropped=found.dropped)
    return OuterRegion(
        empty=False, polygon=region, used=found.used, dropped=found.dropped, needs=found.needs
    )


def _pairwise_only(disks: Disks) -> OuterRegion:
    """No cap can be drawn: the most we can say is whether two caps are disjoint."""
    phi, lam, rho = np.asarray(disks.phi), np.asarray(disks.lam), np.asarray(disks.rho)
    d = angle_between(phi[:, None], lam[:, None], phi[None, :], lam[None, :])
    if np.any(d > rho[:, None] + rho[None, :] + _TINY):
        return OuterRegion(empty=True, polygon=None)
    return OuterRegion(empty=False, polygon=None, dropped=tuple(range(len(disks))))


def normalised_parts(region: BaseGeometry) -> list[BaseGeometry]:
    """The region cut at the antimeridian, each part moved into [-180, 180] longitude."""
    minx, _, maxx, _ = region.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return [region]
    parts = []
    for shift in (-360.0, 0.0, 360.0):
        window = shapely.box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        piece = shapely.intersection(region, window)
        if not piece.is_empty:
            parts.append(shapely.affinity.translate(piece, xoff=shift))
    return parts


def area_km2(region: BaseGeometry | None) -> float:
    """Area on the sphere of a longitude/latitude polygon (edges taken as on the equal-area
    cylinder; a display figure, never used for a verdict)."""
    if region is None or region.is_empty:
        return 0.0
    total = 0.0
    for poly in shapely.get_parts(region):
        if poly.geom_type != "Polygon":
            continue
        total += ring_area_km2(shapely.get_coordinates(poly.exterior).tolist())
        for hole in poly.interiors:
            total -= ring_area_km2(shapely.get_coordinates(hole).tolist())
    return total


def ring_area_km2(xy: Iterable[Sequence[float]]) -> float:
    """Area of one closed lon/lat ring ([longitude, latitude] degrees per vertex; see
    :func:`area_km2`). Plain floats: rings here have tens of vertices."""
    sin = math.sin
    vertices = iter(xy)
    x, y = next(vertices)
    lam0, s0 = x * _RADIANS, sin(y * _RADIANS)
    twice = 0.0
    for x, y in vertices:
        lam1, s1 = x * _RADIANS, sin(y * _RADIANS)
        twice += (lam1 - lam0) * (s1 + s0)
        lam0, s0 = lam1, s1
    return abs(twice) / 2.0 * EARTH_RADIUS_KM**2


def contains_point(region: BaseGeometry | None, lat: float, lon: float) -> bool:
    """Whether (lat, lon) lies in the region (trying every unwrapping of the longitude)."""
    if region is None:
        return False
    return any(region.covers(shapely.Point(lon + shift, lat)) for shift in (-360.0, 0.0, 360.0))
