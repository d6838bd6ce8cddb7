"""Licences drawn by the operator, attacked with awkward shapes and awkward bounds.

Licences are random star-shaped polygons (concave, with or without a hole, several of them
as one MultiPolygon), polar caps bounded at the pole, and shapes across the antimeridian
cut in two as RFC 7946 asks. Landmarks stand near the shape, at a pole or on the
antimeridian, with bounds from 0 km to more than half the earth's circumference. The
oracle samples the exact feasible set by brute force (WGS-84 geodesics from the smallest
disk, kept where every other landmark's bound holds): ALLOWED must never come out when a
sampled point lies outside the licence, nor OUTSIDE when one lies inside it (on land, where
the policy assumes land). The shapes go through the loader the operator's file goes
through, so every shape must load. Country licences for chips near borders meet the same
oracle, each sampled point judged by the country whose land holds it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import shapely
from geo_truth import WGS84, bound_from, rtt_for_km
from hypothesis import event, given, settings
from hypothesis import strategies as st
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geoattest.geo import (
    GeoAppraiser,
    LocationAssumption,
    build_policy,
    country_region,
    geojson_region,
)
from geoattest.geo.countries import natural_earth
from geoattest.geo.feasible import normalised_parts
from geoattest.verdict import LandmarkBound, Verdict

HALF_CIRCUMFERENCE_KM = 20_037.5


@st.composite
def star(draw: st.DrawFn, lat0: float, lon0: float, scale: float) -> BaseGeometry:
    """A star-shaped polygon around (lat0, lon0) in degrees: simple, often concave,
    longitudes possibly past +-180 (cut later)."""
    n = draw(st.integers(3, 12))
    radii = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    turn = draw(st.floats(0, 2 * math.pi))
    ring = [
        (
            lon0 + scale * r * math.cos(turn + 2 * math.pi * i / n),
            lat0 + scale * r * math.sin(turn + 2 * math.pi * i / n),
        )
        for i, r in enumerate(radii)
    ]
    outer: BaseGeometry = shapely.Polygon(ring)
    if draw(st.booleans()):
        hole_scale = scale * min(radii) * draw(st.floats(0.05, 0.4))
        outer = outer.difference(shapely.Point(lon0, lat0).buffer(hole_scale, 4))
    return outer


def on_the_globe(shape: BaseGeometry) -> BaseGeometry:
    """The shape clipped to the poles and cut at the antimeridian, each piece moved into
    [-180, 180] (RFC 7946, 3.1.9)."""
    clipped = shapely.intersection(shape, shapely.box(-540.0, -90.0, 540.0, 90.0))
    pieces = normalised_parts(clipped)
    polygons = [p for piece in pieces for p in shapely.get_parts(piece) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(polygons) if len(polygons) > 1 else polygons[0]


@st.composite
def licence(draw: st.DrawFn) -> tuple[BaseGeometry, float, float]:
    """A licence shape and a point near its middle (latitude, longitude)."""
    kind = draw(st.sampled_from(["star", "antimeridian", "polar", "multi"]))
    if kind == "polar":
        north = draw(st.booleans())
        edge = draw(st.floats(60.0, 88.0))
        lat0 = (edge + 90.0) / 2 if north else -(edge + 90.0) / 2
        cap = (
            shapely.box(-180.0, edge, 180.0, 90.0)
            if north
            else shapely.box(-180.0, -90.0, 180.0, -edge)
        )
        lon0 = draw(st.floats(-180.0, 180.0))
        return cap, lat0, lon0
    lat0 = draw(st.floats(-75.0, 75.0))
    lon0 = draw(st.floats(170.0, 190.0)) if kind == "antimeridian" else draw(st.floats(-180, 180))
    scale = draw(st.sampled_from([0.5, 3.0, 15.0]))
    shape = draw(star(lat0, lon0, scale))
    if kind == "multi":
        # A second, disjoint star beside the first: overlapping parts are not valid GeoJSON.
        other = draw(star(lat0, lon0 + 2.5 * scale, scale))
        shape = shapely.union(shape, other.difference(shape.buffer(0.01 * scale)))
    return on_the_globe(shape), lat0, (lon0 + 180.0) % 360.0 - 180.0


@st.composite
def landmark(draw: st.DrawFn, lat0: float, lon0: float, i: int) -> LandmarkBound:
    """A landmark near the licence's middle, at a pole, or on the antimeridian at about
    the licence's latitude."""
    where = draw(st.sampled_from(["near", "near", "near", "pole", "antimeridian"]))
    if where == "pole":
        lat, lon = draw(st.sampled_from([90.0, -90.0])), draw(st.floats(-180.0, 180.0))
    elif where == "antimeridian":
        lat = max(-89.0, min(89.0, lat0 + draw(st.floats(-3.0, 3.0))))
        lon = draw(st.sampled_from([180.0, -180.0]))
    else:
        moved = WGS84.Direct(lat0, lon0, draw(st.floats(0, 360)), draw(st.floats(0, 800_000)))
        lat, lon = float(moved["lat2"]), float(moved["lon2"])
    km = draw(
        st.one_of(
            st.just(0.0),
            st.floats(0.0, 100.0),
            st.floats(0.0, 3000.0),
            st.floats(HALF_CIRCUMFERENCE_KM, 25_000.0),
        )
    )
    return LandmarkBound(f"lm{i}", lat, lon, rtt_for_km(km))


