"""The scenario registry: every scenario has a test in its threat's module, and every
scenario is defended at the verifier's default settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoattest.attacks.catalog import BY_NAME, SCENARIOS
from geoattest.attacks.world import AttackWorld
from geoattest.verdict import Verdict

HERE = Path(__file__).parent


def test_every_scenario_is_tested_in_its_threat_module() -> None:
    assert len(BY_NAME) == len(SCENARIOS)
    for scenario in SCENARIOS:
        module = HERE / f"test_{scenario.threat}_attacks.py"
        assert f'"{scenario.name}"' in module.read_text(), scenario.name


def test_every_scenario_is_defended_at_the_default_settings() -> None:
    undefended = {s.name for s in SCENARIOS if not s.run().defended}
    assert undefended == set()


@pytest.mark.slow
def test_no_attack_is_allowed_on_any_of_ten_networks() -> None:
    """The security property, beyond the pinned seed: where ALLOWED is not the defended
    outcome, no seeded network (routes, stretch, jitter) yields it."""
    false_allowed = [
        (scenario.name, seed)
        for scenario in SCENARIOS
        if Verdict.ALLOWED not in scenario.expect.verdicts
        for seed in range(1, 11)
        if scenario.run(AttackWorld(seed=seed, **scenario.world)).verdict is Verdict.ALLOWED
    ]
    assert false_allowed == []
