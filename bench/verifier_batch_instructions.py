"""Instruction counts of the verifier's batch path, whatever the load: run under callgrind.

Run::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=batch.%p \\
        python bench/verifier_batch_instructions.py batch
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=checks.%p \\
        python bench/verifier_batch_instructions.py checks

(about two minutes each; ``GEOATTEST_GEOMETRY_CACHE`` shortens the start). The service of
``verifier_batch_profile.py`` over SQLite, 100 chips, two sets of proofs to warm up; then
collection is switched on (``callgrind_control -i on``) around one more set in batches of
50 (``batch``), or around the same proofs' 2k + 1 signature checks back to back
(``checks``). Callgrind prints ``Collected``: divide by 100 for a proof.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verifier_batch_profile import BATCH, service_for

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import fleet_checks
from geoattest.crypto import VerifyingKey

CHIPS = 100


def collect(on: bool, pid: int | None = None) -> None:
    """Switch callgrind's collection in process ``pid`` (default: this one)."""
    switch = "on" if on else "off"
    subprocess.run(["callgrind_control", "-i", switch, str(pid or os.getpid())], check=True)


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "batch"
    fleet = Fleet(CHIPS)
    with tempfile.TemporaryDirectory(prefix="geoattest-instructions-") as tmp:
        service = service_for(fleet, Path(tmp))
        for _ in range(2):
            warm = [fleet.proof(chip) for chip in fleet.chips]
            for i in range(0, len(warm), BATCH):
                service.submit_batch(warm[i : i + BATCH], time.time_ns())
        gc.freeze()
        proofs = [fleet.proof(chip) for chip in fleet.chips]
        checks = fleet_checks(fleet, [p.SerializeToString() for p in proofs])
        keys = {der: VerifyingKey.from_der(der) for der, _, _ in checks}
        prepared = [(keys[der].verify, signature, message) for der, signature, message in checks]
        collect(True)
        if which == "batch":
            for i in range(0, len(proofs), BATCH):
                service.submit_batch(proofs[i : i + BATCH], time.time_ns())
        else:
            for verify, signature, message in prepared:
                verify(signature, message)
        collect(False)


if __name__ == "__main__":
    main()
