"""The reach shortcut against the land index: where one disk alone draws the feasible
region, the countries its reach decides must be exactly the ones the land index finds, so
every verdict and record is the one the full path gives. Where one disk alone draws the
region and its reach decides, the record is built from that disk's ring without a drawn
polygon: it must be the drawn polygon's record, and hold the chip.

Chips sit near borders, coasts and the antimeridian; the first landmark is near the chip
(its disk small, often the only one drawn), the others near or anywhere, with random added
delay. The appraisers with and without the shortcut must give equal records, and the
verdict alone (what the fault-domain re-appraisals ask, drawing nothing where the reach
decides) must be the full path's verdict.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import shapely
from geo_truth import WGS84, bound_from
from hypothesis import event, given, settings
from hypothesis import strategies as st

from geoattest.geo import GeoAppraiser, LocationAssumption, build_policy, country_region
from geoattest.geo.countries import natural_earth
from geoattest.geo.feasible import Cut, contains_point, cut
from geoattest.geo.reach import land_reach
from geoattest.geo.sphere import EARTH_RADIUS_KM, distance_km
from geoattest.verdict import LandmarkBound, RegionAppraisal

BORDERS = [
    (1.35, 103.82),  # Singapore
    (1.46, 103.76),  # Johor Bahru, across the strait
    (1.10, 104.05),  # Batam, Indonesia
    (22.54, 114.06),  # Shenzhen, next to Hong Kong
    (22.19, 113.54),  # Macau
    (24.44, 118.37),  # Kinmen, off Xiamen
    (50.11, 8.68),  # Frankfurt
    (47.56, 7.59),  # Basel, at three borders
    (48.57, 7.75),  # Strasbourg, on the Rhine
    (49.01, 12.10),  # Regensburg, near Czechia
    (35.68, 139.77),  # Tokyo
    (34.69, 135.50),  # Osaka
    (25.03, 121.56),  # Taipei
    (19.08, 72.88),  # Mumbai
    (39.04, -77.49),  # Ashburn
    (48.99, -123.05),  # Point Roberts, a US exclave
    (-16.8, -179.9),  # Taveuni, Fiji, at the antimeridian
    (65.0, -179.0),  # Chukotka, across the antimeridian
    (69.65, 18.96),  # Tromso
]
ANTIMERIDIAN = [
    (-16.8, -179.9),  # Taveuni, Fiji
    (-16.5, 179.5),  # Labasa, Vanua Levu, west of the antimeridian
    (65.0, -179.0),  # Chukotka
    (52.0, 179.0),  # the western Aleutians (US) and the sea towards Kamchatka
    (-43.9, -176.5),  # the Chatham Islands (NZ)
]
REGIONS = ["SG", "MY", "ID", "HK", "CN", "MO", "TW", "DE", "FR", "CH", "CZ", "JP", "IN", "US"]
REGIONS += ["CA", "FJ", "RU", "NO", "NZ"]


@functools.cache
def appraisers(location: str) -> tuple[GeoAppraiser, GeoAppraiser]:
    """With the reach shortcut, and without it (the land index always)."""
    policy = build_policy(
        "reach",
        1,
        [country_region(c, [c]) for c in REGIONS] + [country_region("SG-MY", ["SG", "MY"])],
        embargo=["KP", "MY"],
        location=location,
        border_margin_km=0.0,
    )
    return GeoAppraiser(policy), GeoAppraiser(policy, by_reach=False)


@st.composite
def near(draw: st.DrawFn, lat: float, lon: float, km: float) -> tuple[float, float]:
    where = WGS84.Direct(lat, lon, draw(st.floats(0, 360)), draw(st.floats(0, km * 1000.0)))
    return float(where["lat2"]), float(where["lon2"])


@st.composite
def case(draw: st.DrawFn) -> tuple[list[LandmarkBound], str]:
    """Bounds, and mostly the chip's own country as the licensed region."""
    chip = draw(near(*draw(st.sampled_from(BORDERS)), 40.0))
    own = natural_earth().country_at(*chip)
    if own in REGIONS and draw(st.integers(0, 3)):
        region = own
    else:
        region = draw(st.sampled_from([*REGIONS, "SG-MY"]))
    bounds = []
    for i in range(draw(st.integers(1, 5))):
        scale = draw(st.sampled_from([20.0, 60.0, 300.0, 3000.0])) if i else 30.0
        lat, lon = draw(near(*chip, scale))
        delay = draw(
            st.one_of(
                st.just(0),
                st.integers(0, 100_000),
                st.integers(0, 3_000_000),
                st.integers(0, 20_000_000),
            )
        )
        bounds.append(bound_from(f"lm{i}", lat, lon, chip, delay))
    return bounds, region


@settings(max_examples=300, deadline=None)
@given(case())
def test_the_reach_shortcut_gives_the_land_index_verdicts_and_records(
    c: tuple[list[LandmarkBound], str],
) -> None:
    bounds, region = c
    for location in LocationAssumption:
        quick, full = appraisers(location.value)
        record = full.appraise(bounds, region)
        assert quick.appraise(bounds, region) == record
        assert quick.verdict(bounds, region) is record.verdict
        assert full.verdict(bounds, region) is record.verdict
        outer = quick.feasible(bounds)
        licensed = quick.policy.regions[region]
        disks = quick._disks(bounds)
        chosen = cut(disks)
        by_reach = (
            quick._touched_by_reach(bounds, licensed, disks, chosen)
            if outer.polygon is not None and isinstance(chosen, Cut)
            else None
        )
        disks_used = "one disk" if len(outer.used) == 1 else "disks"
        how = "land index"
        if by_reach is not None:
            how = "by reach" if not by_reach[1] else "by reach, land index for the rest"
        event(f"{location.value}: {disks_used} {how}, {record.verdict}")


