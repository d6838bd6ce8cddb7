"""``geoattest bench verifier``: proofs per second through the pure pipeline, through
gRPC one proof per call, and through the batch call with the durable store, each as a
ratio to the crypto-only bound (the same signature checks back to back, on as many cores)
measured in the same run.

The gRPC rows run ``geoattest verifier serve --workers N``, one worker process per core
over one SQLite database (``synchronous=FULL``; the store's compare-and-swap commits are
safe for several writers), with N the number of processes of the crypto bound it is
compared with. With ``--db postgresql`` the same load then runs, in the same run, against
PostgreSQL served by R separate ``verifier serve`` replicas for each ``--replicas R``
(N / R workers each, a new database each), the connections spread evenly over the
replicas; their figures are prefixed ``postgresql_R_replicas_`` and carry the connections
the verifier held at the end of the load beside the pool rule's bound
(:func:`~geoattest.verifier.pool.connections_at_most`). Everything runs on the same N CPUs
(pinned where the machine has more), the client included, with one call in flight per
connection and the connections spread evenly over the workers. Every figure is a median
over interleaved repeats.

The client holds each proof as its envelope's serialised bytes, as a forwarder relaying
chips' proofs does, and builds each batch call's request by framing those bytes
(:meth:`~geoattest.wire.client.VerifierClient.submit_batch_encoded`): the server receives
byte for byte the request that building it from the envelopes would send, without the
client copying every envelope into a request message first. The proofs are made and
serialised before each phase is timed; the unary row sends envelopes as before.

On a shared machine other processes take CPU from both sides unevenly, so the batch row
is also given in CPU time: ``grpc_batch_cpu_ratio`` is the crypto bound's CPU time per
proof over the verifier's (its workers' and the client's CPU time per proof), and
``grpc_batch_workers_busy`` how much of their cores the workers used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Fleet, FleetChip
from geoattest.bench.postgres import postgresql_databases
from geoattest.bench.report import Figures, median, progress, quantile
from geoattest.crypto import VerifyingKey
from geoattest.demo.run import Party
from geoattest.errors import StudyError
from geoattest.lifecycle import worker_signals
from geoattest.pki import RevocationList
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.verifier.pipeline import DEFAULT_LANDMARK_FAULTS, PipelineConfig, ProofAppraiser
from geoattest.verifier.pool import connections_at_most
from geoattest.verifier.state import InMemoryState
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import VerifierClient, enrolment_request
from geoattest.wire.envelope import pae

Check = tuple[bytes, bytes, bytes]
"""A signature check: verifying key (DER), signature, signed bytes."""
REPEATS = 3
BATCH_ROUNDS = 8
"""Successive proofs per chip in each batch phase, so that it runs for seconds and the
tail (the last calls, while the other workers idle) is a small share of it."""
PROC = Path("/proc")
"""Linux's process tables: workers' CPU time and which worker holds a connection."""


def signature_checks(
    proof: envelope_pb2.Envelope, device_key: bytes, landmark_keys: dict[str, bytes]
) -> list[Check]:
    """The 2k + 1 checks the pipeline makes for ``proof``: proof, receipts, transcripts."""
    checks = [(device_key, proof.signature, pae(proof.payload_type, proof.payload))]
    for receipt_envelope in evidence_pb2.LocationProof.FromString(proof.payload).receipts:
        checks.append(
            (
                landmark_keys[receipt_envelope.key_id],
                receipt_envelope.signature,
                pae(receipt_envelope.payload_type, receipt_envelope.payload),
            )
        )
        transcript = round_pb2.TimingReceipt.FromString(receipt_envelope.payload).transcript
        checks.append(
            (device_key, transcript.signature, pae(transcript.payload_type, transcript.payload))
        )
    return checks


def crypto_rates(
    checks: Sequence[Check], per_proof: int, min_s: float = 0.3
) -> tuple[float, float]:
    """Proofs that back-to-back signature checks alone allow on one core: per second, and
    per CPU second (what other processes on the machine take from it does not count)."""
    keys = {der: VerifyingKey.from_der(der) for der, _, _ in checks}
    prepared = [(keys[der].verify, sig, msg) for der, sig, msg in checks]
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < min_s or done == 0:
        for verify, sig, msg in prepared:
            if not verify(sig, msg):
                raise StudyError("a bench signature does not verify")
        done += len(prepared)
    return done / per_proof / elapsed, done / per_proof / (time.process_time() - cpu)


def crypto_rate(checks: Sequence[Check], per_proof: int, min_s: float = 0.3) -> float:
    """Proofs per second that back-to-back signature checks alone allow on one core."""
    return crypto_rates(checks, per_proof, min_s)[0]


def crypto_bound(checks: Sequence[Check], per_proof: int, cores: int) -> float:
    """The crypto-only bound on ``cores`` processes running at once (sum of their rates,
    each over a second: long enough to see the load the calls around it saw)."""
    pool = multiprocessing.get_context("spawn").Pool(cores, initializer=worker_signals)
    try:
        return sum(pool.starmap(crypto_rate, [(checks, per_proof, 1.0)] * cores))
    finally:
        # Wait until the processes are gone: exiting, they would still take the cores
        # from whatever is measured next.
        pool.close()
        pool.join()


def make_appraiser(fleet: Fleet) -> ProofAppraiser:
    """The verifier's pipeline with the scenario's real policy (geography loads once, ~2 s);
    the quorum is the scenario's, or k where k is smaller, and the landmark faults the
    default's, or none at k = 1 (a single receipt leaves none to outvote)."""
    quorum = min(fleet.scenario.quorum, fleet.k)
    return ProofAppraiser(
        PipelineConfig(quorum=quorum, landmark_faults=min(DEFAULT_LANDMARK_FAULTS, quorum - 1)),
        fleet.landmark_records(),
        RevocationList(),
        fleet.scenario.policy.appraiser(),
    )


