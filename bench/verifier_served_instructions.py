"""Instruction counts of the served batch path, whatever the load: ``verifier serve`` run
under callgrind, to set beside ``verifier_batch_instructions.py batch`` (the same proofs'
path in process).

Run::

    python bench/verifier_served_instructions.py served.out

(about a minute and a half; ``GEOATTEST_GEOMETRY_CACHE`` shortens the start). One
``verifier serve --workers 1`` under ``valgrind --tool=callgrind --separate-threads=yes``,
the fleet of ``verifier_batch_instructions.py`` (100 chips) enrolled over gRPC and two
sets of proofs submitted to warm up, each set as two batches of 50 on two connections at
once; then collection is switched on around one more set. Callgrind writes a file per
thread (``served.out-NN``; ``totals:`` in each, divide by 100 for a proof; the server's
log and callgrind's total in ``served.out.log``): the two
service threads, the event loop's, gRPC's. ``--separate-threads=no`` is the default of
``verifier_batch_instructions.py``; this run's threads added up compare with its total.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from verifier_batch_instructions import CHIPS, collect
from verifier_batch_profile import BATCH

from geoattest.bench.fleet import VERIFIER_ID, Fleet
from geoattest.bench.verifier import accepted
from geoattest.v1 import envelope_pb2
from geoattest.wire.client import VerifierClient, enrolment_request


def proof_set(fleet: Fleet) -> list[list[envelope_pb2.Envelope]]:
    """One proof per chip, in batches of :data:`BATCH`."""
    proofs = [fleet.proof(chip) for chip in fleet.chips]
    return [proofs[i : i + BATCH] for i in range(0, len(proofs), BATCH)]


async def submit(
    clients: Sequence[VerifierClient], batches: Sequence[Sequence[envelope_pb2.Envelope]]
) -> None:
    """One batch per client, all at once."""
    await asyncio.gather(*(send(c, b) for c, b in zip(clients, batches, strict=True)))


async def send(client: VerifierClient, batch: Sequence[envelope_pb2.Envelope]) -> int:
    return accepted(await client.submit_batch(batch))


async def drive(target: str, fleet: Fleet, pid: int) -> None:
    clients = [VerifierClient(target, timeout_s=600.0) for _ in range(CHIPS // BATCH)]
    try:
        for chip in fleet.chips:
            await clients[0].enroll(
                enrolment_request(
                    chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
                )
            )
        for _ in range(2):
            await submit(clients, proof_set(fleet))
        batches = proof_set(fleet)
        collect(True, pid)
        await submit(clients, batches)
        collect(False, pid)
    finally:
        for client in clients:
            await client.close()


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "served.out"
    fleet = Fleet(CHIPS)
    with tempfile.TemporaryDirectory(prefix="geoattest-served-instructions-") as tmp:
        argv = fleet.write(Path(tmp))
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}", sys.executable, "-m", "geoattest", *argv,
            "--workers", "1",
        ]  # fmt: skip
        with (
            Path(f"{out}.log").open("w") as log,  # the server's log and callgrind's totals
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True) as server,
        ):
            try:
                assert server.stdout is not None
                target = next(
                    line.split()[-1]
                    for line in server.stdout
                    if line.startswith("verifier listening on")
                )
                asyncio.run(drive(target, fleet, server.pid))
            finally:
                server.terminate()


if __name__ == "__main__":
    main()
