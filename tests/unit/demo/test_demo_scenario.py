"""Scenario files: the shipped one loads; every mistake is a load error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoattest.demo.scenario import default_scenario_path, load_scenario
from geoattest.errors import ConfigError
from geoattest.netsim.latency import great_circle_km

SHIPPED = default_scenario_path().read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_shipped_scenario_has_the_cases_the_demo_promises():
    scenario = load_scenario(default_scenario_path())
    places = {chip.device_id: chip for chip in scenario.chips}
    assert len(scenario.landmarks) >= 8
    assert {c.licensed_region for c in places.values()} >= {"SG", "JP", "DE", "US"}
    assert any("Shenzhen" in c.place and c.licensed_region == "SG" for c in places.values())
    assert any("Johor" in c.place and c.licensed_region == "SG" for c in places.values())


def test_each_chip_measures_its_data_centre_landmarks_first():
    scenario = load_scenario(default_scenario_path())
    for chip in scenario.chips:
        nearest = scenario.landmarks_for(chip)
        assert len(nearest) == scenario.landmarks_per_chip
        first = {site.landmark_id for site in nearest[: len(chip.datacentre_landmarks)]}
        assert first == set(chip.datacentre_landmarks)


def test_each_licensed_data_centre_has_two_landmarks_of_independent_operators():
    """So its chips survive the default policy's one lying operator (and two sites)."""
    scenario = load_scenario(default_scenario_path())
    sites = {site.landmark_id: site for site in scenario.landmarks}
    with_datacentre = [chip for chip in scenario.chips if chip.datacentre_landmarks]
    assert len(with_datacentre) >= 6
    for chip in with_datacentre:
        a, b = (sites[landmark_id] for landmark_id in chip.datacentre_landmarks)
        assert a.operator != b.operator
        assert great_circle_km((a.latitude, a.longitude), (b.latitude, b.longitude)) > 0.1


def test_a_scenario_written_with_one_datacentre_landmark_still_loads(tmp_path):
    text = default_scenario_path().read_text()
    text = text.replace(
        'datacentre_landmarks = ["lm-tyo", "lm-tyo-2"]', 'datacentre_landmark = "lm-tyo"'
    )
    text = text.replace('operator = "tyo-carrier"\n', "")
    path = tmp_path / "old.toml"
    path.write_text(text)
    scenario = load_scenario(path)
    tokyo = next(chip for chip in scenario.chips if chip.device_id == "chip-jp-01")
    assert tokyo.datacentre_landmarks == ("lm-tyo",)
    assert next(s for s in scenario.landmarks if s.landmark_id == "lm-tyo").operator == "lm-tyo"


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("cadence_s = 10", "cadense_s = 10"), "unknown key"),
        (lambda t: t.replace('licensed_region = "JP"', 'licensed_region = "XX"', 1), "'XX'"),
        (lambda t: t.replace("lat = 1.3349", "lat = 91.0", 1), "lat"),
        (lambda t: t.replace('id = "lm-kul"', 'id = "lm-sin"'), "unique"),
        (
            lambda t: t.replace('["lm-tyo", "lm-tyo-2"]', '["lm-tyo", "lm-x"]'),
            "lm-x",
        ),
        (lambda t: t.replace("quorum = 3", "quorum = 9"), "quorum"),
        (lambda t: t.replace("quorum = 3", "quorum = 2.9"), "quorum must be a whole number"),
        (lambda t: t.replace("exchanges = 8", "exchanges = 8.5"), "exchanges must be a whole"),
        (lambda t: t.replace("seed = 7", "seed = nan"), "seed must be a whole number"),
        (lambda t: t.replace("lat = 1.3349", f"lat = {10**400}", 1), "lat must be a number"),
        (lambda t: t.replace("[policy]", "[policy]\nbogus = 1"), "bogus"),
        (lambda t: t + "\n[[chips]]\nid = 3\n", "chips"),
        (lambda t: t.replace('name = "Kuala Lumpur"', "name = "), "TOML"),
    ],
    ids=[
        "key",
        "region",
        "latitude",
        "duplicate",
        "datacentre",
        "quorum",
        "fractional quorum",
        "fractional exchanges",
        "nan seed",
        "huge latitude",
        "policy",
        "chip",
        "syntax",
    ],
)
def test_scenario_mistakes_are_named(tmp_path, edit, needle):
    with pytest.raises(ConfigError, match=needle):
        load_scenario(write(tmp_path, edit(SHIPPED)))


def test_missing_scenario_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")