@st.composite
def lone_case(draw: st.DrawFn) -> tuple[list[LandmarkBound], str, tuple[float, float]]:
    """Bounds whose first disk, near the chip, mostly draws the region alone (the others
    are far larger), chips near borders and on either side of the antimeridian; and the
    chip."""
    chip = draw(near(*draw(st.sampled_from([*BORDERS, *ANTIMERIDIAN, *ANTIMERIDIAN])), 60.0))
    own = natural_earth().country_at(*chip)
    region = own if own in REGIONS and draw(st.booleans()) else draw(st.sampled_from(REGIONS))
    bounds = []
    for i in range(draw(st.integers(1, 3))):
        lat, lon = draw(near(*chip, draw(st.sampled_from([5.0, 30.0, 150.0])) if i == 0 else 900.0))
        delay = draw(st.integers(0, 2_000_000)) if i == 0 else 0
        bounds.append(bound_from(f"lm{i}", lat, lon, chip, delay))
    return bounds, region, chip


@settings(max_examples=300, deadline=None)
@given(lone_case())
def test_a_record_built_from_one_ring_is_the_drawn_polygon_record_and_holds_the_chip(
    c: tuple[list[LandmarkBound], str, tuple[float, float]],
) -> None:
    bounds, region, chip = c
    for location in LocationAssumption:
        quick, full = appraisers(location.value)
        record = quick.appraise(bounds, region)
        assert record == full.appraise(bounds, region)
        assert quick.verdict(bounds, region) is record.verdict
        judged = quick._judge(bounds, region, record=True)
        by_ring = not isinstance(judged, RegionAppraisal) and judged.ring is not None
        if record.feasible_region is not None:
            drawn = shapely.geometry.shape(record.feasible_region)
            assert contains_point(drawn, *chip)
        folded = record.feasible_region is not None and record.feasible_region["type"] != "Polygon"
        how = "from the ring" if by_ring else ("drawn, folded" if folded else "drawn")
        event(f"{location.value}: {how}, {record.verdict}")


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(BORDERS).flatmap(lambda b: near(*b, 300.0)),
    st.lists(st.floats(0, 1), min_size=8, max_size=8),
)
def test_no_land_boundary_lies_nearer_than_its_floor(
    site: tuple[float, float], fractions: list[float]
) -> None:
    """Points along the boundaries of the land pieces around the site (their vertices and
    between them; pieces measured vertex by vertex and those bounded by their centre and
    radius) lie no nearer to it than their country's floor."""
    countries = natural_earth()
    found = land_reach(natural_earth()).at(*site)
    floor = {code: value for value, code in found.nearest}
    window = shapely.Point(site[1], site[0]).buffer(12.0)
    for i in countries.tree.query(window):
        code = countries.code_at(int(countries.piece_code[i]))
        boundary = countries.pieces[i].boundary
        points = [
            *shapely.get_coordinates(boundary),
            *shapely.get_coordinates(
                shapely.line_interpolate_point(boundary, np.asarray(fractions), normalized=True)
            ),
        ]
        xy = np.asarray(points)
        nearest_km = float(np.min(distance_km(site[0], site[1], xy[:, 1], xy[:, 0])))
        assert nearest_km / EARTH_RADIUS_KM >= floor[code] - 1e-12


def test_a_site_touches_its_country_and_land_in_the_disk_and_a_border_within_reach_stays_open() -> (
    None
):
    at_singapore = land_reach(natural_earth()).at(1.3349, 103.892)
    assert at_singapore.on == {"SG"}
    site = (at_singapore.phi, at_singapore.lam)
    one_km, reach = 1.0 / EARTH_RADIUS_KM, 1.01 / EARTH_RADIUS_KM
    assert at_singapore.touched(reach, [(*site, one_km)]) == ({"SG"}, frozenset())
    # Malaysia's shore is about 9 km from this site: a disk of 100 km holds its nearest
    # vertex, and one of 8 km reaching 9.2 km cannot tell.
    hundred_km = 100.0 / EARTH_RADIUS_KM
    touched, unknown = at_singapore.touched(hundred_km * 1.01, [(*site, hundred_km)])
    assert touched >= {"SG", "MY"}
    near_malaysia = 8.0 / EARTH_RADIUS_KM
    touched, unknown = at_singapore.touched(9.2 / EARTH_RADIUS_KM, [(*site, near_malaysia)])
    assert "MY" in unknown
    assert "MY" not in touched
    at_sea = land_reach(natural_earth()).at(-40.0, -120.0)  # the South Pacific
    assert at_sea.on == frozenset()
    sea = (at_sea.phi, at_sea.lam, math.radians(0.9))
    assert at_sea.touched(math.radians(1.0), [sea]) == (frozenset(), frozenset())
