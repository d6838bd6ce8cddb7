"""Deployments: a landmark set, the licences it serves, and where new landmarks could go.

A deployment file is a demo scenario file (see ``geoattest/demo/scenario.toml``) with an
optional ``[plan]`` table; ``chips`` may be left out. Any scenario file is a deployment,
so the demo's landmarks and licences are the default everywhere::

    name = "Southeast Asia with 12 landmarks"
    landmarks_per_chip = 4
    quorum = 3
    [policy]                      # as in the scenario file
    ...
    [[landmarks]]                 # as in the scenario file
    ...
    [plan]
    regions = ["SG", "MY"]        # licensed regions to report on (default: all)
    budget = 3                    # new landmarks to place (default 3)
    candidate_radius_km = 600     # default candidates: towns this close to the region
    [[plan.candidates]]           # explicit candidate sites (default: the largest towns)
    name = "Johor Bahru"
    lat = 1.4655
    lon = 103.7578

Candidate lists may also come on their own (``--candidates FILE``) as TOML (``[[candidates]]``
tables) or JSON (a list of objects, or ``{"candidates": [...]}``), each with ``name``,
``lat``, ``lon`` and optionally ``id``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from geoattest.demo.scenario import (
    DemoScenario,
    LandmarkSite,
    default_scenario_path,
    scenario_from_mapping,
)
from geoattest.errors import ConfigError
from geoattest.files import read_json, read_toml
from geoattest.geo.policy import RegionPolicy
from geoattest.pki.names import check_identifier
from geoattest.verifier.pipeline import DEFAULT_LANDMARK_FAULTS

DEFAULT_BUDGET = 3
DEFAULT_CANDIDATE_RADIUS_KM = 600.0
MAX_CANDIDATES = 200
"""Most candidate sites a search accepts (each is tried at every greedy step)."""
_PLAN_KEYS = frozenset({"regions", "budget", "candidate_radius_km", "candidates"})
_CANDIDATE_KEYS = frozenset({"id", "name", "lat", "lon"})


@dataclass(frozen=True)
class Deployment:
    """What a report or a plan is about: landmarks, licences, and the planning inputs."""

    name: str
    policy: RegionPolicy
    landmarks: tuple[LandmarkSite, ...]
    landmarks_per_chip: int
    """An honest chip measures this many of its nearest landmarks."""
    quorum: int
    regions: tuple[str, ...]
    """Licensed regions to report on, in the order given."""
    budget: int
    candidate_radius_km: float
    candidates: tuple[LandmarkSite, ...] | None
    """Explicit candidate sites; None means "the largest towns near the region"."""
    landmark_faults: int
    """Lying landmark operators an ALLOWED must survive, as the verifier's policy sets
    them (its default, kept below the quorum and the landmarks per chip, unless a command
    says otherwise): coverage and plans judge at this level, so they show what the
    verifier will certify rather than what it would if every landmark were trusted."""
    source: str
    """Where the deployment came from, for the report."""
    scenario: DemoScenario
    """The same file read as a demo scenario (what fleet studies take)."""

    @classmethod
    def from_scenario(cls, scenario: DemoScenario, source: str) -> Deployment:
        """A demo scenario read as a deployment: every region, default planning inputs."""
        return cls(
            name=scenario.name,
            policy=scenario.policy,
            landmarks=scenario.landmarks,
            landmarks_per_chip=scenario.landmarks_per_chip,
            quorum=scenario.quorum,
            regions=tuple(scenario.policy.regions),
            budget=DEFAULT_BUDGET,
            candidate_radius_km=DEFAULT_CANDIDATE_RADIUS_KM,
            candidates=None,
            landmark_faults=min(DEFAULT_LANDMARK_FAULTS, fault_ceiling(scenario)),
            source=source,
            scenario=scenario,
        )

    def region(self, name: str | None) -> str:
        """``name`` checked against the policy; None gives the deployment's first region.

        Raises:
            ConfigError: the policy does not license that region.
        """
        if name is None:
            return self.regions[0]
        if name not in self.policy.regions:
            known = ", ".join(self.policy.regions)
            raise ConfigError(f"region {name!r} is not licensed by this deployment ({known})")
        return name


def example_deployment_path() -> Path:
    """The shipped example: Southeast Asia with 12 landmarks."""
    return Path(str(resources.files("geoattest.plan").joinpath("data/southeast-asia.toml")))


def default_deployment() -> Deployment:
    """The demo's landmarks and licences."""
    return load_deployment(default_scenario_path())


