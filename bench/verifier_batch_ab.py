"""CPU time per proof of the verifier's batch path against the nine signature checks alone,
in one process: the figure to compare two versions of the code by.

Run: ``python bench/verifier_batch_ab.py [--chips 200] [--sets 8] [--wire]`` (about 30 s),
and the same script with ``PYTHONPATH`` naming another checkout's ``src`` for that code,
alternating the two. ``--wire`` submits each batch as ``SubmitProofBatch`` does, its request's
bytes through ``submit_batch_request`` and its response serialised (the served path's own
work, less the transport). ``VerifierService.submit_batch`` over the durable store (SQLite WAL,
``synchronous=FULL``), batches of 50, one set of proofs per chip at a time; after each set
the checks alone (every chip's 2k + 1 verifications back to back, in this process).
Prints the minimum and median CPU µs per proof of each and their ratio (checks / batch
path): minima are what other work on the machine inflates least.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

from verifier_batch_profile import BATCH, service_for, submit_all

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import crypto_rates, fleet_checks
from geoattest.v1 import envelope_pb2, verifier_service_pb2
from geoattest.verifier.grpc_server import batch_response
from geoattest.verifier.service import VerifierService


def submit_wire(service: VerifierService, proofs: list[envelope_pb2.Envelope]) -> float:
    """Seconds of CPU to submit ``proofs`` as ``SubmitProofBatch`` does, in batches of
    :data:`BATCH` (the requests' encoding is not counted: the client does it)."""
    requests = []
    for i in range(0, len(proofs), BATCH):
        request = verifier_service_pb2.SubmitProofBatchRequest()
        for proof in proofs[i : i + BATCH]:
            request.proofs.add().proof.CopyFrom(proof)
        requests.append(request.SerializeToString())
    start = time.process_time()
    for data in requests:
        batch_response(service.submit_batch_request(data, time.time_ns()))
    return time.process_time() - start


def measure(chips: int, sets: int, wire: bool = False) -> tuple[list[float], list[float]]:
    """CPU µs per proof of each set through the batch path, and of the checks after it."""
    fleet = Fleet(chips)
    path_us, checks_us = [], []
    with tempfile.TemporaryDirectory(prefix="geoattest-ab-") as tmp:
        service = service_for(fleet, Path(tmp))
        warm = [fleet.proof(chip) for chip in fleet.chips]
        submit_all(service, warm)
        gc.freeze()  # as ``verifier serve`` does once its inputs are loaded
        checks = fleet_checks(fleet, [p.SerializeToString() for p in warm])
        per_proof = len(checks) // len(warm)
        for _ in range(sets):
            proofs = [fleet.proof(chip) for chip in fleet.chips]
            if wire:
                spent = submit_wire(service, proofs)
            else:
                start = time.process_time()
                submit_all(service, proofs)
                spent = time.process_time() - start
            path_us.append(spent / len(proofs) * 1e6)
            checks_us.append(1e6 / crypto_rates(checks, per_proof, 0.3)[1])
    return path_us, checks_us


def main() -> None:
    parser = argparse.ArgumentParser(description="batch path against the checks, CPU time")
    parser.add_argument("--chips", type=int, default=200)
    parser.add_argument("--sets", type=int, default=8)
    parser.add_argument("--wire", action="store_true", help="submit as SubmitProofBatch does")
    args = parser.parse_args()
    path_us, checks_us = measure(args.chips, args.sets, args.wire)
    for name, us in (("batch path", path_us), ("9 checks", checks_us)):
        print(f"{name:10s}  min {min(us):6.0f}  median {statistics.median(us):6.0f} µs/proof")
    ratio_median = statistics.median(checks_us) / statistics.median(path_us)
    print(f"ratio       min {min(checks_us) / min(path_us):.3f}  median {ratio_median:.3f}")


if __name__ == "__main__":
    main()
