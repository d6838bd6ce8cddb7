"""The appraiser's verdicts in the cases that matter: inside, outside, across the
antimeridian, at the poles, with disks too big to draw, contradicting landmarks, embargo,
and the three location assumptions."""

from __future__ import annotations

import dataclasses
import math

import pytest
from geo_truth import asia_appraiser, bound_from, rtt_for_km
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.errors import ConfigError
from geoattest.geo import (
    LocationAssumption,
    build_policy,
    circle_region,
    country_region,
    estimate_location,
    geojson_region,
)
from geoattest.geo.feasible import contains_point
from geoattest.verdict import LandmarkBound, Verdict

FRANKFURT = (50.11, 8.68)


def _lm(name: str, lat: float, lon: float, km: float) -> LandmarkBound:
    return LandmarkBound(name, lat, lon, rtt_for_km(km))


def test_chip_deep_inside_germany_is_allowed() -> None:
    bounds = [
        bound_from("fra", 50.05, 8.57, FRANKFURT, delay_ns=100_000),
        bound_from("ber", 52.52, 13.40, FRANKFURT, delay_ns=1_000_000),
        bound_from("par", 48.85, 2.35, FRANKFURT, delay_ns=2_000_000),
    ]
    result = asia_appraiser().appraise(bounds, "DE")
    assert result.verdict is Verdict.ALLOWED
    assert not result.embargoed
    assert result.feasible_area_km2 > 0
    assert result.feasible_region is not None
    assert result.feasible_region["type"] == "Polygon"
    assert asia_appraiser().appraise(bounds, "FR").verdict is Verdict.OUTSIDE


def test_disks_that_cannot_all_hold_one_point_are_inconsistent() -> None:
    bounds = [_lm("a", 50.0, 8.0, 100.0), _lm("b", 40.0, -3.7, 100.0)]
    result = asia_appraiser().appraise(bounds, "DE")
    assert result.verdict is Verdict.INCONSISTENT
    # Three disks that pairwise meet but share no point.
    bounds = [_lm("a", 0.0, 0.0, 540.0), _lm("b", 0.0, 9.0, 540.0), _lm("c", 7.8, 4.5, 540.0)]
    assert asia_appraiser("anywhere").appraise(bounds, "DE").verdict is Verdict.INCONSISTENT


def test_disks_that_just_touch_are_not_called_inconsistent() -> None:
    # 1 degree of longitude at the equator is about 111.2 km: two 55.7 km disks meet.
    bounds = [_lm("a", 0.0, 0.0, 55.66), _lm("b", 0.0, 1.0, 55.66)]
    result = asia_appraiser("anywhere").appraise(bounds, "DE")
    assert result.verdict is not Verdict.INCONSISTENT


def test_embargoed_when_the_whole_region_is_in_an_embargoed_country() -> None:
    pyongyang = (39.03, 125.75)
    bounds = [bound_from("pyo", 39.0, 125.7, pyongyang, delay_ns=50_000)]
    result = asia_appraiser().appraise(bounds, "SG")
    assert result.verdict is Verdict.OUTSIDE
    assert result.embargoed
    # Straddling KP and CN: not wholly embargoed.
    dandong = (40.13, 124.39)
    bounds = [bound_from("dd", 40.13, 124.39, dandong, delay_ns=400_000)]
    assert not asia_appraiser().appraise(bounds, "SG").embargoed


def test_fiji_across_the_antimeridian() -> None:
    taveuni = (-16.85, -179.95)  # Fiji, east of the antimeridian
    bounds = [bound_from("suva", -18.14, 178.44, taveuni, delay_ns=100_000)]
    result = asia_appraiser().appraise(bounds, "FJ")
    assert result.verdict is Verdict.ALLOWED
    outer = asia_appraiser().feasible(bounds)
    assert outer.polygon is not None
    assert contains_point(outer.polygon, *taveuni)
    assert result.feasible_region is not None
    assert result.feasible_region["type"] == "MultiPolygon"  # folded at the antimeridian


def test_chukotka_spans_the_antimeridian_and_stays_russian() -> None:
    chip = (65.0, -179.0)
    bounds = [
        bound_from("anadyr", 64.73, 177.5, chip, delay_ns=10_000),
        bound_from("egvekinot", 66.32, -179.12, chip, delay_ns=10_000),
    ]
    assert asia_appraiser().appraise(bounds, "RU").verdict is Verdict.ALLOWED
    assert asia_appraiser().appraise(bounds, "US").verdict is Verdict.OUTSIDE


def test_a_disk_holding_a_pole_is_left_out_and_never_allowed() -> None:
    # Alone, a disk over the North Pole cannot be drawn: fail closed.
    result = asia_appraiser().appraise([_lm("np", 89.0, 0.0, 500.0)], "NO")
    assert result.verdict is Verdict.INCONCLUSIVE
    # With a small disk elsewhere the pole disk is simply not used.
    svalbard = (78.22, 15.65)
    bounds = [
        _lm("np", 89.5, 0.0, 1500.0),
        bound_from("lyr", 78.2, 15.6, svalbard, delay_ns=10_000),
    ]
    result = asia_appraiser().appraise(bounds, "NO")
    assert result.verdict is Verdict.ALLOWED
    assert list(result.extra["disks_used"]) == [1]


