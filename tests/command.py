"""Running the real ``geoattest`` console script, and what its errors must look like."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))


def run_geoattest(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GEOATTEST, *args], capture_output=True, text=True, check=False, timeout=timeout, env=env
    )


@contextlib.contextmanager
def _environment(overrides: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(overrides)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``geoattest ARGS`` in this process, through the console script's entry point.

    The same parsing, error handling and exit status as the installed script, and the same
    result shape as :func:`run_geoattest`, without an interpreter start per call: for commands
    that only read and write files (each module keeps runs of the real script as well). An
    exception that escapes ``main`` is what the script would print as a traceback: it comes
    back as such on stderr, with exit status 1, so one-line-error checks fail on it. ``env``
    adds to the environment for the call."""
    from geoattest.cli import main  # noqa: PLC0415 (only tests that run it in process)

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["geoattest", *args]
    try:
        with (
            _environment(env or {}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                main()
                code = 0
            except SystemExit as exit_:
                code = (
                    exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                )
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
            except Exception:  # shown as the script would show it
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(["geoattest", *args], code, out.getvalue(), err.getvalue())


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


def main_error(*args: str) -> str:
    """Run ``geoattest ARGS`` in process; return its one error line (exit must be 2, as for
    usage errors and refusals, which touch no state)."""
    result = invoke(*args)
    assert result.returncode == 2, result
    assert_one_line_error(result)
    return result.stderr.strip()
