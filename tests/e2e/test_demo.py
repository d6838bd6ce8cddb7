"""`geoattest demo` end to end: real processes, the verdicts it promises, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
from collections import defaultdict
from pathlib import Path

import jwt
import pytest
from command import assert_one_line_error, run_geoattest

HONEST = {"chip-sg-01", "chip-jp-01", "chip-de-01", "chip-us-01"}
DIVERTED = {"chip-sg-02", "chip-sg-04"}  # Shenzhen and Kuala Lumpur, licensed to Singapore
BORDER = "chip-sg-03"  # Johor Bahru, licensed to Singapore


def processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    workdir, map_path = root / "work", root / "map.png"
    result = run_geoattest(
        "demo",
        *("--duration", "25", "--cadence", "2", "--json"),
        *("--workdir", str(workdir), "--map", str(map_path)),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines, workdir, map_path


@pytest.mark.slow
def test_honest_chips_are_allowed_and_diverted_ones_never(demo_run):
    lines, _, _ = demo_run
    verdicts: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if "verdict" in line:
            assert {
                "device_id",
                "true_location",
                "licensed_region",
                "bounds_km",
                "result_token",
            } <= set(line)
            verdicts[line["device_id"]].append(line["verdict"])
    for chip in HONEST:
        assert "ALLOWED" in verdicts[chip], (chip, verdicts[chip])
    for chip in DIVERTED | {BORDER}:
        assert verdicts[chip], chip
        assert "ALLOWED" not in verdicts[chip], (chip, verdicts[chip])
    assert "OUTSIDE" in verdicts["chip-sg-02"]


@pytest.mark.slow
def test_shenzhen_chip_raises_an_outside_alert(demo_run):
    lines, _, _ = demo_run
    alerts = [line["alert"] for line in lines if "alert" in line]
    assert any(
        a["device_id"] == "chip-sg-02" and a["kind"] == "OUTSIDE_LICENSED_REGION" for a in alerts
    )


@pytest.mark.slow
def test_result_tokens_verify_with_the_published_keys_only(demo_run):
    lines, _, _ = demo_run
    summary = lines[-1]
    assert set(summary) == {"summary", "jwks"}
    keys = jwt.PyJWKSet.from_dict(summary["jwks"])
    checked = 0
    for line in lines:
        if line.get("verdict") == "ALLOWED" and line["result_token"]:
            token = line["result_token"]
            key = keys[jwt.get_unverified_header(token)["kid"]]
            # Each result licensed its chip only for the stale window after its evidence,
            # so the run's early ones have expired by now: check signatures and claims.
            claims = jwt.decode(token, key, algorithms=["ES256"], options={"verify_exp": False})
            submod = claims["submods"][f"chip-{line['device_id']}"]
            assert submod["ear.status"] == "affirming"
            checked += 1
    assert checked > 0
    counts = summary["summary"]["counts"]
    assert set(counts) >= HONEST | DIVERTED


@pytest.mark.slow
def test_map_is_written_and_nothing_is_left_running(demo_run):
    _, workdir, map_path = demo_run
    assert map_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert processes_mentioning(str(workdir)) == []


@pytest.mark.slow
def test_without_a_workdir_the_temporary_workspace_is_removed_at_the_end(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = run_geoattest(
        "demo",
        *("--duration", "3", "--json", "--map", str(tmp_path / "map.png")),
        timeout=240,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["workspace"] is None
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenario", "/nonexistent/s.toml"], "does not exist"),
        (["--duration", "-1"], "--duration"),
        (["--bogus"], "No such option"),
        (["--map", "/nonexistent/dir/map.png"], "does not exist"),
    ],
)
def test_bad_demo_arguments_are_one_line_errors(args, needle):
    assert_one_line_error(run_geoattest("demo", *args, timeout=60), needle)


@pytest.mark.slow
def test_a_table_that_cannot_be_written_leaves_nothing_running(tmp_path, monkeypatch):
    """Its last render failing (stdout closed, a disk full) stops the fleet all the same:
    a failure there left the verifier, the landmarks and the agents running for ever."""
    import io  # noqa: PLC0415

    from geoattest.demo import display  # noqa: PLC0415 (loads matplotlib)
    from geoattest.demo.run import run_demo  # noqa: PLC0415
    from geoattest.demo.scenario import default_scenario_path, load_scenario  # noqa: PLC0415

    def unwritable(_table: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(display.LiveTable, "stop", unwritable)
    workdir = tmp_path / "work"
    with pytest.raises(BrokenPipeError):
        run_demo(
            load_scenario(default_scenario_path()),
            duration_s=1,
            root=workdir,
            out=io.StringIO(),
            as_json=False,
            map_path=None,
        )
    left = processes_mentioning(str(workdir))
    for pid in left:  # a failing run leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert left == []
