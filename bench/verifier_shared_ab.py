"""CPU time per proof of the verifier's batch path in several processes at once, over one
SQLite database or a database each: what sharing the database costs the workers of
``verifier serve --workers N``.

Run: ``python bench/verifier_shared_ab.py [--chips 400] [--sets 6] [--processes 2]
[--threads 1] [--separate]`` (about 40 s). The fleet's chips are dealt out to the
processes (forked, so each has its own store connections, as a worker does); each
submits its chips' proofs through ``VerifierService.submit_batch`` over the durable store
(SQLite WAL, ``synchronous=FULL``) in batches of 50, one set of proofs per chip at a time,
after a warm set, every process's sets starting together. ``--threads 2`` submits each
process's batches from two threads, two batches in flight, as a worker's two service
threads take the calls of several connections. ``--separate``: a database file per
process instead of one shared. Prints each process's minimum and median CPU µs per proof
(the whole process: every thread).
"""

from __future__ import annotations

import argparse
import functools
import gc
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from verifier_batch_profile import BATCH, service_for, submit_all

from geoattest.bench.fleet import Fleet, FleetChip
from geoattest.v1 import envelope_pb2
from geoattest.verifier.service import VerifierService
from geoattest.verifier.store import SqlStore


def submit(service: VerifierService, proofs: Sequence[envelope_pb2.Envelope], threads: int) -> None:
    """Submit in batches of :data:`BATCH`, from ``threads`` threads at once."""
    if threads == 1:
        submit_all(service, proofs)
        return
    batches = [proofs[i : i + BATCH] for i in range(0, len(proofs), BATCH)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(functools.partial(submit_all, service), batches))


def worker(
    fleet: Fleet,
    chips: Sequence[FleetChip],
    root: Path,
    db: Path,
    sets: int,
    threads: int,
    start: multiprocessing.synchronize.Barrier,
    answer: multiprocessing.connection.Connection,
) -> None:
    """One process: its chips enrolled, a warm set, then ``sets`` measured sets."""
    service = service_for(fleet, root, db, chips)
    submit(service, [fleet.proof(chip) for chip in chips], threads)
    rounds = [[fleet.proof(chip) for chip in chips] for _ in range(sets)]
    gc.freeze()  # as ``verifier serve`` does once its inputs are loaded
    us = []
    start.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for proofs in rounds:
        begun = time.process_time()
        submit(service, proofs, threads)
        us.append((time.process_time() - begun) / len(proofs) * 1e6)
    after = resource.getrusage(resource.RUSAGE_SELF)
    batches = sum(len(proofs) for proofs in rounds) / BATCH
    proofs_sent = batches * BATCH
    answer.send(
        (
            us,
            (after.ru_utime - usage.ru_utime) / proofs_sent * 1e6,
            (after.ru_stime - usage.ru_stime) / proofs_sent * 1e6,
            (after.ru_nvcsw - usage.ru_nvcsw) / batches,
            (after.ru_nivcsw - usage.ru_nivcsw) / batches,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="batch path in processes sharing a database")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--sets", type=int, default=6)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--separate", action="store_true", help="a database per process")
    args = parser.parse_args()
    fleet = Fleet(args.chips)
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="geoattest-shared-") as tmp:
        root = Path(tmp)
        fleet.write(root)
        SqlStore.open(root / "verifier.db").close()  # the schema, before the workers open it
        start = context.Barrier(args.processes)
        running = []
        for i in range(args.processes):
            receiver, sender = context.Pipe(duplex=False)
            db = root / (f"verifier-{i}.db" if args.separate else "verifier.db")
            chips = fleet.chips[i :: args.processes]
            process = context.Process(
                target=worker,
                args=(fleet, chips, root, db, args.sets, args.threads, start, sender),
            )
            process.start()
            running.append((process, receiver))
        for i, (process, receiver) in enumerate(running):
            us, user, system, voluntary, involuntary = receiver.recv()
            process.join()
            print(
                f"process {i}: min {min(us):6.0f}  median {statistics.median(us):6.0f} µs/proof"
                f"  ({' '.join(f'{x:.0f}' for x in us)}); all sets: user {user:.0f}, system"
                f" {system:.0f} µs/proof; context switches per batch: voluntary"
                f" {voluntary:.1f}, involuntary {involuntary:.1f}"
            )


if __name__ == "__main__":
    main()
