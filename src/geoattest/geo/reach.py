"""Which countries a landmark's disk can touch, from distances measured once per site.

Where one disk alone draws the feasible region F (every other disk contains it:
:func:`~geoattest.geo.feasible.lone_reach`), every point of F lies within that disk's
*reach* of its landmark's site L (:func:`~geoattest.geo.feasible.ring_reach`), and F
contains L. Then the countries F touches follow without the land index:

- a country whose land holds L is touched (L is in F);
- a country whose land does not hold L is untouched if its land's boundary lies farther
  from L than the reach. F is connected and holds L, so a point of F on that land would
  join L to it by a path inside F that crosses the land's boundary, within the reach.

Distances to a boundary are bounded from below per straight lon/lat segment A-B of the
land pieces' rings: along such a segment the arc length on the sphere is at most its
length ``s = hypot(dphi, dlam)`` in the lon/lat plane (radians), so a point X on it lies
at least ``(d(L, A) + d(L, B) - s) / 2`` from L (the triangle inequality from either end).
The minimum over a country's segments bounds its whole boundary. Any doubt (a boundary
within the reach plus :data:`MARGIN`) answers None and the caller asks the land index.
"""

from __future__ import annotations

import math
import weakref
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


@dataclass(frozen=True, slots=True)
class SiteReach:
    """One site's lower bounds on the distance to each country's land."""

    on: frozenset[str]
    """Codes whose land holds the site."""
    nearest: tuple[tuple[float, str], ...]
    """(radians, code), nearest first: no point of that code's land boundary lies nearer
    to the site."""

    def touched_within(self, reach: float) -> frozenset[str] | None:
        """The codes whose land a connected region holding the site and lying within
        ``reach`` (radians) of it touches; None where a boundary lies too near to tell."""
        for floor, code in self.nearest:
            if floor > reach + MARGIN:
                break
            if code not in self.on:
                return None
        return self.on


class LandReach:
    """Distances from landmark sites to every country's land, computed once per site."""

    def __init__(self, countries: Countries) -> None:
        self._countries = countries
        self._segments: tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]] | None = None
        self._sites: dict[tuple[float, float], SiteReach] = {}

    def _rings(self) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
        """Every ring vertex (radians) and, per vertex, the length of the segment to the
        next one of its ring (inf where none follows) and its country's index."""
        if self._segments is None:
            countries = self._countries
            rings = shapely.get_rings(countries.pieces)
            ring_piece = np.repeat(
                np.arange(len(countries.pieces)),
                shapely.get_num_interior_rings(countries.pieces) + 1,
            )
            xy, ring = shapely.get_coordinates(rings, return_index=True)
            lam, phi = np.radians(xy[:, 0]), np.radians(xy[:, 1])
            length = np.full(len(lam), np.inf)
            same = ring[1:] == ring[:-1]
            length[:-1][same] = np.hypot(np.diff(phi), np.diff(lam))[same]
            self._segments = (phi, lam, length, countries.piece_code[ring_piece[ring]])
        return self._segments

    def at(self, lat: float, lon: float) -> SiteReach:
        """The distances from the site at (``lat``, ``lon``) degrees, ``lon`` in [-180, 180]."""
        key = (lat, lon)
        held = self._sites.get(key)
        if held is not None:
            return held
        phi, lam, length, code = self._rings()
        d = angle_between(math.radians(lat), math.radians(lon), phi, lam)
        # A vertex that starts no segment (its ring's last) is bounded by its own distance.
        follows = np.isfinite(length)
        bound = d.copy()
        bound[follows] = (d[follows] + d[1:][follows[:-1]] - length[follows]) / 2.0
        floor = np.full(int(code.max()) + 1, np.inf)
        np.minimum.at(floor, code, bound)
        order = np.argsort(floor, kind="stable").tolist()
        nearest = tuple((float(floor[i]), self._countries.code_at(i)) for i in order)
        # The antimeridian's copies of the site: a piece touching +-180 may hold either.
        points = shapely.points([lon - 360.0, lon, lon + 360.0], [lat] * 3)
        on = frozenset().union(*(self._countries.touching(p) for p in points))
        found = SiteReach(on, nearest)
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
