"""``geoattest plan`` and ``geoattest report`` through the real console script."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from command import assert_one_line_error, run_geoattest
from plan_deployments import write_taiwan

# Whole-command runs over real geography: seconds each, so they run with the slow set.
pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    return write_taiwan(tmp_path)


def test_coverage_json_has_both_shares_at_both_stretches(tmp_path: Path) -> None:
    out = tmp_path / "tw.png"
    result = run_geoattest(
        "plan", "coverage", "--region", "TW", "--resolution", "0.1", "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in (
        "certifiable_area_share",
        "certifiable_population_share",
        "certifiable_area_share_p90",
        "certifiable_population_share_p90",
    ):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["certifiable_population_share"] > summary["certifiable_area_share"] > 0
    assert summary["region"] == "TW"
    assert out.read_bytes().startswith(PNG)


def test_defaults_are_the_demos_landmarks_and_licences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No options: the demo's deployment, its first region (SG), outputs in the cwd."""
    monkeypatch.chdir(tmp_path)
    result = run_geoattest("plan", "coverage", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["region"] == "SG"
    assert summary["scenario"] == "Asia-Pacific, Europe and North America"
    assert summary["certifiable_area_share"] == 0.0  # see docs/PLANNING.md: too narrow
    assert (tmp_path / "coverage-SG.png").read_bytes().startswith(PNG)
    result = run_geoattest("plan", "landmarks")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert (tmp_path / "plan-SG" / "landmarks-SG-after.png").is_file()


def test_coverage_table_for_people(tmp_path: Path, deployment: Path) -> None:
    out = tmp_path / "map.png"
    result = run_geoattest(
        "plan", "coverage", "--scenario", str(deployment), "--resolution", "0.2", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "certifiable" in result.stdout
    assert "Coverage of TW" in result.stdout
    assert out.is_file()


def test_landmarks_plan_json_and_maps(tmp_path: Path, deployment: Path) -> None:
    result = run_geoattest(
        "plan",
        "landmarks",
        "--scenario",
        str(deployment),
        "--resolution",
        "0.2",
        "--landmark-faults",
        "0",
        "--out-dir",
        str(tmp_path / "plan"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["landmark_faults"] == 0
    assert [p["id"] for p in summary["picks"]] == ["khh"]
    assert summary["picks"][0]["population_gain"] > 0
    after = summary["after"]["certifiable_population_share"]
    assert after > summary["before"]["certifiable_population_share"]
    for path in summary["maps"].values():
        assert Path(path).read_bytes().startswith(PNG)


def test_landmarks_with_a_candidates_file(tmp_path: Path, deployment: Path) -> None:
    candidates = tmp_path / "c.json"
    candidates.write_text(json.dumps([{"name": "Taichung", "lat": 24.1477, "lon": 120.6736}]))
    result = run_geoattest(
        "plan",
        "landmarks",
        "--scenario",
        str(deployment),
        "--candidates",
        str(candidates),
        "--resolution",
        "0.2",
        "--landmark-faults",
        "0",
        "--out-dir",
        str(tmp_path / "p"),
    )
    assert result.returncode == 0, result.stderr
    assert "new-1" in result.stdout
    assert "certifiable population" in result.stdout


def test_plans_judge_at_the_verifiers_fault_level(tmp_path: Path, deployment: Path) -> None:
    """By default coverage and plans judge as ``verifier serve`` does, outvoting one lying
    operator: Taiwan's one landmark of its own then certifies no chip (without Taipei's
    bound, Hong Kong's and Tokyo's reach the mainland), and one more site beside it buys
    nothing, where trusting every landmark would report both."""
    common = ["--scenario", str(deployment), "--resolution", "0.2", "--json"]

    def coverage(*faults: str) -> dict[str, float]:
        out = ["--out", str(tmp_path / f"c{len(faults)}.png")]
        result = run_geoattest("plan", "coverage", *common, *out, *faults)
        assert result.returncode == 0, result.stderr
        summary: dict[str, float] = json.loads(result.stdout)
        return summary

    tolerant, trusting = coverage(), coverage("--landmark-faults", "0")
    assert (tolerant["landmark_faults"], trusting["landmark_faults"]) == (1, 0)
    assert trusting["certifiable_population_share"] > 0
    for key in ("certifiable_area_share", "certifiable_population_share"):
        for suffix in ("", "_p90"):
            assert tolerant[key + suffix] <= trusting[key + suffix]
    assert tolerant["certifiable_population_share"] == 0.0
    plan = run_geoattest("plan", "landmarks", *common, "--out-dir", str(tmp_path / "p"))
    assert plan.returncode == 0, plan.stderr
    summary = json.loads(plan.stdout)
    assert summary["landmark_faults"] == 1
    assert summary["picks"] == []
    assert summary["after"]["certifiable_population_share"] == 0.0


def test_report_puts_it_together(tmp_path: Path, deployment: Path) -> None:
    out = tmp_path / "report"
    result = run_geoattest(
        "report",
        "--deployment",
        str(deployment),
        "--out-dir",
        str(out),
        "--resolution",
        "0.2",
        "--fleet-devices",
        "300",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    text = (out / "REPORT.md").read_text(encoding="utf-8")
    for heading in (
        "# Taiwan test deployment",
        "## Deployment",
        "## Region TW",
        "### Landmark plan for TW",
        "## Fleet study",
    ):
        assert heading in text
    assert "false ALLOWED (a diverted chip certified): 0" in text
    assert "`lm-tpe`" in text
    for image in ("coverage-TW.png", "landmarks-TW-after.png"):
        assert f"]({image})" in text
        assert (out / image).read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["plan", "coverage", "--region", "XX"], ["XX", "not licensed"]),
        (["plan", "coverage", "--scenario", "/nonexistent.toml"], ["does not exist"]),
        (["plan", "coverage", "--resolution", "0"], ["resolution"]),
        (["plan", "coverage", "--out", "/nonexistent/dir/map.png"], ["does not exist"]),
        (["plan", "landmarks", "--budget", "-1"], ["budget"]),
        (["plan", "landmarks", "--region", "XX"], ["XX"]),
        (["plan", "landmarks", "--candidates", "/nonexistent.toml"], ["does not exist"]),
        (["plan", "landmarks", "--radius", "0"], ["--radius"]),
        (["report", "--deployment", "/nonexistent.toml"], ["does not exist"]),
        (["report", "--budget", "-2"], ["budget"]),
        (["report", "--fleet-devices", "-1"], ["fleet-devices"]),
        (["plan", "coverage", "--landmark-faults", "-1"], ["--landmark-faults", "[0, 2]"]),
        (["plan", "landmarks", "--landmark-faults", "3"], ["--landmark-faults", "quorum"]),
        (["report", "--landmark-faults", "3"], ["--landmark-faults"]),
    ],
)
def test_bad_input_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needles: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs would land here, never in the checkout
    result = run_geoattest(*args)
    assert result.returncode == 2
    assert not list(tmp_path.iterdir()), "nothing is written before the input is checked"
    assert_one_line_error(result, *needles)
    assert result.stderr.startswith("error: ")  # no progress bar's newline ahead of it


def test_unwritable_out_dir_is_one_line_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        for args in (
            ["report", "--out-dir", str(locked / "r")],
            ["plan", "landmarks", "--out-dir", str(locked / "p")],
            ["plan", "coverage", "--out", str(locked / "c.png")],
        ):
            result = run_geoattest(*args)
            assert result.returncode == 2
            assert_one_line_error(result, "writable")
    finally:
        locked.chmod(0o700)


def test_out_dir_that_is_a_file_is_one_line_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a directory", encoding="utf-8")
    result = run_geoattest("report", "--out-dir", str(taken))
    assert result.returncode == 2
    assert_one_line_error(result, "not a directory")


def test_bad_deployment_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[plan]\nbudget = 'many'\n", encoding="utf-8")
    result = run_geoattest("plan", "coverage", "--scenario", str(bad))
    assert result.returncode == 2
    assert_one_line_error(result)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            ["plan", "coverage"],
            ["--scenario", "--region", "--out", "--resolution", "--landmark-faults", "--json"],
        ),
        (
            ["plan", "landmarks"],
            [
                "--scenario",
                "--region",
                "--candidates",
                "--budget",
                "--radius",
                "--out-dir",
                "--resolution",
                "--landmark-faults",
                "--json",
            ],
        ),
        (
            ["report"],
            [
                "--deployment",
                "--out-dir",
                "--budget",
                "--resolution",
                "--landmark-faults",
                "--fleet-devices",
            ],
        ),
    ],
)
def test_every_option_is_documented(command: list[str], options: list[str]) -> None:
    result = run_geoattest(*command, "--help")
    assert result.returncode == 0
    for option in options:
        assert option in result.stdout
