"""``geoattest geo``: JSON shape, maps, one-line errors. The first case runs the real console
script; the others run in process through the same entry point (``invoke``), sharing one
loaded Natural Earth index."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from command import invoke, run_geoattest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return invoke("geo", *args)


def locate_json(*args: str, script: bool = False) -> dict[str, Any]:
    result = (run_geoattest if script else invoke)("geo", "locate", *args, "--json")
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_locate_json_has_the_promised_fields() -> None:
    out = locate_json(
        "--landmark",
        "1.30,103.85,0.08",
        "--landmark",
        "1.45,103.70,0.5",
        "--allow",
        "SG",
        "--probe",
        "1.35,103.82",
        script=True,
    )
    assert out["verdict"] == "ALLOWED"
    assert out["bounds_km"] == pytest.approx([11.992, 74.948], abs=0.01)
    assert out["feasible_area_km2"] > 0
    assert out["embargoed"] is False
    assert out["probe_inside"] is True
    assert set(out["estimate"]) >= {"lat", "lon"}
    assert out["feasible_region"]["type"] == "Polygon"


def test_probe_outside_and_null_without_a_probe() -> None:
    out = locate_json("--landmark", "1.30,103.85,0.08", "--allow", "SG", "--probe", "1.47,103.76")
    assert out["probe_inside"] is False
    assert locate_json("--landmark", "1.30,103.85,0.08", "--allow", "SG")["probe_inside"] is None


def test_verdicts_outside_inconclusive_inconsistent_and_embargo() -> None:
    pyongyang = ["--landmark", "39.03,125.75,0.1", "--allow", "SG", "--embargo", "KP,IR"]
    out = locate_json(*pyongyang)
    assert out["verdict"] == "OUTSIDE"
    assert out["embargoed"] is True
    hk = locate_json("--landmark", "22.30,114.17,0.5", "--allow", "HK")
    assert hk["verdict"] == "INCONCLUSIVE"
    contradiction = locate_json(
        "--landmark", "50.0,8.0,0.5", "--landmark", "40.0,-3.7,0.5", "--allow", "DE"
    )
    assert contradiction["verdict"] == "INCONSISTENT"
    # Disks that share no point leave nowhere to estimate: no likely location is offered.
    assert contradiction["estimate"] is None
    printed = run("locate", "--landmark", "50,8,0.001", "--landmark", "-50,-170,0.001")
    assert printed.returncode == 0, printed.stderr
    assert "INCONSISTENT" in printed.stdout
    assert "likely location" not in printed.stdout


def test_circle_and_geojson_licences(tmp_path: Path) -> None:
    out = locate_json("--landmark", "50.0,8.0,0.2", "--allow-circle", "50.0,8.0,100")
    assert out["verdict"] == "ALLOWED"
    box = {
        "type": "Polygon",
        "coordinates": [[[7.0, 49.0], [9.0, 49.0], [9.0, 51.0], [7.0, 51.0], [7.0, 49.0]]],
    }
    path = tmp_path / "box.geojson"
    path.write_text(json.dumps(box))
    assert locate_json("--landmark", "50.0,8.0,0.2", "--allow-geojson", str(path))["verdict"] == (
        "ALLOWED"
    )
    far = locate_json("--landmark", "45.0,8.0,0.2", "--allow-geojson", str(path))
    assert far["verdict"] == "OUTSIDE"


def test_without_a_licence_only_consistency_is_reported() -> None:
    out = locate_json("--landmark", "50.0,8.0,0.2")
    assert out["verdict"] == "INCONCLUSIVE"


def test_map_is_a_png(tmp_path: Path) -> None:
    png = tmp_path / "map.png"
    result = run(
        "locate",
        "--landmark",
        "-18.1,178.4,2",
        "--landmark",
        "-16.8,-179.9,3",
        "--allow",
        "FJ",
        "--probe",
        "-17.0,179.0",
        "--map",
        str(png),
    )
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    assert "verdict: " in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--landmark", "1.30,103.85", "--allow", "SG"], "LAT,LON,RTT_MS"),
        (["--landmark", "a,b,c", "--allow", "SG"], "numbers"),
        (["--landmark", "95,103.85,0.1", "--allow", "SG"], "not a latitude,longitude"),
        (["--landmark", "1.3,103.85,-1", "--allow", "SG"], "must be in [0, 10000]"),
        (["--landmark", "1.3,103.85,nan", "--allow", "SG"], "finite"),
        (["--landmark", "1.3,103.85,0.1", "--allow", "ZZ"], "'ZZ' has no shape"),
        (
            ["--landmark", "1.3,103.85,0.1", "--allow", "SG", "--allow-circle", "1,2,3"],
            "at most one",
        ),
        (["--landmark", "1.3,103.85,0.1", "--allow-circle", "1,2"], "LAT,LON,KM"),
        (["--landmark", "1.3,103.85,0.1", "--allow-circle", "1,2,0"], "radius_km"),
        (["--landmark", "1.3,103.85,0.1", "--allow-geojson", "/nonexistent.json"], "nonexistent"),
        (["--landmark", "1.3,103.85,0.1", "--allow", "SG", "--probe", "1"], "LAT,LON"),
        (["--landmark", "1.3,103.85,0.1", "--allow", "SG", "--embargo", "XX"], "'XX' has no shape"),
        (["--landmark", "1.3,103.85,0.1", "--allow", "SG", "--location", "sea"], "location"),
        (["--landmark", "1.3,103.85,0.1", "--allow", "SG", "--margin-km", "-2"], "border_margin"),
        (["--allow", "SG"], "landmark"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], needle: str) -> None:
    result = run("locate", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]


def test_malformed_geojson_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(
        '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}'
    )
    result = run("locate", "--landmark", "1,1,0.1", "--allow-geojson", str(path))
    assert result.returncode != 0
    assert "Self-intersection" in result.stderr
    path.write_text("{")
    result = run("locate", "--landmark", "1,1,0.1", "--allow-geojson", str(path))
    assert "not valid JSON" in result.stderr


def test_limits_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "LIMITS.md"
    result = run("limits", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "Hong Kong (Central) (HK) vs Shenzhen (Futian) (CN)" in text
    row = next(line for line in text.splitlines() if line.startswith("| Hong Kong"))
    # At 0.5 ms and beyond, Hong Kong vs Shenzhen is INCONCLUSIVE, never ALLOWED.
    assert row.rstrip(" |").endswith("INCONCLUSIVE | INCONCLUSIVE | INCONCLUSIVE")
