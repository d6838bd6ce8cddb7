"""``geoattest bench verifier``: proofs per second through the pure pipeline, through
gRPC one proof per call, and through the batch call with the durable store, each as a
ratio to the crypto-only bound (the same signature checks back to back, on as many cores)
measured in the same run.

The gRPC rows run ``geoattest verifier serve`` as one process per core over one SQLite
database (the store's compare-and-swap commits are safe for several writers); the client
spreads calls over them. Every figure is a median over interleaved repeats.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
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
    """The crypto-only bound on ``cores`` processes running at once (sum of their rates)."""
    if cores == 1:
        return crypto_rate(checks, per_proof)
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return sum(pool.starmap(crypto_rate, [(checks, per_proof)] * cores))


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


async def _drive(
    calls: Sequence[Callable[[], Awaitable[int]]], concurrency: int
) -> tuple[float, list[float], int]:
    """Run ``calls`` with ``concurrency`` in flight: proofs/s, call latencies (µs), proofs."""
    queue = list(reversed(calls))
    latencies: list[float] = []
    proofs = 0

    async def worker() -> None:
        nonlocal proofs
        while queue:
            call = queue.pop()
            t0 = time.perf_counter()
            done = await call()  # read ``proofs`` only after the await: workers interleave
            proofs += done
            latencies.append((time.perf_counter() - t0) * 1e6)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return proofs / (time.perf_counter() - start), latencies, proofs


def _accepted(results: Sequence[evidence_pb2.AttestationResult]) -> int:
    for result in results:
        if result.verdict == evidence_pb2.VERDICT_REJECTED:
            raise AssertionError(f"bench proof rejected: {result.reason} {result.detail}")
    return len(results)


async def _enrol(client: VerifierClient, chips: Sequence[Chip]) -> int:
    for chip in chips:
        await client.enroll(
            enrolment_request(chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID)
        )
    return len(chips)


async def _submit(
    proofs: dict[str, envelope_pb2.Envelope], client: VerifierClient, chips: Sequence[Chip]
) -> int:
    """One proof per call for a single chip; the batch call for several."""
    if len(chips) == 1:
        return _accepted([await client.submit(proofs[chips[0].device_id])])
    return _accepted(await client.submit_batch([proofs[c.device_id] for c in chips]))


async def grpc_run(
    fleet: Fleet, targets: Sequence[str], batch: int, concurrency: int, advance: Callable[[], None]
) -> dict[str, tuple[float, list[float]]]:
    """Enrol the fleet, then one proof per call, then batches: rate and latencies of each."""
    clients = [VerifierClient(t, timeout_s=120.0) for t in targets]

    def spread(
        size: int, send: Callable[[VerifierClient, Sequence[Chip]], Awaitable[int]]
    ) -> list[Callable[[], Awaitable[int]]]:
        """Calls of ``size`` chips each, round-robin over the verifier processes."""
        chips = fleet.chips
        return [
            functools.partial(send, clients[n % len(clients)], chips[i : i + size])
            for n, i in enumerate(range(0, len(chips), size))
        ]

    try:
        await _drive(spread(1, _enrol), concurrency)
        advance()
        out = {}
        for name, size in (("unary", 1), ("batch", batch)):
            proofs = {chip.device_id: fleet.proof(chip) for chip in fleet.chips}
            advance()
            rate, latencies, _ = await _drive(
                spread(size, functools.partial(_submit, proofs)), concurrency
            )
            out[name] = (rate, latencies)
            advance()
        return out
    finally:
        for client in clients:
            await client.close()


def run(
    chips: int = 400, batch: int = 50, concurrency: int = 8, cores: int | None = None
) -> Figures:
    cores = cores or os.cpu_count() or 1
    steps = 3 + 2 * REPEATS + 5
    with progress("verifier", steps) as (bar, task):

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
        bound_n = [crypto_bound(checks, per_proof, cores)]
        advance()
        with tempfile.TemporaryDirectory(prefix="geoattest-bench-") as tmp:
            root = Path(tmp)
            argv = fleet.write(root)
            parties = [
                Party(
                    f"verifier-{i}",
                    [sys.executable, "-m", "geoattest", *argv],
                    root / f"verifier-{i}.log",
                )
                for i in range(cores)
            ]
            try:
                targets = [
                    f"{host}:{port}" for host, port in (p.wait_for_address() for p in parties)
                ]
                advance()
                grpc = asyncio.run(grpc_run(fleet, targets, batch, concurrency, advance))
            finally:
                for party in parties:
                    party.stop()
        bound_n.append(crypto_bound(checks, per_proof, cores))
        advance()
    crypto_1, crypto_n = median(bound_1), median(bound_n)
    pipeline = median(piped)
    unary, unary_lat = grpc["unary"]
    batched, batch_lat = grpc["batch"]
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
        "grpc_batch_per_s": round(batched, 1),
        "grpc_batch_ratio": round(batched / crypto_n, 3),
        "grpc_batch_p50_ms": round(median(batch_lat) / 1e3, 2),
        "grpc_batch_p99_ms": round(quantile(batch_lat, 0.99) / 1e3, 2),
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
