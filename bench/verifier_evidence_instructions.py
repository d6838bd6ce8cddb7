"""Instructions of the verifier's evidence pass alone, signature checks left out: run under
callgrind.

Run::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=evidence.%p \\
        python bench/verifier_evidence_instructions.py

(about two minutes; ``GEOATTEST_GEOMETRY_CACHE`` shortens the start). The bench fleet's
pipeline over 50 chips in memory, ``VerifyingKey.verify`` replaced by a check that passes,
three passes over one proof per chip to warm up; then collection is switched on
(``callgrind_control -i on``) around two more passes of the evidence checks
(``ProofAppraiser._check``: envelopes, decoding, chain, receipt and transcript rules,
freshness, quorum). Callgrind prints ``Collected``: divide by 100 for a proof. What the
nine signature checks cost is ``verifier_batch_instructions.py checks``.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import make_appraiser
from geoattest.crypto import VerifyingKey
from geoattest.verifier import pipeline
from geoattest.verifier.state import InMemoryState

CHIPS = 50


def collect(on: bool) -> None:
    switch = "on" if on else "off"
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True)


def main() -> None:
    fleet = Fleet(CHIPS)
    appraiser = make_appraiser(fleet)
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    proofs = [fleet.proof(chip) for chip in fleet.chips]
    now = time.time_ns()
    VerifyingKey.verify = lambda self, signature, message: True  # type: ignore[method-assign]

    def evidence_pass() -> None:
        pending = pipeline._PendingChains(state)
        for proof in proofs:
            if not isinstance(appraiser._check(proof, pending, now), pipeline._Evidence):
                raise AssertionError("a bench proof failed its evidence checks")

    for _ in range(3):
        evidence_pass()
    gc.freeze()
    collect(True)
    for _ in range(2):
        evidence_pass()
    collect(False)


if __name__ == "__main__":
    main()
