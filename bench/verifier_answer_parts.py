"""What a served batch's answer costs per proof outside the appraisal and the commit: the
response's messages and the metrics' counters.

Run: ``python bench/verifier_answer_parts.py [--chips 200] [--rounds 7]`` (about 20 s).
Appraises one round of the bench fleet in batches of 50 in this process (SQLite), keeps its
answers, then times per proof, alternating, minimum over the rounds (CPU time):

1. the batch's response built from one message per result, each copied into the response
   (``SubmitProofBatchResponse(results=[...])``), against each result filled in place in
   the response (:func:`~geoattest.verifier.grpc_server.batch_response`), serialised both;
2. the proofs counter bumped once per answer against once per (verdict, reason) of the
   batch (a counter of this process; the workers' multiprocess mode also writes each bump
   to a file, about 1.5 µs more per bump).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as Metric
from verifier_batch_profile import BATCH, service_for

from geoattest.bench.fleet import Fleet
from geoattest.v1 import verifier_service_pb2
from geoattest.verifier.grpc_server import batch_response, result_pb
from geoattest.verifier.metrics import NO_REASON
from geoattest.verifier.service import ProofResult


def answers(chips: int) -> list[list[ProofResult]]:
    """One round of the bench fleet's answers, batch by batch."""
    fleet = Fleet(chips)
    with tempfile.TemporaryDirectory(prefix="geoattest-answer-") as tmp:
        service = service_for(fleet, Path(tmp))
        proofs = [fleet.proof(c) for c in fleet.chips]
        return [
            service.submit_batch(proofs[i : i + BATCH], time.time_ns())
            for i in range(0, len(proofs), BATCH)
        ]


def per_proof_us(
    run: Callable[[Sequence[ProofResult]], object], batches: list[list[ProofResult]]
) -> float:
    start = time.process_time()
    for batch in batches:
        run(batch)
    return (time.process_time() - start) / sum(map(len, batches)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    batches = answers(args.chips)
    proofs = Metric("bench_proofs", "", ["verdict", "reason"], registry=CollectorRegistry())

    def copied_in(batch: Sequence[ProofResult]) -> bytes:
        response = verifier_service_pb2.SubmitProofBatchResponse(
            results=[result_pb(r) for r in batch]
        )
        return response.SerializeToString()

    def per_answer(batch: Sequence[ProofResult]) -> None:
        for r in batch:
            reason = r.reason.value if r.reason else NO_REASON
            proofs.labels(verdict=r.verdict.value, reason=reason).inc()

    def per_label(batch: Sequence[ProofResult]) -> None:
        counted = Counter(
            (r.verdict.value, r.reason.value if r.reason else NO_REASON) for r in batch
        )
        for (verdict, reason), count in counted.items():
            proofs.labels(verdict=verdict, reason=reason).inc(count)

    assert all(copied_in(b) == batch_response(b) for b in batches)
    parts = {
        "response, a message per result copied in": copied_in,
        "response, each result filled in place": batch_response,
        "proofs counter, once per answer": per_answer,
        "proofs counter, once per (verdict, reason)": per_label,
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, run in parts.items():
            times[name].append(per_proof_us(run, batches))
    print(f"µs of CPU per proof, minimum of {args.rounds} rounds (all rounds):")
    for name, spent in times.items():
        shown = ", ".join(f"{t:.1f}" for t in spent)
        print(f"  {min(spent):6.1f}  {name}  ({shown})")


if __name__ == "__main__":
    main()
