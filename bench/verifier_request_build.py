"""CPU time the bench's client spends building one batch call's request: the proofs'
envelopes copied into a ``SubmitProofBatchRequest`` and serialised (``submit_batch``), against
the request framed around the envelopes' serialised bytes (``submit_batch_encoded``).

Run: ``python bench/verifier_request_build.py`` (a few seconds). 50 bench proofs, 300
requests a round, five alternating rounds; prints each way's µs per proof, minimum first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from geoattest.bench.fleet import Fleet
from geoattest.v1 import verifier_service_pb2
from geoattest.wire.client import batch_request_bytes

BATCH = 50
REQUESTS = 300
ROUNDS = 5


def main() -> None:
    fleet = Fleet(BATCH)
    envelopes = [fleet.proof(chip) for chip in fleet.chips]
    held = [envelope.SerializeToString() for envelope in envelopes]

    def from_envelopes() -> bytes:
        return verifier_service_pb2.SubmitProofBatchRequest(
            proofs=[verifier_service_pb2.SubmitProofRequest(proof=p) for p in envelopes]
        ).SerializeToString()

    def from_bytes() -> bytes:
        return batch_request_bytes(held)

    if from_envelopes() != from_bytes():
        raise SystemExit("the two requests differ")
    ways: dict[str, Callable[[], bytes]] = {
        "from envelopes": from_envelopes,
        "from bytes": from_bytes,
    }
    spent: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, build in ways.items():
            start = time.process_time()
            for _ in range(REQUESTS):
                build()
            spent[name].append((time.process_time() - start) / REQUESTS / BATCH * 1e6)
    for name, figures in spent.items():
        rounds = " ".join(f"{x:.2f}" for x in figures)
        print(f"{name:15s} min {min(figures):5.2f}  rounds {rounds} µs/proof")


if __name__ == "__main__":
    main()
