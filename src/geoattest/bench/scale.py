"""``geoattest bench scale``: the verifier's cost and memory per proof as the enrolled
fleet grows (durable store) and as k grows (pure pipeline), plotted to a PNG.

Fleet size: one database per size, opened through :class:`~geoattest.verifier.store.SqlStore`:
SQLite (WAL, ``synchronous=NORMAL`` so that disk syncs do not drown the index lookups being
measured) or, with ``--db postgresql``, PostgreSQL (the schema the verifier creates, every
index and constraint in place). The measured chips have real keys and real proofs and are
enrolled through ``SqlStore.enrol``; one more chip, the template, is enrolled and its first
proof accepted through the store, and the rest of the fleet is copies of the template's
rows in every per-device table (fresh device ids, key ids and digests), one ``INSERT ...
SELECT`` per table and chunk, computed by the database itself (SQLite: one transaction per
size; PostgreSQL: one per chunk of :data:`PG_CHUNK` devices, ``generate_series``, the
chunks filled over one connection per core). Every
size appraises and commits the same proofs, in interleaved rounds so that all sizes see the
same machine load; the baseline is the smallest fleet.

k: the pure pipeline (:class:`~geoattest.verifier.state.InMemoryState`) against the crypto-only cost
of the same proofs' 2k + 1 signature checks, interleaved per repeat.

CPU: beside each size's wall time per proof, its CPU time per proof, the measuring thread's
and, on PostgreSQL served from this machine, the database's client backends' (from
``/proc/PID/schedstat``): under a load that holds the cores, the commit's round trips to the
server wait for a turn, and the wall time measures the scheduler as much as the store; the
CPU time does not wait. A server elsewhere gives no CPU figures.

Memory: tracemalloc's peak of one appraisal and commit (Python allocations only; SQLite's
page cache is its own, capped at 2 MiB per connection), and the process's peak RSS
(``resource.getrusage``) after each size's proofs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from geoattest.bench.fleet import Fleet, FleetChip
from geoattest.bench.postgres import postgresql_databases
from geoattest.bench.report import Figures, median, progress
from geoattest.bench.verifier import crypto_rate, fleet_checks, make_appraiser, pipeline_run
from geoattest.errors import StudyError
from geoattest.protocol.proof import ProofChain
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.pipeline import ProofAppraiser
from geoattest.verifier.store import (
    CommitRecord,
    DeviceState,
    EnrolledDevice,
    SqlStore,
    Synchronous,
    metadata,
)

FLEETS = (1_000, 100_000, 1_000_000)
QUICK_FLEETS = (1_000, 10_000)
KS = (1, 2, 4, 8, 16)
QUICK_KS = (1, 4)
YEAR_NS = 365 * 86_400 * 10**9
BULK_CHUNK = 50_000
FRESH = {
    "device_id": "printf('fill-%07d', n.i)",
    "key_id": "lower(hex(randomblob(32)))",
    "digest": "CAST(printf('%032d', n.i) AS BLOB)",
}
"""Columns that differ between copies of the template device (SQL over the CTE's n.i)."""
PG_CHUNK = 500_000
PG_FRESH = {
    "device_id": "'fill-' || lpad(n.i::text, 8, '0')",
    "key_id": "md5(n.i::text) || md5((-n.i)::text)",
    "digest": "convert_to(lpad(n.i::text, 32, '0'), 'UTF8')",
}
""":data:`FRESH` in PostgreSQL's SQL, over ``generate_series`` as n(i)."""
PROC = Path("/proc")
"""Linux's process tables: the CPU time of the database's backends."""
EVENT_LOGS = frozenset({"proofs", "alerts"})
"""Tables that log events rather than hold a device's state; copies get no rows there."""


@dataclass(frozen=True, slots=True)
class SizeResult:
    fleet: int
    enrol_s: float
    appraise_us: float
    commit_us: float
    cpu_us: float | None
    """CPU per proof, the store's server included; None: the server's CPU is out of sight."""
    peak_alloc_kib: float
    peak_rss_mib: float
    db_mib: float

    @property
    def per_proof_us(self) -> float:
        return self.appraise_us + self.commit_us


@dataclass(frozen=True, slots=True)
class KResult:
    k: int
    pipeline_us: float
    crypto_us: float


def _fill_sql(conn: sqlite3.Connection, table: str) -> str:
    """Copies of the template device's row in ``table``, one per n.i, with a fresh device
    id, key id and digest; every other column as the template has it."""
    columns = [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]
    values = ", ".join(FRESH.get(c, f"t.{c}") for c in columns)
    return (
        "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "  # noqa: S608  (our own table and column names)
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {values} FROM n, {table} AS t WHERE t.device_id = ?"
    )


def _per_device_tables() -> list[str]:
    """The tables with a row per device (parents first), not those that log events."""
    return [
        t.name for t in metadata.sorted_tables if "device_id" in t.c and t.name not in EVENT_LOGS
    ]


def bulk_enrol(db: str | Path, template: str, count: int, advance: Callable[[int], None]) -> float:
    """``count`` more devices, each a copy of device ``template`` (enrolled, one proof
    accepted) in every per-device table; seconds taken."""
    if isinstance(db, str):
        return _bulk_enrol_postgresql(db, template, count, advance)
    conn = sqlite3.connect(db, isolation_level=None)
    statements = [_fill_sql(conn, table) for table in _per_device_tables()]
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for lo in range(0, count, BULK_CHUNK):
        hi = min(count, lo + BULK_CHUNK)
        for sql in statements:
            conn.execute(sql, (lo, hi - 1, template))
        advance(hi - lo)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _bulk_enrol_postgresql(
    url: str, template: str, count: int, advance: Callable[[int], None]
) -> float:
    """:func:`bulk_enrol` on PostgreSQL: the per-device tables' constraints and indexes are
    set aside, the copies inserted by ``generate_series`` chunks, and every constraint and
    index made again as the schema has it (each checked over the whole table), so the
    measured proofs meet the verifier's own schema at its full size."""
    tables = _per_device_tables()
    chunks = [(lo, min(count, lo + PG_CHUNK)) for lo in range(0, count, PG_CHUNK)]
    fillers = max(1, min(len(chunks), os.cpu_count() or 1))

    def fill(mine: Sequence[tuple[int, int]]) -> None:
        """Insert these chunks' copies, each chunk in one transaction of its own."""
        with psycopg.connect(url) as conn:
            conn.execute(b"SET synchronous_commit = off")  # a bench fill, not an acknowledgement
            for lo, hi in mine:
                with conn.transaction():
                    for table in tables:
                        conn.execute(_pg_fill_sql(table), (lo, hi - 1, template))
                advance(hi - lo)

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:  # the fillers wait for its commits
        conn.execute(b"SET maintenance_work_mem = '512MB'")
        with conn.transaction():
            rebuild = _set_aside_constraints(conn, tables)
        # The chunks are disjoint and nothing is checked until the rebuild: one connection
        # per core fills them side by side.
        with ThreadPoolExecutor(fillers) as pool:
            list(pool.map(fill, [chunks[i::fillers] for i in range(fillers)]))
        with conn.transaction():
            for statement in rebuild:
                conn.execute(statement.encode())
        conn.execute(b"ANALYZE")
    return time.perf_counter() - start


def _pg_fill_sql(table: str) -> bytes:
    """:func:`_fill_sql` in PostgreSQL's SQL."""
    columns = [c.name for c in metadata.tables[table].c]
    values = ", ".join(PG_FRESH.get(c, f"t.{c}") for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608  (our own table and column names)
        f"SELECT {values} FROM generate_series(%s::bigint, %s::bigint) AS n(i), "
        f"{table} AS t WHERE t.device_id = %s"
    ).encode()


def _set_aside_constraints(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """Drop the tables' primary keys, unique and foreign keys (with the foreign keys of
    other tables that lean on them) and indexes; the statements that make them again."""
    constraints = conn.execute(
        b"SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype"
        b" FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f')"
        b" AND (c.conrelid::regclass::text = ANY(%s) OR c.confrelid::regclass::text = ANY(%s))",
        (list(tables), list(tables)),
    ).fetchall()
    indexes = conn.execute(
        b"SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)"
        b" AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (list(tables),),
    ).fetchall()
    foreign_last = sorted(constraints, key=lambda c: c[3] != "f")  # dropped first
    for table, name, _, _ in foreign_last:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'.encode())
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"'.encode())
    rebuild = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in foreign_last[::-1]]
    return rebuild + [definition for _, definition in indexes]


class CpuMeter:
    """CPU time (ns) of the calling thread plus, on PostgreSQL, the database's client
    backends but the meter's own connection, read from ``/proc/PID/schedstat``: a server
    reached other than by a Unix socket or loopback, or a backend that is not a
    ``postgres`` process of this machine, makes :meth:`read` None."""

    def __init__(self, db: str | Path) -> None:
        self._conn = psycopg.connect(db, autocommit=True) if isinstance(db, str) else None
        self._here = self._conn is None or self.serves_here(
            self._conn.execute(b"SELECT inet_server_addr()").fetchone()
        )

    @staticmethod
    def serves_here(row: tuple[Any, ...] | None) -> bool:
        """Whether the server's address (``inet_server_addr()``'s row: NULL over a Unix
        socket) is this machine's: only then are its backends' pids this machine's."""
        address = None if row is None else row[0]
        return address is None or ipaddress.ip_interface(str(address)).ip.is_loopback

    def read(self) -> dict[int, int] | None:
        """Nanoseconds of CPU so far by process (0: the calling thread)."""
        times = {0: time.thread_time_ns()}
        if self._conn is None:
            return times
        if not self._here:
            return None
        rows = self._conn.execute(
            b"SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            b" AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
        for (pid,) in rows:
            try:
                if (PROC / str(pid) / "comm").read_text().strip() != "postgres":
                    return None
                times[pid] = int((PROC / str(pid) / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return None
        return times

    @staticmethod
    def spent_ns(before: dict[int, int] | None, after: dict[int, int] | None) -> int | None:
        """CPU spent between two readings (a backend that appeared between counts whole)."""
        if before is None or after is None:
            return None
        return sum(ns - before.get(pid, 0) for pid, ns in after.items())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _size_mib(db: str | Path) -> float:
    if isinstance(db, Path):
        return db.stat().st_size / 2**20
    with psycopg.connect(db) as conn:
        row = conn.execute(b"SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0]) / 2**20


def _chip_proofs(fleet: Fleet, chips: Sequence[FleetChip], rounds: int) -> list[list[bytes]]:
    """``rounds`` successive proofs per chip, from a fresh chain: ``[round][chip]``."""
    for chip in chips:
        chip.chain = ProofChain(chip.device_id)
    return [[fleet.proof(chip).SerializeToString() for chip in chips] for _ in range(rounds)]


def _enrol(store: SqlStore, fleet: Fleet, chip: FleetChip) -> None:
    """Enrol the chip under a year's licence for its region, as ``verifier serve`` would."""
    record = fleet.device_record(chip)
    now = time.time_ns()
    licence = ExportLicence(chip.device_id, record.licensed_region, now + YEAR_NS)
    LiveLicences(store).change(licence, now)
    store.enrol(EnrolledDevice(record, "H100", licence.valid_until_ns, DeviceState.ENROLLED))


def _open_store(
    db: str | Path,
    fleet: Fleet,
    appraiser: ProofAppraiser,
    template_proof: bytes,
    size: int,
    *,
    advance: Callable[[int], None],
) -> tuple[SqlStore, float]:
    """A database of ``size`` devices: the fleet's chips, the last one the template (its
    first proof accepted through the store), then copies of the template."""
    store = SqlStore.open(db, synchronous=Synchronous.NORMAL)
    for chip in fleet.chips:
        _enrol(store, fleet, chip)
    _submit(appraiser, store, template_proof)
    return store, bulk_enrol(db, fleet.chips[-1].device_id, size - len(fleet.chips), advance)


def _submit(appraiser: ProofAppraiser, store: SqlStore, proof: bytes) -> tuple[float, float]:
    """Appraise one proof against the store and commit it: seconds for each."""
    now = time.time_ns()
    t0 = time.perf_counter()
    appraisal = appraiser.appraise(proof, store, now)
    t1 = time.perf_counter()
    if appraisal.reason is not None:
        raise StudyError(f"bench proof rejected: {appraisal.reason} {appraisal.detail}")
    store.commit([CommitRecord(appraisal, proof, appraisal.proof_digest, "", (), now)])
    return t1 - t0, time.perf_counter() - t1


def _peak_alloc(appraiser: ProofAppraiser, store: SqlStore, proofs: Sequence[bytes]) -> float:
    """Median tracemalloc peak (bytes) of one appraisal and commit."""
    peaks = []
    tracemalloc.start()
    try:
        for proof in proofs:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            _submit(appraiser, store, proof)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return median(peaks)


def _peak_rss_mib() -> float:
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes / (2**20 if sys.platform == "darwin" else 2**10)


def fleet_scaling(
    fleet: Fleet,
    sizes: Sequence[int],
    rounds: int,
    databases: Callable[[int], str | Path],
    advance: Callable[[int], None],
) -> list[SizeResult]:
    """Per-proof appraisal and commit cost at each fleet size, each in the database
    ``databases(size)`` (a SQLite file's path or a ``postgresql://`` URL), for every chip
    of ``fleet`` but the last (the template of the bulk copies); the last round measures
    memory."""
    appraiser = make_appraiser(fleet)
    proofs = _chip_proofs(fleet, fleet.chips[:-1], rounds + 1)
    (template_proof,) = _chip_proofs(fleet, fleet.chips[-1:], 1)[0]
    advance(1)
    stores, enrol_s, where = [], [], [databases(size) for size in sizes]
    for db, size in zip(where, sizes, strict=True):
        store, seconds = _open_store(db, fleet, appraiser, template_proof, size, advance=advance)
        stores.append(store)
        enrol_s.append(seconds)
    appraise: list[list[float]] = [[] for _ in sizes]
    commit: list[list[float]] = [[] for _ in sizes]
    cpu: list[list[float | None]] = [[] for _ in sizes]
    meters = [CpuMeter(db) for db in where]
    for batch in proofs[:-1]:  # interleaved: every size sees the same load
        for i, store in enumerate(stores):
            before = meters[i].read()
            for proof in batch:
                a, c = _submit(appraiser, store, proof)
                appraise[i].append(a * 1e6)
                commit[i].append(c * 1e6)
            spent = CpuMeter.spent_ns(before, meters[i].read())
            cpu[i].append(None if spent is None else spent / 1e3 / len(batch))
            advance(1)
    results = []
    for i, (size, store) in enumerate(zip(sizes, stores, strict=True)):
        meters[i].close()
        peak = _peak_alloc(appraiser, store, proofs[-1])
        store.close()
        blocks = [us for us in cpu[i] if us is not None]
        results.append(
            SizeResult(
                fleet=size,
                enrol_s=enrol_s[i],
                appraise_us=median(appraise[i]),
                commit_us=median(commit[i]),
                cpu_us=median(blocks) if len(blocks) == len(cpu[i]) else None,
                peak_alloc_kib=peak / 1024,
                peak_rss_mib=_peak_rss_mib(),
                db_mib=_size_mib(where[i]),
            )
        )
    return results


def k_scaling(
    ks: Sequence[int], chips: int, repeats: int, advance: Callable[[int], None]
) -> list[KResult]:
    """Pure pipeline vs crypto-only µs per proof for each k, interleaved per repeat."""
    setups = []
    for k in ks:
        fleet = Fleet(chips, k=k)
        proofs = [fleet.proof(c, advance=False).SerializeToString() for c in fleet.chips]
        setups.append((fleet, make_appraiser(fleet), proofs, fleet_checks(fleet, proofs)))
        advance(1)
    piped: list[list[float]] = [[] for _ in ks]
    crypto: list[list[float]] = [[] for _ in ks]
    for _ in range(repeats):
        for i, (fleet, appraiser, proofs, checks) in enumerate(setups):
            crypto[i].append(1e6 / crypto_rate(checks, len(checks) // len(proofs), min_s=0.1))
            piped[i] += pipeline_run(appraiser, fleet, proofs)[1]
            advance(1)
    return [KResult(k, median(p), median(c)) for k, p, c in zip(ks, piped, crypto, strict=True)]


def plot(sizes: Sequence[SizeResult], ks: Sequence[KResult], path: Path, database: str) -> None:
    """Two panels: µs per proof against fleet size (log) and against k."""
    import matplotlib  # noqa: PLC0415  (slow import, only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [s.fleet for s in sizes]
    left.plot(x, [s.per_proof_us for s in sizes], "o-", label="appraise + commit")
    left.plot(x, [s.appraise_us for s in sizes], "s--", label="appraise (store reads)")
    left.plot(x, [s.commit_us for s in sizes], "^--", label="commit")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("enrolled devices")
    left.set_ylabel("µs per proof (median)")
    left.set_title(f"Durable store ({database}, k = 4): cost per proof")
    left.legend()
    kx = [r.k for r in ks]
    right.plot(kx, [r.pipeline_us for r in ks], "o-", label="pipeline")
    right.plot(kx, [r.crypto_us for r in ks], "s--", label="crypto only (2k + 1 verifies)")
    right.set_ylim(bottom=0)
    right.set_xlabel("landmarks per proof (k)")
    right.set_ylabel("µs per proof (median)")
    right.set_title("Pure pipeline: cost per proof against k")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    plot_path: Path,
    *,
    fleets: Sequence[int] = FLEETS,
    ks: Sequence[int] = KS,
    chips: int = 32,
    rounds: int = 6,
    repeats: int = 3,
    db: str | None = None,
) -> Figures:
    """Both scalings, the plot, and the figures (ratios against the smallest fleet, and
    against the crypto-only cost for each k); ``db``: the fleets in PostgreSQL
    (``postgresql``: a temporary server of the bench's own, or a ``postgresql://`` URL of a
    server where databases may be created), None: in SQLite files."""
    enrol_rows = sum(fleets) - (chips + 1) * len(fleets)
    with progress("scale", enrol_rows + 1 + rounds * len(fleets) + len(ks) * (1 + repeats)) as (
        bar,
        task,
    ):

        def advance(steps: int) -> None:
            bar.advance(task, steps)

        with (
            tempfile.TemporaryDirectory(prefix="geoattest-bench-scale-") as tmp,
            postgresql_databases(db) if db else contextlib.nullcontext(None) as new_database,
        ):

            def database(size: int) -> str | Path:
                return new_database() if new_database else Path(tmp) / f"fleet-{size}.db"

            sizes = fleet_scaling(Fleet(chips + 1), fleets, rounds, database, advance)
        by_k = k_scaling(ks, chips // 2, repeats, advance)
    database_name = "PostgreSQL" if db else "SQLite"
    plot(sizes, by_k, plot_path, database_name)
    base = sizes[0]
    figures: Figures = {
        "plot": str(plot_path),
        "measured_chips": chips,
        "database": database_name.lower(),
        "store_synchronous": "synchronous_commit on" if db else "NORMAL",
    }
    for s in sizes:
        figures |= {
            f"fleet_{s.fleet}_per_proof_us": round(s.per_proof_us, 1),
            f"fleet_{s.fleet}_appraise_us": round(s.appraise_us, 1),
            f"fleet_{s.fleet}_commit_us": round(s.commit_us, 1),
            f"fleet_{s.fleet}_ratio": round(s.per_proof_us / base.per_proof_us, 3),
        }
        if s.cpu_us is not None and base.cpu_us is not None:
            figures |= {
                f"fleet_{s.fleet}_cpu_us": round(s.cpu_us, 1),
                f"fleet_{s.fleet}_cpu_ratio": round(s.cpu_us / base.cpu_us, 3),
            }
        figures |= {
            f"fleet_{s.fleet}_peak_alloc_kib": round(s.peak_alloc_kib, 1),
            f"fleet_{s.fleet}_peak_rss_mib": round(s.peak_rss_mib, 1),
            f"fleet_{s.fleet}_db_mib": round(s.db_mib, 1),
            f"fleet_{s.fleet}_bulk_enrol_s": round(s.enrol_s, 2),
        }
    for r in by_k:
        figures |= {
            f"k_{r.k}_pipeline_us": round(r.pipeline_us, 1),
            f"k_{r.k}_crypto_us": round(r.crypto_us, 1),
            f"k_{r.k}_cost_over_crypto": round(r.pipeline_us / r.crypto_us, 3),
        }
    return figures
