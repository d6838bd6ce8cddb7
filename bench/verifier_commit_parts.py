"""The batch commit's statements and the database server's CPU per proof, and one service
thread against two.

Run: ``python bench/verifier_commit_parts.py [--db postgresql] [--chips 400]`` (about a
minute; ``--db postgresql`` starts a temporary server as ``geoattest bench verifier --db
postgresql`` does). Prints, per proof, over ``VerifierService.submit_batch`` in batches of
50 in this process:

1. each statement the store sent: executions, this thread's CPU time and the wall time
   until it returned (on PostgreSQL the difference is mostly the server's work);
2. this process's CPU time and, on PostgreSQL, the server's (its processes' CPU from
   ``/proc``);
3. the same batches submitted from one thread and from two at once, alternating, this
   process on one CPU: wall time, CPU time, and how busy the process kept its CPU (a
   second service thread appraises while the first waits on its commit);
4. on PostgreSQL, with ``--inline-pairs N``: the server's CPU per proof with the proofs'
   rows (each with its result token) kept whole against PostgreSQL's default row target,
   two databases on the one server, alternating N times, and the disk each takes per proof.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from verifier_batch_profile import BATCH, service_for, submit_all

from geoattest.bench.fleet import Fleet
from geoattest.bench.postgres import PostgresServer, temporary_server
from geoattest.verifier.service import VerifierService
from geoattest.verifier.store import SqlStore

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_s(server: PostgresServer | None) -> float:
    """CPU seconds the server's postmaster and its backends have used (Linux /proc)."""
    if server is None:
        return 0.0
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


@contextmanager
def statements(store: Any, totals: dict[str, list[float]]) -> Iterator[None]:
    """Count each statement the store's engine sends, with its CPU and wall time."""
    started: dict[str, float] = {}

    def before(*_: Any) -> None:
        started["cpu"], started["wall"] = time.thread_time(), time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        row = totals[" ".join(statement.split())[:80]]
        row[0] += len(params) if many else 1
        row[1] += time.thread_time() - started["cpu"]
        row[2] += time.perf_counter() - started["wall"]

    engine = store._engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def submit_from(service: VerifierService, proofs: list[Any], threads: int) -> None:
    batches = [proofs[i : i + BATCH] for i in range(0, len(proofs), BATCH)]
    with ThreadPoolExecutor(threads) as pool:
        for results in pool.map(lambda b: service.submit_batch(b, time.time_ns()), batches):
            if any(r.reason is not None for r in results):
                raise AssertionError("a bench proof was rejected")


def open_service(fleet: Fleet, root: Path, url: str) -> VerifierService:
    """The bench's service over the database at ``url``."""
    opened = SqlStore.open
    SqlStore.open = classmethod(lambda cls, db, **kw: opened(url, **kw))  # type: ignore
    try:
        return service_for(fleet, root)
    finally:
        SqlStore.open = opened  # type: ignore[method-assign]


def inline_pairs(server: PostgresServer, chips: int, pairs: int, root: Path) -> None:
    """Server CPU per proof, rows inline against the default row target."""
    services = {}
    for name in ("default target", "rows inline"):
        fleet = Fleet(chips)
        (root / name).mkdir()
        service = open_service(fleet, root / name, server.database())
        if name == "default target":
            with service.store._engine.begin() as conn:
                conn.execute(text("ALTER TABLE proofs RESET (toast_tuple_target)"))
        submit_all(service, [fleet.proof(c) for c in fleet.chips])
        services[name] = (fleet, service)
    print("the PostgreSQL server's CPU per proof (µs), alternating:")
    for _ in range(pairs):
        for name, (fleet, service) in services.items():
            proofs = [fleet.proof(c) for c in fleet.chips]
            before = server_cpu_s(server)
            submit_all(service, proofs)
            print(f"  {name:15s} {(server_cpu_s(server) - before) / chips * 1e6:6.0f}")
    for name, (_, service) in services.items():
        with service.store._engine.connect() as conn:
            stored = conn.execute(
                text("SELECT pg_total_relation_size('proofs') / count(*) FROM proofs")
            ).scalar_one()
        print(f"  {name:15s} {stored:6.0f} bytes per proof (tables, indexes, TOAST)")


def main() -> None:
    parser = argparse.ArgumentParser(description="the batch commit's statements and threads")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--inline-pairs", type=int, default=0)
    args = parser.parse_args()
    fleet = Fleet(args.chips)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="geoattest-commit-")))
        server = stack.enter_context(temporary_server()) if args.db == "postgresql" else None
        if server and args.inline_pairs:
            inline_pairs(server, args.chips, args.inline_pairs, tmp)
            return
        url = server.database() if server else str(tmp / "verifier.db")
        service = open_service(fleet, tmp, url)
        rounds = iter([[fleet.proof(c) for c in fleet.chips] for _ in range(3 + 2 * args.pairs)])
        submit_all(service, next(rounds))
        totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        count = 2 * args.chips
        cpu, server_s = time.process_time(), server_cpu_s(server)
        with statements(service.store, totals):
            for _ in range(2):
                submit_all(service, next(rounds))
        cpu, server_s = time.process_time() - cpu, server_cpu_s(server) - server_s
        print(f"{args.db}, µs per proof (batches of {BATCH}):")
        print(f"  {cpu / count * 1e6:6.0f}  this process's CPU")
        if server:
            print(f"  {server_s / count * 1e6:6.0f}  the PostgreSQL server's CPU")
        print("  executions per proof, CPU, wall until it returned: statement")
        for text, (runs, cpu_s, wall_s) in sorted(totals.items(), key=lambda kv: -kv[1][2]):
            cpu_us, wall_us = cpu_s / count * 1e6, wall_s / count * 1e6
            print(f"  {runs / count:5.2f} {cpu_us:6.1f} {wall_us:6.1f}  {text}")
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print("service threads: wall, CPU (µs per proof), CPU busy; this process on one CPU")
        for _ in range(args.pairs):
            for threads in (1, 2):
                proofs = next(rounds)
                cpu, wall = time.process_time(), time.perf_counter()
                submit_from(service, proofs, threads)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                n = len(proofs)
                print(f"  {threads}  {wall / n * 1e6:6.0f} {cpu / n * 1e6:6.0f}  {cpu / wall:.2f}")


if __name__ == "__main__":
    main()
