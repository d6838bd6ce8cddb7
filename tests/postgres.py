"""A real PostgreSQL server for tests (:mod:`geoattest.bench.postgres`: ``initdb`` and
``pg_ctl`` into a temporary directory, a Unix socket there only, stopped at the end).

Where the server binaries are missing the tests that need it skip with the reason; under
CI (``GEOATTEST_CI=1``, set by ``.ci/run``, which installs the server) the same condition
fails them instead, so a CI run can never pass with them silently skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from geoattest.bench.postgres import PostgresServer, temporary_server
from geoattest.errors import ConfigError

__all__ = ["PostgresServer", "postgres_server", "unavailable"]

CI_ENV = "GEOATTEST_CI"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail it under CI, where every test must run."""
    if os.environ.get(CI_ENV) == "1":
        pytest.fail(f"{reason} ({CI_ENV}=1: CI must run the PostgreSQL tests)")
    pytest.skip(reason)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, stopped and removed after. Skips (fails under CI) when the
    binaries are missing or the server does not start."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(temporary_server())
        except ConfigError as exc:
            unavailable(exc.detail)
        yield server


def signal_all(pids: list[int], signum: int) -> None:
    """Signal each process still there: a backend woken by an earlier SIGCONT may already
    have exited (its client's connection was shut down meanwhile)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def server_processes(server: PostgresServer) -> list[int]:
    """The server's postmaster and every process it started (Linux /proc)."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    found = [postmaster]
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(stat.rpartition(")")[2].split()[1]) == postmaster:
            found.append(int(entry.name))
    return found
