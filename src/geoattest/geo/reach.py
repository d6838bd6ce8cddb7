"""Which countries the feasible region touches, from distances measured once per landmark site.

Let F be the feasible region, drawn non-empty as the intersection of the polygons of some
disks (:func:`~geoattest.geo.feasible.outer_region`); the smallest of them, the base, has
its landmark at site L, and every point of the base's polygon P lies within its *reach*
of L (:func:`~geoattest.geo.feasible.ring_reach`). P is connected and holds L, and F lies
inside P and holds every point inside all of the drawn disks' caps. Then, per country:

- untouched, if its land's boundary lies farther from L than the reach and its land does
  not hold L: a point of F (so of P) on that land would join L to it by a path inside P
  that crosses the boundary within the reach;
- touched, if its land holds L and its boundary lies farther than the reach (P, and so
  the non-empty F, lies inside that land);
- touched, if a point of its land (L itself, where its land holds L, or its boundary
  vertex nearest to L) lies inside every drawn cap, by :data:`MARGIN`;
- otherwise these distances cannot tell, and the caller asks the land index about that
  country alone.

Distances to a boundary are bounded from below per straight lon/lat segment A-B of the
land pieces' rings: along such a segment the arc length on the sphere is at most its
length ``s = hypot(dphi, dlam)`` in the lon/lat plane (radians), so a point X on it lies
at least ``(d(L, A) + d(L, B) - s) / 2`` from L (the triangle inequality from either end).
The minimum over a country's segments bounds its whole boundary.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from geoattest.geo.countries import Countries
from geoattest.geo.sphere import FloatArray, angle_between

MARGIN = 1e-9
"""Radians (about 6 mm) by which a boundary must lie beyond the reach: room for the
floating-point error of the distances and of the drawn vertices, both far below it."""
SITES_HELD = 1024
"""Sites whose distances are kept; the landmarks of a registry are far fewer."""


Cap = tuple[float, float, float]
"""A disk's cap: centre latitude and longitude, angular radius (radians)."""


@dataclass(frozen=True, slots=True)
class SiteReach:
    """One site's lower bounds on the distance to each country's land boundary, and a
    point of each nearby country's land."""

    phi: float
    lam: float
    """The site, radians."""
    on: frozenset[str]
    """Codes whose land holds the site."""
    nearest: tuple[tuple[float, str], ...]
    """(radians, code), nearest first: no point of that code's land boundary lies nearer
    to the site."""
    witness: dict[str, tuple[float, float]]
    """Per code whose land was measured vertex by vertex: its vertex nearest the site."""

    def touched(self, reach: float, caps: Sequence[Cap]) -> tuple[frozenset[str], frozenset[str]]:
        """The codes whose land F touches, and the codes these distances cannot tell (see
        the module docstring: F is non-empty, lies within ``reach`` of the site in a
        connected region holding it, and holds every point inside all ``caps``); F
        touches no other code's land."""
        found = set(self.on)
        unknown = set()
        for floor, code in self.nearest:
            if floor > reach + MARGIN:
                break
            points = [(self.phi, self.lam)] if code in self.on else []
            if code in self.witness:
                points.append(self.witness[code])
            if any(_inside(point, caps) for point in points):
                found.add(code)
            else:
                found.discard(code)
                unknown.add(code)
        return frozenset(found), frozenset(unknown)


def _inside(point: tuple[float, float], caps: Sequence[Cap]) -> bool:
    """Whether the point lies inside every cap, by :data:`MARGIN`."""
    phi, lam = point
    cos_phi = math.cos(phi)
    for c_phi, c_lam, rho in caps:
        h = (
            math.sin((c_phi - phi) / 2) ** 2
            + cos_phi * math.cos(c_phi) * math.sin((c_lam - lam) / 2) ** 2
        )
        if 2 * math.asin(math.sqrt(min(1.0, h))) >= rho - MARGIN:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Rings:
    """The land pieces' ring vertices (radians), each piece's run of them contiguous."""

    phi: FloatArray
    lam: FloatArray
    length: FloatArray
    """Per vertex: an upper bound on the arc length of the segment to the next vertex of
    its ring, ``hypot(dphi, dlam)``; inf for a ring's last vertex (no segment follows)."""
    piece: NDArray[np.int64]
    """Per vertex: its piece."""
    centre_phi: FloatArray
    centre_lam: FloatArray
    radius: FloatArray
    """Per piece: no point of its rings lies farther than this from its centre."""
    code: NDArray[np.int64]
    """Per piece: its country's index."""


NEAR = 0.1
"""Radians (about 640 km): pieces whose rings may come nearer to a site than this are
measured vertex by vertex; the others by their centre less their radius, a looser bound
that only a disk of that size would need tighter."""


