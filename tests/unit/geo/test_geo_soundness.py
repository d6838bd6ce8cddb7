"""Property tests that try to break the soundness invariant.

Random true chip positions (anywhere, and near borders, poles and the antimeridian),
random landmarks (anywhere, or near the chip), honest light-speed RTTs from WGS-84
geodesics plus random added delay >= 0 on every link. Whatever the adversary or the
network adds, the true position must lie in the feasible region, ALLOWED must never come
out for a region that does not hold the chip, and OUTSIDE never for one that does. The
verdict alone (``GeoAppraiser.verdict``, what the fault-domain re-appraisals ask) is always
the full appraisal's.
"""

from __future__ import annotations

import functools
import random

from geo_truth import WGS84, bound_from, geodesic_km
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from geoattest.geo import (
    GeoAppraiser,
    LocationAssumption,
    build_policy,
    circle_region,
    country_region,
    geojson_region,
)
from geoattest.geo.countries import natural_earth
from geoattest.geo.feasible import contains_point
from geoattest.verdict import LandmarkBound, Verdict

# Places near borders, coasts, poles and the antimeridian; chips are scattered around them.
ANCHORS = [
    (1.35, 103.82),  # Singapore
    (1.46, 103.76),  # Johor Bahru
    (22.32, 114.17),  # Hong Kong
    (22.54, 114.06),  # Shenzhen
    (22.19, 113.54),  # Macau
    (25.03, 121.56),  # Taipei
    (24.44, 118.37),  # Kinmen
    (37.57, 126.98),  # Seoul
    (40.13, 124.39),  # Dandong
    (50.11, 8.68),  # Frankfurt
    (50.08, 14.44),  # Prague
    (-17.8, 178.0),  # Fiji, near the antimeridian
    (-16.8, -179.9),  # Fiji's Taveuni side
    (65.0, -179.0),  # Chukotka, across the antimeridian
    (64.7, 177.5),  # Anadyr
    (78.2, 15.6),  # Svalbard
    (82.5, -62.3),  # Alert, Nunavut
    (-77.8, 166.7),  # McMurdo
    (-54.8, -68.3),  # Ushuaia
    (69.65, 18.96),  # Tromso
    (48.85, 2.35),  # Paris
    (59.91, 10.75),  # Oslo
    (35.68, 139.77),  # Tokyo
]
REGION_CODES = [
    "SG",
    "MY",
    "ID",
    "HK",
    "MO",
    "CN",
    "TW",
    "KR",
    "KP",
    "DE",
    "CZ",
    "FJ",
    "RU",
    "US",
    "NO",
    "CA",
    "AQ",
    "AR",
    "CL",
    "FR",
    "JP",
    "GL",
]


@functools.cache
def country_appraiser(location: str) -> GeoAppraiser:
    regions = [country_region(c, [c]) for c in REGION_CODES]
    return build_policy(
        "prop", 1, regions, embargo=["KP"], location=location, border_margin_km=0.0
    ).appraiser()


delays = st.one_of(st.just(0), st.integers(0, 50_000), st.integers(0, 20_000_000))


@st.composite
def chip_near_anchor(draw: st.DrawFn) -> tuple[float, float]:
    lat0, lon0 = draw(st.sampled_from(ANCHORS))
    where = WGS84.Direct(lat0, lon0, draw(st.floats(0, 360)), draw(st.floats(0, 60_000)))
    return float(where["lat2"]), float(where["lon2"])


@st.composite
def anywhere(draw: st.DrawFn) -> tuple[float, float]:
    lat = draw(st.one_of(st.floats(-90, 90), st.floats(84, 90), st.floats(-90, -84)))
    lon = draw(st.one_of(st.floats(-180, 180), st.floats(176, 180), st.floats(-180, -176)))
    return lat, lon


@st.composite
def landmarks_for(draw: st.DrawFn, chip: tuple[float, float]) -> list[LandmarkBound]:
    """1 to 8 landmarks, each near the chip (0 to 3000 km) or anywhere, each link delayed."""
    out = []
    for i in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            scale = draw(st.sampled_from([30_000.0, 300_000.0, 3_000_000.0]))
            where = WGS84.Direct(
                chip[0], chip[1], draw(st.floats(0, 360)), draw(st.floats(0, scale))
            )
            lat, lon = float(where["lat2"]), float(where["lon2"])
        else:
            lat, lon = draw(anywhere())
        out.append(bound_from(f"lm{i}", lat, lon, chip, draw(delays)))
    return out


@st.composite
def case(draw: st.DrawFn) -> tuple[tuple[float, float], list[LandmarkBound]]:
    chip = draw(st.one_of(chip_near_anchor(), anywhere()))
    return chip, draw(landmarks_for(chip))


@settings(max_examples=300, deadline=None)
@given(case())
def test_true_position_is_always_inside_the_feasible_region(
    c: tuple[tuple[float, float], list[LandmarkBound]],
) -> None:
    chip, bounds = c
    outer = country_appraiser(LocationAssumption.ANYWHERE.value).feasible(bounds)
    assert not outer.empty, "honest measurements were called inconsistent"
    if outer.polygon is not None:
        assert contains_point(outer.polygon, *chip)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(chip_near_anchor().flatmap(lambda chip: st.tuples(st.just(chip), landmarks_for(chip))))