def pipeline_run(
    appraiser: ProofAppraiser, fleet: Fleet, proofs: Sequence[bytes]
) -> tuple[float, list[float]]:
    """Proofs per second and per-proof latencies (µs) through the pipeline one proof at a
    time (as the unary call runs it), no store."""
    state = _enrolled(fleet)
    now = time.time_ns()
    latencies = []
    start = time.perf_counter()
    for proof in proofs:
        t0 = time.perf_counter()
        appraisal = appraiser.appraise(proof, state, now)
        latencies.append((time.perf_counter() - t0) * 1e6)
        if appraisal.reason is not None:
            raise StudyError(f"bench proof rejected: {appraisal.reason} {appraisal.detail}")
    return len(proofs) / (time.perf_counter() - start), latencies


def pipeline_batch_rate(
    appraiser: ProofAppraiser, fleet: Fleet, proofs: Sequence[bytes], batch: int
) -> float:
    """Proofs per second through the pipeline in batches of ``batch``, as the verifier's
    batch call runs it (:meth:`ProofAppraiser.appraise_batch`), no store."""
    state = _enrolled(fleet)
    now = time.time_ns()
    start = time.perf_counter()
    for i in range(0, len(proofs), batch):
        for appraisal in appraiser.appraise_batch(proofs[i : i + batch], state, now):
            if appraisal.reason is not None:
                raise StudyError(f"bench proof rejected: {appraisal.reason}")
    return len(proofs) / (time.perf_counter() - start)


def _enrolled(fleet: Fleet) -> InMemoryState:
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    return state


Call = Callable[[VerifierClient], Awaitable[int]]
"""One call on a given connection; returns how many proofs it carried."""


async def _drive(
    chains: Sequence[Sequence[Call]], clients: Sequence[VerifierClient]
) -> tuple[float, list[float], int]:
    """Run ``chains`` (calls that must follow each other, such as one chip group's
    successive proofs) with one call in flight per connection, each connection taking the
    next ready call: proofs/s, call latencies (µs), proofs.

    No call is tied to a connection, so a worker process holding fewer of the connections
    still gets work whenever one of them is free."""
    ready: asyncio.Queue[Iterator[Call] | None] = asyncio.Queue()
    for chain in chains:
        ready.put_nowait(iter(chain))
    left = len(chains)
    latencies: list[float] = []
    proofs = 0

    async def connection(client: VerifierClient) -> None:
        nonlocal proofs, left
        while (calls := await ready.get()) is not None:
            call = next(calls, None)
            if call is None:
                left -= 1
                if left == 0:
                    for _ in clients:
                        ready.put_nowait(None)
                continue
            t0 = time.perf_counter()
            done = await call(client)  # read ``proofs`` only after the await: calls interleave
            proofs += done
            latencies.append((time.perf_counter() - t0) * 1e6)
            ready.put_nowait(calls)

    start = time.perf_counter()
    await asyncio.gather(*(connection(client) for client in clients))
    return proofs / (time.perf_counter() - start), latencies, proofs