def load_deployment(path: Path) -> Deployment:
    """Read a deployment (or any demo scenario) file; every problem is a ConfigError.

    Raises:
        ConfigError: the file is missing, not TOML, or any key or value is wrong.
    """
    document = read_toml(path, "deployment")
    plan = document.pop("plan", {})
    if not isinstance(plan, dict):
        raise ConfigError(f"deployment {path}: [plan] must be a table")
    unknown = sorted(set(plan) - _PLAN_KEYS)
    if unknown:
        raise ConfigError(f"deployment {path}: [plan] has unknown key(s) {unknown}")
    document.setdefault("chips", [])
    scenario = scenario_from_mapping(document, path)
    if len(scenario.landmarks) < scenario.quorum:
        raise ConfigError(
            f"deployment {path}: {len(scenario.landmarks)} landmark(s) cannot meet the quorum "
            f"of {scenario.quorum}"
        )
    base = Deployment.from_scenario(scenario, str(path))
    regions = plan.get("regions", list(base.regions))
    if not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions):
        raise ConfigError(f"deployment {path}: plan.regions must be a list of region names")
    for name in regions:
        base.region(name)
    candidates = plan.get("candidates")
    return dataclasses.replace(
        base,
        regions=tuple(regions),
        budget=check_budget(plan.get("budget", DEFAULT_BUDGET)),
        candidate_radius_km=_number(
            "plan.candidate_radius_km",
            plan.get("candidate_radius_km", DEFAULT_CANDIDATE_RADIUS_KM),
            1.0,
            20_000.0,
        ),
        candidates=None if candidates is None else parse_candidates(candidates, "plan.candidates"),
    )


def fault_ceiling(scenario: DemoScenario) -> int:
    """The most landmark faults a deployment can tolerate: one below both its quorum and
    the landmarks each chip measures (past that no honest chip could be ALLOWED)."""
    return min(scenario.quorum, scenario.landmarks_per_chip) - 1


def with_landmark_faults(deployment: Deployment, value: int | None, where: str) -> Deployment:
    """The deployment judged at ``value`` faults instead of the default (None keeps it).

    Raises:
        ConfigError: ``value`` is not a whole number from 0 to :func:`fault_ceiling`
            (named by ``where``, the option it came from).
    """
    if value is None:
        return deployment
    ceiling = fault_ceiling(deployment.scenario)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ceiling:
        raise ConfigError(
            f"{where} must be a whole number in [0, {ceiling}] (below the quorum of "
            f"{deployment.quorum} and the {deployment.landmarks_per_chip} landmarks each chip "
            f"measures), got {value!r}"
        )
    return dataclasses.replace(deployment, landmark_faults=value)


def load_candidates(path: Path) -> tuple[LandmarkSite, ...]:
    """Candidate sites from a TOML (``[[candidates]]``) or JSON file.

    Raises:
        ConfigError: unreadable, not TOML/JSON, or an entry is not a valid site.
    """
    if path.suffix.lower() == ".json":
        data: Any = read_json(path, "candidates")
    else:
        data = read_toml(path, "candidates")
    if isinstance(data, dict):
        extra = sorted(set(data) - {"candidates"})
        if extra or "candidates" not in data:
            raise ConfigError(f"candidates {path}: expected only a 'candidates' list, got {extra}")
        data = data["candidates"]
    return parse_candidates(data, f"candidates {path}")


def parse_candidates(entries: Any, where: str) -> tuple[LandmarkSite, ...]:
    """Validate a list of ``{name, lat, lon[, id]}`` entries as landmark sites."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where} must be a non-empty list of sites")
    if len(entries) > MAX_CANDIDATES:
        raise ConfigError(f"{where}: {len(entries)} sites, at most {MAX_CANDIDATES} allowed")
    sites = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at} must be a table with name, lat, lon")
        unknown = sorted(set(entry) - _CANDIDATE_KEYS)
        missing = sorted({"name", "lat", "lon"} - set(entry))
        if unknown or missing:
            raise ConfigError(f"{at}: unknown key(s) {unknown}, missing key(s) {missing}")
        name = entry["name"]
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{at}.name must be a non-empty string")
        site_id = entry.get("id", f"new-{i + 1}")
        if not isinstance(site_id, str):
            raise ConfigError(f"{at}.id must be a string")
        check_identifier(site_id.strip(), f"{at}.id")
        lat = _number(f"{at}.lat", entry["lat"], -90.0, 90.0)
        lon = _number(f"{at}.lon", entry["lon"], -180.0, 180.0)
        sites.append(LandmarkSite(site_id.strip(), name.strip(), lat, lon))
    if len({s.landmark_id for s in sites}) != len(sites):
        raise ConfigError(f"{where}: candidate ids must be unique")
    return tuple(sites)


def check_budget(value: Any) -> int:
    """A budget of new landmarks: a whole number from 0 to :data:`MAX_CANDIDATES`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CANDIDATES:
        raise ConfigError(f"budget must be a whole number in [0, {MAX_CANDIDATES}], got {value!r}")
    return value


def unique_ids(existing: Sequence[LandmarkSite], new: Sequence[LandmarkSite]) -> None:
    """Candidate ids must not collide with the deployment's landmark ids.

    Raises:
        ConfigError: a candidate reuses a landmark id.
    """
    clash = sorted({s.landmark_id for s in existing} & {s.landmark_id for s in new})
    if clash:
        raise ConfigError(f"candidate id(s) {clash} are already landmarks of the deployment")


def _number(where: str, value: Any, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= high  # before isfinite: an int past a float's range fails here
        or not math.isfinite(value)
    ):
        huge = isinstance(value, int) and abs(value) > 10**20  # repr may exceed int's digits
        shown = "an integer far out of range" if huge else repr(value)
        raise ConfigError(f"{where} must be a number in [{low}, {high}], got {shown}")
    return float(value)