def _rings(countries: Countries) -> _Rings:
    pieces = countries.pieces
    rings = shapely.get_rings(pieces)
    ring_piece = np.repeat(np.arange(len(pieces)), shapely.get_num_interior_rings(pieces) + 1)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    lam, phi = np.radians(xy[:, 0]), np.radians(xy[:, 1])
    length = np.full(len(lam), np.inf)
    same = ring[1:] == ring[:-1]
    length[:-1][same] = np.hypot(np.diff(phi), np.diff(lam))[same]
    piece = ring_piece[ring]
    starts = np.flatnonzero(np.r_[True, piece[1:] != piece[:-1]])
    # Any centre will do (the radius is measured from it): the mean of the unit vectors.
    unit = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)
    mean = np.add.reduceat(unit, starts, axis=0)
    norm = np.linalg.norm(mean, axis=1)
    mean[norm < 1e-9] = unit[starts][norm < 1e-9]
    centre_phi = np.arcsin(np.clip(mean[:, 2] / np.linalg.norm(mean, axis=1), -1.0, 1.0))
    centre_lam = np.arctan2(mean[:, 1], mean[:, 0])
    # A point of a segment lies within half the segment's length of one of its ends.
    to_vertex = angle_between(centre_phi[piece], centre_lam[piece], phi, lam)
    half = np.where(np.isfinite(length), length / 2.0, 0.0)
    radius = np.maximum.reduceat(to_vertex + half, starts)
    return _Rings(phi, lam, length, piece, centre_phi, centre_lam, radius, countries.piece_code)


class LandReach:
    """Distances from landmark sites to every country's land, computed once per site."""

    def __init__(self, countries: Countries) -> None:
        self._countries = countries
        self._rings: _Rings | None = None
        self._sites: dict[tuple[float, float], SiteReach] = {}

    def at(self, lat: float, lon: float) -> SiteReach:
        """The distances from the site at (``lat``, ``lon``) degrees, ``lon`` in [-180, 180]."""
        key = (lat, lon)
        held = self._sites.get(key)
        if held is not None:
            return held
        if self._rings is None:
            self._rings = _rings(self._countries)
        land = self._rings
        phi0, lam0 = math.radians(lat), math.radians(lon)
        coarse = angle_between(phi0, lam0, land.centre_phi, land.centre_lam) - land.radius
        near = coarse < NEAR
        floor = np.full(int(land.code.max()) + 1, np.inf)
        np.minimum.at(floor, land.code[~near], coarse[~near])
        at = np.flatnonzero(near[land.piece])
        follows = np.isfinite(land.length[at])
        after = np.minimum(at + 1, len(land.phi) - 1)
        d = angle_between(phi0, lam0, land.phi[at], land.lam[at])
        d_after = angle_between(phi0, lam0, land.phi[after], land.lam[after])
        # A vertex that starts no segment (its ring's last) is bounded by its own distance.
        bound = np.where(follows, (d + d_after - np.where(follows, land.length[at], 0.0)) / 2, d)
        vertex_code = land.code[land.piece[at]]
        np.minimum.at(floor, vertex_code, bound)
        # Each country's measured vertex nearest the site (off the antimeridian, where
        # the feasible region's parts and the land pieces may each hold only one copy).
        inner = np.abs(land.lam[at]) < math.pi
        ranked = np.lexsort((d[inner], vertex_code[inner]))
        codes_ranked = vertex_code[inner][ranked]
        _, first = np.unique(codes_ranked, return_index=True)
        picked = at[inner][ranked[first]]
        witness = {
            self._countries.code_at(int(c)): (float(land.phi[v]), float(land.lam[v]))
            for c, v in zip(codes_ranked[first].tolist(), picked.tolist(), strict=True)
        }
        order = np.argsort(floor, kind="stable").tolist()
        nearest = tuple((float(floor[i]), self._countries.code_at(i)) for i in order)
        # The antimeridian's copies of the site: a piece touching +-180 may hold either.
        points = shapely.points([lon - 360.0, lon, lon + 360.0], [lat] * 3)
        on = frozenset().union(*(self._countries.touching(p) for p in points))
        found = SiteReach(phi0, lam0, on, nearest, witness)
        if len(self._sites) >= SITES_HELD:
            self._sites.clear()
        self._sites[key] = found
        return found


_BY_COUNTRIES: weakref.WeakKeyDictionary[Countries, LandReach] = weakref.WeakKeyDictionary()


def land_reach(countries: Countries) -> LandReach:
    """The one :class:`LandReach` of ``countries``: every appraiser over the same land
    shares its segments and sites."""
    held = _BY_COUNTRIES.get(countries)
    if held is None:
        held = _BY_COUNTRIES[countries] = LandReach(countries)
    return held
