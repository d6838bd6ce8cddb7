"""Landmark placement: which candidate sites add the most certifiable population.

A greedy search: at each of ``budget`` steps every remaining candidate is tried as an
extra landmark, and the one that raises the certifiable share of the region's population
(at median path stretch; its area share breaks ties, and is the objective for a region
with no towns) the most is kept. Greedy is not optimal, but coverage gains are close to
submodular (a new landmark helps the chips it becomes nearest to), and the table of picks
shows each one's marginal gain.

At ``landmark_faults = f`` a point needs f + 1 close landmarks of independent operators,
so one new site alone often certifies nothing more where two together would. Where no
candidate raises the share at f, the search takes the one that raises it most at f - 1
(then f - 2, ... 0): a site the next pick can pair with. Its gain at f is 0 in the table,
its partner's shows what the two buy together. Such a site left last, without a partner,
is dropped from the plan.

To stay fast the search judges a coarser grid (:data:`SEARCH_COARSENING` times the cell
size) and the region's largest towns (:data:`SEARCH_TOWNS`); the honest judge caches every
verdict by the landmarks a point measures, so a candidate costs only the points it becomes
one of the nearest landmarks of. The before and after figures are then computed on the
normal grid with every town, exactly as ``geoattest plan coverage`` does.

Default candidates are the largest towns within ``radius_km`` of the region's land (at
most :data:`DEFAULT_CANDIDATES`, two thirds of them from the region itself where it has
enough towns; at least :data:`SAME_SITE_KM` apart and from existing landmarks; none in an
embargoed country). At ``landmark_faults`` of 1 or more, each existing landmark within
``radius_km`` also gets a candidate beside it, :data:`BESIDE_KM` away, of another operator:
a chip there needs close landmarks of independent operators at distinct sites, and a
second operator in a city that has one landmark is often the cheapest such pair.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.geo.places import Places, populated_places
from geoattest.geo.policy import RegionPolicy
from geoattest.geo.sphere import wrap_lon
from geoattest.netsim.latency import LatencyModel, haversine_km
from geoattest.plan.coverage import (
    ALLOWED_CODE,
    Coverage,
    HonestJudge,
    RegionGrid,
    country_codes,
    evaluate,
    judge_over,
    land_and_inside,
    region_frame,
    region_grid,
    region_towns,
)
from geoattest.plan.deployment import Deployment

DEFAULT_CANDIDATES = 30
INSIDE_SHARE = 2 / 3
"""Share of the default candidates taken from the region's own towns, when it has them."""
SAME_SITE_KM = 25.0
"""Candidates closer than this to a landmark or a larger candidate are the same site."""
BESIDE_KM = 1.0
"""How far north of an existing landmark its second operator's candidate stands: another
building, well past the 100 m within which landmarks share one fault domain."""
SEARCH_COARSENING = 2.5
SEARCH_TOWNS = 400
SEARCH_QUANTILE = 0.5
"""The search optimises the shares at median path stretch."""

Step = Callable[[str, int, int], None]
"""Progress: called with (stage, done, total)."""


@dataclass(frozen=True)
class Pick:
    """One chosen site and what it added (on the search sample, at median stretch)."""

    site: LandmarkSite
    population_share: float | None
    area_share: float
    population_gain: float | None
    area_gain: float

    @property
    def raised_nothing(self) -> bool:
        """Picked for what it certifies at fewer faults than the plan's, a site a later
        pick can pair with; alone it adds nothing at the plan's level."""
        return not self.area_gain and not self.population_gain