@st.composite
def case(draw: st.DrawFn) -> tuple[BaseGeometry, list[LandmarkBound]]:
    shape, lat0, lon0 = draw(licence())
    count = draw(st.integers(1, 4))
    return shape, [draw(landmark(lat0, lon0, i)) for i in range(count)]


def feasible_samples(
    bounds: list[LandmarkBound], shape: BaseGeometry | None = None
) -> list[tuple[float, float]]:
    """Points (latitude, longitude) where the chip can be: on rings around the smallest
    disk's landmark, and on the licence (a point inside each part and its vertices, so a
    small licence is not missed between the rings), kept where every bound holds (WGS-84
    geodesics)."""
    base = min(bounds, key=lambda b: b.bound_km)
    radius_m = base.bound_km * 1000.0
    candidates = []
    for fraction in (0.0, 0.3, 0.6, 0.85, 0.97, 1.0):
        for step in range(1 if fraction == 0.0 else 60):
            moved = WGS84.Direct(base.latitude, base.longitude, step * 6.0, fraction * radius_m)
            candidates.append((float(moved["lat2"]), float(moved["lon2"])))
    for part in shapely.get_parts(shape) if shape is not None else ():
        inside = part.representative_point()
        candidates.append((inside.y, inside.x))
        candidates.extend((lat, lon) for lon, lat in part.exterior.coords)
    return [
        (lat, lon)
        for lat, lon in candidates
        if all(
            WGS84.Inverse(b.latitude, b.longitude, lat, lon)["s12"] <= b.bound_km * 1000.0
            for b in bounds
        )
    ]


def covered(shape: BaseGeometry, lat: float, lon: float) -> bool:
    """Whether the licence holds the point, at either of its longitudes on the antimeridian."""
    return any(
        shape.covers(shapely.Point(x, lat))
        for x in {lon, lon - 360.0, lon + 360.0}
        if abs(x) <= 180
    )


@functools.cache
def land_at(lat: float, lon: float) -> bool:
    return natural_earth().country_at(lat, lon) is not None


def appraiser_for(shape: BaseGeometry, location: LocationAssumption) -> GeoAppraiser:
    geometry: dict[str, Any] = dict(mapping(shape))
    region = geojson_region("drawn", geometry)  # the loader the operator's file goes through
    policy = build_policy("drawn", 1, [region], location=location, border_margin_km=0.0)
    return GeoAppraiser(policy)


def check(shape: BaseGeometry, bounds: list[LandmarkBound]) -> None:
    """Every verdict, under every location assumption, against the sampled feasible set."""
    samples = feasible_samples(bounds, shape)
    for location in LocationAssumption:
        appraiser = appraiser_for(shape, location)
        result = appraiser.appraise(bounds, "drawn")
        assert appraiser.verdict(bounds, "drawn") is result.verdict
        event(f"{location.value}: {result.verdict}")
        if result.verdict is Verdict.INCONSISTENT:
            assert not samples, "measurements a chip can produce were called inconsistent"
        points = [p for p in samples if location is not LocationAssumption.LAND or land_at(*p)]
        if result.verdict is Verdict.ALLOWED:
            outside = [p for p in points if not covered(shape, *p)]
            assert not outside, f"ALLOWED, but the chip can be at {outside[0]}"
        if result.verdict is Verdict.OUTSIDE:
            inside = [p for p in points if covered(shape, *p)]
            assert not inside, f"OUTSIDE, but the chip can be at {inside[0]}"


@settings(max_examples=150)
@given(case())
def test_no_drawn_licence_is_allowed_with_a_feasible_point_outside_it(
    c: tuple[BaseGeometry, list[LandmarkBound]],
) -> None:
    check(*c)


