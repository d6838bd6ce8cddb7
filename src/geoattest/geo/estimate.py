"""A *likely* location from a realistic-speed model: for people to look at, never for verdicts.

Honest Internet paths run in fibre at about 2/3 c and are longer than the straight line
(published inter-region tables: a median stretch of about 1.7), so a typical chip sits
about ``REALISTIC_FRACTION`` of its light-speed bound from each landmark. The estimate is
the point whose distances best match those guesses (weighted least squares, solved by
Gauss-Newton on the sphere, recentred at every step so each distance is exact). It is
pulled into the sound feasible region when it falls outside.

An adversary who adds delay moves this estimate at will; that is why verdicts ignore it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from geoattest.geo.feasible import contains_point
from geoattest.geo.sphere import aeqd_forward, aeqd_inverse, wrap_lon
from geoattest.verdict import LandmarkBound

FIBRE_FRACTION_OF_C = 2.0 / 3.0
PATH_STRETCH = 1.7
REALISTIC_FRACTION = FIBRE_FRACTION_OF_C / PATH_STRETCH
"""Typical distance as a fraction of the light-speed bound (about 0.39)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A likely position; ``model`` says how it was made, so no one mistakes it for proof."""

    lat: float
    lon: float
    model: str = f"fibre at 2/3 c, path stretch {PATH_STRETCH}: an estimate, not a bound"


def estimate_location(
    bounds: Sequence[LandmarkBound], feasible: BaseGeometry | None = None, iterations: int = 25
) -> Estimate | None:
    """The likely position for these bounds, or None without bounds."""
    if not bounds:
        return None
    lats = np.array([b.latitude for b in bounds], dtype=float)
    lons = np.array([b.longitude for b in bounds], dtype=float)
    guess = np.array([max(b.bound_km, 0.0) * REALISTIC_FRACTION for b in bounds])
    sigma = 0.3 * guess + 5.0
    nearest = int(np.argmin(guess))
    lat, lon = float(lats[nearest]), float(lons[nearest])
    if len(bounds) > 1:
        # Start from a weighted mean of the landmarks (nearest weighs most), in the plane
        # around the nearest landmark.
        x, y = aeqd_forward(lat, lon, lats, lons)
        w = 1.0 / sigma**2
        sx, sy = float(np.sum(w * x) / np.sum(w)), float(np.sum(w * y) / np.sum(w))
        la, lo = aeqd_inverse(lat, lon, sx, sy)
        lat, lon = float(la), float(lo)
        for _ in range(iterations):
            x, y = aeqd_forward(lat, lon, lats, lons)
            dist = np.hypot(x, y)
            safe = np.where(dist < 1e-9, 1e-9, dist)
            residual = (dist - guess) / sigma
            jac = np.column_stack([-x / safe / sigma, -y / safe / sigma])
            step, *_ = np.linalg.lstsq(jac, -residual, rcond=None)
            if not np.all(np.isfinite(step)):
                break
            la, lo = aeqd_inverse(lat, lon, step[0], step[1])
            lat, lon = float(la), float(lo)
            if math.hypot(step[0], step[1]) < 1e-3:
                break
    if feasible is not None and not feasible.is_empty and not contains_point(feasible, lat, lon):
        point = shapely.Point(float(wrap_lon(lon, feasible.centroid.x)), lat)
        snapped = nearest_points(feasible, point)[0]
        lat, lon = snapped.y, float(wrap_lon(snapped.x))
    return Estimate(lat=lat, lon=float(wrap_lon(lon)))
