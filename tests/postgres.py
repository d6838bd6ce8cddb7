"""A real PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` into a temporary
directory, listening on a Unix socket there only, stopped at the end.

Where the server binaries are missing the tests that need it skip with the reason; under
CI (``GEOATTEST_CI=1``, set by ``.ci/run``, which installs the server) the same condition
fails them instead, so a CI run can never pass with them silently skipped. As root (CI,
and this machine) the server runs as the ``postgres`` system user, on a directory chowned
to it: ``initdb`` and ``postgres`` refuse to run as root.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

CI_ENV = "GEOATTEST_CI"
PORT = 5432
"""The socket's name (``.s.PGSQL.5432``) in the server's own directory: no TCP port."""


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail it under CI, where every test must run."""
    if os.environ.get(CI_ENV) == "1":
        pytest.fail(f"{reason} ({CI_ENV}=1: CI must run the PostgreSQL tests)")
    pytest.skip(reason)


def _binaries() -> Path | None:
    """The newest server's binaries (Debian keeps them out of PATH), else those on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    """A running server: every test database is created on it by :meth:`database`."""

    directory: Path
    binaries: Path
    _names: Iterator[int]

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def start(self) -> None:
        """Start the server. ``fsync=off``: a stopped or killed server keeps every commit
        (the kernel holds its writes); only a machine crash, which no test makes, would
        lose one. Commits stay synchronous, so an acknowledged one survives ``stop``."""
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.directory}' -p {PORT}"
            " -c fsync=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        _as_server_user(
            self.binaries,
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-s",
            "-l",
            str(self.directory / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed)."""
        _as_server_user(
            self.binaries, "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-s", "stop"
        )

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``--db`` and ``SqlStore.open``."""
        return f"postgresql://postgres@/{database}?host={self.directory}&port={PORT}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement outside any transaction (as ``CREATE DATABASE`` must be)."""
        with psycopg.connect(
            host=str(self.directory), port=PORT, user="postgres", dbname=database, autocommit=True
        ) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def database(self) -> str:
        """A new, empty database's URL."""
        name = f"geoattest_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _as_server_user(binaries: Path, program: str, *args: str) -> None:
    """Run a server program, as the ``postgres`` user where this process is root."""
    command = [str(binaries / program), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, capture_output=True, check=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server in a temporary directory; stop it and remove the directory after.

    Skips (fails under CI) when the binaries are missing or the server does not start.
    """
    binaries = _binaries()
    if binaries is None:
        unavailable("PostgreSQL server binaries (pg_ctl) not found")
    assert binaries is not None
    directory = Path(tempfile.mkdtemp(prefix="geoattest-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(directory, binaries, itertools.count())
    started = False
    try:
        try:
            _as_server_user(
                binaries,
                "initdb",
                "-D",
                str(server.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
            server.start()
            started = True
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            unavailable(f"PostgreSQL did not start: {exc} {detail.decode(errors='replace')}")
        yield server
    finally:
        if started:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop()
        shutil.rmtree(directory, ignore_errors=True)