def accepted(results: Sequence[evidence_pb2.AttestationResult]) -> int:
    """How many results came back; a rejected bench proof is a bug, never a figure."""
    for result in results:
        if result.verdict == evidence_pb2.VERDICT_REJECTED:
            raise StudyError(f"bench proof rejected: {result.reason} {result.detail}")
    return len(results)


async def _enrol(chip: FleetChip, client: VerifierClient) -> int:
    await client.enroll(
        enrolment_request(chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID)
    )
    return 1


async def _submit(proof: envelope_pb2.Envelope, client: VerifierClient) -> int:
    """One proof per call."""
    return accepted([await client.submit(proof)])


async def _submit_batch(proofs: Sequence[bytes], client: VerifierClient) -> int:
    """The batch call, its request framed around the proofs' serialised envelopes."""
    return accepted(await client.submit_batch_encoded(proofs))


def _calls(proofs: Sequence[Sequence[envelope_pb2.Envelope]], size: int) -> list[list[Call]]:
    """One chain of calls per group of ``size`` chips, a call per round of ``proofs``: one
    proof per call for a size of one, else the batch call, given each proof's envelope as
    the bytes a forwarder holds (serialised here, before the phase is timed)."""
    if size == 1:
        return [
            [functools.partial(_submit, round_[i]) for round_ in proofs]
            for i in range(len(proofs[0]))
        ]
    held = [[proof.SerializeToString() for proof in round_] for round_ in proofs]
    return [
        [functools.partial(_submit_batch, round_[i : i + size]) for round_ in held]
        for i in range(0, len(held[0]), size)
    ]


def _server_sockets(port: int) -> set[int]:
    """Inodes of the established TCP sockets on local ``port`` (Linux ``/proc/net``; gRPC
    listens on IPv4 addresses through dual-stack IPv6 sockets)."""
    found = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rpartition(":")[2], 16) == port:
                    found.add(int(fields[9]))
    return found


