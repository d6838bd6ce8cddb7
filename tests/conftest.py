"""Shared fixtures: real keys, and real rounds between the real state machines; one
Natural Earth index per run, shared with every ``geoattest`` command the tests start."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import settings
from postgres import PostgresServer, postgres_server

from geoattest.crypto import KeySigner
from geoattest.geo.countries import CACHE_ENV
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
from geoattest.v1 import envelope_pb2

UNIX_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: the landmark wall clock in tests."""

# No wall-clock limit on a Hypothesis example (its default is 200 ms): the suite's workers
# share the cores with each other and with the processes the tests start, and a property
# holds or fails whatever the time. Example counts stay as each test sets them.
settings.register_profile("geoattest", deadline=None)
settings.load_profile("geoattest")

_GEOMETRY_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Build the Natural Earth index once per run rather than once per process: every
    command a test starts (and each xdist worker, which inherits the environment) reads it
    from one directory, removed at the end. A directory set by the caller is left alone."""
    if os.environ.get(CACHE_ENV):
        return
    directory = tempfile.mkdtemp(prefix="geoattest-geometry-")
    os.environ[CACHE_ENV] = directory
    config.stash[_GEOMETRY_CACHE] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_GEOMETRY_CACHE, None)
    if directory is not None:
        del os.environ[CACHE_ENV]
        shutil.rmtree(directory, ignore_errors=True)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Say why nothing may have run (pytest's exit 5): the tests asked for may all be
    marked ``slow``, which addopts leave out (under xdist only the workers know)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and config.option.markexpr:
        terminalreporter.write_line(
            f"no test ran under -m {config.option.markexpr!r}; addopts leave out tests"
            " marked slow: add -m slow for those, -m '' for all",
            yellow=True,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the run (one per xdist worker); skips where none can be
    started, fails so under CI (see ``tests/postgres.py``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new, empty verifier database on each backend: a SQLite file's path, or a
    ``postgresql://`` URL on the run's server."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("sqlite") / "verifier.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


class FakeClock:
    """A landmark clock the test controls: each reading advances by ``step_ns``."""

    def __init__(self, start_ns: int = 1_000_000, step_ns: int = 10_000) -> None:
        self._ticks: Iterator[int] = itertools.count(start_ns, step_ns)

    def __call__(self) -> int:
        return next(self._ticks)


@dataclass
class RoundRun:
    agent: AgentRound
    landmark: LandmarkRound
    receipt: bytes | None
    """The receipt datagram, if the round completed."""


def run_real_round(
    device: KeySigner,
    landmark: KeySigner,
    *,
    device_id: str = "dev-1",
    landmark_id: str = "lm-1",
    exchanges: int = 8,
    clock: Callable[[], int] | None = None,
    unix_ns: int = UNIX_NS,
) -> RoundRun:
    """Run one round in memory; every datagram crosses as bytes, timed by ``clock``."""
    clock = clock or FakeClock()
    agent = AgentRound(
        device_id,
        landmark_id,
        landmark.verifying_key,
        device,
        secret=os.urandom(32),
        exchanges=exchanges,
    )
    lm = LandmarkRound(
        landmark_id,
        landmark,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    to_agent: bytes | None = lm.next_challenge(clock())
    receipt = None
    while to_agent is not None:
        to_landmark = agent.receive(to_agent)
        if to_landmark is None:
            receipt = to_agent
            break
        to_agent = lm.receive(to_landmark, clock(), unix_ns)
    return RoundRun(agent, lm, receipt)


def issue_receipt(
    device: KeySigner,
    landmark: KeySigner,
    *,
    device_id: str,
    landmark_id: str,
    rtt_ns: int,
    unix_ns: int = UNIX_NS,
    exchanges: int = 4,
) -> envelope_pb2.Envelope:
    """A real receipt from a real round whose every exchange takes exactly ``rtt_ns``."""
    run = run_real_round(
        device,
        landmark,
        device_id=device_id,
        landmark_id=landmark_id,
        exchanges=exchanges,
        clock=FakeClock(step_ns=rtt_ns),
        unix_ns=unix_ns,
    )
    if run.agent.receipt is None:
        raise AssertionError(f"round did not complete: {run.agent.state} {run.landmark.failure}")
    return run.agent.receipt


@pytest.fixture
def device_signer() -> KeySigner:
    return KeySigner.generate()


@pytest.fixture
def landmark_signer() -> KeySigner:
    return KeySigner.generate()


RunRound = Callable[..., RoundRun]


@pytest.fixture
def run_round(device_signer: KeySigner, landmark_signer: KeySigner) -> RunRound:
    def run(**kwargs: object) -> RoundRun:
        return run_real_round(device_signer, landmark_signer, **kwargs)  # type: ignore[arg-type]

    return run
