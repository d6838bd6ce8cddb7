"""Sensitivity: what each extra landmark, each step of cadence and each tolerated fault buys.

Three sweeps over a finished cost study (:class:`~geoattest.plan.cost_study.CostStudy`):

- **Landmarks.** Per region with chips, the greedy plan of ``geoattest plan landmarks``
  orders up to ``budget`` new sites; after each pick the region's certifiable share is
  judged again (the same judge as the coverage study, on a coarser grid and every town),
  at ``landmark_faults`` 0 and 1, and the whole deployment is priced with the new
  landmarks added to every region at once. The order is the one that is best at 0 faults.
- **Cadence**, from a proof a minute to one a day: how soon a diverted chip is caught or
  degraded, the bytes on the wire, the verifier replicas and landmark servers, the cost.
- **Faults.** At ``landmark_faults = 1`` an ALLOWED must survive losing any one bound, so
  a chip needs a second close landmark: the sweep says how many landmarks a region needs
  at 1 fault for the share it has at 0, and what a second landmark (of an independent
  operator) at each of the region's landmark sites would certify.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.plan.cost import CostInputs, price
from geoattest.plan.cost_study import CostStudy, certifiable_share, chips_per_landmark
from geoattest.plan.coverage import (
    evaluate,
    judge_over,
    land_and_inside,
    region_frame,
    region_grid,
    region_towns,
)
from geoattest.plan.deployment import Deployment
from geoattest.plan.detection import Timing
from geoattest.plan.placement import plan_region

CADENCES_S: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86_400.0)
"""From a proof a minute to one a day."""
BUDGET = 3
"""New landmarks tried per region."""
SWEEP_CELLS = 40
"""Grid cells along the longer side of a region in the landmark sweep (coarser than the
coverage maps: the shares here are judged after every pick, at two fault levels)."""
FAULT_LEVELS = (0, 1)
SECOND_BUILDING_DEG = 0.0045
"""A second operator's landmark stands in another building of the site, 500 m north: two
fault domains (sites within 100 m count as one)."""

Step = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RegionSweep:
    """One region's certifiable share as landmarks are added, at 0 and 1 faults."""

    region: str
    in_region: int
    """Landmarks the deployment already has on the region's land."""
    picks: tuple[LandmarkSite, ...]
    shares: Mapping[int, tuple[float, ...]]
    """By fault level: the share with 0, 1, ... of the picks added."""
    doubled: float | None
    """Share at 1 fault with a second landmark at each of the region's landmark sites
    (None: the region has no landmark of its own to double)."""

    def needed_at_one_fault(self) -> int | None:
        """The fewest landmarks on the region for which 1 fault certifies what 0 faults
        certify as deployed: the picks added one by one, or a second landmark at each of
        the region's sites, whichever is fewer; None when neither gets there (or nothing
        is certifiable to begin with)."""
        target = self.shares[0][0]
        if target <= 0 or 1 not in self.shares:
            return None
        counts = [self.in_region + n for n, s in enumerate(self.shares[1]) if s >= target - 1e-12]
        if self.doubled is not None and self.doubled >= target - 1e-12:
            counts.append(2 * self.in_region)
        return min(counts, default=None)

    def share_with(self, faults: int, added: int) -> float:
        shares = self.shares[faults]
        return shares[min(added, len(shares) - 1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "landmarks_in_region": self.in_region,
            "picks": [s.landmark_id for s in self.picks],
            "share_by_added": {str(f): list(s) for f, s in self.shares.items()},
            "share_one_fault_doubled": self.doubled,
            "landmarks_needed_one_fault": self.needed_at_one_fault(),
        }


@dataclass(frozen=True)
class LandmarkPoint:
    """The whole deployment with ``added`` new landmarks per region."""

    added: int
    faults: int
    landmarks: int
    certifiable_share: float
    total_per_year: float
    per_certifiable_chip_year: float | None


@dataclass(frozen=True)
class CadencePoint:
    cadence_s: float
    timing: Timing
    gb_per_year: float
    verifier_replicas: int
    landmark_servers: int
    total_per_year: float
    per_chip_year: float


@dataclass(frozen=True)
class Sensitivity:
    regions: tuple[RegionSweep, ...]
    landmarks: tuple[LandmarkPoint, ...]
    cadence: tuple[CadencePoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "regions": [r.to_json() for r in self.regions],
            "landmarks": [dataclasses.asdict(p) for p in self.landmarks],
            "cadence": [
                {
                    "cadence_s": p.cadence_s,
                    **p.timing.to_json(),
                    "gb_per_year": p.gb_per_year,
                    "verifier_replicas": p.verifier_replicas,
                    "landmark_servers": p.landmark_servers,
                    "total_per_year_usd": p.total_per_year,
                    "per_chip_year_usd": p.per_chip_year,
                }
                for p in self.cadence
            ],
        }


def sweep(
    study: CostStudy,
    *,
    budget: int = BUDGET,
    cadences: Sequence[float] = CADENCES_S,
    progress: Step | None = None,
) -> Sensitivity:
    """All three sweeps (see the module docstring).

    Raises:
        ConfigError: a budget out of range, or a region the planner cannot search.
    """
    if not 0 <= budget <= 20:
        raise ConfigError(f"sweep budget must be 0..20 new landmarks per region, got {budget}")
    step = progress or (lambda _stage, _done, _total: None)
    d = study.deployment
    faults = tuple(f for f in FAULT_LEVELS if f < min(d.quorum, d.landmarks_per_chip))
    regions = tuple(_region_sweep(d, region, budget, faults, step) for region in study.coverage)
    return Sensitivity(
        regions=regions,
        landmarks=tuple(
            _landmark_point(study, regions, added, f) for f in faults for added in range(budget + 1)
        ),
        cadence=tuple(_cadence_point(study, c) for c in cadences),
    )


def _region_sweep(
    deployment: Deployment, region: str, budget: int, faults: Sequence[int], step: Step
) -> RegionSweep:
    policy = deployment.policy
    west, south, east, north, _ = region_frame(policy, region)
    resolution = float(f"{max(east - west, north - south) / SWEEP_CELLS:.2g}")
    grid = region_grid(policy, region, resolution)
    towns = region_towns(policy, region)
    picks: tuple[LandmarkSite, ...] = ()
    if budget:
        plan = plan_region(
            deployment, region, budget=budget, resolution_deg=resolution, progress=step
        )
        picks = tuple(p.site for p in plan.picks)
    sites = list(deployment.landmarks)
    lat = np.asarray([s.latitude for s in sites])
    lon = np.asarray([s.longitude for s in sites])
    _, inside = land_and_inside(policy, region, lat, lon)
    own = [s for s, here in zip(sites, inside.tolist(), strict=True) if here]
    shares: dict[int, tuple[float, ...]] = {}
    doubled = None
    for f in faults:
        step(f"{region}: shares at {f} fault(s)", 0, len(picks) + 1)
        judge = judge_over(
            policy,
            region,
            grid,
            towns,
            landmarks_per_chip=deployment.landmarks_per_chip,
            landmark_faults=f,
        )
        shares[f] = tuple(
            certifiable_share(evaluate(judge, grid, towns, [*sites, *picks[:n]]))
            for n in range(len(picks) + 1)
        )
        if f == 1 and own:
            twins = [
                dataclasses.replace(
                    s,
                    landmark_id=f"{s.landmark_id}-2",
                    name=f"{s.name} (second operator)",
                    operator=f"{s.operator} (second operator)",
                    latitude=s.latitude + SECOND_BUILDING_DEG,
                )
                for s in own
            ]
            doubled = certifiable_share(evaluate(judge, grid, towns, [*sites, *twins]))
    return RegionSweep(region, len(own), picks, shares, doubled)


def _landmark_point(
    study: CostStudy, regions: Sequence[RegionSweep], added: int, faults: int
) -> LandmarkPoint:
    """The deployment with ``added`` picks per region (fewer where the plan stopped)."""
    # A site two regions both picked is one landmark.
    new = list({site.landmark_id: site for r in regions for site in r.picks[:added]}.values())
    deployment = dataclasses.replace(
        study.deployment, landmarks=(*study.deployment.landmarks, *new)
    )
    share = {r.region: r.share_with(faults, added) for r in regions}
    load = dataclasses.replace(
        study.load,
        landmark_ids=tuple(s.landmark_id for s in deployment.landmarks),
        chips_per_landmark=chips_per_landmark(deployment, study.coverage, study.inputs.fleet.chips),
    )
    inputs = study.inputs.replace_fleet("a landmark sweep", landmark_faults=faults)
    cost = price(inputs, load, share)
    return LandmarkPoint(
        added=added,
        faults=faults,
        landmarks=len(deployment.landmarks),
        certifiable_share=cost.certifiable_chips / cost.chips,
        total_per_year=cost.total / cost.years,
        per_certifiable_chip_year=cost.per_certifiable_chip_year,
    )


def _cadence_point(study: CostStudy, cadence_s: float) -> CadencePoint:
    inputs: CostInputs = study.inputs.replace_fleet("a cadence sweep", cadence_s=cadence_s)
    cost = price(inputs, study.load, study.certifiable)
    return CadencePoint(
        cadence_s=cadence_s,
        timing=Timing.of(inputs.fleet),
        gb_per_year=cost.gb_per_year,
        verifier_replicas=cost.verifier_replicas,
        landmark_servers=cost.landmark_servers,
        total_per_year=cost.total / cost.years,
        per_chip_year=cost.per_chip_year,
    )
