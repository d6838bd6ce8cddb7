"""The scenario registry: every scenario has a test in its threat's module, and the
only scenario not defended is the one the suite says is not."""

from __future__ import annotations

from pathlib import Path

from geoattest.attacks.scenarios import BY_NAME, SCENARIOS

HERE = Path(__file__).parent
NOT_YET_DEFENDED = {"lying_landmark_among_distant_honest_ones"}


def test_every_scenario_is_tested_in_its_threat_module() -> None:
    assert len(BY_NAME) == len(SCENARIOS)
    for scenario in SCENARIOS:
        module = HERE / f"test_{scenario.threat}_attacks.py"
        assert f'"{scenario.name}"' in module.read_text(), scenario.name


def test_only_the_known_gaps_are_undefended() -> None:
    undefended = {s.name for s in SCENARIOS if not s.run().defended}
    assert undefended == NOT_YET_DEFENDED
