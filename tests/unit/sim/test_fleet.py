"""The fleet study: counts that add up, physics that holds, and a sample check that bites."""

from __future__ import annotations

import copy
import dataclasses
import functools

import pytest

from geoattest.demo.scenario import DemoScenario, default_scenario_path, load_scenario
from geoattest.errors import ConfigError
from geoattest.netsim.latency import great_circle_km
from geoattest.sim.fleet import FleetConfig, FleetResult, Placement, Strategy, run_fleet
from geoattest.sim.replay import check_sample
from geoattest.sim.shortcut import FleetVerdicts
from geoattest.verdict import KM_PER_NS_OF_RTT, Verdict


@functools.cache
def scenario() -> DemoScenario:
    return load_scenario(default_scenario_path())


@functools.cache
def tables(regions: tuple[str, ...] = ()) -> FleetVerdicts:
    """The shortcut tables for the demo's regions (or ``regions``), built once per module:
    they take seconds and depend only on the policy, landmarks, regions and faults."""
    s = scenario()
    everywhere = tuple(name for name, r in sorted(s.policy.regions.items()) if r.is_countries)
    return FleetVerdicts(s.policy.appraiser(), s.landmarks, regions or everywhere)


def fleet(config: FleetConfig) -> FleetResult:
    return run_fleet(scenario(), config, verdicts=tables(config.regions))


@functools.cache
def study(placement: Placement = Placement.CITIES) -> FleetResult:
    config = FleetConfig(
        devices=4000, diverted_share=0.3, sample=40, chunk=1500, seed=11, placement=placement
    )
    return fleet(config)


def test_every_chip_is_counted_once_and_no_diverted_chip_is_allowed() -> None:
    result = study()
    assert result.devices == 4000
    assert result.false_allowed == 0
    labels = set(result.counts)
    assert {f"diverted/{s.value}" for s in Strategy} <= labels
    assert {f"licensed/{r}" for r in scenario().policy.regions} <= labels
    # The demo's landmarks certify some honest chips (Tokyo, Taipei) and not others.
    assert 0 < result.totals("licensed")[Verdict.ALLOWED.value] < result.totals("licensed").total()


def test_the_sample_replayed_through_the_real_pipeline_agrees() -> None:
    result = study()
    summary = check_sample(scenario(), result)
    # Up to 4 chips for each way a verdict is reached and each truth (fewer if rare).
    assert 20 <= summary["checked"] == len(result.sampled) <= 40
    assert summary["matched"] == summary["checked"], summary["mismatches"]
    assert {chip.truth.split("/")[0] for chip in result.sampled} == {"licensed", "diverted"}
    assert result.verified
    assert result.problems() == ""
    assert set(summary["by_rule"]) >= {
        "allowed_by_reach",
        "outside_by_reach",
        "inconclusive_by_probe",
        "undecided",
    }


def test_every_chip_is_inside_its_disks_and_agrees_with_the_tables() -> None:
    result = study()
    assert result.audit["chips_outside_a_disk"] == 0
    assert result.audit["table_contradictions"] == 0
    assert result.audit["diverted_judged_by_appraiser"] > 0
    assert result.sound


def test_the_audit_catches_a_wrong_distance_table() -> None:
    # Claim that licensed land is ten times farther from every landmark than it is: the
    # OUTSIDE shortcut would then fire for licensed chips, and the audit must say so.
    s = scenario()
    broken = copy.copy(tables())
    broken.to_licensed = broken.to_licensed * 10 + 1000
    result = run_fleet(s, FleetConfig(devices=2000, sample=0, seed=5), verdicts=broken)
    assert result.audit["table_contradictions"] > 0
    assert not result.sound
    check_sample(s, result)
    assert not result.verified
    assert "table_contradictions = " in result.problems()


def test_verdicts_prepared_for_other_regions_are_refused() -> None:
    # The shortcuts' tables are indexed by region: reading JP's row for TW would be unsound.
    s = scenario()
    prepared = FleetVerdicts(s.policy.appraiser(), s.landmarks, ("TW", "JP"))
    config = FleetConfig(devices=100, sample=0, regions=("JP", "TW"))
    with pytest.raises(ConfigError, match="prepared fleet verdicts"):
        run_fleet(s, config, verdicts=prepared)
    trusting = FleetVerdicts(s.policy.appraiser(), s.landmarks, ("JP", "TW"), landmark_faults=0)
    with pytest.raises(ConfigError, match="prepared fleet verdicts"):
        run_fleet(s, dataclasses.replace(config, landmark_faults=1), verdicts=trusting)


def test_a_region_with_nowhere_to_divert_to_is_noted() -> None:
    config = FleetConfig(devices=500, sample=0, regions=("JP", "TW"), destinations=("TW",))
    result = fleet(config)
    assert result.notes == ("no destination lies outside TW: its chips are all licensed ones",)
    assert "diverted/relay" in result.counts  # JP's diverted chips went to Taiwan


def test_the_sample_check_catches_a_wrong_verdict() -> None:
    result = study()
    wrong = dataclasses.replace(result.sampled[0], verdict=Verdict.ALLOWED)
    if result.sampled[0].verdict is Verdict.ALLOWED:
        wrong = dataclasses.replace(result.sampled[0], verdict=Verdict.OUTSIDE)
    tampered = dataclasses.replace(result, sampled=[wrong, *result.sampled[1:5]])
    summary = check_sample(scenario(), tampered)
    assert summary["matched"] == 4
    assert [m["index"] for m in summary["mismatches"]] == [wrong.index]
    assert not tampered.verified
    assert tampered.problems() == "1 sampled verdicts differ"


def test_no_strategy_gets_a_round_trip_faster_than_light() -> None:
    # Every adversary in the study only adds delay or uses a link slower than c: each
    # exchange's RTT bounds the chip's true distance from the landmark.
    result = study()
    landmarks = scenario().landmarks
    for chip in result.sampled:
        for j, lm in enumerate(chip.schedule.landmarks):
            site = landmarks[lm]
            distance = great_circle_km(
                (chip.latitude, chip.longitude), (site.latitude, site.longitude)
            )
            fastest = min(
                d + u for d, u in zip(chip.schedule.down_ns[j], chip.schedule.up_ns[j], strict=True)
            )
            assert fastest * KM_PER_NS_OF_RTT >= distance, (chip.truth, chip.place)


def test_the_same_seed_gives_the_same_study() -> None:
    config = FleetConfig(devices=600, sample=0, seed=3)
    first, second = fleet(config), fleet(config)
    assert first.counts == second.counts
    assert fleet(dataclasses.replace(config, seed=4)).counts != first.counts


def test_grid_placement_spreads_chips_over_land() -> None:
    config = FleetConfig(devices=800, sample=8, regions=("JP", "TW"), placement=Placement.GRID)
    result = fleet(config)
    assert result.devices == 800
    assert result.false_allowed == 0
    assert {p.place.split()[0] for p in result.sampled} == {"grid"}
    assert check_sample(scenario(), result)["matched"] == len(result.sampled)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"regions": ("XX",)}, "region 'XX'"),
        ({"devices": 0}, "devices"),
        ({"diverted_share": 1.5}, "diverted share"),
        ({"destinations": ("QQ",)}, "no place to divert chips to in QQ"),
        ({"strategies": ()}, "strategy"),
    ],
)
def test_bad_configurations_are_refused(change: dict[str, object], needle: str) -> None:
    config = dataclasses.replace(FleetConfig(devices=10, sample=0), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=needle):
        run_fleet(scenario(), config)
