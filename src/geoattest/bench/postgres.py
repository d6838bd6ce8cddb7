"""A temporary PostgreSQL server: ``initdb`` and ``pg_ctl`` into a temporary directory,
listening on a Unix socket there only, stopped and removed at the end. The benchmarks
start one for ``--db postgresql``; the test suite starts its server the same way.

As root the server runs as the ``postgres`` system user, on a directory chowned to it:
``initdb`` and ``postgres`` refuse to run as root. ``fsync=off``: a stopped or killed
server keeps every commit (the kernel holds its writes); only a machine crash would lose
one. Commits stay synchronous, so an acknowledged one survives ``stop``.

Example::

    with temporary_server() as server:
        url = server.database()   # a new, empty database's postgresql:// URL
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

from geoattest.errors import ConfigError

PORT = 5432
"""The socket's name (``.s.PGSQL.5432``) in the server's own directory: no TCP port."""
MAX_CONNECTIONS = 200
PREFIX = "geoattest-pg-"
"""The temporary directories' name prefix, in the system's temporary directory."""
OWNER = "owner.pid"
"""The file in a server's directory naming the process that started it."""


def binaries() -> Path | None:
    """The newest server's binaries (Debian keeps them out of PATH), else those on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    """A server in ``directory``: every database is created on it by :meth:`database`."""

    directory: Path
    binaries: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.directory}' -p {PORT}"
            f" -c fsync=off -c full_page_writes=off -c max_connections={MAX_CONNECTIONS}"
            " -c max_wal_size=8GB -c checkpoint_timeout=30min"
        )
        self._run(
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
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-s", "stop")

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``--db`` and ``SqlStore.open``."""
        return f"postgresql://postgres@/{database}?host={self.directory}&port={PORT}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement outside any transaction (as ``CREATE DATABASE`` must be)."""
        with psycopg.connect(
            host=str(self.directory), port=PORT, user="postgres", dbname=database, autocommit=True
        ) as connection:
            cursor = connection.execute(sql.encode())
            return cursor.fetchall() if cursor.description else []

    def database(self) -> str:
        """A new, empty database's URL."""
        name = f"geoattest_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _run(self, program: str, *args: str) -> None:
        """Run a server program, as the ``postgres`` user where this process is root."""
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, capture_output=True, check=True)  # noqa: S603  (the server binaries found above)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stop_orphans(found: Path, under: Path) -> list[Path]:
    """Stop and remove the temporary servers whose starting process is gone: a run killed
    before its clean-up (SIGKILL, a lost terminal) leaves its server running, and the next
    start ends it. A directory without an owner file, or whose owner lives, is left alone."""
    stopped = []
    for directory in sorted(under.glob(f"{PREFIX}*")):
        try:
            owner = int((directory / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        if (directory / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                PostgresServer(directory, found).stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
        stopped.append(directory)
    return stopped


@contextmanager
def temporary_server() -> Iterator[PostgresServer]:
    """Start a server in a temporary directory; stop it and remove the directory after.
    Servers that killed runs left behind are stopped first (:func:`stop_orphans`).

    Raises:
        ConfigError: the server binaries are missing, or the server did not start.
    """
    found = binaries()
    if found is None:
        raise ConfigError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    stop_orphans(found, Path(tempfile.gettempdir()))
    directory = Path(tempfile.mkdtemp(prefix=PREFIX))
    (directory / OWNER).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(directory, found)
    started = False
    try:
        try:
            server.initdb()
            server.start()
            started = True
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()
            raise ConfigError(f"PostgreSQL did not start: {exc} {detail}") from exc
        yield server
    finally:
        # A run interrupted while the server starts (Ctrl-C, SIGTERM) may leave it running
        # before ``pg_ctl start`` returned: its pid file says so.
        if started or (server.data / "postmaster.pid").exists():
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                server.stop("fast" if started else "immediate")
        shutil.rmtree(directory, ignore_errors=True)


POSTGRESQL = "postgresql"
"""``--db postgresql``: the benchmark starts a temporary server of its own."""


@contextmanager
def postgresql_databases(db: str) -> Iterator[Callable[[], str]]:
    """A maker of new, empty databases' URLs, on a temporary server (``db`` is
    ``postgresql``) or on the server a ``postgresql://`` URL names (connecting to the
    database it names, as a user who may create databases); each is dropped at the end.

    Raises:
        ConfigError: ``db`` is neither, no temporary server starts, or the server refuses.
    """
    if db == POSTGRESQL:
        with temporary_server() as server:
            yield server.database
        return
    if not db.startswith(f"{POSTGRESQL}://"):
        raise ConfigError(f"--db must be {POSTGRESQL} or a {POSTGRESQL}:// URL, not {db!r}")
    url = make_url(db).set(drivername=POSTGRESQL)
    conninfo = url.render_as_string(hide_password=False)
    made: list[str] = []

    def database() -> str:
        name = f"geoattest_bench_{os.getpid()}_{len(made)}"
        _execute(conninfo, f"CREATE DATABASE {name}")
        made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    try:
        yield database
    finally:
        for name in made:
            with contextlib.suppress(ConfigError):
                _execute(conninfo, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _execute(conninfo: str, sql: str) -> None:
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(sql.encode())
    except psycopg.Error as exc:
        raise ConfigError(
            f"PostgreSQL refused {sql.split(' WITH', maxsplit=1)[0]!r}: {exc}"
        ) from exc
