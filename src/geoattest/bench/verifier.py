"""``geoattest bench verifier``: proofs per second through the pure pipeline, through
gRPC one proof per call, and through the batch call with the durable store, each as a
ratio to the crypto-only bound (the same signature checks back to back, on as many cores)
measured in the same run.

The gRPC rows run ``geoattest verifier serve --workers N``, one worker process per core
over one SQLite database (``synchronous=FULL``; the store's compare-and-swap commits are
safe for several writers), with N the number of processes of the crypto bound it is
compared with. Everything runs on the same N CPUs (pinned where the machine has more),
the client included: one connection per call in flight (the kernel spreads connections
over the workers); the client's CPU share is reported, and counts against the verifier.
Every figure is a median over interleaved repeats.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Chip, Fleet
from geoattest.bench.report import Figures, median, progress, quantile
from geoattest.crypto import VerifyingKey
from geoattest.demo.run import Party
from geoattest.pki import RevocationList
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.wire.envelope import pae
from verifier.client import VerifierClient, enrolment_request
from verifier.pipeline import PipelineConfig, ProofAppraiser
from verifier.state import InMemoryState

Check = tuple[bytes, bytes, bytes]
"""A signature check: verifying key (DER), signature, signed bytes."""
REPEATS = 3
BATCH_ROUNDS = 4
"""Successive proofs per chip in the batch phase, so that it runs for seconds."""


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


def crypto_rate(checks: Sequence[Check], per_proof: int, min_s: float = 0.3) -> float:
    """Proofs per second that back-to-back signature checks alone allow on one core."""
    keys = {der: VerifyingKey.from_der(der) for der, _, _ in checks}
    prepared = [(keys[der].verify, sig, msg) for der, sig, msg in checks]
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_s or done == 0:
        for verify, sig, msg in prepared:
            if not verify(sig, msg):
                raise AssertionError("a bench signature does not verify")
        done += len(prepared)
    return done / per_proof / elapsed


def crypto_bound(checks: Sequence[Check], per_proof: int, cores: int) -> float:
    """The crypto-only bound on ``cores`` processes running at once (sum of their rates,
    each over a second: long enough to see the load the calls around it saw)."""
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return sum(pool.starmap(crypto_rate, [(checks, per_proof, 1.0)] * cores))


def make_appraiser(fleet: Fleet) -> ProofAppraiser:
    """The verifier's pipeline with the scenario's real policy (geography loads once, ~2 s);
    the quorum is the scenario's, or k where k is smaller."""
    return ProofAppraiser(
        PipelineConfig(quorum=min(fleet.scenario.quorum, fleet.k)),
        fleet.landmark_records(),
        RevocationList(),
        fleet.scenario.policy.appraiser(),
    )


def pipeline_run(
    appraiser: ProofAppraiser, fleet: Fleet, proofs: Sequence[bytes]
) -> tuple[float, list[float]]:
    """Proofs per second and per-proof latencies (µs) through the pipeline, no store."""
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    now = time.time_ns()
    latencies = []
    start = time.perf_counter()
    for proof in proofs:
        t0 = time.perf_counter()
        appraisal = appraiser.appraise(proof, state, now)
        latencies.append((time.perf_counter() - t0) * 1e6)
        if appraisal.reason is not None:
            raise AssertionError(f"bench proof rejected: {appraisal.reason} {appraisal.detail}")
    return len(proofs) / (time.perf_counter() - start), latencies


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


def _accepted(results: Sequence[evidence_pb2.AttestationResult]) -> int:
    for result in results:
        if result.verdict == evidence_pb2.VERDICT_REJECTED:
            raise AssertionError(f"bench proof rejected: {result.reason} {result.detail}")
    return len(results)


async def _enrol(chip: Chip, client: VerifierClient) -> int:
    await client.enroll(
        enrolment_request(chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID)
    )
    return 1


async def _submit(proofs: Sequence[envelope_pb2.Envelope], client: VerifierClient) -> int:
    """One proof per call for a single proof; the batch call for several."""
    if len(proofs) == 1:
        return _accepted([await client.submit(proofs[0])])
    return _accepted(await client.submit_batch(proofs))


