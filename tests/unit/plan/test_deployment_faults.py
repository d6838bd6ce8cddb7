"""The fault level a deployment's coverage and plans are judged at: the verifier's own
default unless the command line says otherwise, and never one the deployment's quorum and
landmarks per chip cannot meet."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_deployments import TAIWAN_DEPLOYMENT, write_taiwan

from geoattest.errors import ConfigError
from geoattest.plan.deployment import (
    default_deployment,
    fault_ceiling,
    load_deployment,
    with_landmark_faults,
)
from geoattest.verifier.pipeline import DEFAULT_LANDMARK_FAULTS, PipelineConfig


def test_the_default_is_the_verifiers() -> None:
    assert PipelineConfig().landmark_faults == DEFAULT_LANDMARK_FAULTS == 1
    assert default_deployment().landmark_faults == DEFAULT_LANDMARK_FAULTS


def test_a_quorum_of_one_leaves_no_fault_to_tolerate(tmp_path: Path) -> None:
    """Past the ceiling no honest chip could be ALLOWED: the default stays below it."""
    path = tmp_path / "one.toml"
    path.write_text(TAIWAN_DEPLOYMENT.replace("quorum = 3", "quorum = 1"))
    deployment = load_deployment(path)
    assert fault_ceiling(deployment.scenario) == 0
    assert deployment.landmark_faults == 0


@pytest.mark.parametrize("value", [-1, 3, True, 1.0, "1"])
def test_a_level_outside_the_deployments_reach_is_refused(tmp_path: Path, value: object) -> None:
    deployment = load_deployment(write_taiwan(tmp_path))
    with pytest.raises(ConfigError, match=r"--landmark-faults must be a whole number in \[0, 2\]"):
        with_landmark_faults(deployment, value, "--landmark-faults")  # type: ignore[arg-type]
    assert deployment.landmark_faults == 1


def test_the_command_lines_level_replaces_the_default(tmp_path: Path) -> None:
    deployment = load_deployment(write_taiwan(tmp_path))
    assert with_landmark_faults(deployment, None, "--landmark-faults") is deployment
    assert with_landmark_faults(deployment, 0, "--landmark-faults").landmark_faults == 0
    assert with_landmark_faults(deployment, 2, "--landmark-faults").landmark_faults == 2