def test_country_verdicts_never_wrong_for_a_chip_on_land(
    c: tuple[tuple[float, float], list[LandmarkBound]],
) -> None:
    chip, bounds = c
    truth = natural_earth().country_at(*chip)
    assume(truth is not None)  # the land assumption holds for this chip
    for location in (LocationAssumption.LAND, LocationAssumption.TERRITORIAL_WATERS):
        appraiser = country_appraiser(location.value)
        for region in REGION_CODES:
            result = appraiser.appraise(bounds, region)
            assert appraiser.verdict(bounds, region) is result.verdict
            event(f"{location.value}: {'own' if region == truth else 'other'} {result.verdict}")
            assert result.verdict is not Verdict.INCONSISTENT
            if result.verdict is Verdict.ALLOWED:
                assert truth == region, f"ALLOWED for {region} but the chip is in {truth}"
            if result.verdict is Verdict.OUTSIDE:
                assert truth != region, f"OUTSIDE for {region} but the chip is in it"
            if result.embargoed:
                assert truth == "KP"


@settings(max_examples=200, deadline=None)
@given(case())
def test_no_assumption_verdicts_never_wrong_anywhere(
    c: tuple[tuple[float, float], list[LandmarkBound]],
) -> None:
    """Without the land assumption the chip may be at sea; still never a wrong verdict."""
    chip, bounds = c
    truth = natural_earth().country_at(*chip)
    appraiser = country_appraiser(LocationAssumption.ANYWHERE.value)
    for region in REGION_CODES:
        result = appraiser.appraise(bounds, region)
        assert appraiser.verdict(bounds, region) is result.verdict
        if result.verdict is Verdict.ALLOWED:
            assert truth == region
        if result.verdict is Verdict.OUTSIDE:
            assert truth != region


@settings(max_examples=150, deadline=None)
@given(case(), anywhere(), st.floats(1, 3000))
def test_circle_licence_never_allowed_for_a_chip_outside_it(
    c: tuple[tuple[float, float], list[LandmarkBound]],
    site: tuple[float, float],
    radius_km: float,
) -> None:
    chip, bounds = c
    # Licensed sites near the chip's landmarks make ALLOWED reachable.
    near = bounds[0]
    for lat, lon in (site, (near.latitude, near.longitude)):
        if abs(lat) + radius_km / 111.0 >= 85.0:
            continue
        region = circle_region("site", lat, lon, radius_km)
        policy = build_policy("circle", 1, [region], location="anywhere", border_margin_km=0.0)
        appraiser = GeoAppraiser(policy)
        result = appraiser.appraise(bounds, "site")
        assert appraiser.verdict(bounds, "site") is result.verdict
        event(f"circle: {result.verdict}")
        inside = geodesic_km(lat, lon, *chip) <= radius_km
        if result.verdict is Verdict.ALLOWED:
            assert inside
        if result.verdict is Verdict.OUTSIDE:
            assert not inside


@settings(max_examples=100, deadline=None)
@given(
    chip_near_anchor().flatmap(lambda chip: st.tuples(st.just(chip), landmarks_for(chip))),
    st.floats(0.05, 3.0),
    st.floats(0.05, 3.0),
)
def test_geojson_box_licence_never_allowed_for_a_chip_outside_it(
    c: tuple[tuple[float, float], list[LandmarkBound]], w: float, h: float
) -> None:
    chip, bounds = c
    lat0, lon0 = bounds[0].latitude, bounds[0].longitude
    assume(abs(lat0) + h < 89 and lon0 - w > -180 and lon0 + w < 180)
    box = {
        "type": "Polygon",
        "coordinates": [
            [
                [lon0 - w, lat0 - h],
                [lon0 + w, lat0 - h],
                [lon0 + w, lat0 + h],
                [lon0 - w, lat0 + h],
                [lon0 - w, lat0 - h],
            ]
        ],
    }
    inside = lon0 - w <= chip[1] <= lon0 + w and lat0 - h <= chip[0] <= lat0 + h
    on_land = natural_earth().country_at(*chip) is not None
    for location in LocationAssumption:
        if location is LocationAssumption.LAND and not on_land:
            continue
        policy = build_policy(
            "box", 1, [geojson_region("box", box)], location=location, border_margin_km=0.0
        )
        appraiser = GeoAppraiser(policy)
        result = appraiser.appraise(bounds, "box")
        assert appraiser.verdict(bounds, "box") is result.verdict
        event(f"box {location.value}: {result.verdict}")
        if result.verdict is Verdict.ALLOWED:
            assert inside
        if result.verdict is Verdict.OUTSIDE:
            assert not inside


@settings(max_examples=150, deadline=None)
@given(case(), st.randoms(use_true_random=False))
def test_bounds_that_decided_nothing_can_be_left_out(
    c: tuple[tuple[float, float], list[LandmarkBound]], rng: random.Random
) -> None:
    """``decided_by`` is what lets the fault-domain re-appraisals skip a domain: the bounds
    it names, with any of the others in any order, must give the very same verdict."""
    _, bounds = c
    for location in LocationAssumption:
        appraiser = country_appraiser(location.value)
        for region in rng.sample(REGION_CODES, 4):
            result = appraiser.appraise(bounds, region)
            if result.decided_by is None:
                continue
            assert result.decided_by <= {b.landmark_id for b in bounds}
            kept = [b for b in bounds if b.landmark_id in result.decided_by or rng.random() < 0.5]
            rng.shuffle(kept)
            event(f"{location.value}: left out {len(bounds) - len(kept)}")
            assert appraiser.verdict(kept, region) is result.verdict