@dataclass(frozen=True)
class LandmarkPlan:
    """The greedy plan for one region, with coverage before and after on the full grid."""

    region: str
    candidates: tuple[LandmarkSite, ...]
    picks: tuple[Pick, ...]
    before: Coverage
    after: Coverage
    search_resolution_deg: float
    search_seconds: float
    seconds: float
    stopped_early: bool
    """True when no remaining candidate added anything, before the budget was spent."""

    def to_json(self) -> dict[str, Any]:
        before, after = self.before.to_json(), self.after.to_json()
        keys = (
            "certifiable_area_share",
            "certifiable_population_share",
            "certifiable_area_share_p90",
            "certifiable_population_share_p90",
        )
        return {
            "region": self.region,
            "landmark_faults": self.before.landmark_faults,
            "budget_used": len(self.picks),
            "stopped_early": self.stopped_early,
            "picks": [
                {
                    "id": p.site.landmark_id,
                    "name": p.site.name,
                    "lat": p.site.latitude,
                    "lon": p.site.longitude,
                    "search_population_share": p.population_share,
                    "search_area_share": p.area_share,
                    "population_gain": p.population_gain,
                    "area_gain": p.area_gain,
                    "alone_adds_nothing": p.raised_nothing,
                }
                for p in self.picks
            ],
            "before": {k: before[k] for k in keys},
            "after": {k: after[k] for k in keys},
            "candidates": len(self.candidates),
            "search_resolution_deg": self.search_resolution_deg,
            "resolution_deg": self.before.grid.resolution_deg,
            "search_seconds": round(self.search_seconds, 2),
            "seconds": round(self.seconds, 2),
        }


def default_candidates(
    policy: RegionPolicy,
    region: str,
    landmarks: Sequence[LandmarkSite],
    *,
    radius_km: float,
    count: int = DEFAULT_CANDIDATES,
    places: Places | None = None,
    landmark_faults: int = 0,
) -> tuple[LandmarkSite, ...]:
    """The largest towns near the region, and at ``landmark_faults`` of 1 or more a second
    operator beside each landmark near it (see the module docstring).

    Raises:
        ConfigError: no town lies within ``radius_km`` of the region.
    """
    places = places or populated_places()
    west, south, east, north, centre = region_frame(policy, region)
    pad = radius_km / 111.0
    lon = wrap_lon(places.lon, centre)
    lon_pad = pad / max(0.1, float(np.cos(np.radians(min(max(abs(south), abs(north)), 85.0)))))
    near = (
        (places.lat >= south - pad)
        & (places.lat <= north + pad)
        & (lon >= west - lon_pad)
        & (lon <= east + lon_pad)
    )
    towns = places.select(near)
    reference = _region_sample(policy, region)
    distance = _distance_to(reference, towns.lat, towns.lon)
    embargo = sorted(policy.embargo)
    codes = country_codes(policy.countries, towns.lat, towns.lon)
    keep = (distance <= radius_km) & ~np.isin(codes, embargo) & ~np.isin(towns.country, embargo)
    towns = towns.select(keep)
    if not len(towns):
        raise ConfigError(f"no town of 15,000+ lies within {radius_km:g} km of {region}")
    _, inside = land_and_inside(policy, region, towns.lat, towns.lon)
    by_size = np.argsort(-towns.population, kind="stable")
    chosen: list[LandmarkSite] = []
    taken_lat = [s.latitude for s in landmarks]
    taken_lon = [s.longitude for s in landmarks]
    used_ids = {s.landmark_id for s in landmarks}
    # Towns in the region first (up to INSIDE_SHARE of the list), then the largest of all.
    for pool, limit in ((by_size[inside[by_size]], round(count * INSIDE_SHARE)), (by_size, count)):
        for i in pool:
            if len(chosen) >= limit:
                break
            lat, lon_i = float(towns.lat[i]), float(towns.lon[i])
            if float(haversine_km(lat, lon_i, taken_lat, taken_lon).min()) < SAME_SITE_KM:
                continue
            site_id = _slug(towns.names[i], used_ids)
            used_ids.add(site_id)
            chosen.append(
                LandmarkSite(site_id, f"{towns.names[i]} ({towns.country[i]})", lat, lon_i)
            )
            taken_lat.append(lat)
            taken_lon.append(lon_i)
    if landmark_faults:
        chosen += _beside(
            landmarks, _distance_to(reference, *_site_coordinates(landmarks)), radius_km, used_ids
        )
    return tuple(chosen)