def test_south_pole_landmarks_fail_closed() -> None:
    bounds = [_lm("sp", -90.0, 0.0, 300.0), _lm("sp2", -89.0, 120.0, 400.0)]
    result = asia_appraiser().appraise(bounds, "NO")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.feasible_region is None


def test_disks_larger_than_a_hemisphere_fail_closed() -> None:
    bounds = [_lm("a", 0.0, 0.0, 15_000.0), _lm("b", 10.0, 100.0, 12_000.0)]
    result = asia_appraiser().appraise(bounds, "DE")
    assert result.verdict is Verdict.INCONCLUSIVE
    # Antipodal landmarks with small disks are still caught as inconsistent.
    bounds = [_lm("a", 0.0, 0.0, 15_000.0), _lm("b", 0.0, 180.0, 100.0), _lm("c", 0.0, 0.0, 100.0)]
    assert asia_appraiser().appraise(bounds, "DE").verdict is Verdict.INCONSISTENT


def test_a_whole_earth_disk_with_a_small_one_is_decided_by_the_small_one() -> None:
    bounds = [_lm("a", 10.0, 10.0, 25_000.0), bound_from("fra", 50.05, 8.57, FRANKFURT)]
    assert asia_appraiser().appraise(bounds, "DE").verdict is Verdict.ALLOWED


@pytest.mark.parametrize(
    "bound",
    [
        LandmarkBound("nan", math.nan, 0.0, 1000),
        LandmarkBound("lat", 91.0, 0.0, 1000),
        LandmarkBound("inf", 0.0, math.inf, 1000),
        LandmarkBound("lon", 0.0, 538.0, 1000),
        LandmarkBound("lon-west", 0.0, -181.0, 1000),
        LandmarkBound("neg", 0.0, 0.0, -5),
        LandmarkBound("motion", 0.0, 0.0, 5, motion_km=math.nan),
    ],
)
def test_unusable_bounds_fail_closed(bound: LandmarkBound) -> None:
    result = asia_appraiser().appraise([bound], "DE")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert bound.landmark_id in result.detail


@pytest.mark.parametrize("turns", [1, 2, -1])
def test_a_site_given_past_the_antimeridian_is_unusable_not_judged(turns: int) -> None:
    """A 500 km disk at 178 E straddles the edge of a licence ending at the antimeridian.
    Given as 178 + 360 k, it once came out ALLOWED (k = 1) or OUTSIDE (k = 2): the region,
    unwrapped around that longitude, lost the part the antimeridian folding did not
    reach. Such a site is off the globe, and the bound unusable."""
    box = {
        "type": "Polygon",
        "coordinates": [[[170, -20], [180, -20], [180, 20], [170, 20], [170, -20]]],
    }
    policy = build_policy(
        "box", 1, [geojson_region("box", box)], location="anywhere", border_margin_km=0.0
    )
    appraiser = policy.appraiser()
    rtt_ns = rtt_for_km(500.0)
    honest = appraiser.appraise([LandmarkBound("lm", 0.0, 178.0, rtt_ns)], "box")
    assert honest.verdict is Verdict.INCONCLUSIVE
    result = appraiser.appraise([LandmarkBound("lm", 0.0, 178.0 + 360.0 * turns, rtt_ns)], "box")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "'lm' has an unusable bound" in result.detail


def test_a_negative_allowance_cannot_shrink_a_disk_into_the_licence() -> None:
    """A disk 50 times Frankfurt's honest one, less a negative motion allowance that would
    bring it back to the honest size: the landmark's clock says the chip may be 500 km off,
    so the bound is unusable, not ALLOWED."""
    honest = bound_from("fra", 50.05, 8.57, FRANKFURT)
    assert asia_appraiser().appraise([honest], "DE").verdict is Verdict.ALLOWED
    wide = LandmarkBound("fra", 50.05, 8.57, honest.rtt_min_ns * 50, -honest.bound_km * 49)
    result = asia_appraiser().appraise([wide], "DE")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "fra" in result.detail


@settings(max_examples=200, deadline=None)
@given(
    rtt_min_ns=st.integers(-(10**12), 10**12),
    motion_km=st.floats(allow_nan=True, allow_infinity=True),
)
def test_a_bound_is_used_only_with_a_non_negative_rtt_and_allowance(
    rtt_min_ns: int, motion_km: float
) -> None:
    """Beside an honest disk, any second bound whose RTT or motion allowance is negative
    (or not finite) makes the appraisal INCONCLUSIVE, naming it; never ALLOWED."""
    honest = bound_from("fra", 50.05, 8.57, FRANKFURT)
    other = LandmarkBound("odd", 50.11, 8.68, rtt_min_ns, motion_km)
    result = asia_appraiser().appraise([honest, other], "DE")
    if rtt_min_ns < 0 or not math.isfinite(motion_km) or motion_km < 0:
        assert result.verdict is Verdict.INCONCLUSIVE
        assert "odd" in result.detail
    else:
        assert result.verdict is not Verdict.INCONCLUSIVE or "odd" not in result.detail


