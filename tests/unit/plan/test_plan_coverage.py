"""Coverage: honest chips judged by the real appraiser; shares; the witness shortcut."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.geo import build_policy, circle_region, country_region
from geoattest.geo.policy import RegionPolicy
from geoattest.netsim.latency import LatencyModel, haversine_km
from geoattest.plan.coverage import (
    ALLOWED_CODE,
    HonestJudge,
    Witnesses,
    code_of,
    country_codes,
    evaluate,
    region_frame,
    region_grid,
    region_towns,
    shares,
)
from geoattest.verdict import Verdict

# Landmarks on both sides of the Rhine, where Germany meets France.
RHINE = (
    LandmarkSite("lm-fra", "Frankfurt", 50.1109, 8.6821),
    LandmarkSite("lm-ka", "Karlsruhe", 49.0069, 8.4037),
    LandmarkSite("lm-sxb", "Strasbourg", 48.5734, 7.7521),
    LandmarkSite("lm-scn", "Saarbruecken", 49.2402, 6.9969),
    LandmarkSite("lm-str", "Stuttgart", 48.7758, 9.1829),
)
TAIWAN = (
    LandmarkSite("lm-tpe", "Taipei", 25.0330, 121.5654),
    LandmarkSite("lm-hkg", "Hong Kong", 22.3193, 114.1694),
    LandmarkSite("lm-tyo", "Tokyo", 35.6762, 139.6503),
    LandmarkSite("lm-sin", "Singapore", 1.3349, 103.8920),
)


@functools.cache
def policy() -> RegionPolicy:
    return build_policy(
        "plan-test",
        1,
        [
            country_region("DE", ["DE"]),
            country_region("TW", ["TW"]),
            country_region("SG", ["SG"]),
            country_region("US", ["US"]),
            circle_region("taipei", 25.03, 121.56, 60.0),
        ],
        embargo=["KP"],
    )


@functools.cache
def rhine_judge(witnesses: bool) -> HonestJudge:
    grid = region_grid(policy(), "DE", 0.25)
    towns = region_towns(policy(), "DE")
    return HonestJudge(
        policy(),
        "DE",
        landmarks_per_chip=4,
        witnesses=Witnesses.of(grid, towns) if witnesses else None,
    )


def test_honest_rtt_is_twice_the_models_base_delay() -> None:
    model = LatencyModel.default()
    judge = HonestJudge(policy(), "TW", landmarks_per_chip=4, model=model)
    for d in (0.0, 3.0, 120.0, 700.0, 2500.0):
        for q in (0.5, 0.9):
            expected = 2 * model.base_delay_s(d, model.stretch_quantile(d, q)) * 1e9
            got = int(judge.rtt_ns(np.asarray([d]), q)[0])
            assert expected <= got <= math.ceil(expected) + 1


def test_an_honest_chip_is_inside_every_disk_it_reports() -> None:
    judge = HonestJudge(policy(), "TW", landmarks_per_chip=3)
    bounds = judge.bounds(24.15, 120.67, TAIWAN, 0.5)  # Taichung
    assert [b.landmark_id for b in bounds] == ["lm-tpe", "lm-hkg", "lm-tyo"]
    for b in bounds:
        assert b.bound_km > float(haversine_km(24.15, 120.67, b.latitude, b.longitude))


def test_taipei_is_certifiable_and_the_mainland_across_the_strait_is_not() -> None:
    judge = HonestJudge(policy(), "TW", landmarks_per_chip=3)
    lat = np.asarray([25.04, 24.48])  # Taipei; Xiamen (CN), across the strait
    lon = np.asarray([121.53, 118.09])
    codes = judge.verdicts(lat, lon, TAIWAN, 0.5)
    assert codes[0] == code_of(Verdict.ALLOWED)
    assert codes[1] != ALLOWED_CODE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(48.0, 49.6),
    lon=st.floats(6.8, 9.4),
    quantile=st.sampled_from([0.5, 0.9]),
)
def test_a_point_across_the_border_is_never_certifiable(
    lat: float, lon: float, quantile: float
) -> None:
    """Honest chips near the Rhine: ALLOWED only on German land, whatever the judge's path."""
    code = country_codes(policy().countries, np.asarray([lat]), np.asarray([lon]))[0]
    if not code:
        return  # at sea (none here) or a river gap: not a chip site under the land rule
    exact = rhine_judge(False).verdicts(np.asarray([lat]), np.asarray([lon]), RHINE, quantile)
    fast = rhine_judge(True).verdicts(np.asarray([lat]), np.asarray([lon]), RHINE, quantile)
    assert fast[0] == exact[0], "the witness shortcut must give the appraiser's verdict"
    if exact[0] == ALLOWED_CODE:
        assert code == "DE"


