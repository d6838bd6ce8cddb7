"""A temporary PostgreSQL server (the tests' and the benches') outlives no run: a server
whose starting process was killed (so its clean-up never ran) is stopped and removed by
the next start."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from postgres import unavailable

from geoattest.bench.postgres import PREFIX, binaries, stop_orphans

pytestmark = pytest.mark.slow

STARTER = """
import time
from geoattest.bench.postgres import temporary_server
with temporary_server() as server:
    print(server.directory, flush=True)
    time.sleep(600)
"""


def _postmaster(directory: Path) -> int:
    return int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next() -> None:
    found = binaries()
    if found is None:
        unavailable("PostgreSQL server binaries (pg_ctl) not found")
    assert found is not None
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    line = starter.stdout.readline().strip()
    if not line:
        starter.kill()
        unavailable("PostgreSQL did not start in the child process")
    directory = Path(line)
    assert directory.name.startswith(PREFIX)
    postmaster = _postmaster(directory)
    starter.send_signal(signal.SIGKILL)
    starter.wait(timeout=60)
    assert _running(postmaster), "a killed run leaves its server running"

    owned_by_a_live_run = Path(tempfile.mkdtemp(prefix=PREFIX))
    (owned_by_a_live_run / "owner.pid").write_text(str(os.getpid()))
    try:
        stopped = stop_orphans(found, directory.parent)
        assert directory in stopped
        assert owned_by_a_live_run not in stopped
        assert owned_by_a_live_run.exists()
    finally:
        shutil.rmtree(owned_by_a_live_run)
    deadline = time.monotonic() + 60  # pg_ctl -w has returned; the process may linger
    while _running(postmaster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(postmaster)
    assert not directory.exists()