def plan_landmarks(
    policy: RegionPolicy,
    region: str,
    landmarks: Sequence[LandmarkSite],
    candidates: Sequence[LandmarkSite],
    *,
    landmarks_per_chip: int,
    budget: int,
    resolution_deg: float | None = None,
    model: LatencyModel | None = None,
    progress: Step | None = None,
    landmark_faults: int = 0,
) -> LandmarkPlan:
    """Greedy placement of up to ``budget`` candidates (see the module docstring), each
    point judged as the verifier judges it at ``landmark_faults``.

    Raises:
        ConfigError: a bad budget, too few candidates, or a grid the region does not fit.
    """
    if budget < 0:
        raise ConfigError(f"budget must be >= 0, got {budget}")
    if budget > len(candidates):
        raise ConfigError(f"budget {budget} exceeds the {len(candidates)} candidate sites")
    started = time.perf_counter()
    model = model or LatencyModel.default()
    grid = region_grid(policy, region, resolution_deg)
    towns = region_towns(policy, region)
    search_res = min(grid.resolution_deg * SEARCH_COARSENING, 5.0)
    search_grid = region_grid(policy, region, search_res)
    if not search_grid.inside.any():
        search_grid = grid  # a small region: the coarse grid misses it, so search on the fine one
    search_towns = towns
    if len(towns) > SEARCH_TOWNS:
        top = np.zeros(len(towns), dtype=bool)
        top[np.argsort(-towns.population, kind="stable")[:SEARCH_TOWNS]] = True
        search_towns = towns.select(top)
    judges = [
        judge_over(
            policy,
            region,
            search_grid,
            search_towns,
            landmarks_per_chip=landmarks_per_chip,
            model=model,
            landmark_faults=level,
        )
        for level in range(landmark_faults, -1, -1)
    ]
    objective = _Objective(judges, search_grid, search_towns)
    picks, current, stopped_early = _greedy(objective, landmarks, candidates, budget, progress)
    search_seconds = time.perf_counter() - started
    final = judge_over(
        policy,
        region,
        grid,
        towns,
        landmarks_per_chip=landmarks_per_chip,
        model=model,
        landmark_faults=landmark_faults,
    )
    if progress is not None:
        progress("judging the full grid, before and after", 0, 2)
    before = evaluate(final, grid, towns, landmarks)
    if progress is not None:
        progress("judging the full grid, before and after", 1, 2)
    after = evaluate(final, grid, towns, current) if picks else before
    if progress is not None:
        progress("judging the full grid, before and after", 2, 2)
    return LandmarkPlan(
        region=region,
        candidates=tuple(candidates),
        picks=tuple(picks),
        before=before,
        after=after,
        search_resolution_deg=search_grid.resolution_deg,
        search_seconds=search_seconds,
        seconds=time.perf_counter() - started,
        stopped_early=stopped_early,
    )


def _greedy(
    objective: _Objective,
    landmarks: Sequence[LandmarkSite],
    candidates: Sequence[LandmarkSite],
    budget: int,
    progress: Step | None,
) -> tuple[list[Pick], list[LandmarkSite], bool]:
    """The greedy steps: the picks, the landmark set with them, and whether the search
    stopped before spending the budget."""
    current = list(landmarks)
    remaining = list(candidates)
    picks: list[Pick] = []
    best_score = objective(current)
    stopped_early = False
    total = sum(len(candidates) - i for i in range(budget))
    done = 0
    for _ in range(budget):
        scored = []
        for site in remaining:
            scored.append((objective([*current, site]), site))
            done += 1
            if progress is not None:
                progress("searching candidate sites", done, total)
        score, site = max(scored, key=lambda pair: pair[0].rank)
        if score.rank <= best_score.rank:
            stopped_early = True
            break
        picks.append(
            Pick(
                site=site,
                population_share=score.population_share,
                area_share=score.area_share,
                population_gain=None
                if score.population_share is None
                else score.population_share - (best_score.population_share or 0.0),
                area_gain=score.area_share - best_score.area_share,
            )
        )
        best_score = score
        current.append(site)
        remaining.remove(site)
    while picks and picks[-1].raised_nothing:
        # A site picked for a later partner that never came: it buys nothing alone.
        current.remove(picks.pop().site)
        stopped_early = True
    return picks, current, stopped_early


def plan_region(
    deployment: Deployment,
    region: str,
    *,
    budget: int,
    resolution_deg: float | None,
    progress: Step,
) -> LandmarkPlan:
    """The deployment's plan for one region: its own candidates, else the largest towns
    near the region, and at most as many picks as there are candidates."""
    candidates = deployment.candidates or default_candidates(
        deployment.policy,
        region,
        deployment.landmarks,
        radius_km=deployment.candidate_radius_km,
        landmark_faults=deployment.landmark_faults,
    )
    return plan_landmarks(
        deployment.policy,
        region,
        deployment.landmarks,
        candidates,
        landmarks_per_chip=deployment.landmarks_per_chip,
        budget=min(budget, len(candidates)),
        resolution_deg=resolution_deg,
        progress=lambda stage, done, total: progress(f"{region}: {stage}", done, total),
        landmark_faults=deployment.landmark_faults,
    )


