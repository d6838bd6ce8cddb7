"""A deployment's cost study: what it certifies, what it catches, what it costs.

Puts the parts together for ``geoattest plan cost`` and the brief:

1. coverage of every region with chips (:func:`geoattest.plan.coverage.measure`, at the
   fleet's ``landmark_faults``): the certifiable share of each region is its certifiable
   population share at median path stretch (area where it has no towns of 15,000), the
   same figure ``geoattest plan coverage`` prints;
2. the load: each region's chips sit at its towns by population, as the fleet study puts
   them, and measure their k nearest landmarks; bytes per proof come from the
   protocol's own messages for the deployment's k and exchanges;
3. detection (:mod:`geoattest.plan.detection`), unless switched off;
4. the price (:func:`geoattest.plan.cost.price`) and the published models beside it
   (:mod:`geoattest.plan.published`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoattest.bench.agent import wire_bytes
from geoattest.errors import ConfigError
from geoattest.netsim.latency import haversine_km
from geoattest.plan.cost import Cost, CostInputs, Load, price
from geoattest.plan.coverage import Coverage, measure
from geoattest.plan.deployment import Deployment
from geoattest.plan.detection import DESTINATIONS, DEVICES, Detection, study_detection
from geoattest.plan.published import Comparison, Measured, compare

Step = Callable[[str, int, int], None]


def certifiable_share(coverage: Coverage, stretch: str = "median") -> float:
    """The share of a region's honest chips that get ALLOWED: by population where the
    region has towns (chips sit near people), by area where it has none."""
    figures = coverage.stretches[stretch]
    return figures.population_share if figures.population_share is not None else figures.area_share


@dataclass(frozen=True)
class CostStudy:
    """Everything ``geoattest plan cost`` reports about one deployment."""

    deployment: Deployment
    inputs: CostInputs
    coverage: Mapping[str, Coverage]
    certifiable: Mapping[str, float]
    certifiable_p90: Mapping[str, float]
    load: Load
    cost: Cost
    detection: Detection | None
    comparison: Comparison

    @property
    def certifiable_share(self) -> float:
        """The share of the fleet's chips that are certifiable (median path stretch)."""
        return self.cost.certifiable_chips / self.cost.chips

    def to_json(self) -> dict[str, Any]:
        fleet = self.inputs.fleet
        d = self.deployment
        return {
            "deployment": d.name,
            "source": d.source,
            "landmarks": len(d.landmarks),
            "landmarks_per_chip": d.landmarks_per_chip,
            "chips": dict(fleet.chips),
            "cadence_s": fleet.cadence_s,
            "landmark_faults": fleet.landmark_faults,
            "ownership": fleet.ownership,
            "certifiable_share": self.certifiable_share,
            "certifiable_share_by_region": dict(self.certifiable),
            "certifiable_share_by_region_p90": dict(self.certifiable_p90),
            "bytes_per_proof": self.load.bytes_per_proof,
            "cost": self.cost.to_json(),
            "detection": None if self.detection is None else self.detection.to_json(),
            "published_models": self.comparison.to_json(),
            "inputs": [f.to_json() for f in self.inputs.all_inputs()],
        }


def study_cost(
    deployment: Deployment,
    inputs: CostInputs,
    *,
    resolution_deg: float | None = None,
    detection_devices: int = DEVICES,
    destinations: Sequence[str] = DESTINATIONS,
    progress: Step | None = None,
) -> CostStudy:
    """Coverage, load, detection and price of a deployment (see the module docstring).

    Raises:
        ConfigError: the fleet's landmark faults do not fit the deployment, or a study
            cannot run on it.
        StudyError: the detection study failed its own checks.
    """
    step = progress or (lambda _stage, _done, _total: None)
    fleet = inputs.fleet
    if fleet.landmark_faults >= deployment.quorum:
        raise ConfigError(
            f"landmark_faults {fleet.landmark_faults} must be below the deployment's quorum "
            f"({deployment.quorum})"
        )
    coverage = {}
    for region, chips in fleet.chips.items():
        if chips:
            coverage[region], _ = measure(
                deployment.policy,
                region,
                deployment.landmarks,
                landmarks_per_chip=deployment.landmarks_per_chip,
                resolution_deg=resolution_deg,
                landmark_faults=fleet.landmark_faults,
                progress=_stage(step, f"{region}: coverage"),
            )
    certifiable = {r: certifiable_share(c) for r, c in coverage.items()}
    certifiable_p90 = {r: certifiable_share(c, "p90") for r, c in coverage.items()}
    step("the protocol's bytes per proof", 0, 1)
    wire = wire_bytes(deployment.landmarks_per_chip, deployment.scenario.exchanges)
    load = Load(
        landmark_ids=tuple(s.landmark_id for s in deployment.landmarks),
        chips_per_landmark=chips_per_landmark(deployment, coverage, fleet.chips),
        landmarks_per_chip=deployment.landmarks_per_chip,
        bytes_per_proof=wire.udp_with_headers + wire.proof,
    )
    cost = price(inputs, load, certifiable)
    detection = (
        study_detection(
            deployment.scenario,
            fleet,
            destinations=destinations,
            devices=detection_devices,
            progress=step,
        )
        if detection_devices
        else None
    )
    measured = Measured(
        name=deployment.name,
        landmarks=len(deployment.landmarks),
        certifiable_share=cost.certifiable_chips / cost.chips,
        certifiable_share_p90=sum(n * certifiable_p90.get(r, 0.0) for r, n in fleet.chips.items())
        / cost.chips,
        diverted=0 if detection is None else detection.diverted,
        false_allowed=0 if detection is None else detection.false_allowed,
        outside_share=0.0 if detection is None else detection.outside,
        studied=detection is not None,
    )
    return CostStudy(
        deployment,
        inputs,
        coverage,
        certifiable,
        certifiable_p90,
        load,
        cost,
        detection,
        compare(inputs, load, certifiable, measured),
    )


def chips_per_landmark(
    deployment: Deployment, coverage: Mapping[str, Coverage], chips: Mapping[str, int]
) -> tuple[float, ...]:
    """How many chips measure each landmark: a region's chips sit at its towns by
    population (its land cells by area where it has no towns), and each measures its
    k nearest landmarks."""
    sites = deployment.landmarks
    site_lat = np.asarray([s.latitude for s in sites])
    site_lon = np.asarray([s.longitude for s in sites])
    k = min(deployment.landmarks_per_chip, len(sites))
    out = np.zeros(len(sites))
    for region, cov in coverage.items():
        lat, lon, weight = where_chips_sit(cov)
        d = haversine_km(lat[:, None], lon[:, None], site_lat[None, :], site_lon[None, :])
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        share = chips[region] * weight / weight.sum()
        np.add.at(out, nearest, np.repeat(share[:, None], k, axis=1))
    return tuple(float(x) for x in out)


def where_chips_sit(coverage: Coverage) -> tuple[Any, Any, Any]:
    """Where a region's chips sit, with weights: its towns by population, or its land
    cells by area where it has no towns (as the fleet study places chips)."""
    towns = coverage.towns
    if len(towns) and float(towns.population.sum()) > 0:
        return towns.lat, towns.lon, towns.population.astype(float)
    grid = coverage.grid
    lat, lon = grid.points()
    inside = grid.inside.ravel()
    return lat[inside], lon[inside], grid.area_weight().ravel()[inside]


def _stage(step: Step, stage: str) -> Callable[[int, int], None]:
    """A (done, total) progress callback reporting under one stage name."""
    return lambda done, total: step(stage, done, total)
