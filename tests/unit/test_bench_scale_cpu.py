"""``bench scale``'s CPU meter: the measuring thread's CPU plus, on PostgreSQL, the
database's backends', so that a load holding the cores does not pass for the store's cost."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest
from postgres import PostgresServer

from geoattest.bench.scale import CpuMeter


def test_a_reading_missing_on_either_side_gives_no_figure() -> None:
    assert CpuMeter.spent_ns(None, {0: 5}) is None
    assert CpuMeter.spent_ns({0: 5}, None) is None


def test_a_backend_that_appeared_between_readings_counts_whole() -> None:
    assert CpuMeter.spent_ns({0: 10, 7: 100}, {0: 30, 7: 150, 9: 40}) == 20 + 50 + 40


@pytest.mark.parametrize(
    ("row", "here"),
    [(None, True), ((None,), True), (("127.0.0.1",), True), (("::1",), True),
     (("10.1.2.3",), False), (("2001:db8::7",), False)],
)  # fmt: skip
def test_only_a_server_reached_by_socket_or_loopback_has_its_backends_read_here(
    row: tuple[str | None] | None, here: bool
) -> None:
    assert CpuMeter.serves_here(row) is here


def _burn() -> None:
    digest = b""
    for _ in range(20_000):
        digest = hashlib.sha256(digest).digest()


def test_on_sqlite_the_meter_counts_the_measuring_thread(tmp_path: Path) -> None:
    meter = CpuMeter(tmp_path / "verifier.db")
    before = meter.read()
    _burn()
    after = meter.read()
    assert before is not None
    assert after is not None
    assert set(after) == {0}
    spent = CpuMeter.spent_ns(before, after)
    assert spent is not None
    assert spent > 0


def test_on_postgresql_the_meter_counts_the_backends_cpu(postgres: PostgresServer) -> None:
    database = postgres.database()
    meter = CpuMeter(database)
    try:
        with psycopg.connect(database) as conn:
            before = meter.read()
            conn.execute(b"SELECT sum(i) FROM generate_series(1, 3000000) AS s(i)").fetchone()
            after = meter.read()
    finally:
        meter.close()
    assert before is not None
    assert after is not None
    spent = CpuMeter.spent_ns(before, after)
    assert spent is not None
    server_ns = spent - (after[0] - before[0])
    # the sum ran in the server: its backend's CPU, not the client's, carries it
    assert server_ns > 10 * (after[0] - before[0])