def _owner(inode: int, pids: Sequence[int]) -> int | None:
    """Which of ``pids`` holds the socket ``inode``."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) == f"socket:[{inode}]":
                        return pid
    return None


async def spread_clients(target: str, count: int, workers: Sequence[int]) -> list[VerifierClient]:
    """``count`` connections, the same number to each worker process.

    The kernel assigns each new connection to a worker by a hash, so a handful can land
    mostly on one worker, and the other then idles for want of calls. Connections are
    opened until each worker holds its share (its socket's owner is read from ``/proc``);
    where that cannot be read, or luck runs out, the rest are taken as they come.
    """
    if not PROC.is_dir():
        return [VerifierClient(target, timeout_s=120.0) for _ in range(count)]
    port = int(target.rpartition(":")[2])
    share = {pid: count // len(workers) for pid in workers}
    kept: list[VerifierClient] = []
    spare: list[VerifierClient] = []
    for _ in range(10 * count):
        if len(kept) == count or not any(share.values()):
            break
        before = _server_sockets(port)
        client = VerifierClient(target, timeout_s=120.0)
        await client.result_keys()  # connected
        new = _server_sockets(port) - before
        owner = _owner(new.pop(), workers) if len(new) == 1 else None
        if owner is not None and share[owner] > 0:
            share[owner] -= 1
            kept.append(client)
        else:
            spare.append(client)
    while len(kept) < count:
        kept.append(spare.pop() if spare else VerifierClient(target, timeout_s=120.0))
    for client in spare:
        await client.close()
    return kept


@dataclass(frozen=True, slots=True)
class Phase:
    """One gRPC phase: proofs per second, call latencies (µs), and CPU seconds spent."""

    rate: float
    latencies: list[float]
    wall_s: float
    proofs: int
    server_cpu_s: float | None
    """All the verifier's worker processes together; None where /proc is not there."""
    client_cpu_s: float

    @property
    def cpu_us_per_proof(self) -> float | None:
        """The workers' and the client's CPU time per proof (µs)."""
        if self.server_cpu_s is None:
            return None
        return (self.server_cpu_s + self.client_cpu_s) / self.proofs * 1e6

    def busy(self, cores: int) -> float | None:
        """How much of ``cores`` the workers kept busy."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s / cores


def _cpu_s(pids: Sequence[int]) -> float | None:
    """CPU seconds (user and system, every thread) the processes have used (Linux /proc)."""
    ticks = 0
    for pid in pids:
        try:
            fields = (PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def grpc_run(
    fleet: Fleet,
    replicas: Sequence[Replica],
    batch: int,
    concurrency: int,
    *,
    unary: bool,
    advance: Callable[[], None],
    bound: Callable[[], float],
) -> list[tuple[Phase, float]]:
    """Enrol the fleet, then (``unary``) one proof per call, then ``REPEATS`` phases of
    ``BATCH_ROUNDS`` successive proofs per chip in batches of ``batch`` chips, the calls
    spread evenly over the replicas; ``bound()`` is measured just before each phase and
    after the last (the machine's load drifts; the bound must see what the calls saw).
    Returns each phase, unary first, with the mean of the bounds measured on either side."""
    share, extra = divmod(concurrency, len(replicas))
    clients = [
        client
        for i, replica in enumerate(replicas)
        for client in await spread_clients(
            replica.target, max(1, share + (i < extra)), replica.workers
        )
    ]
    workers = [pid for replica in replicas for pid in replica.workers]
    chips = fleet.chips
    try:
        await _drive([[functools.partial(_enrol, chip)] for chip in chips], clients)
        advance()
        phases, bounds = [], []
        for size, rounds in [(1, 1)] * unary + [(batch, BATCH_ROUNDS)] * REPEATS:
            chains = _calls([[fleet.proof(chip) for chip in chips] for _ in range(rounds)], size)
            advance()
            bounds.append(bound())
            server_s, client_s, wall = _cpu_s(workers), time.process_time(), time.perf_counter()
            rate, latencies, done = await _drive(chains, clients)
            server_after = _cpu_s(workers)
            phases.append(
                Phase(
                    rate,
                    latencies,
                    time.perf_counter() - wall,
                    done,
                    None if server_s is None or server_after is None else server_after - server_s,
                    time.process_time() - client_s,
                )
            )
            advance()
        bounds.append(bound())
        advance()
        around = [(before + after) / 2 for before, after in itertools.pairwise(bounds)]
        return list(zip(phases, around, strict=True))
    finally:
        for client in clients:
            await client.close()


@dataclass(frozen=True, slots=True)
class Replica:
    """A running ``verifier serve``: its address and its worker processes."""

    target: str
    workers: list[int]


@contextmanager
def replicas_serving(
    fleet: Fleet, db: str | None, replicas: int, cores: int
) -> Iterator[list[Replica]]:
    """``replicas`` ``verifier serve`` processes over one database (None: a SQLite file in
    a temporary directory), the cores shared out as ``--workers`` (at least one each)."""
    with (
        tempfile.TemporaryDirectory(prefix="geoattest-bench-") as tmp,
        contextlib.ExitStack() as stop,
    ):
        root = Path(tmp)
        argv = [*fleet.write(root), "--workers", str(max(1, cores // replicas))]
        if db is not None:
            argv[argv.index("--db") + 1] = db
        command = [sys.executable, "-m", "geoattest", *argv]
        parties = []
        for i in range(replicas):
            party = Party(f"verifier-{i}", command, root / f"log-{i}")
            stop.callback(party.stop)
            parties.append(party)
        yield [
            Replica(str(party.wait_for_address()), _children(party.process.pid))
            for party in parties
        ]


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux ``/proc``); ``[pid]`` when none are found."""
    found = []
    for entry in PROC.glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found or [pid]


def _cpus() -> list[int]:
    """The CPUs this process may run on (all of them where affinity is not offered)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@contextmanager
def _on_cores(cores: int) -> Iterator[None]:
    """Run this process and what it starts on ``cores`` of the CPUs it may use (all of
    them when there are no more, or where affinity cannot be set), so that every row
    gets the same cores."""
    allowed = _cpus()
    if cores >= len(allowed) or not hasattr(os, "sched_setaffinity"):
        yield
        return
    os.sched_setaffinity(0, allowed[:cores])
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


@dataclass(frozen=True, slots=True)
class Setup:
    """One way of serving the load: a database and how many replicas serve it."""

    name: str
    """The prefix of its figures ("" for the SQLite row, the embedded default)."""
    db: str | None
    """A ``postgresql://`` URL; None: a SQLite file."""
    replicas: int


def setups(new_database: Callable[[], str] | None, replicas: Sequence[int]) -> list[Setup]:
    """SQLite, one process (unprefixed, as it always was); then, given PostgreSQL, each
    replica count over a database of its own (figures prefixed ``postgresql_N_replicas_``)."""
    rows = [Setup("", None, 1)]
    if new_database is not None:
        rows += [Setup(f"postgresql_{n}_replicas_", new_database(), n) for n in replicas]
    return rows


def run(
    chips: int = 400,
    batch: int = 50,
    *,
    concurrency: int = 8,
    cores: int | None = None,
    db: str | None = None,
    replicas: Sequence[int] = (1, 2),
) -> Figures:
    """The figures: SQLite always, and with ``db`` (``postgresql`` for a temporary server
    of the bench's own, or a ``postgresql://`` URL of a server where databases may be
    created) PostgreSQL served by each number of ``replicas``, all in one run."""
    cores = cores or len(_cpus())
    rows = 1 + (len(replicas) if db else 0)
    steps = 2 + 2 * REPEATS + rows * (3 + 2 * REPEATS) + 2
    databases = postgresql_databases(db) if db else contextlib.nullcontext(None)
    with _on_cores(cores), databases as new_database, progress("verifier", steps) as (bar, task):

        def advance() -> None:
            bar.advance(task)

        fleet = Fleet(chips)
        appraiser = make_appraiser(fleet)
        advance()
        proofs = [fleet.proof(c, advance=False).SerializeToString() for c in fleet.chips]
        checks = fleet_checks(fleet, proofs)
        per_proof = len(checks) // len(proofs)
        advance()
        bound_1, bound_cpu, piped, piped_batches, latencies = [], [], [], [], []
        for _ in range(REPEATS):  # interleaved, so both see the same load
            per_s, per_cpu_s = crypto_rates(checks, per_proof)
            bound_1.append(per_s)
            bound_cpu.append(per_cpu_s)
            advance()
            rate, lat = pipeline_run(appraiser, fleet, proofs)
            piped.append(rate)
            latencies += lat
            piped_batches.append(pipeline_batch_rate(appraiser, fleet, proofs, batch))
            advance()
        bound = functools.partial(crypto_bound, checks, per_proof, cores)
        served: Figures = {}
        for setup in setups(new_database, replicas):
            for chip in fleet.chips:  # a new database: every chain starts again
                chip.chain = ProofChain(chip.device_id)
            with replicas_serving(fleet, setup.db, setup.replicas, cores) as running:
                advance()
                phases = asyncio.run(
                    grpc_run(
                        fleet,
                        running,
                        batch,
                        concurrency,
                        unary=setup.db is None,
                        advance=advance,
                        bound=bound,
                    )
                )
                processes = sum(len(replica.workers) for replica in running)
                connections = _connections(setup.db, processes)
            if setup.db is None:
                (unary, unary_bound), *phases = phases
                served |= _unary_figures(unary, unary_bound)
            served |= {
                f"{setup.name}{key}": value
                for key, value in (
                    _batch_figures(phases, cores, processes, median(bound_cpu)) | connections
                ).items()
            }
            if setup.db is not None:
                served[f"{setup.name}workers_per_replica"] = processes // setup.replicas
    crypto_1 = median(bound_1)
    pipeline = median(piped)
    return {
        "cores": cores,
        "k": fleet.k,
        "signature_checks_per_proof": per_proof,
        "proofs_per_phase": len(proofs),
        "crypto_bound_per_s": round(crypto_1, 1),
        "pipeline_per_s": round(pipeline, 1),
        "pipeline_ratio": round(pipeline / crypto_1, 3),
        "pipeline_batch_per_s": round(median(piped_batches), 1),
        "pipeline_batch_ratio": round(median(piped_batches) / crypto_1, 3),
        "pipeline_p50_us": round(median(latencies), 1),
        "pipeline_p99_us": round(quantile(latencies, 0.99), 1),
        "grpc_batch_size": batch,
        **served,
    }


def _unary_figures(unary: Phase, bound: float) -> Figures:
    return {
        "grpc_unary_per_s": round(unary.rate, 1),
        "grpc_unary_ratio": round(unary.rate / bound, 3),
        "grpc_unary_p50_ms": round(median(unary.latencies) / 1e3, 2),
        "grpc_unary_p99_ms": round(quantile(unary.latencies, 0.99) / 1e3, 2),
    }


def _batch_figures(
    batches: Sequence[tuple[Phase, float]], cores: int, processes: int, bound_per_cpu_s: float
) -> Figures:
    """The batch phases' rate against the crypto bound measured around each, in wall
    clock and in CPU time, with their latencies."""
    latencies = [latency for phase, _ in batches for latency in phase.latencies]
    cpu: Figures = {}
    batch_cpu = [phase.cpu_us_per_proof for phase, _ in batches]
    busy = [phase.busy(max(cores, processes)) for phase, _ in batches]
    if all(x is not None for x in batch_cpu + busy):
        crypto_cpu_us = 1e6 / bound_per_cpu_s
        batch_cpu_us = median([x for x in batch_cpu if x is not None])
        cpu = {
            "crypto_cpu_us_per_proof": round(crypto_cpu_us, 1),
            "grpc_batch_cpu_us_per_proof": round(batch_cpu_us, 1),
            "grpc_batch_cpu_ratio": round(crypto_cpu_us / batch_cpu_us, 3),
            "grpc_batch_workers_busy": round(median([x for x in busy if x is not None]), 3),
        }
    rate = median([phase.rate for phase, _ in batches])
    return {
        f"crypto_bound_{cores}_cores_per_s": round(median([around for _, around in batches]), 1),
        "grpc_batch_phases": len(batches),
        "grpc_batch_proofs": sum(phase.proofs for phase, _ in batches),
        "grpc_batch_per_s": round(rate, 1),
        "grpc_batch_ratio": round(median([phase.rate / around for phase, around in batches]), 3),
        "grpc_batch_p50_ms": round(median(latencies) / 1e3, 2),
        "grpc_batch_p99_ms": round(quantile(latencies, 0.99) / 1e3, 2),
        **cpu,
        "grpc_batch_client_cpu_share": round(
            median([phase.client_cpu_s / phase.wall_s / cores for phase, _ in batches]), 3
        ),
        "chips_hourly_served": int(rate * 3600),
    }


def _connections(db: str | None, processes: int) -> Figures:
    """The verifier's connections to its PostgreSQL server at the end of the load, beside
    what the pool rule allows its processes (pool size and one listener each)."""
    if db is None:
        return {}
    store = SqlStore.open(db, pool_size=1)
    try:
        held = store.connections() - 1  # not this one
    finally:
        store.close()
    return {"db_connections": held, "db_connections_pool_rule": connections_at_most(processes)}


def fleet_checks(fleet: Fleet, proofs: Sequence[bytes]) -> list[Check]:
    """The signature checks of one proof per chip, in the fleet's order."""
    landmark_keys = {
        s.verifying_key.key_id: s.verifying_key.der() for s in fleet.landmark_signers.values()
    }
    checks: list[Check] = []
    for chip, proof in zip(fleet.chips, proofs, strict=True):
        envelope = envelope_pb2.Envelope.FromString(proof)
        checks += signature_checks(envelope, chip.signer.verifying_key.der(), landmark_keys)
    return checks