@settings(max_examples=100)
@given(
    st.floats(-70.0, 70.0),
    st.sampled_from([1.0, -1.0]),
    st.floats(0.0, 2.0),
    st.floats(0.3, 5.0),
    st.floats(0.0, 1.5),
    st.floats(-2.0, 2.0),
    st.floats(20.0, 1500.0),
)
def test_a_licence_across_the_antimeridian_from_its_landmark_is_judged_on_both_sides(
    lat0: float, side: float, gap: float, width: float, off: float, dlat: float, km: float
) -> None:
    """The licence lies on one side of the antimeridian and the landmark on (or just
    across) it, so the feasible region is drawn with longitudes past +-180."""
    west, east = sorted((side * (-180.0 + gap), side * (-180.0 + gap + width)))
    shape = shapely.box(west, lat0 - width / 2, east, lat0 + width / 2)
    bound = LandmarkBound("lm0", lat0 + dlat, side * (180.0 - off), rtt_for_km(km))
    check(shape, [bound])


BORDER_TOWNS = [
    (1.35, 103.82),  # Singapore and Johor
    (22.45, 114.1),  # Hong Kong and Shenzhen
    (22.2, 113.55),  # Macau and Zhuhai
    (37.9, 126.7),  # the Korean demarcation line
    (50.3, 12.1),  # Germany and the Czech Republic
    (65.8, -168.9),  # the Bering Strait, across the antimeridian
    (-16.5, 179.9),  # Fiji, across the antimeridian
    (78.2, 15.6),  # Svalbard, near the pole
    (-54.9, -67.5),  # Tierra del Fuego: Argentina and Chile
]
COUNTRIES = ["SG", "MY", "HK", "CN", "MO", "KR", "KP", "DE", "CZ", "RU", "US", "FJ", "NO", "AR"]


@functools.cache
def country_appraiser(location: LocationAssumption) -> GeoAppraiser:
    regions = [country_region(code, [code]) for code in COUNTRIES]
    return build_policy(
        "countries", 1, regions, location=location, border_margin_km=0.0
    ).appraiser()


@functools.cache
def country_at(lat: float, lon: float) -> str | None:
    return natural_earth().country_at(lat, lon)


@st.composite
def border_case(draw: st.DrawFn) -> list[LandmarkBound]:
    """A chip within 40 km of a town on a border; one to three landmarks within 150 km
    of it, each bound its honest light-speed distance plus up to 100 km of delay."""
    lat0, lon0 = draw(st.sampled_from(BORDER_TOWNS))
    moved = WGS84.Direct(lat0, lon0, draw(st.floats(0, 360)), draw(st.floats(0, 40_000)))
    chip = (float(moved["lat2"]), float(moved["lon2"]))
    out = []
    for i in range(draw(st.integers(1, 3))):
        site = WGS84.Direct(*chip, draw(st.floats(0, 360)), draw(st.floats(0, 150_000)))
        delay_ns = rtt_for_km(draw(st.sampled_from([0.0, 5.0, 100.0])) * draw(st.floats(0, 1)))
        out.append(bound_from(f"lm{i}", float(site["lat2"]), float(site["lon2"]), chip, delay_ns))
    return out


@settings(max_examples=150)
@given(border_case())
def test_no_country_licence_is_allowed_with_a_feasible_point_in_another_country(
    bounds: list[LandmarkBound],
) -> None:
    """The same oracle for country licences: on the land assumption every sampled
    feasible point on land must lie in the licensed country, and with no assumption every
    sampled point must (a point at sea belongs to no country)."""
    samples = [(p, country_at(*p)) for p in feasible_samples(bounds)]
    for location in (LocationAssumption.LAND, LocationAssumption.ANYWHERE):
        appraiser = country_appraiser(location)
        for code in COUNTRIES:
            verdict = appraiser.verdict(bounds, code)
            event(f"{location.value}: {verdict}")
            seen = [
                (p, owner)
                for p, owner in samples
                if location is LocationAssumption.ANYWHERE or owner is not None
            ]
            if verdict is Verdict.ALLOWED:
                stray = [(p, owner) for p, owner in seen if owner != code]
                assert not stray, f"ALLOWED for {code}, but the chip can be at {stray[0]}"
            if verdict is Verdict.OUTSIDE:
                inside = [p for p, owner in seen if owner == code]
                assert not inside, f"OUTSIDE for {code}, but the chip can be at {inside[0]}"
