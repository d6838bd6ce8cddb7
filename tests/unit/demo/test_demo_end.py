"""The demo ends cleanly: its temporary workspace (keys, database, logs) is removed however
the demo ends, unless the user asked to keep it or named the directory themselves, and its
map is written even for chips with no proof judged yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from command import invoke

from geoattest.demo import run


@pytest.fixture
def fake_demo(tmp_path, monkeypatch) -> dict[str, Any]:
    """``run_demo`` replaced by one that writes into its workspace and then ends as
    ``seen["ends"]`` says: normally, interrupted, or with an error."""
    seen: dict[str, Any] = {"ends": "normally", "temporary": tmp_path / "geoattest-demo-x"}

    def workdir() -> Path:
        seen["temporary"].mkdir()
        return seen["temporary"]

    def run_demo(_scenario: object, *, root: Path, workspace_kept: bool, **_: object) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "verifier.db").write_bytes(b"data")
        seen["root"], seen["kept"] = root, workspace_kept
        if seen["ends"] == "interrupted":
            raise KeyboardInterrupt
        if seen["ends"] == "failing":
            raise OSError(98, "Address already in use")

    monkeypatch.setattr(run, "default_workdir", workdir)
    monkeypatch.setattr(run, "run_demo", run_demo)
    return seen


@pytest.mark.parametrize("ends", ["normally", "interrupted", "failing"])
def test_the_temporary_workspace_is_removed_however_the_demo_ends(fake_demo, ends):
    fake_demo["ends"] = ends
    assert (invoke("demo").returncode == 0) is (ends == "normally")
    assert fake_demo["root"] == fake_demo["temporary"]
    assert fake_demo["kept"] is False
    assert not fake_demo["temporary"].exists()


def test_keep_keeps_the_temporary_workspace(fake_demo):
    assert invoke("demo", "--keep").returncode == 0
    assert fake_demo["kept"] is True
    assert (fake_demo["temporary"] / "verifier.db").read_bytes() == b"data"


def test_a_named_workdir_is_the_users_and_is_kept(fake_demo, tmp_path):
    mine = tmp_path / "mine"
    assert invoke("demo", "--workdir", str(mine)).returncode == 0
    assert fake_demo["root"] == mine
    assert fake_demo["kept"] is True
    assert (mine / "verifier.db").exists()
    assert not fake_demo["temporary"].exists()


def test_the_map_draws_chips_with_and_without_bounds(tmp_path):
    """A run stopped before some chip's first verdict still writes its map."""
    from geoattest.demo.display import render_fleet_map  # noqa: PLC0415 (loads matplotlib)
    from geoattest.demo.scenario import default_scenario_path, load_scenario  # noqa: PLC0415

    scenario = load_scenario(default_scenario_path())
    first, second = scenario.chips[:2]
    bounded = run.ChipView(
        first,
        verdict="INCONCLUSIVE",
        last_bounds=[
            {"landmark_id": "lm-x", "lat": first.latitude, "lon": first.longitude, "rtt_us": 80}
        ],
    )
    views = {first.device_id: bounded, second.device_id: run.ChipView(second)}
    render_fleet_map(tmp_path / "map.png", scenario, views)
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
