"""Scenario files: the shipped one loads; every mistake is a load error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoattest.demo.scenario import default_scenario_path, load_scenario
from geoattest.errors import ConfigError

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


def test_each_chip_measures_its_data_centre_landmark_first():
    scenario = load_scenario(default_scenario_path())
    for chip in scenario.chips:
        nearest = scenario.landmarks_for(chip)
        assert len(nearest) == scenario.landmarks_per_chip
        if chip.datacentre_landmark:
            assert nearest[0].landmark_id == chip.datacentre_landmark


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("cadence_s = 10", "cadense_s = 10"), "unknown key"),
        (lambda t: t.replace('licensed_region = "JP"', 'licensed_region = "XX"', 1), "'XX'"),
        (lambda t: t.replace("lat = 1.3349", "lat = 91.0", 1), "lat"),
        (lambda t: t.replace('id = "lm-kul"', 'id = "lm-sin"'), "unique"),
        (
            lambda t: t.replace('datacentre_landmark = "lm-tyo"', 'datacentre_landmark = "lm-x"'),
            "lm-x",
        ),
        (lambda t: t.replace("quorum = 3", "quorum = 9"), "quorum"),
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
