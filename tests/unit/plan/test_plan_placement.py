"""Landmark placement: the greedy search, default candidates, deployment files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.netsim.latency import haversine_km
from geoattest.plan.coverage import country_codes
from geoattest.plan.deployment import (
    default_deployment,
    example_deployment_path,
    load_candidates,
    load_deployment,
    parse_candidates,
    unique_ids,
)
from geoattest.plan.placement import default_candidates, plan_landmarks

KAOHSIUNG = LandmarkSite("kaohsiung", "Kaohsiung", 22.6273, 120.3014)
ULAANBAATAR = LandmarkSite("ulaanbaatar", "Ulaanbaatar", 47.8864, 106.9057)


def test_greedy_picks_the_site_that_helps_and_stops_when_none_does() -> None:
    demo = default_deployment()
    plan = plan_landmarks(
        demo.policy,
        "TW",
        demo.landmarks,
        [ULAANBAATAR, KAOHSIUNG],
        landmarks_per_chip=demo.landmarks_per_chip,
        budget=2,
        resolution_deg=0.1,
    )
    assert [p.site.landmark_id for p in plan.picks] == ["kaohsiung"]
    assert plan.stopped_early
    gain = plan.picks[0].population_gain
    assert gain is not None
    assert gain > 0
    before = plan.before.stretches["median"].population_share
    after = plan.after.stretches["median"].population_share
    assert before is not None
    assert after is not None
    assert after > before
    out = plan.to_json()
    assert out["budget_used"] == 1
    assert out["after"]["certifiable_population_share"] == after


TAIWAN = (
    LandmarkSite("lm-tpe", "Taipei", 25.0330, 121.5654),
    LandmarkSite("lm-hkg", "Hong Kong", 22.3193, 114.1694),
    LandmarkSite("lm-tyo", "Tokyo", 35.6762, 139.6503),
)
KAOHSIUNG_PAIR = (
    KAOHSIUNG,
    LandmarkSite("kaohsiung-b", "Kaohsiung, another operator, 1 km north", 22.6363, 120.3014),
)


@pytest.mark.parametrize(("budget", "picked"), [(1, []), (2, ["kaohsiung", "kaohsiung-b"])])
def test_at_one_fault_the_search_finds_a_pair_that_no_single_site_makes(
    budget: int, picked: list[str]
) -> None:
    """At ``landmark_faults = 1`` a chip in Kaohsiung needs two close landmarks of
    independent operators: neither new site helps alone, so the first is picked for what it
    certifies at 0 faults, and kept only where the budget brings its partner."""
    demo = default_deployment()
    plan = plan_landmarks(
        demo.policy,
        "TW",
        TAIWAN,
        KAOHSIUNG_PAIR,
        landmarks_per_chip=3,
        budget=budget,
        resolution_deg=0.2,
        landmark_faults=1,
    )
    assert [p.site.landmark_id for p in plan.picks] == picked
    before = plan.before.stretches["median"].population_share
    after = plan.after.stretches["median"].population_share
    assert before == 0.0
    if not picked:
        assert plan.stopped_early
        assert after == 0.0
        return
    first, second = plan.picks
    assert first.raised_nothing
    assert not second.raised_nothing
    assert after is not None
    assert after > 0.1
    out = plan.to_json()
    assert out["landmark_faults"] == 1
    assert [p["alone_adds_nothing"] for p in out["picks"]] == [True, False]


def test_at_one_fault_a_second_operator_beside_a_landmark_is_a_candidate() -> None:
    """Taipei's one landmark certifies nothing at one fault; a second operator's landmark
    in another building beside it certifies Taipei's people, and the default candidates
    offer it (beside each landmark near the region, not beside Tokyo's, 2,000 km off)."""
    demo = default_deployment()
    plain = default_candidates(demo.policy, "TW", TAIWAN, radius_km=600)
    offered = default_candidates(demo.policy, "TW", TAIWAN, radius_km=600, landmark_faults=1)
    assert offered[: len(plain)] == plain
    beside = offered[len(plain) :]
    assert [s.landmark_id for s in beside] == ["lm-tpe-beside", "lm-hkg-beside"]
    for site, landmark in zip(beside, TAIWAN, strict=False):
        km = float(
            haversine_km(site.latitude, site.longitude, [landmark.latitude], [landmark.longitude])[
                0
            ]
        )
        assert 0.1 < km <= 1.01
        assert site.operator not in {s.operator for s in TAIWAN}
    plan = plan_landmarks(
        demo.policy,
        "TW",
        TAIWAN,
        offered,
        landmarks_per_chip=3,
        budget=1,
        resolution_deg=0.2,
        landmark_faults=1,
    )
    assert [p.site.landmark_id for p in plan.picks] == ["lm-tpe-beside"]
    after = plan.after.stretches["median"].population_share
    assert after is not None
    assert after > 0.4


def test_a_zero_budget_keeps_the_deployment() -> None:
    demo = default_deployment()
    plan = plan_landmarks(
        demo.policy,
        "TW",
        demo.landmarks,
        [KAOHSIUNG],
        landmarks_per_chip=4,
        budget=0,
        resolution_deg=0.2,
    )
    assert plan.picks == ()
    assert plan.after is plan.before


def test_bad_budgets_are_refused() -> None:
    demo = default_deployment()
    for budget in (-1, 2):
        with pytest.raises(ConfigError, match="budget"):
            plan_landmarks(
                demo.policy,
                "TW",
                demo.landmarks,
                [KAOHSIUNG],
                landmarks_per_chip=4,
                budget=budget,
            )


def test_default_candidates_are_large_towns_near_the_region_and_apart() -> None:
    demo = default_deployment()
    sites = default_candidates(demo.policy, "SG", demo.landmarks, radius_km=400, count=10)
    assert len(sites) == 10
    assert len({s.landmark_id for s in sites}) == 10
    lat = np.asarray([s.latitude for s in sites])
    lon = np.asarray([s.longitude for s in sites])
    # None within 25 km of an existing landmark (Johor Bahru is next to lm-sin).
    for lm in demo.landmarks:
        d = np.hypot(lat - lm.latitude, (lon - lm.longitude) * np.cos(np.radians(lat)))
        assert (d * 111 > 20).all()
    assert not {"KP", "IR"} & set(country_codes(demo.policy.countries, lat, lon))


def test_the_example_deployment_loads() -> None:
    example = load_deployment(example_deployment_path())
    assert example.name == "Southeast Asia with 12 landmarks"
    assert len(example.landmarks) == 12
    assert example.regions == ("SG", "MY", "TH", "VN", "ID", "PH")
    assert example.budget == 2
    assert example.scenario.chips == ()


def test_deployment_files_are_checked(tmp_path: Path) -> None:
    base = example_deployment_path().read_text(encoding="utf-8")
    cases = {
        "unknown": base.replace("budget = 2 ", "bugdet = 2 "),
        "budget": base.replace("budget = 2 ", "budget = -1 "),
        "region": base.replace('regions = ["SG"', 'regions = ["XX"'),
    }
    for needle, text in cases.items():
        path = tmp_path / f"{needle}.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=needle if needle != "region" else "XX"):
            load_deployment(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_deployment(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_deployment(bad)


def test_candidate_files_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[[candidates]]\nname = "Kaohsiung"\nlat = 22.6\nlon = 120.3\n', "utf-8")
    assert load_candidates(toml)[0].landmark_id == "new-1"
    js = tmp_path / "c.json"
    js.write_text(json.dumps([{"id": "khh", "name": "Kaohsiung", "lat": 22.6, "lon": 120.3}]))
    assert load_candidates(js)[0].landmark_id == "khh"
    for entries, needle in (
        ([], "non-empty"),
        ([{"name": "x", "lat": 95, "lon": 0}], "lat"),
        ([{"name": "x", "lat": 1}], "missing"),
        ([{"name": "x", "lat": 1, "lon": 2, "alt": 3}], "unknown"),
        ([{"id": "a", "name": "x", "lat": 1, "lon": 2}] * 2, "unique"),
        ([{"name": "x", "lat": 10**400, "lon": 2}], "lat must be a number"),
        ([{"name": "x", "lat": 1, "lon": -(10**400)}], "lon must be a number"),
        ([{"name": "x", "lat": float("nan"), "lon": 2}], "lat must be a number"),
    ):
        with pytest.raises(ConfigError, match=needle):
            parse_candidates(entries, "test")
    huge = tmp_path / "huge.toml"  # TOML integers have no size limit in tomllib
    huge.write_text(f'[[candidates]]\nname = "x"\nlat = {10**400}\nlon = 1\n', "utf-8")
    with pytest.raises(ConfigError, match="lat must be a number"):
        load_candidates(huge)
    with pytest.raises(ConfigError, match="already landmarks"):
        unique_ids(default_deployment().landmarks, [LandmarkSite("lm-sin", "x", 1.0, 2.0)])