def test_unknown_region_and_no_bounds_fail_closed() -> None:
    bounds = [bound_from("fra", 50.05, 8.57, FRANKFURT)]
    unknown = asia_appraiser().appraise(bounds, "Atlantis")
    assert unknown.verdict is Verdict.INCONCLUSIVE
    assert "Atlantis" in unknown.detail
    assert asia_appraiser().appraise([], "DE").verdict is Verdict.INCONCLUSIVE


def test_motion_allowance_widens_the_disk() -> None:
    chip = (50.11, 8.68)
    base = bound_from("fra", 50.05, 8.57, chip)
    moved = LandmarkBound(base.landmark_id, base.latitude, base.longitude, base.rtt_min_ns, 400.0)
    assert asia_appraiser().appraise([base], "DE").verdict is Verdict.ALLOWED
    assert asia_appraiser().appraise([moved], "DE").verdict is Verdict.INCONCLUSIVE


def test_a_disk_wholly_at_sea_is_not_allowed_on_the_land_assumption() -> None:
    bounds = [_lm("ship", 0.0, -150.0, 50.0)]
    result = asia_appraiser().appraise(bounds, "US")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no land" in result.detail
    assert asia_appraiser("anywhere").appraise(bounds, "US").verdict is Verdict.OUTSIDE


def test_territorial_waters_widen_by_twelve_nautical_miles() -> None:
    # A chip on Singapore's south coast with a 3 km disk: fine on land, but the
    # territorial sea reaches Indonesia's Batam within 22 km.
    chip = (1.27, 103.85)
    bounds = [_lm("sg", 1.27, 103.85, 3.0)]
    assert asia_appraiser().appraise(bounds, "SG").verdict is Verdict.ALLOWED
    waters = asia_appraiser("territorial_waters").appraise(bounds, "SG")
    assert waters.verdict is Verdict.INCONCLUSIVE
    assert "ID" in waters.extra["touched"] or "MY" in waters.extra["touched"]
    del chip


def test_licensed_circle_with_the_land_assumption() -> None:
    policy = build_policy(
        "site", 1, [circle_region("campus", 1.35, 103.82, 15.0), country_region("SG", ["SG"])]
    )
    appraiser = policy.appraiser()
    inside = [_lm("a", 1.35, 103.82, 3.0)]
    assert appraiser.appraise(inside, "campus").verdict is Verdict.ALLOWED
    straddle = [_lm("a", 1.35, 103.82, 30.0)]
    assert appraiser.appraise(straddle, "campus").verdict is Verdict.INCONCLUSIVE
    away = [_lm("a", 1.35, 104.3, 5.0)]  # Johor coast, 50 km east
    assert appraiser.appraise(away, "campus").verdict is Verdict.OUTSIDE


def test_the_estimate_is_labelled_and_lies_in_the_feasible_region() -> None:
    chip = FRANKFURT
    bounds = [
        bound_from("fra", 50.05, 8.57, chip, delay_ns=300_000),
        bound_from("ber", 52.52, 13.40, chip, delay_ns=3_000_000),
        bound_from("par", 48.85, 2.35, chip, delay_ns=3_000_000),
        bound_from("mun", 48.14, 11.58, chip, delay_ns=2_000_000),
    ]
    outer = asia_appraiser().feasible(bounds)
    estimate = estimate_location(bounds, outer.polygon)
    assert estimate is not None
    assert "estimate" in estimate.model
    assert outer.polygon is not None
    assert contains_point(outer.polygon.buffer(1e-6), estimate.lat, estimate.lon)
    assert estimate_location([]) is None


@pytest.mark.parametrize("margin", [-400.0, -0.5, math.nan, math.inf, 101.0])
def test_a_policy_however_built_never_narrows_a_disk(margin: float) -> None:
    """The border margin only widens disks: a policy built by the constructor or
    ``dataclasses.replace`` with a negative (or non-finite, or absurd) margin is refused, as
    a policy file or ``build_policy`` with it is."""
    policy = asia_appraiser().policy
    with pytest.raises(ConfigError, match="border_margin_km"):
        dataclasses.replace(policy, border_margin_km=margin)
    with pytest.raises(ConfigError, match="location"):
        dataclasses.replace(policy, location="at sea")  # type: ignore[arg-type]
    as_text = dataclasses.replace(policy, location="territorial_waters")  # type: ignore[arg-type]
    assert as_text.location is LocationAssumption.TERRITORIAL_WATERS
