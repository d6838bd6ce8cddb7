"""Running the real ``geoattest`` console script, and what its errors must look like."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))


def run_geoattest(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GEOATTEST, *args], capture_output=True, text=True, check=False, timeout=timeout, env=env
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, exactly one line on stderr, starting 'error: ', naming the problem."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def require_stress_ng() -> None:
    """Skip without stress-ng, except in CI (``.ci/run`` installs it and sets GEOATTEST_CI)."""
    if shutil.which("stress-ng") is None:
        if os.environ.get("GEOATTEST_CI"):
            pytest.fail("stress-ng is missing in CI")
        pytest.skip("stress-ng is not installed")


def main_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    """Run ``geoattest ARGS`` in process; return its one error line (exit must be 2).

    The same entry point and error handling as the console script (typer's CliRunner would
    bypass them) without starting an interpreter: for usage errors, which touch no state."""
    from geoattest.cli import main  # noqa: PLC0415 (only tests that run it in process)

    monkeypatch.setattr("sys.argv", ["geoattest", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]
