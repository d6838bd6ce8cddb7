"""``geoattest plan cost`` (with and without ``--sweeps``) and ``report --brief`` through the real
console script, on a small deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from command import assert_one_line_error, run_geoattest
from plan_deployments import write_taiwan

# Whole-command runs over real geography: seconds each, so they run with the slow set.
pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ("--chips", "TW=1000", "--resolution", "0.2")


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    return write_taiwan(tmp_path)


def test_cost_json_has_the_costs_detection_and_published_models(deployment: Path) -> None:
    result = run_geoattest(
        "plan",
        "cost",
        "--scenario",
        str(deployment),
        *SMALL,
        "--cadence",
        "900",
        "--landmarks",
        "owned",
        "--detection-devices",
        "40",
        "--destinations",
        "cn,HK",
        "--landmark-faults",
        "0",  # one landmark in Taiwan: certifiable only if every landmark is trusted
        "--json",
    )
    assert result.returncode == 0, result.stderr
    study = json.loads(result.stdout)
    cost = study["cost"]
    assert cost["chips"] == 1000
    assert cost["total_usd"] == pytest.approx(sum(cost["by_year_usd"]))
    assert cost["cost_per_chip_year_usd"] == pytest.approx(cost["total_usd"] / (1000 * 5))
    assert 0 < study["certifiable_share"] < 1
    assert study["ownership"] == "owned"
    assert study["detection"]["false_allowed"] == 0
    assert [d["destination"] for d in study["detection"]["by_destination"]] == ["CN", "HK"]
    assert study["detection"]["timing"]["outside_alert_within_s"] == 900
    for row in study["published_models"]["reproduced"]:
        assert row["reproduced_usd"] == pytest.approx(row["published_usd"])
    for figure in study["inputs"]:
        assert figure["unit"]
        assert figure["source"]
    assert {f["name"]: f["value"] for f in study["inputs"]}["cadence_s"] == 900
    assert {f["name"]: f["value"] for f in study["inputs"]}["landmark_faults"] == 0


def test_cost_tables_for_people(deployment: Path) -> None:
    result = run_geoattest(
        "plan", "cost", "--scenario", str(deployment), *SMALL, "--detection-devices", "0"
    )
    assert result.returncode == 0, result.stderr
    for text in (
        "Cost of Taiwan test deployment",
        "cost per certifiable chip per year",
        "What geoattest's measurements change",
        "Inputs (docs/COST.md)",
    ):
        assert text in result.stdout
    assert "Diverted chips caught" not in result.stdout


@pytest.mark.parametrize(
    ("costs", "options", "needles"),
    [
        ("[figures.network_price]\nvalue = -1\nunit = 'USD/GB'\nsource = 'x'\n", (), ("negative",)),
        ("[fleet]\nchipz = 3\n", (), ("unknown fleet value 'chipz'",)),
        ("[figures.network_price\n", (), ("not valid TOML",)),
        (None, ("--chips", "XX=5"), ("region 'XX' is not licensed",)),
        (None, ("--destinations", "ZZ"), ("unknown country code 'ZZ'",)),
        (None, ("--landmarks", "leased"), ("'rented' or 'owned'",)),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path,
    deployment: Path,
    costs: str | None,
    options: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    extra: list[str] = []
    if costs is not None:
        path = tmp_path / "costs.toml"
        path.write_text(costs, encoding="utf-8")
        extra = ["--costs", str(path)]
    result = run_geoattest("plan", "cost", "--scenario", str(deployment), *extra, *options)
    assert_one_line_error(result, *needles)


def test_sweeps_draw_three_plots(tmp_path: Path, deployment: Path) -> None:
    out = tmp_path / "sweeps"
    result = run_geoattest(
        "plan",
        "cost",
        "--scenario",
        str(deployment),
        *SMALL,
        "--detection-devices",
        "0",
        "--sweeps",
        str(out),
        "--budget",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["sensitivity"]
    assert [p["cadence_s"] for p in summary["cadence"]] == [60, 300, 900, 3600, 14_400, 86_400]
    assert summary["regions"][0]["region"] == "TW"
    for path in summary["plots"].values():
        assert Path(path).read_bytes().startswith(PNG)


def test_report_brief_writes_one_html_file_with_its_images(
    tmp_path: Path, deployment: Path
) -> None:
    out = tmp_path / "brief"
    result = run_geoattest(
        "report",
        "--brief",
        "--deployment",
        str(deployment),
        "--out-dir",
        str(out),
        "--chips",
        "TW=1000",
        "--resolution",
        "0.2",
        "--budget",
        "1",
        "--fleet-devices",
        "30",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["BRIEF.html"]
    text = (out / "BRIEF.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4
    assert f"geoattest report --brief --deployment {deployment} --chips TW=1000" in text


def test_report_refuses_cost_options_without_brief(tmp_path: Path) -> None:
    result = run_geoattest("report", "--out-dir", str(tmp_path / "r"), "--chips", "SG=5")
    assert_one_line_error(result, "go with --brief")
    assert not (tmp_path / "r").exists()
