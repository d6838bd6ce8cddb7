"""Instructions of the verifier's appraisal, signature checks left out: run under callgrind.

Run::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=evidence.%p \\
        python bench/verifier_evidence_instructions.py [evidence|judge]

(about two minutes; ``GEOATTEST_GEOMETRY_CACHE`` shortens the start). The bench fleet's
pipeline over 50 chips in memory, ``VerifyingKey.verify`` replaced by a check that passes,
one proof per chip appraised and its chain advanced (so that the next proofs meet chain
heads and history fixes, as in service); then three passes over the next proof of each
chip to warm up, and collection switched on (``callgrind_control -i on``) around two more
passes of either the evidence checks (``evidence``, the default:
``ProofAppraiser._check``: envelopes, decoding, chain, receipt and transcript rules,
freshness, quorum) or the verdicts of the checked proofs (``judge``:
``ProofAppraiser._judge``: the geography, the fault-domain re-appraisals, the travel
check and the history fix). Callgrind prints ``Collected``: divide by 100 for a proof.
What the nine signature checks cost is ``verifier_batch_instructions.py checks``.
"""

from __future__ import annotations

import gc
import sys
import time

from verifier_batch_instructions import collect

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import make_appraiser
from geoattest.crypto import VerifyingKey
from geoattest.verdict import LandmarkBound
from geoattest.verifier import pipeline
from geoattest.verifier.state import InMemoryState

CHIPS = 50


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "evidence"
    fleet = Fleet(CHIPS)
    appraiser = make_appraiser(fleet)
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    VerifyingKey.verify = lambda self, signature, message: True  # type: ignore[method-assign]
    first = [fleet.proof(chip) for chip in fleet.chips]
    for appraisal in appraiser.appraise_batch(first, state, time.time_ns()):
        if appraisal.new_head is None:
            raise AssertionError(f"a bench proof was rejected: {appraisal.reason}")
        state.advance(appraisal.device_id, appraisal.new_head)
    proofs = [fleet.proof(chip) for chip in fleet.chips]
    now = time.time_ns()

    def evidence_pass() -> list[pipeline._Evidence]:
        pending = pipeline._PendingChains(state)
        checked = [appraiser._check(proof, pending, now) for proof in proofs]
        if not all(isinstance(item, pipeline._Evidence) for item in checked):
            raise AssertionError("a bench proof failed its evidence checks")
        return checked  # type: ignore[return-value]

    evidence = evidence_pass()

    def judge_pass() -> None:
        fixes: dict[str, tuple[tuple[LandmarkBound, ...], int]] = {}
        for item in evidence:
            appraiser._judge(item, fixes, now)

    measured = judge_pass if which == "judge" else evidence_pass
    for _ in range(3):
        measured()
    gc.freeze()
    collect(True)
    for _ in range(2):
        measured()
    collect(False)


if __name__ == "__main__":
    main()
