"""Spherical geometry with an outward margin, vectorised with numpy.

Verdicts are decided on a sphere of radius :data:`EARTH_RADIUS_KM`, using the geodetic
latitude and longitude of every point as spherical coordinates. Great-circle distance on
that sphere differs from the WGS-84 geodesic distance between the same coordinates by less
than :data:`ELLIPSOID_MARGIN` (relative) plus :data:`ABSOLUTE_MARGIN_KM`; a property test
against geographiclib checks it. So every bound is grown by that much before it is used
(:func:`grow`): the spherical cap always contains the true ellipsoidal disk.

The margin is symmetric: WGS-84 geodesic distance exceeds the spherical one by at most
about 0.45% (near the poles), so :func:`shrink` uses the same factor inward.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_KM = 6371.0088
"""IUGG mean radius."""
ELLIPSOID_MARGIN = 0.0060
"""Great-circle distance on this sphere exceeds the WGS-84 geodesic distance by at most
about 0.562% (short north-south paths at the equator, where the meridional radius of
curvature is 6335.4 km); 0.6% covers it with room to spare (tested)."""
ABSOLUTE_MARGIN_KM = 0.05
"""Added to every grown bound to cover floating-point rounding."""

FloatArray = NDArray[np.float64]
Radius = TypeVar("Radius", float, FloatArray)


def grow(bound_km: Radius) -> Radius:
    """The spherical radius (km) that surely contains the ellipsoidal disk of ``bound_km``
    (a number, or an array of them for fleet studies)."""
    return bound_km * (1.0 + ELLIPSOID_MARGIN) + ABSOLUTE_MARGIN_KM


def shrink(radius_km: float) -> float:
    """The spherical radius (km) whose cap surely lies inside the ellipsoidal disk of
    ``radius_km``: for licensed circles, which must be approximated inward."""
    return max(0.0, (radius_km - ABSOLUTE_MARGIN_KM) / (1.0 + ELLIPSOID_MARGIN))


def distance_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> FloatArray:
    """Great-circle distance on the sphere (haversine: well conditioned at small distances)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def angle_between(phi1: ArrayLike, lam1: ArrayLike, phi2: ArrayLike, lam2: ArrayLike) -> FloatArray:
    """Central angle in radians between points given in radians (haversine)."""
    p1, p2 = np.asarray(phi1, dtype=float), np.asarray(phi2, dtype=float)
    dl = np.asarray(lam2, dtype=float) - np.asarray(lam1, dtype=float)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def destination_rad(
    phi: ArrayLike, lam: ArrayLike, bearing: ArrayLike, angle: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Points ``angle`` radians along ``bearing`` (radians) from (phi, lam), all radians.

    The longitude returned is the start's longitude plus an offset in (-pi, pi], not
    wrapped into [-pi, pi]: callers unwrap around a reference meridian.
    """
    p1, l1 = np.asarray(phi, dtype=float), np.asarray(lam, dtype=float)
    theta, delta = np.asarray(bearing, dtype=float), np.asarray(angle, dtype=float)
    sp1, cp1, sd, cd = np.sin(p1), np.cos(p1), np.sin(delta), np.cos(delta)
    sin_p2 = sp1 * cd + cp1 * sd * np.cos(theta)
    p2 = np.arcsin(np.clip(sin_p2, -1.0, 1.0))
    l2 = l1 + np.arctan2(np.sin(theta) * sd * cp1, cd - sp1 * sin_p2)
    return p2, l2


def destination(
    lat: float, lon: float, bearing_deg: ArrayLike, distance: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Points at ``distance`` km along ``bearing_deg`` from (lat, lon), in degrees."""
    p2, l2 = destination_rad(
        math.radians(lat),
        math.radians(lon),
        np.radians(bearing_deg),
        np.asarray(distance, dtype=float) / EARTH_RADIUS_KM,
    )
    return np.degrees(p2), (np.degrees(l2) + 540.0) % 360.0 - 180.0


def wrap_lon(lon: ArrayLike, reference: float = 0.0) -> FloatArray:
    """Longitude in degrees moved by whole turns into [reference - 180, reference + 180)."""
    return np.asarray(
        (np.asarray(lon, dtype=float) - reference + 180.0) % 360.0 - 180.0 + reference
    )


def aeqd_forward(
    lat0: float, lon0: float, lat: ArrayLike, lon: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Azimuthal equidistant projection centred on (lat0, lon0), in km.

    Distance and direction from the centre are exact. The inverse map is 1-Lipschitz
    (the sphere's metric in polar form is never larger than the plane's), which the
    estimate uses only for display; verdicts never depend on this projection.
    """
    p0, l0 = math.radians(lat0), math.radians(lon0)
    p, dl = np.radians(lat), np.radians(np.asarray(lon, dtype=float)) - l0
    cos_c = np.sin(p0) * np.sin(p) + np.cos(p0) * np.cos(p) * np.cos(dl)
    c = np.arccos(np.clip(cos_c, -1.0, 1.0))
    az = np.arctan2(
        np.cos(p) * np.sin(dl), np.cos(p0) * np.sin(p) - np.sin(p0) * np.cos(p) * np.cos(dl)
    )
    rho = c * EARTH_RADIUS_KM
    return np.asarray(rho * np.sin(az)), np.asarray(rho * np.cos(az))


def aeqd_inverse(
    lat0: float, lon0: float, x: ArrayLike, y: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Back from the projection centred on (lat0, lon0) to latitude and longitude."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return destination(lat0, lon0, np.degrees(np.arctan2(x, y)), np.hypot(x, y))
