"""``geoattest sim fleet``: one study through the real console script, the other cases in
process through the same entry point (``invoke``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from command import GEOATTEST, assert_one_line_error, invoke, run_geoattest


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    """One study run for the JSON and the map: each run costs seconds."""
    out = tmp_path_factory.mktemp("fleet") / "fleet.png"
    result = run_geoattest(
        "sim",
        "fleet",
        "--devices",
        "1500",
        "--sample",
        "12",
        "--regions",
        "TW",
        "--json",
        "--map",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), out


def test_fleet_json_reports_counts_false_allowed_and_the_sample_check(
    study: tuple[dict[str, object], Path],
) -> None:
    summary: dict[str, Any] = dict(study[0])
    assert summary["devices"] == 1500
    assert summary["false_allowed"] == 0
    assert sum(sum(row.values()) for row in summary["counts"].values()) == 1500
    assert summary["sample_check"]["checked"] == summary["sample_check"]["matched"] > 0


def test_fleet_table_states_false_allowed() -> None:
    result = invoke(
        "sim",
        "fleet",
        "--devices",
        "800",
        "--sample",
        "4",
        "--regions",
        "JP,TW",
        "--strategies",
        "relay,faster_than_fibre",
    )
    assert result.returncode == 0, result.stderr
    assert "false ALLOWED (a diverted chip certified): 0" in result.stdout
    assert "diverted/relay" in result.stdout
    assert "licensed/JP" in result.stdout


def test_fleet_map_is_a_png(study: tuple[dict[str, object], Path]) -> None:
    assert study[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fleet_map_draws_regions_no_chip_landed_in(tmp_path: Path) -> None:
    """A study smaller than the scenario's regions leaves some without a chip: each still
    gets its panel, framed on the region itself."""
    out = tmp_path / "fleet.png"
    result = invoke("sim", "fleet", "--devices", "1", "--sample", "0", "--map", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--strategies", "warp"), "warp"),
        (("--regions", "XX"), "XX"),
        (("--placement", "moon"), "moon"),
        (("--devices", "0"), "--devices"),
        (("--landmark-faults", "3"), "quorum"),
        (("--map", "/no/such/dir/fleet.png"), "/no/such/dir"),
    ],
)
def test_bad_options_give_one_line_errors(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(invoke("sim", "fleet", "--devices", "50", *args), needle)


GUARD_S = 120.0
"""A failure guard only."""
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _workers_ignoring_interrupts(pid: int, workers: int) -> list[int]:
    """The process's children once there are ``workers`` and every one ignores SIGINT (its
    ``SigIgn`` mask in /proc), else none."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != workers:
        return []
    ignoring = []
    for child in children:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except FileNotFoundError:  # replaced by the pool meanwhile
            return []
        mask = int(status.partition("SigIgn:")[2].split()[0], 16)
        if not mask & SIGINT_BIT:
            return []
        ignoring.append(int(child))
    return ignoring


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie that no one reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ctrl_c_during_a_study_ends_it_quietly() -> None:
    """Ctrl-C reaches the terminal's whole process group: the study's worker processes
    leave it to the command, which ends them and exits 130 without a traceback of
    theirs (a worker that took the interrupt printed its own, and its chunk was lost),
    and no worker outlives it."""
    study = subprocess.Popen(
        [GEOATTEST, "sim", "fleet", "--devices", "400000", "--sample", "0", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        give_up = time.monotonic() + GUARD_S
        while not (workers := _workers_ignoring_interrupts(study.pid, 2)):
            assert study.poll() is None, study.stderr.read() if study.stderr else ""
            assert time.monotonic() < give_up, "no worker came to ignore SIGINT"
            time.sleep(0.05)
        for worker in workers:
            os.kill(worker, signal.SIGINT)  # the workers alone first: nothing happens
        os.killpg(study.pid, signal.SIGINT)
        _, stderr = study.communicate(timeout=GUARD_S)
        while (left := [w for w in workers if _running(w)]) and time.monotonic() < give_up:
            time.sleep(0.05)  # the workers end as the command ends them, none orphaned
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(study.pid, signal.SIGKILL)  # whatever is left of the study's session
        study.wait()
    assert study.returncode == 130
    assert stderr == ""
    assert left == []
