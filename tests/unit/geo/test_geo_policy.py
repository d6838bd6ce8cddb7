"""Region policies load from versioned data, and every problem is a named load error."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.errors import ConfigError, Reason
from geoattest.geo import (
    GeoAppraiser,
    LocationAssumption,
    build_policy,
    circle_region,
    country_region,
    geojson_region,
    load_policy,
    policy_from_mapping,
)
from geoattest.verdict import RegionAppraiser

BOX = {
    "type": "Polygon",
    "coordinates": [[[103.6, 1.2], [104.1, 1.2], [104.1, 1.5], [103.6, 1.5], [103.6, 1.2]]],
}


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return path


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "asia-pilot",
        "version": 3,
        "location": "land",
        "border_margin_km": 0.5,
        "regions": {
            "SG": {"countries": ["SG"]},
            "greater-china": {"countries": ["CN", "HK", "MO"]},
            "tokyo": {"circle": {"lat": 35.68, "lon": 139.77, "radius_km": 60}},
            "box": {"geojson": BOX},
        },
        "embargo": ["KP", "IR"],
    }
    doc.update(changes)
    return doc


def test_a_full_policy_loads_and_names_itself(tmp_path: Path) -> None:
    (tmp_path / "campus.geojson").write_text(json.dumps({"type": "Feature", "geometry": BOX}))
    doc = _doc()
    doc["regions"]["campus"] = {"geojson_file": "campus.geojson"}
    policy = load_policy(_write(tmp_path, doc))
    assert policy.policy_id == "policy:region/asia-pilot@3"
    assert policy.location is LocationAssumption.LAND
    assert policy.embargo == frozenset({"KP", "IR"})
    assert policy.regions["greater-china"].countries == frozenset({"CN", "HK", "MO"})
    appraiser: RegionAppraiser = policy.appraiser()
    assert appraiser.policy_id == policy.policy_id
    assert appraiser.has_region("campus")
    assert not appraiser.has_region("campus2")


def test_defaults_are_land_and_a_one_km_margin() -> None:
    doc = {"id": "p", "version": 1, "regions": {"DE": {"countries": ["DE"]}}}
    policy = policy_from_mapping(doc)
    assert policy.location is LocationAssumption.LAND
    assert policy.border_margin_km == 1.0
    assert policy.embargo == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key(s) 'colour'"),
        ({"version": 0}, "version must be an integer >= 1"),
        ({"version": "3"}, "version must be an integer >= 1"),
        ({"id": "has space"}, "policy id 'has space'"),
        ({"location": "sea"}, "location 'sea' is not one of"),
        ({"border_margin_km": -1}, "border_margin_km must be in [0, 100]"),
        ({"border_margin_km": "1"}, "border_margin_km must be a finite number"),
        ({"regions": {}}, "defines no regions"),
        ({"regions": []}, "'regions' must be an object"),
        ({"embargo": "KP"}, "'embargo' must be a list"),
        ({"embargo": ["ZZ"]}, "'ZZ' has no shape"),
        ({"embargo": ["KPX"]}, "'KPX' is not an ISO 3166-1 alpha-2 code"),
        ({"regions": {"x": {"countries": ["XX"]}}}, "'XX' has no shape"),
        ({"regions": {"x": {"countries": []}}}, "region 'x': empty country list"),
        ({"regions": {"x": {"countries": "SG"}}}, "'countries' must be a list"),
        ({"regions": {"x": {"countries": ["SG"], "circle": {}}}}, "needs exactly one of"),
        ({"regions": {"x": {"country": ["SG"]}}}, "unknown key(s) 'country'"),
        ({"regions": {"x": {}}}, "needs exactly one of"),
        ({"regions": {"x": "SG"}}, "must be an object"),
        ({"regions": {"x": {"circle": {"lat": 1, "lon": 2}}}}, "missing 'radius_km'"),
        (
            {"regions": {"x": {"circle": {"lat": 1, "lon": 2, "radius_km": 5, "r": 1}}}},
            "unknown or missing 'r'",
        ),
        ({"regions": {"x": {"circle": {"lat": 91, "lon": 2, "radius_km": 5}}}}, "not a latitude"),
        ({"regions": {"x": {"circle": {"lat": 1, "lon": 2, "radius_km": 0}}}}, "radius_km must"),
        (
            {"regions": {"x": {"circle": {"lat": 1, "lon": 2, "radius_km": 0.05}}}},
            "radius_km 0.05 is within the earth model's 0.05 km margin",
        ),
        (
            {"regions": {"x": {"circle": {"lat": 1, "lon": 2, "radius_km": 10**400}}}},
            "is not valid JSON (the number 1000",
        ),
        (
            {
                "regions": {
                    "x": {"geojson": {**BOX, "coordinates": [[[0, 0], [10**400, 0], [1, 1]]]}}
                }
            },
            "is not valid JSON (the number 1000",
        ),
        ({"regions": {"x": {"circle": {"lat": 89.9, "lon": 2, "radius_km": 50}}}}, "pole"),
        ({"regions": {"x": {"geojson": {"coordinates": []}}}}, "not a GeoJSON object"),
        ({"regions": {"x": {"geojson": {"type": "Point", "coordinates": [1, 2]}}}}, "'Point'"),
        (
            {"regions": {"x": {"geojson": {"type": "Polygon", "coordinates": [[[1, 2]]]}}}},
            "malformed Polygon",
        ),
        (
            {"regions": {"x": {"geojson": {"type": "Polygon", "coordinates": "no"}}}},
            "malformed Polygon",
        ),
        (
            {
                "regions": {
                    "x": {
                        "geojson": {
                            "type": "Polygon",
                            "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                        }
                    }
                }
            },
            "invalid Polygon: Self-intersection",
        ),
        (
            {
                "regions": {
                    "x": {
                        "geojson": {
                            "type": "Polygon",
                            "coordinates": [[[0, 0], [200, 0], [200, 1], [0, 0]]],
                        }
                    }
                }
            },
            "within range",
        ),
        (
            {
                "regions": {
                    "x": {
                        "geojson": {
                            "type": "Polygon",
                            "coordinates": [[[170, 0], [-170, 0], [-170, 9], [170, 9], [170, 0]]],
                        }
                    }
                }
            },
            "the edge from [170.0, 0.0] to [-170.0, 0.0] spans more than 180 degrees",
        ),
        (
            {"regions": {"x": {"geojson": {"type": "FeatureCollection", "features": []}}}},
            "no features",
        ),
        ({"regions": {"x": {"geojson_file": "missing.geojson"}}}, "does not exist"),
    ],
)
def test_every_malformed_policy_is_a_load_error_that_names_the_problem(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(_write(tmp_path, _doc(**change)))
    assert caught.value.reason is Reason.BAD_CONFIG
    assert message in caught.value.detail


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    for key in ("id", "version", "regions"):
        doc = _doc()
        del doc[key]
        with pytest.raises(ConfigError, match=f"missing '{key}'"):
            load_policy(_write(tmp_path, doc))


def test_unreadable_and_non_json_files_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy .*nope\.json does not exist"):
        load_policy(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_policy(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_policy(bad)


def test_geojson_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "campus.geojson").write_text("nope")
    doc = _doc(regions={"campus": {"geojson_file": "campus.geojson"}})
    with pytest.raises(ConfigError, match=r"campus.geojson is not valid JSON"):
        load_policy(_write(tmp_path, doc))


def test_a_box_across_the_antimeridian_is_refused_unless_cut_and_bands_round_the_earth_load() -> (
    None
):
    """A 20-degree box written with corners at 170 and -170 is, by RFC 7946, a band 340
    degrees wide the long way round: licensing it would admit chips half a world from the
    box meant. It is refused with its edge named, in holes too; cut in two at the
    antimeridian it loads as the box; edges along a parallel from -180 to 180 (a polar
    cap, a band round the earth) and a long edge split by a vertex load as drawn."""
    across = [[170, 0], [-170, 0], [-170, 9], [170, 9], [170, 0]]
    with pytest.raises(ConfigError, match="spans more than 180 degrees"):
        geojson_region("box", {"type": "Polygon", "coordinates": [across]})
    hole = [[-179, 1], [-179, 2], [179, 2], [179, 1], [-179, 1]]
    world = [[-180, -60], [180, -60], [180, 60], [-180, 60], [-180, -60]]
    with pytest.raises(ConfigError, match=re.escape("from [-179.0, 2.0] to [179.0, 2.0]")):
        geojson_region("holed", {"type": "Polygon", "coordinates": [world, hole]})
    cut = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[170, 0], [180, 0], [180, 9], [170, 9], [170, 0]]],
            [[[-180, 0], [-170, 0], [-170, 9], [-180, 9], [-180, 0]]],
        ],
    }
    assert geojson_region("cut", cut).inner.area == pytest.approx(180.0)
    cap = [[-180, 60], [180, 60], [180, 90], [-180, 90], [-180, 60]]
    assert geojson_region("cap", {"type": "Polygon", "coordinates": [cap]}).inner.area == 10_800
    band = [[-170, 0], [0, 0], [170, 0], [170, 9], [0, 9], [-170, 9], [-170, 0]]
    assert geojson_region("band", {"type": "Polygon", "coordinates": [band]}).inner.area == 3060


def _crs(name: str) -> dict[str, Any]:
    return {"type": "name", "properties": {"name": name}}


@pytest.mark.parametrize(
    ("geojson", "needle"),
    [
        (
            {**BOX, "crs": _crs("urn:ogc:def:crs:EPSG::4326")},
            "'crs' names 'urn:ogc:def:crs:EPSG::4326'",
        ),
        ({**BOX, "crs": _crs("EPSG:3857")}, "'crs' names 'EPSG:3857'"),
        ({**BOX, "crs": {"type": "link", "properties": {"href": "x"}}}, "'crs' names"),
        ({**BOX, "crs": "CRS84"}, "'crs' names 'CRS84'"),
        (
            {
                "type": "FeatureCollection",
                "crs": _crs("EPSG:4326"),
                "features": [{"type": "Feature", "geometry": BOX}],
            },
            "'crs' names 'EPSG:4326'",
        ),
        (
            {"type": "Feature", "geometry": {"type": "Feature", "geometry": BOX}},
            "a 'Feature' is not one of Polygon, MultiPolygon",
        ),
        (
            {"type": "FeatureCollection", "features": [BOX]},
            "feature 0: a 'Polygon' is not one of Feature",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [{"type": "FeatureCollection", "features": []}],
            },
            "a 'FeatureCollection' is not one of Feature",
        ),
    ],
)
def test_geojson_is_read_only_as_rfc_7946_nests_and_locates_it(geojson: Any, needle: str) -> None:
    """A ``crs`` other than CRS84 (EPSG:4326 puts latitude first, a projection counts
    metres: read as longitude, latitude either licenses another place) and nesting RFC 7946
    does not define are load errors naming them."""
    with pytest.raises(ConfigError) as refused:
        geojson_region("x", geojson)
    assert needle in refused.value.detail


def test_geojson_naming_crs84_loads_as_without_it() -> None:
    plain = geojson_region("x", BOX).inner
    for name in ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84"):
        feature = {"type": "Feature", "crs": _crs(name), "geometry": {**BOX, "crs": _crs(name)}}
        assert geojson_region("x", feature).inner.equals(plain)


def test_numbers_past_a_float_s_range_are_load_errors_in_code_too() -> None:
    """Built in code, where no JSON reader stands in front: an integer no float holds is a
    named error, not an OverflowError."""
    with pytest.raises(ConfigError, match="radius_km must be a finite number, got an integer"):
        circle_region("x", 1.0, 2.0, 10**400)
    with pytest.raises(ConfigError, match="border_margin_km must be a finite number"):
        build_policy("p", 1, [country_region("sg", ["SG"])], border_margin_km=10**400)
    huge = {**BOX, "coordinates": [[[0, 0], [10**400, 0], [1, 1], [0, 0]]]}
    with pytest.raises(ConfigError, match="malformed Polygon coordinates"):
        policy_from_mapping(_doc(regions={"x": {"geojson": huge}}))


def test_programmatic_policies_check_the_same_things() -> None:
    with pytest.raises(ConfigError, match="defined twice"):
        build_policy("p", 1, [country_region("a", ["SG"]), country_region("a", ["MY"])])
    with pytest.raises(ConfigError, match="'QQ' has no shape"):
        country_region("q", ["QQ"])
    policy = build_policy(
        "p",
        2,
        [country_region("sg", ["sg"]), circle_region("site", 1.3, 103.8, 10)],
        embargo=["kp"],
        location="territorial_waters",
    )
    assert policy.regions["sg"].countries == frozenset({"SG"})
    assert policy.embargo == frozenset({"KP"})
    assert policy.extra_km == pytest.approx(1.0 + 22.224)
    assert isinstance(policy.appraiser(), GeoAppraiser)


def test_a_licensed_circle_is_drawn_inside_for_allowed_and_outside_for_outside() -> None:
    region = circle_region("site", 50.0, 8.0, 100.0)
    assert region.inner is not None
    assert region.outer is not None
    assert region.outer.contains(region.inner)
    assert not region.inner.contains(region.outer)


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["SG", "Polygon", "MultiPolygon", "Feature", "FeatureCollection", "land"]),
)
_KEYS = st.sampled_from(
    [
        "id",
        "version",
        "regions",
        "embargo",
        "location",
        "border_margin_km",
        "countries",
        "circle",
        "geojson",
        "lat",
        "lon",
        "radius_km",
        "type",
        "coordinates",
        "features",
        "geometry",
        "crs",
        "properties",
        "name",
    ]
)
_ANY = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_KEYS, inner, max_size=6)),
    max_leaves=40,
)
_RINGS = st.lists(
    st.lists(
        st.lists(st.one_of(st.floats(-200, 200), st.integers(-200, 200), _LEAF), max_size=4),
        max_size=6,
    ),
    max_size=3,
)
_REGION = st.one_of(
    _ANY,
    st.fixed_dictionaries(
        {
            "geojson": st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["Polygon", "MultiPolygon"]),
                    "coordinates": st.one_of(_RINGS, st.lists(_RINGS, max_size=3), _ANY),
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {"circle": st.dictionaries(st.sampled_from(["lat", "lon", "radius_km"]), _LEAF)}
    ),
    st.fixed_dictionaries({"countries": st.lists(_LEAF, max_size=3)}),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.just("p"), _LEAF),
            "version": st.one_of(st.just(1), _LEAF),
            "regions": st.one_of(st.dictionaries(st.text(max_size=3), _REGION, max_size=3), _ANY),
        },
        optional={
            "embargo": st.lists(_LEAF, max_size=3),
            "location": _LEAF,
            "border_margin_km": _LEAF,
        },
    )
)
def test_any_policy_document_loads_or_is_a_load_error(document: dict[str, Any]) -> None:
    """Whatever a policy document holds (any JSON value where any value is expected,
    numbers past a float's range, NaN, rings of any depth), loading it gives a policy or
    a ConfigError: never another exception."""
    try:
        policy = policy_from_mapping(document)
    except ConfigError as refused:
        assert refused.reason is Reason.BAD_CONFIG
    else:
        assert policy.regions
