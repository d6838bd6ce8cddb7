"""Fleet study throughput: chips per second of ``run_fleet`` against the real appraiser's
proofs per second on a smaller study's proofs (all of them), measured in the same run.

Run ``python bench/test_bench_fleet.py`` for the ratio table (about a minute), and
``pytest bench/test_bench_fleet.py --benchmark-only`` for the pytest-benchmark figures.
The one-million-chip figure comes from ``geoattest sim fleet --devices 1000000 --json``
(BENCHMARKS.md, "Fleet simulation").
"""

from __future__ import annotations

import functools
import platform
import time

import pytest

from geoattest.demo.scenario import DemoScenario, default_scenario_path, load_scenario
from geoattest.sim.fleet import FleetConfig, FleetResult, run_fleet
from geoattest.sim.shortcut import FleetVerdicts
from geoattest.verdict import LandmarkBound

CHIPS = 50_000


@functools.cache
def scenario() -> DemoScenario:
    return load_scenario(default_scenario_path())


@functools.cache
def verdicts() -> FleetVerdicts:
    s = scenario()
    regions = tuple(sorted(s.policy.regions))
    return FleetVerdicts(s.policy.appraiser(), s.landmarks, regions)


def study(chips: int, seed: int = 7, sample: int = 100) -> FleetResult:
    return run_fleet(
        scenario(),
        FleetConfig(devices=chips, sample=sample, seed=seed, workers=1),
        verdicts=verdicts(),
    )


@functools.cache
def sampled_proofs() -> list[tuple[tuple[LandmarkBound, ...], str]]:
    """Every proof of a 2,000-chip study (the sample keeps up to 2,000 per rule, so all
    of them): the baseline's proofs are as hard as the study's, on average."""
    return [(chip.bounds, chip.region) for chip in study(2_000, seed=1, sample=10_000).sampled]


@pytest.mark.benchmark(group="fleet")
def test_fleet_study_50k_chips(benchmark) -> None:
    result = benchmark.pedantic(study, args=(CHIPS,), rounds=3, iterations=1)
    assert result.false_allowed == 0


@pytest.mark.benchmark(group="fleet")
def test_real_appraiser_per_proof(benchmark) -> None:
    proofs = sampled_proofs()
    fleet = verdicts()

    def appraise_all() -> None:
        for bounds, region in proofs:
            fleet.exact(bounds, region)

    benchmark.pedantic(appraise_all, rounds=3, iterations=1)


def main() -> None:
    verdicts()  # loading shapes and tables is not part of either figure
    proofs = sampled_proofs()
    rows = []
    for _ in range(3):
        started = time.perf_counter()
        study(CHIPS)
        fleet_s = (time.perf_counter() - started) / CHIPS
        started = time.perf_counter()
        for bounds, region in proofs:
            verdicts().exact(bounds, region)
        appraiser_s = (time.perf_counter() - started) / len(proofs)
        rows.append((1 / fleet_s, 1 / appraiser_s))
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, one process")
    print("| run | fleet chips/s | real appraiser proofs/s | ratio |")
    print("|---|---|---|---|")
    for i, (fleet, appraiser) in enumerate(rows, 1):
        print(f"| {i} | {fleet:,.0f} | {appraiser:,.0f} | **{fleet / appraiser:.0f}** |")


if __name__ == "__main__":
    main()
