"""How often PostgreSQL plans each of the batch path's statements, and what each costs the
server: whether the commit's statements run prepared.

Run: ``python bench/verifier_statement_plans.py [--chips 400] [--sets 12]`` (about a
minute). Starts a temporary server as ``geoattest bench verifier --db postgresql`` does, with
``pg_stat_statements`` loaded (``track = all``: the foreign keys' checks too), enrols the
chips, submits one set of proofs to warm up, then ``--sets`` sets in batches of 50 from one
service thread (:meth:`VerifierService.submit_batch`), and prints per statement: plans and
calls, executions per proof, and the server's execution and planning time per proof (µs);
then the server's CPU per proof (its processes, from ``/proc``). A statement that runs
prepared with a generic plan shows far fewer plans than calls.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import text
from verifier_batch_profile import submit_all
from verifier_commit_parts import open_service, server_cpu_s

from geoattest.bench.fleet import Fleet
from geoattest.bench.postgres import temporary_server

TOP = 15
"""Statements printed, dearest first."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--sets", type=int, default=12)
    args = parser.parse_args()
    with ExitStack() as stack:
        server = stack.enter_context(temporary_server())
        server.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        server.stop()
        server.start()
        server.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        server.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
        server.execute("SELECT pg_reload_conf()")
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        fleet = Fleet(args.chips)
        service = open_service(fleet, root, server.database())
        engine = service.store._engine
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION pg_stat_statements"))
        submit_all(service, [fleet.proof(chip) for chip in fleet.chips])
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_stat_statements_reset()"))
        before = server_cpu_s(server)
        for _ in range(args.sets):
            submit_all(service, [fleet.proof(chip) for chip in fleet.chips])
        proofs = args.sets * args.chips
        server_us = (server_cpu_s(server) - before) / proofs * 1e6
        with engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT plans, calls, total_exec_time, total_plan_time, query"
                    " FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'"
                    " ORDER BY total_exec_time + total_plan_time DESC LIMIT :top"
                ),
                {"top": TOP},
            ).all()
    print("plans/calls  per proof  exec µs  plan µs  statement")
    for plans, calls, exec_ms, plan_ms, query in rows:
        print(
            f"{plans:>5}/{calls:<5} {calls / proofs:9.2f} {exec_ms * 1e3 / proofs:8.1f}"
            f" {plan_ms * 1e3 / proofs:8.1f}  {' '.join(query.split())[:90]}"
        )
    print(f"the server's CPU: {server_us:.0f} µs per proof")


if __name__ == "__main__":
    main()