def test_the_rhine_setup_certifies_some_german_points() -> None:
    """The property above is not vacuous: in Stuttgart a chip is ALLOWED; in Heilbronn
    (40 km from its nearest landmark, a disk that reaches France) and Karlsruhe (8 km from
    France) not."""
    codes = rhine_judge(False).verdicts(
        np.asarray([48.78, 49.14, 49.01]), np.asarray([9.18, 9.22, 8.40]), RHINE, 0.5
    )
    assert codes.tolist() == [ALLOWED_CODE, *[code_of(Verdict.INCONCLUSIVE)] * 2]


def test_shares_weigh_cells_and_only_count_the_region() -> None:
    grid = region_grid(policy(), "TW", 0.1)
    towns = region_towns(policy(), "TW")
    judge = HonestJudge(policy(), "TW", landmarks_per_chip=3, witnesses=Witnesses.of(grid, towns))
    coverage = evaluate(judge, grid, towns, TAIWAN)
    median = coverage.stretches["median"]
    weight = grid.area_weight()
    allowed = (median.cells == ALLOWED_CODE) & grid.inside
    assert median.area_share == pytest.approx(weight[allowed].sum() / weight[grid.inside].sum())
    assert not ((median.cells == ALLOWED_CODE) & ~grid.inside).any()
    assert 0 < median.area_share < 1
    assert median.population_share is not None
    assert median.population_share > median.area_share  # people live near Taipei
    p90 = coverage.stretches["p90"]
    assert p90.area_share <= median.area_share
    assert sum(median.area_by_verdict.values()) == pytest.approx(1.0)
    out = coverage.to_json()
    assert out["certifiable_area_share"] == median.area_share
    assert out["certifiable_population_share_p90"] == p90.population_share


def test_shares_need_weight() -> None:
    assert shares(np.asarray([1, 2, 2], dtype=np.int8), np.asarray([2.0, 1.0, 1.0]))[
        "ALLOWED"
    ] == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        shares(np.zeros(0, dtype=np.int8), np.zeros(0))


def test_towns_are_the_regions_by_the_policys_shapes() -> None:
    towns = region_towns(policy(), "SG")
    assert len(towns) > 10
    codes = country_codes(policy().countries, towns.lat, towns.lon)
    assert set(codes) <= {"SG", ""}
    assert "Johor Bahru" not in towns.names


def test_a_region_across_the_antimeridian_gets_one_narrow_frame() -> None:
    west, _, east, _, _ = region_frame(policy(), "US")
    assert east - west < 180


def test_shaped_regions_are_judged_without_the_shortcut() -> None:
    grid = region_grid(policy(), "taipei", 0.05)
    towns = region_towns(policy(), "taipei")
    judge = HonestJudge(
        policy(), "taipei", landmarks_per_chip=3, witnesses=Witnesses.of(grid, towns)
    )
    coverage = evaluate(judge, grid, towns, TAIWAN)
    assert judge.by_witness == 0
    assert coverage.stretches["median"].area_share > 0


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not licensed"):
        region_grid(policy(), "XX")
    with pytest.raises(ConfigError, match="resolution"):
        region_grid(policy(), "TW", 0.0)
    with pytest.raises(ConfigError, match="cells"):
        region_grid(policy(), "US", 0.001)
