"""CPU time per part of the verifier's batch path, without a profiler, and the cache
experiment that led to appraising a batch in two passes.

Run: ``python bench/verifier_batch_parts.py [--chips 400]`` (about 40 s). Prints:

1. ``process_time`` counters around each part of ``VerifierService.submit_batch`` over the
   durable store (SQLite WAL, ``synchronous=FULL``), batches of 50, four sets of proofs;
   parts nest (the geography is inside the verdict pass), so read each line on its own.
2. The pipeline in memory per proof with the signature checks, the geography, or both
   replaced by no-ops: what each costs next to the other.
3. The pipeline in memory one proof at a time against two passes per batch.

Counters cost about a microsecond each, far below the parts they time; cProfile's
per-call cost (``verifier_batch_profile.py``) inflates Python-heavy parts instead.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from verifier_batch_profile import BATCH, service_for, submit_all

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import make_appraiser
from geoattest.crypto import VerifyingKey
from geoattest.geo import appraiser as appraiser_module
from geoattest.geo.appraiser import GeoAppraiser
from geoattest.geo.countries import Countries
from geoattest.verdict import RegionAppraisal, Verdict
from geoattest.verifier import history, pipeline
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.service import VerifierService
from geoattest.verifier.state import InMemoryState
from geoattest.verifier.store import SqlStore

PARTS: dict[str, tuple[Any, str]] = {
    "evidence pass (signature checks and rules)": (pipeline.ProofAppraiser, "_check"),
    "  signature checks": (VerifyingKey, "verify"),
    "verdict pass": (pipeline.ProofAppraiser, "_judge"),
    "  geography": (GeoAppraiser, "appraise"),
    "  geography, verdict alone (fault-domain re-appraisals)": (GeoAppraiser, "verdict"),
    "    feasible region drawn (several disks)": (appraiser_module, "outer_region"),
    "    a lone disk's ring (its record, nothing drawn)": (appraiser_module, "ring"),
    "    land pieces touched": (Countries, "touching_pieces"),
    "  travel check": (history, "travel_gap_km"),
    "EAR result signing": (ResultSigner, "sign"),
    "store commit": (SqlStore, "commit"),
    "the batch's one read": (SqlStore, "enrolled_for_keys"),
    "service, whole batch": (VerifierService, "submit_batch"),
}


@contextmanager
def counted(totals: dict[str, float]) -> Iterator[None]:
    """Wrap each part's function with a CPU-time counter; unwrap afterwards."""
    originals = []
    for name, (owner, attribute) in PARTS.items():
        original = getattr(owner, attribute)
        originals.append((owner, attribute, original))

        def timed(*args: Any, _f: Callable[..., Any] = original, _n: str = name, **kw: Any) -> Any:
            start = time.process_time()
            try:
                return _f(*args, **kw)
            finally:
                totals[_n] += time.process_time() - start

        setattr(owner, attribute, timed)
    try:
        yield
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)


def parts(fleet: Fleet) -> None:
    with tempfile.TemporaryDirectory(prefix="geoattest-parts-") as tmp:
        service_ = service_for(fleet, Path(tmp))
        rounds = [[fleet.proof(chip) for chip in fleet.chips] for _ in range(5)]
        submit_all(service_, rounds[0])
        totals: dict[str, float] = defaultdict(float)
        start = time.process_time()
        with counted(totals):
            for proofs in rounds[1:]:
                submit_all(service_, proofs)
        whole = time.process_time() - start
    count = len(fleet.chips) * (len(rounds) - 1)
    print(f"batch path: {whole / count * 1e6:.0f} µs of CPU per proof (batches of {BATCH})")
    for name in PARTS:
        print(f"  {totals[name] / count * 1e6:6.0f}  {name}")


class _NoGeography:
    def appraise(self, bounds: Any, region: str) -> RegionAppraisal:
        return RegionAppraisal(Verdict.ALLOWED)

    def verdict(self, bounds: Any, region: str) -> Verdict:
        return Verdict.ALLOWED


def cache_experiment(fleet: Fleet) -> None:
    appraiser = make_appraiser(fleet)
    geography = appraiser.region
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    proofs = [fleet.proof(chip) for chip in fleet.chips]
    now = time.time_ns()

    def per_proof() -> float:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for proof in proofs:
                appraiser.appraise(proof, state, now)
            best = min(best, (time.process_time() - start) / len(proofs) * 1e6)
        return best

    def two_passes() -> float:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for i in range(0, len(proofs), BATCH):
                appraiser.appraise_batch(proofs[i : i + BATCH], state, now)
            best = min(best, (time.process_time() - start) / len(proofs) * 1e6)
        return best

    full, batched = per_proof(), two_passes()
    verify = VerifyingKey.verify
    appraiser.region = _NoGeography()
    no_geography = per_proof()
    VerifyingKey.verify = lambda self, signature, message: True  # type: ignore[method-assign]
    neither = per_proof()
    appraiser.region = geography
    no_checks = per_proof()
    VerifyingKey.verify = verify  # type: ignore[method-assign]
    print("pipeline in memory, µs of CPU per proof (best of 5):")
    print(f"  {full:6.0f}  one proof at a time")
    print(f"  {batched:6.0f}  two passes per batch of {BATCH}")
    print(f"  {full - no_checks:6.0f}  signature checks, next to the geography")
    print(f"  {no_geography - neither:6.0f}  signature checks, without the geography")
    print(f"  {no_checks - neither:6.0f}  geography")
    print(f"  {neither:6.0f}  the rest")


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU time per part of the batch path")
    parser.add_argument("--chips", type=int, default=400)
    args = parser.parse_args()
    parts(Fleet(args.chips))
    cache_experiment(Fleet(args.chips))  # chains that start afresh


if __name__ == "__main__":
    main()
