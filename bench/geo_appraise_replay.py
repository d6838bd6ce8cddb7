"""CPU time per proof of the geography alone: ``GeoAppraiser.appraise`` (the record) and
``GeoAppraiser.verdict`` (the fault-domain re-appraisals) on the bounds the bench fleet's
proofs give, captured once and replayed.

Run: ``python bench/geo_appraise_replay.py [--chips 400] [--passes 5]`` (about 20 s), and the
same with ``PYTHONPATH`` naming another checkout's ``src`` for that code, alternating the
two. Prints the minimum and median over the passes of each call's CPU µs per proof; minima
are what other work on the machine inflates least.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import make_appraiser
from geoattest.verdict import LandmarkBound, RegionAppraiser
from geoattest.verifier.state import InMemoryState

Captured = list[tuple[Sequence[LandmarkBound], str]]


def captured_bounds(chips: int) -> tuple[RegionAppraiser, Captured]:
    """The appraiser of the bench fleet and what its ``appraise`` received for one proof
    of each chip through the whole pipeline."""
    fleet = Fleet(chips)
    pipeline = make_appraiser(fleet)
    geo = pipeline.region
    state = InMemoryState()
    for chip in fleet.chips:
        state.enrol(fleet.device_record(chip))
    seen: Captured = []
    appraise = geo.appraise

    def capture(bounds: Sequence[LandmarkBound], region: str) -> object:
        seen.append((list(bounds), region))
        return appraise(bounds, region)

    geo.appraise = capture  # type: ignore[method-assign]
    now = time.time_ns()
    for chip in fleet.chips:
        pipeline.appraise(fleet.proof(chip).SerializeToString(), state, now)
    del geo.appraise
    return geo, seen


def per_proof_us(call: Callable[[Sequence[LandmarkBound], str], object], seen: Captured) -> float:
    start = time.process_time()
    for bounds, region in seen:
        call(bounds, region)
    return (time.process_time() - start) / len(seen) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description="the geography's CPU time per proof")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    geo, seen = captured_bounds(args.chips)
    for name, call in (("appraise", geo.appraise), ("verdict", geo.verdict)):
        per_proof_us(call, seen)  # warm
        runs = [per_proof_us(call, seen) for _ in range(args.passes)]
        print(f"{name}: min {min(runs):.0f} median {statistics.median(runs):.0f} µs per proof")


if __name__ == "__main__":
    main()
