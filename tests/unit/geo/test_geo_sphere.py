"""The earth model and the disk polygons: each approximation errs outward (or inward for
licensed circles), checked against WGS-84 geodesics from geographiclib."""

from __future__ import annotations

import math

import numpy as np
import shapely
from geo_truth import WGS84, geodesic_km
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.geo.feasible import cap_rings, contains_point, normalised_parts, ring_radius
from geoattest.geo.sphere import (
    EARTH_RADIUS_KM,
    distance_km,
    grow,
    shrink,
    wrap_lon,
)

lats = st.one_of(st.floats(-90, 90), st.floats(85, 90), st.floats(-90, -85), st.floats(-1, 1))
lons = st.one_of(st.floats(-180, 180), st.floats(175, 180), st.floats(-180, -175))


@settings(max_examples=400, deadline=None)
@given(lats, lons, lats, lons)
def test_sphere_margin_covers_the_ellipsoid_both_ways(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    geodesic = geodesic_km(lat1, lon1, lat2, lon2)
    sphere = float(distance_km(lat1, lon1, lat2, lon2))
    assert sphere <= grow(geodesic)
    assert shrink(geodesic) <= sphere + 1e-9


def test_worst_case_for_the_margin_is_north_south_at_the_equator() -> None:
    # The meridional radius of curvature is smallest at the equator (6335.4 km).
    geodesic = geodesic_km(-0.05, 10.0, 0.05, 10.0)
    sphere = float(distance_km(-0.05, 10.0, 0.05, 10.0))
    assert 1.0055 < sphere / geodesic < grow(geodesic) / geodesic


@settings(max_examples=150, deadline=None)
@given(
    st.floats(-89, 89),
    lons,
    st.floats(0.01, 6000),
    st.lists(st.tuples(st.floats(0, 360), st.floats(0, 1)), min_size=20, max_size=20),
)
def test_outer_ring_contains_every_point_of_the_disk(
    lat: float, lon: float, radius_km: float, samples: list[tuple[float, float]]
) -> None:
    phi, lam = np.radians([lat]), np.radians([lon])
    rings, ok = cap_rings(phi, lam, np.array([radius_km / EARTH_RADIUS_KM]), lam[0])
    if not ok[0]:
        # It could not be drawn only because its edge comes near a pole (the straight
        # lon/lat edges stray too far there to bound soundly), or it is a hemisphere.
        assert abs(lat) + math.degrees(radius_km / EARTH_RADIUS_KM) > 74.0
        return
    polygon = shapely.Polygon(rings[0])
    assert polygon.is_valid
    # Points on the edge and inside the spherical disk (destination on the sphere).
    for azimuth, fraction in [*samples, (0.0, 1.0), (90.0, 1.0), (180.0, 1.0), (270.0, 1.0)]:
        b = np.radians(azimuth)
        d = radius_km * (fraction if fraction < 0.5 else 1.0) / EARTH_RADIUS_KM
        p = math.asin(math.sin(phi[0]) * math.cos(d) + math.cos(phi[0]) * math.sin(d) * math.cos(b))
        q = lam[0] + math.atan2(
            math.sin(b) * math.sin(d) * math.cos(phi[0]),
            math.cos(d) - math.sin(phi[0]) * math.sin(p),
        )
        assert contains_point(polygon, math.degrees(p), float(wrap_lon(math.degrees(q))))


@settings(max_examples=100, deadline=None)
@given(st.floats(-80, 80), lons, st.floats(1, 3000), st.floats(0, 360), st.floats(0, 1))
def test_inner_ring_lies_inside_the_disk(
    lat: float, lon: float, radius_km: float, azimuth: float, fraction: float
) -> None:
    phi, lam = np.radians([lat]), np.radians([lon])
    rings, ok = cap_rings(
        phi, lam, np.array([radius_km / EARTH_RADIUS_KM]), lam[0], 128, outward=False
    )
    if not ok[0]:
        return
    ring = rings[0]
    # Every vertex and every point along every edge is within the radius.
    t = np.linspace(0.0, 1.0, 9)[:, None, None]
    edges = ring[None, :, :] * (1 - t) + np.roll(ring, -1, axis=0)[None, :, :] * t
    pts = edges.reshape(-1, 2)
    d = distance_km(lat, lon, pts[:, 1], pts[:, 0])
    assert float(d.max()) <= radius_km + 1e-6
    del azimuth, fraction


def test_ring_radius_refuses_caps_over_a_pole_or_a_hemisphere() -> None:
    assert math.isnan(ring_radius(math.radians(89.9), 0.01))
    assert math.isnan(ring_radius(0.0, math.pi / 2))
    assert math.isfinite(ring_radius(math.radians(60.0), 0.1))


def test_a_disk_across_the_antimeridian_folds_back_into_range() -> None:
    phi, lam = np.radians([-17.0]), np.radians([179.9])
    rings, ok = cap_rings(phi, lam, np.array([200 / EARTH_RADIUS_KM]), lam[0])
    assert ok[0]
    polygon = shapely.Polygon(rings[0])
    assert polygon.bounds[2] > 180.0
    parts = normalised_parts(polygon)
    assert len(parts) == 2
    assert all(p.bounds[0] >= -180.0 and p.bounds[2] <= 180.0 for p in parts)
    # A point just east of the antimeridian, 50 km away, is inside.
    direct = WGS84.Direct(-17.0, 179.9, 90.0, 50_000)
    assert direct["lon2"] < 0
    assert contains_point(polygon, direct["lat2"], direct["lon2"])