class _Score(NamedTuple):
    """A landmark set's certifiable shares on the search sample: at each fault level from
    the plan's down to 0, population first when the region has towns (area breaks ties),
    area otherwise."""

    rank: tuple[tuple[float, float], ...]
    """What the search maximises: (objective, tie break) at f, f - 1, ... 0."""
    population_share: float | None
    """At the plan's fault level."""
    area_share: float
    """At the plan's fault level."""


class _Objective:
    """Certifiable shares on the search sample for a landmark set, at median stretch, by
    judges at the plan's fault level and each level below it."""

    def __init__(self, judges: Sequence[HonestJudge], grid: RegionGrid, towns: Places) -> None:
        self._judges = judges
        lat, lon = grid.points()
        inside = grid.inside.ravel()
        self._lat, self._lon = lat[inside], lon[inside]
        self._area = grid.area_weight().ravel()[inside]
        self._towns = towns

    def __call__(self, sites: Sequence[LandmarkSite]) -> _Score:
        shares = [self._shares(judge, sites) for judge in self._judges]
        rank = tuple(
            (area, 0.0) if population is None else (population, area) for population, area in shares
        )
        return _Score(rank, *shares[0])

    def _shares(
        self, judge: HonestJudge, sites: Sequence[LandmarkSite]
    ) -> tuple[float | None, float]:
        """The certifiable population share (None without towns) and area share."""
        cells = judge.verdicts(self._lat, self._lon, sites, SEARCH_QUANTILE)
        area = float(self._area[cells == ALLOWED_CODE].sum() / self._area.sum())
        if not len(self._towns):
            return None, area
        codes = judge.verdicts(self._towns.lat, self._towns.lon, sites, SEARCH_QUANTILE)
        weight = self._towns.population
        return float(weight[codes == ALLOWED_CODE].sum() / weight.sum()), area


def _region_sample(policy: RegionPolicy, region: str) -> tuple[np.ndarray, np.ndarray]:
    """Points on the region's land (a coarse grid and its towns), to measure nearness to."""
    west, south, east, north, _ = region_frame(policy, region)
    grid = region_grid(policy, region, max(0.01, max(east - west, north - south) / 60))
    lat, lon = grid.points()
    inside = grid.inside.ravel()
    towns = region_towns(policy, region)
    return np.concatenate([lat[inside], towns.lat]), np.concatenate([lon[inside], towns.lon])


def _distance_to(
    reference: tuple[np.ndarray, np.ndarray], lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Each point's distance (km) to the nearest of the region's ``reference`` points."""
    distance = np.full(len(lat), np.inf)
    for start in range(0, len(reference[0]), 256):
        rl, ro = reference[0][start : start + 256], reference[1][start : start + 256]
        d = haversine_km(lat[:, None], lon[:, None], rl[None, :], ro[None, :])
        distance = np.minimum(distance, d.min(axis=1))
    return distance


def _site_coordinates(sites: Sequence[LandmarkSite]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.asarray([s.latitude for s in sites], dtype=float),
        np.asarray([s.longitude for s in sites], dtype=float),
    )


def _beside(
    landmarks: Sequence[LandmarkSite], distance: np.ndarray, radius_km: float, used_ids: set[str]
) -> list[LandmarkSite]:
    """A candidate of another operator :data:`BESIDE_KM` north of each landmark within
    ``radius_km`` of the region."""
    beside = []
    for site, km in zip(landmarks, distance, strict=True):
        if km > radius_km:
            continue
        site_id = _slug(f"{site.landmark_id}-beside", used_ids)
        used_ids.add(site_id)
        beside.append(
            LandmarkSite(
                site_id,
                f"beside {site.name}, another operator",
                min(90.0, site.latitude + BESIDE_KM / 111.2),
                site.longitude,
            )
        )
    return beside


def _slug(name: str, used: set[str]) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40] or "site"
    slug, n = base, 2
    while slug in used:
        slug, n = f"{base}-{n}", n + 1
    return slug