async def grpc_run(
    fleet: Fleet,
    target: str,
    batch: int,
    concurrency: int,
    *,
    advance: Callable[[], None],
    bound: Callable[[], float],
) -> tuple[dict[str, tuple[float, list[float], float]], list[float]]:
    """Enrol the fleet, then one proof per call, then ``BATCH_ROUNDS`` successive proofs
    per chip in batches of ``batch`` chips: rate, latencies and the client's CPU seconds
    per wall second of each; and ``bound()`` measured just before each and after the last
    (the machine's load drifts; the bound must see what the calls saw)."""
    clients = [VerifierClient(target, timeout_s=120.0) for _ in range(concurrency)]
    chips = fleet.chips
    try:
        await _drive([[functools.partial(_enrol, chip)] for chip in chips], clients)
        advance()
        out, bounds = {}, []
        for name, size, rounds in (("unary", 1, 1), ("batch", batch, BATCH_ROUNDS)):
            proofs = [[fleet.proof(chip) for chip in chips] for _ in range(rounds)]
            advance()
            chains = [
                [functools.partial(_submit, round_[i : i + size]) for round_ in proofs]
                for i in range(0, len(chips), size)
            ]
            bounds.append(bound())
            advance()
            cpu, wall = time.process_time(), time.perf_counter()
            rate, latencies, _ = await _drive(chains, clients)
            cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
            out[name] = (rate, latencies, cpu_share)
            advance()
        bounds.append(bound())
        advance()
        return out, bounds
    finally:
        for client in clients:
            await client.close()


@contextmanager
def _on_cores(cores: int) -> Iterator[None]:
    """Run this process and what it starts on ``cores`` of the CPUs it may use (all of
    them when there are no more), so that every row gets the same cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if cores >= len(allowed):
        yield
        return
    os.sched_setaffinity(0, allowed[:cores])
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def run(
    chips: int = 400, batch: int = 50, concurrency: int = 8, cores: int | None = None
) -> Figures:
    cores = cores or len(os.sched_getaffinity(0))
    steps = 3 + 2 * REPEATS + 9
    with _on_cores(cores), progress("verifier", steps) as (bar, task):

        def advance() -> None:
            bar.advance(task)

        fleet = Fleet(chips)
        appraiser = make_appraiser(fleet)
        advance()
        proofs = [fleet.proof(c, advance=False).SerializeToString() for c in fleet.chips]
        checks = fleet_checks(fleet, proofs)
        per_proof = len(checks) // len(proofs)
        advance()
        bound_1, piped, latencies = [], [], []
        for _ in range(REPEATS):  # interleaved, so both see the same load
            bound_1.append(crypto_rate(checks, per_proof))
            advance()
            rate, lat = pipeline_run(appraiser, fleet, proofs)
            piped.append(rate)
            latencies += lat
            advance()
        with tempfile.TemporaryDirectory(prefix="geoattest-bench-") as tmp:
            root = Path(tmp)
            argv = [*fleet.write(root), "--workers", str(cores)]
            party = Party("verifier", [sys.executable, "-m", "geoattest", *argv], root / "log")
            try:
                host, port = party.wait_for_address()
                advance()
                bound = functools.partial(crypto_bound, checks, per_proof, cores)
                grpc, bound_n = asyncio.run(
                    grpc_run(
                        fleet, f"{host}:{port}", batch, concurrency, advance=advance, bound=bound
                    )
                )
            finally:
                party.stop()
    crypto_1, crypto_n = median(bound_1), median(bound_n)
    pipeline = median(piped)
    unary, unary_lat, _ = grpc["unary"]
    batched, batch_lat, client_cpu = grpc["batch"]
    return {
        "cores": cores,
        "k": fleet.k,
        "signature_checks_per_proof": per_proof,
        "proofs_per_phase": len(proofs),
        "crypto_bound_per_s": round(crypto_1, 1),
        "pipeline_per_s": round(pipeline, 1),
        "pipeline_ratio": round(pipeline / crypto_1, 3),
        "pipeline_p50_us": round(median(latencies), 1),
        "pipeline_p99_us": round(quantile(latencies, 0.99), 1),
        f"crypto_bound_{cores}_cores_per_s": round(crypto_n, 1),
        "grpc_unary_per_s": round(unary, 1),
        "grpc_unary_ratio": round(unary / crypto_n, 3),
        "grpc_unary_p50_ms": round(median(unary_lat) / 1e3, 2),
        "grpc_unary_p99_ms": round(quantile(unary_lat, 0.99) / 1e3, 2),
        "grpc_batch_size": batch,
        "grpc_batch_proofs": len(proofs) * BATCH_ROUNDS,
        "grpc_batch_per_s": round(batched, 1),
        "grpc_batch_ratio": round(batched / crypto_n, 3),
        "grpc_batch_p50_ms": round(median(batch_lat) / 1e3, 2),
        "grpc_batch_p99_ms": round(quantile(batch_lat, 0.99) / 1e3, 2),
        "grpc_batch_client_cpu_share": round(client_cpu / cores, 3),
        "chips_hourly_served": int(batched * 3600),
    }


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
