"""CPU time per proof of the served batch path, by thread, without the crypto bound: the
figure to compare two versions of ``verifier serve`` by.

Run: ``python bench/verifier_served_ab.py [--chips 400] [--workers N]`` (about 40 s,
Linux), and the same script with ``PYTHONPATH`` naming another checkout's ``src`` for that
code, alternating the two. It serves and loads the verifier as ``geoattest bench
verifier``'s SQLite row does (``verifier serve --workers N``, N the CPUs unless given; one
worker serves in the process it starts in, without forking), the same batches over eight
connections spread evenly over the workers, ``BATCH_ROUNDS`` successive proofs per chip in
each phase, but measures no bound. For each phase it prints the workers' CPU µs per proof
and the client's, then the workers' threads by kind: user and system CPU µs per proof and
context switches per batch (voluntary, involuntary), read from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
from pathlib import Path

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import grpc_run, replicas_serving

BATCH = 50
Sample = dict[str, tuple[int, int, int, int]]
"""Thread kind -> (user ticks, system ticks, voluntary, involuntary context switches)."""


def threads(pids: list[int]) -> Sample:
    """Every thread of ``pids`` added up by its name (``event_engine_0`` and
    ``event_engine_1`` read as ``event_engine``); each process's first thread, which runs
    its event loop, as ``event loop``. Python does not name a thread for the system, so
    the service threads read as ``python`` (with the idle alert watcher and probe)."""
    found: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
                status = (task / "status").read_text().splitlines()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")].rstrip("_0123456789")
            if task.name == str(pid):
                name = "event loop"
            fields = stat.rpartition(")")[2].split()
            switches = {
                key: int(value)
                for key, _, value in (line.partition(":\t") for line in status)
                if key.endswith("ctxt_switches")
            }
            row = found[name]
            row[0] += int(fields[11])
            row[1] += int(fields[12])
            row[2] += switches["voluntary_ctxt_switches"]
            row[3] += switches["nonvoluntary_ctxt_switches"]
    return {name: (u, s, v, n) for name, (u, s, v, n) in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="served batch path, CPU time by thread")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes (default: one per CPU)"
    )
    args = parser.parse_args()
    cores = args.workers or len(os.sched_getaffinity(0))
    fleet = Fleet(args.chips)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    with replicas_serving(fleet, None, 1, cores) as running:
        workers = running[0].workers
        samples: list[Sample] = []
        phases = asyncio.run(
            grpc_run(
                fleet,
                running,
                BATCH,
                8,
                unary=False,
                advance=lambda: samples.append(threads(workers)),
                bound=lambda: 0.0,
            )
        )
    # ``advance`` runs after the enrolment, then before and after each phase, then twice.
    per_proof = []
    for k, (phase, _) in enumerate(phases):
        before, after = samples[1 + 2 * k], samples[2 + 2 * k]
        delta = {
            name: [a - b for a, b in zip(after[name], before.get(name, (0, 0, 0, 0)), strict=True)]
            for name in after
        }
        per_proof.append(sum(u + s for u, s, _, _ in delta.values()) * tick_us / phase.proofs)
        batches = phase.proofs / BATCH
        print(
            f"phase {k}: workers {per_proof[-1]:6.0f} µs/proof,"
            f" client {phase.client_cpu_s / phase.proofs * 1e6:4.0f} µs/proof"
        )
        for name, (u, s, v, n) in sorted(delta.items(), key=lambda kv: -kv[1][0]):
            if u + s + v + n:
                print(
                    f"    {name:16s} user {u * tick_us / phase.proofs:6.0f} sys"
                    f" {s * tick_us / phase.proofs:4.0f} µs/proof; context switches per batch:"
                    f" voluntary {v / batches:6.1f}, involuntary {n / batches:5.1f}"
                )
    print(f"workers, median over the phases: {statistics.median(per_proof):.0f} µs/proof")


if __name__ == "__main__":
    main()
