"""Coverage: where in a licensed region an honest chip would be ALLOWED, and how much of it.

The region's bounding box, plus a margin, is cut into a longitude/latitude grid. Every
cell centre on land is an honest chip: it measures its ``k`` nearest landmarks (as an
honest agent does), each over a path whose stretch is a fixed quantile of the latency
model (median or p90; no jitter, so the figures are for a typical or a slow path, not
for the luck of one round), and the verifier's own :class:`~geoattest.geo.GeoAppraiser`
decides the verdict from those RTTs. Nothing here decides by itself: a point counts as
certifiable only when the real appraiser returned ALLOWED for that point's bounds.

Two shares summarise a region:

- ``area``: cells whose centre lies on the region's land, each weighted by its area
  (proportional to cos(latitude)); the certifiable share is the weight of ALLOWED cells.
  It is a sample: a cell is judged at its centre, so the share carries the grid's
  resolution as its error (see ``docs/PLANNING.md``).
- ``population``: GeoNames towns of 15,000 or more inhabitants whose location lies in the
  region (by the policy's own country shapes), each judged at its own coordinates and
  weighted by its population.

Example::

    judge = HonestJudge(policy, "SG", landmarks_per_chip=4)
    coverage = evaluate(judge, region_grid(policy, "SG"), region_towns(policy, "SG"), sites)
    coverage.stretches["median"].area_share
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.geo.countries import NO_CODE, Countries
from geoattest.geo.places import Places, populated_places
from geoattest.geo.policy import RegionPolicy
from geoattest.geo.sphere import wrap_lon
from geoattest.netsim.latency import LatencyModel, PathClass, haversine_km
from geoattest.verdict import KM_PER_NS_OF_RTT, LandmarkBound, Verdict
from geoattest.verifier.pipeline import fault_domains, survive_faults

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
CodeArray = npt.NDArray[np.int8]
Progress = Callable[[int], None]
"""Called with how many more points have been judged."""

STRETCHES: Mapping[str, float] = {"median": 0.5, "p90": 0.9}
"""Path-stretch quantiles the figures are given at, by name."""
VERDICTS: tuple[Verdict, ...] = (
    Verdict.ALLOWED,
    Verdict.INCONCLUSIVE,
    Verdict.OUTSIDE,
    Verdict.INCONSISTENT,
    Verdict.REJECTED,
)
"""Verdict codes in arrays: ``VERDICTS[code - 1]``; code 0 means "not judged" (sea)."""
NOT_JUDGED = 0
ALLOWED_CODE = VERDICTS.index(Verdict.ALLOWED) + 1
CELLS_ACROSS = 120
"""Default resolution: this many cells along the longer side of the view."""
MAX_CELLS = 250_000
"""Largest grid a run accepts (a typo in --resolution should not run for hours)."""
CHUNK = 512
"""Points judged per vectorised step."""
MIN_RESOLUTION_DEG = 0.001
MAX_RESOLUTION_DEG = 5.0


def code_of(verdict: Verdict) -> int:
    """The array code of a verdict (see :data:`VERDICTS`)."""
    return VERDICTS.index(verdict) + 1


@dataclass(frozen=True)
class RegionGrid:
    """Cell centres over a region's bounding box plus a margin.

    Longitudes are unwrapped around ``centre_lon`` (they may leave [-180, 180]) so a
    region across the antimeridian is one grid; :attr:`points` folds them back.
    """

    region: str
    lat: FloatArray
    """Cell-centre latitudes, south to north (ny)."""
    lon: FloatArray
    """Cell-centre longitudes, west to east, unwrapped (nx)."""
    resolution_deg: float
    centre_lon: float
    land: BoolArray
    """(ny, nx): the centre is on some country's land."""
    inside: BoolArray
    """(ny, nx): the centre is on the licensed region's land."""

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.lat), len(self.lon))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the grid's outer cell edges, unwrapped."""
        half = self.resolution_deg / 2
        return (
            float(self.lon[0] - half),
            float(self.lat[0] - half),
            float(self.lon[-1] + half),
            float(self.lat[-1] + half),
        )

    def points(self) -> tuple[FloatArray, FloatArray]:
        """Latitudes and longitudes (in [-180, 180)) of every cell, row by row."""
        lon, lat = np.meshgrid(self.lon, self.lat)
        return lat.ravel(), wrap_lon(lon.ravel())

    def area_weight(self) -> FloatArray:
        """(ny, nx) relative cell areas: proportional to cos(latitude)."""
        return np.broadcast_to(np.cos(np.radians(self.lat))[:, None], self.shape).copy()


@dataclass(frozen=True)
class StretchCoverage:
    """Verdicts and shares at one path-stretch quantile."""

    quantile: float
    cells: CodeArray
    """(ny, nx) verdict codes, :data:`NOT_JUDGED` at sea."""
    towns: CodeArray
    """Verdict code of each town of the region."""
    area_share: float
    """Certifiable (ALLOWED) share of the region's land area."""
    population_share: float | None
    """Certifiable share of the region's town population; None when it has no towns."""
    area_by_verdict: Mapping[str, float]
    population_by_verdict: Mapping[str, float]


@dataclass(frozen=True)
class Coverage:
    """What an honest chip gets across one region, at each stretch of :data:`STRETCHES`."""

    region: str
    grid: RegionGrid
    towns: Places
    sites: tuple[LandmarkSite, ...]
    landmarks_per_chip: int
    landmark_faults: int
    """Lying landmark operators every ALLOWED here survives (the judge's level)."""
    stretches: Mapping[str, StretchCoverage]

    def to_json(self) -> dict[str, Any]:
        """The figures as one JSON-ready object (median first, then ``*_p90`` keys)."""
        median, p90 = self.stretches["median"], self.stretches["p90"]
        return {
            "region": self.region,
            "certifiable_area_share": median.area_share,
            "certifiable_population_share": median.population_share,
            "certifiable_area_share_p90": p90.area_share,
            "certifiable_population_share_p90": p90.population_share,
            "landmarks": [s.landmark_id for s in self.sites],
            "landmarks_per_chip": self.landmarks_per_chip,
            "landmark_faults": self.landmark_faults,
            "resolution_deg": self.grid.resolution_deg,
            "grid_cells": int(self.grid.land.size),
            "land_cells": int(self.grid.land.sum()),
            "region_cells": int(self.grid.inside.sum()),
            "towns": len(self.towns),
            "town_population": float(self.towns.population.sum()),
            "by_stretch": {
                name: {
                    "quantile": s.quantile,
                    "area": dict(s.area_by_verdict),
                    "population": dict(s.population_by_verdict),
                }
                for name, s in self.stretches.items()
            },
        }


@dataclass(frozen=True)
class Witnesses:
    """Land points on known sides of a region's border, for the judge's shortcut."""

    lat: FloatArray
    lon: FloatArray
    licensed: BoolArray
    """True: the point is on the licensed region's land; False: on other land."""

    @classmethod
    def of(cls, grid: RegionGrid, towns: Places) -> Witnesses:
        """The grid's land cells (either side) and the region's towns (licensed)."""
        lat, lon = grid.points()
        land = grid.land.ravel()
        return cls(
            lat=np.concatenate([lat[land], towns.lat]),
            lon=np.concatenate([lon[land], towns.lon]),
            licensed=np.concatenate([grid.inside.ravel()[land], np.ones(len(towns), bool)]),
        )


class HonestJudge:
    """Verdicts for honest chips at given points, from the verifier's own appraiser.

    An honest chip at P measures its ``landmarks_per_chip`` nearest landmarks; landmark L
    times ``2 * base_delay(d(P, L), stretch)`` with the stretch at the asked quantile, and
    the RTT is rounded up to the next nanosecond. Verdicts are cached by (point, quantile,
    landmarks measured), so a landmark search only judges the points whose nearest
    landmarks a candidate changes.

    One shortcut saves the appraiser's time on large disks, and it can only ever say
    INCONCLUSIVE: when a *witness* of licensed land and a witness of other land both lie
    within every bound (so inside the appraiser's outer feasible region, which contains
    every disk), the appraiser's rules for a country region give INCONCLUSIVE whatever
    else the region holds (it touches licensed land, so not OUTSIDE; it touches other land,
    so not ALLOWED). ALLOWED and OUTSIDE always come from the appraiser itself.

    With ``landmark_faults = f`` an ALLOWED must also hold without any f of the bounds,
    as the verifier pipeline requires of a policy that outvotes lying landmarks (the
    shortcut's INCONCLUSIVE stands: leaving bounds out only widens the region).
    """

    def __init__(
        self,
        policy: RegionPolicy,
        region: str,
        *,
        landmarks_per_chip: int,
        model: LatencyModel | None = None,
        witnesses: Witnesses | None = None,
        landmark_faults: int = 0,
    ) -> None:
        if region not in policy.regions:
            known = ", ".join(policy.regions)
            raise ConfigError(f"region {region!r} is not licensed by the policy ({known})")
        if landmarks_per_chip < 1:
            raise ConfigError("landmarks_per_chip must be at least 1")
        if not 0 <= landmark_faults < landmarks_per_chip:
            raise ConfigError(
                f"landmark_faults must be at least 0 and below landmarks_per_chip "
                f"({landmarks_per_chip}), got {landmark_faults}"
            )
        self.landmark_faults = landmark_faults
        self.policy = policy
        self.region = region
        self.landmarks_per_chip = landmarks_per_chip
        self.model = model or LatencyModel.default()
        self._access_s = self.model.parameters(PathClass.CLOUD).access_delay_s
        self._appraiser = policy.appraiser()
        self._witnesses = witnesses if policy.regions[region].is_countries else None
        self._cache: dict[tuple[float, float, float, tuple[str, ...]], Verdict] = {}
        self.appraised = 0
        """Points the appraiser judged (cache misses the shortcut did not decide)."""
        self.by_witness = 0
        """Points the witness shortcut decided (INCONCLUSIVE)."""

    def bounds(
        self, lat: float, lon: float, sites: Sequence[LandmarkSite], quantile: float
    ) -> list[LandmarkBound]:
        """The bounds an honest chip at (lat, lon) reports for its nearest landmarks."""
        d = haversine_km(lat, lon, [s.latitude for s in sites], [s.longitude for s in sites])
        nearest = np.argsort(d, kind="stable")[: self.landmarks_per_chip]
        rtt = self.rtt_ns(d[nearest], quantile)
        return [_bound(sites[j], int(r)) for j, r in zip(nearest, rtt, strict=True)]

    def rtt_ns(self, distance_km: FloatArray, quantile: float) -> npt.NDArray[np.int64]:
        """Honest RTTs (ns, rounded up) over paths of these lengths at a stretch quantile:
        twice :meth:`LatencyModel.base_delay_s` (cloud paths, no jitter)."""
        stretch = self.model.stretch_quantiles(distance_km, quantile)
        one_way = self.model.propagation_s(distance_km, stretch) + 2 * self._access_s
        return np.asarray(np.ceil(2 * one_way * 1e9), dtype=np.int64)

    def verdicts(
        self,
        lat: FloatArray,
        lon: FloatArray,
        sites: Sequence[LandmarkSite],
        quantile: float,
        progress: Progress | None = None,
    ) -> CodeArray:
        """Verdict codes for honest chips at each point (lat/lon in degrees)."""
        if not sites:
            raise ConfigError("no landmarks to measure against")
        out = np.zeros(len(lat), dtype=np.int8)
        site_lat = np.asarray([s.latitude for s in sites])
        site_lon = np.asarray([s.longitude for s in sites])
        ids = [s.landmark_id for s in sites]
        operators = {s.landmark_id: s.operator for s in sites}
        k = min(self.landmarks_per_chip, len(sites))
        to_witness = None
        if self._witnesses is not None:
            w = self._witnesses
            to_witness = haversine_km(w.lat[:, None], w.lon[:, None], site_lat, site_lon)
        for start in range(0, len(lat), CHUNK):
            la, lo = lat[start : start + CHUNK], lon[start : start + CHUNK]
            d = haversine_km(la[:, None], lo[:, None], site_lat[None, :], site_lon[None, :])
            nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
            rtt = self.rtt_ns(np.take_along_axis(d, nearest, axis=1), quantile)
            keys = [
                (float(la[i]), float(lo[i]), quantile, tuple(sorted(ids[j] for j in nearest[i])))
                for i in range(len(la))
            ]
            missing = [i for i, key in enumerate(keys) if key not in self._cache]
            mixed = self._straddles(nearest[missing], rtt[missing], to_witness)
            for i, straddles in zip(missing, mixed, strict=True):
                if straddles:
                    self.by_witness += 1
                    verdict = Verdict.INCONCLUSIVE
                else:
                    self.appraised += 1
                    bounds = tuple(
                        _bound(sites[j], int(r)) for j, r in zip(nearest[i], rtt[i], strict=True)
                    )
                    appraisal = self._appraiser.appraise(bounds, self.region)
                    verdict = survive_faults(
                        self._appraiser,
                        appraisal,
                        fault_domains(bounds, operators),
                        self.region,
                        self.landmark_faults,
                    ).verdict
                self._cache[keys[i]] = verdict
            out[start : start + len(la)] = [code_of(self._cache[key]) for key in keys]
            if progress is not None:
                progress(len(la))
        return out

    def _straddles(
        self,
        nearest: npt.NDArray[np.intp],
        rtt_ns: npt.NDArray[np.int64],
        to_witness: FloatArray | None,
    ) -> BoolArray:
        """Per chip: whether witnesses on both sides of the border lie within every bound."""
        out = np.zeros(len(nearest), dtype=bool)
        if to_witness is None or self._witnesses is None or not len(nearest):
            return out
        licensed = self._witnesses.licensed
        radius = rtt_ns * KM_PER_NS_OF_RTT
        for start in range(0, len(nearest), 32):
            picked = nearest[start : start + 32]
            # (witnesses, chips, k): is each witness within each of the chip's bounds?
            within = to_witness[:, picked] <= radius[start : start + 32][None, :, :]
            inside = within.all(axis=2)
            out[start : start + 32] = (inside & licensed[:, None]).any(axis=0) & (
                inside & ~licensed[:, None]
            ).any(axis=0)
        return out


def _bound(site: LandmarkSite, rtt_ns: int) -> LandmarkBound:
    return LandmarkBound(site.landmark_id, site.latitude, site.longitude, rtt_ns)


def region_grid(
    policy: RegionPolicy, region: str, resolution_deg: float | None = None
) -> RegionGrid:
    """The grid over ``region``'s bounding box plus a margin (see the module docstring).

    Args:
        policy: the policy that defines the region and the country shapes.
        region: a licensed region of the policy.
        resolution_deg: cell size in degrees; None for :data:`CELLS_ACROSS` cells along
            the longer side.

    Raises:
        ConfigError: unknown region, a resolution out of range, or a grid too large.
    """
    west, south, east, north, centre = region_frame(policy, region)
    if resolution_deg is None:
        resolution_deg = float(f"{max(east - west, north - south) / CELLS_ACROSS:.2g}")
    if not MIN_RESOLUTION_DEG <= resolution_deg <= MAX_RESOLUTION_DEG:
        raise ConfigError(
            f"resolution {resolution_deg} degrees is not in "
            f"[{MIN_RESOLUTION_DEG}, {MAX_RESOLUTION_DEG}]"
        )
    nx = max(1, math.ceil((east - west) / resolution_deg))
    ny = max(1, math.ceil((north - south) / resolution_deg))
    if nx * ny > MAX_CELLS:
        raise ConfigError(
            f"a {resolution_deg}-degree grid over {region} has {nx * ny:,} cells "
            f"(at most {MAX_CELLS:,}); use a coarser resolution"
        )
    lon = np.asarray(west + resolution_deg * (np.arange(nx) + 0.5), dtype=np.float64)
    lat = np.asarray(south + resolution_deg * (np.arange(ny) + 0.5), dtype=np.float64)
    lat = lat[np.abs(lat) < 90.0]
    grid_lon, grid_lat = np.meshgrid(lon, lat)
    land, inside = land_and_inside(policy, region, grid_lat.ravel(), wrap_lon(grid_lon.ravel()))
    shape = grid_lat.shape
    return RegionGrid(
        region=region,
        lat=lat,
        lon=lon,
        resolution_deg=resolution_deg,
        centre_lon=centre,
        land=land.reshape(shape),
        inside=inside.reshape(shape),
    )


class RegionFrame(NamedTuple):
    """A region's bounding box plus a margin, in degrees, and the longitude at its centre."""

    west: float
    south: float
    east: float
    north: float
    centre_lon: float


def region_frame(policy: RegionPolicy, region: str) -> RegionFrame:
    """The frame a region's maps and grids are drawn in: its bounding box plus a margin.

    Longitudes are unwrapped: a region across the antimeridian (the US's Aleutians) gets
    the frame in which its bounding box is narrower.
    """
    licensed = policy.regions.get(region)
    if licensed is None:
        known = ", ".join(policy.regions)
        raise ConfigError(f"region {region!r} is not licensed by the policy ({known})")
    coords = shapely.get_coordinates(licensed.drawing(policy.countries))
    lon, lat = coords[:, 0], coords[:, 1]
    east_frame = np.where(lon < 0, lon + 360.0, lon)
    if np.ptp(east_frame) < np.ptp(lon):
        lon = east_frame
    west, east = float(lon.min()), float(lon.max())
    south, north = float(lat.min()), float(lat.max())
    margin = 0.15 * max(east - west, north - south) + 0.3
    return RegionFrame(
        west - margin,
        max(-89.9, south - margin),
        east + margin,
        min(89.9, north + margin),
        (west + east) / 2,
    )


def land_and_inside(
    policy: RegionPolicy, region: str, lat: FloatArray, lon: FloatArray
) -> tuple[BoolArray, BoolArray]:
    """Whether each point is on land, and on the licensed region's land (policy shapes)."""
    codes = country_codes(policy.countries, lat, lon)
    land = codes != ""
    licensed = policy.regions[region]
    if licensed.is_countries:
        inside = np.isin(codes, sorted(licensed.countries))
    else:
        assert licensed.inner is not None
        inside = land & shapely.contains_xy(licensed.inner, lon, lat)
    return land, np.asarray(inside, dtype=bool)


def country_codes(countries: Countries, lat: FloatArray, lon: FloatArray) -> npt.NDArray[np.str_]:
    """The country code of the land under each point, ``""`` at sea (``-99`` for land with
    no licensable code). A point on a border gets the smaller code."""
    out = np.full(len(lat), "", dtype=object)
    if len(lat):
        hits, pieces = countries.tree.query(shapely.points(lon, lat), predicate="intersects")
        # Reverse-sorted, so the smallest code is written last and wins.
        found = [countries.code_at(int(c)) for c in countries.piece_code[pieces]]
        for i, code in sorted(zip(hits.tolist(), found, strict=True), reverse=True):
            out[i] = code
    return np.asarray(out, dtype=str)


def region_towns(policy: RegionPolicy, region: str, places: Places | None = None) -> Places:
    """The towns of ``region``: those the policy's shapes put on its land.

    A coastal town that the 1:10m coastline leaves at sea counts when GeoNames puts it in
    one of the region's countries (country regions only); it is still judged at its own
    coordinates.
    """
    places = places or populated_places()
    west, south, east, north, centre = region_frame(policy, region)
    lon = wrap_lon(places.lon, centre)
    near = (lon >= west) & (lon <= east) & (places.lat >= south) & (places.lat <= north)
    nearby = places.select(near)
    codes = country_codes(policy.countries, nearby.lat, nearby.lon)
    _, inside = land_and_inside(policy, region, nearby.lat, nearby.lon)
    licensed = policy.regions[region]
    if licensed.is_countries:
        at_sea = (codes == "") | (codes == NO_CODE)
        inside |= at_sea & np.isin(nearby.country, sorted(licensed.countries))
    return nearby.select(inside)


def evaluate(
    judge: HonestJudge,
    grid: RegionGrid,
    towns: Places,
    sites: Sequence[LandmarkSite],
    *,
    progress: Progress | None = None,
) -> Coverage:
    """Judge every land cell and every town at each stretch of :data:`STRETCHES`.

    Raises:
        ConfigError: no cell centre falls on the region's land (the grid is too coarse).
    """
    if not grid.inside.any():
        raise ConfigError(
            f"no {grid.resolution_deg}-degree grid point falls on {grid.region}'s land; "
            "use a finer resolution"
        )
    lat, lon = grid.points()
    land = grid.land.ravel()
    weight = grid.area_weight()
    stretches = {}
    for name, q in STRETCHES.items():
        cells = np.full(grid.land.size, NOT_JUDGED, dtype=np.int8)
        cells[land] = judge.verdicts(lat[land], lon[land], sites, q, progress)
        town_codes = judge.verdicts(towns.lat, towns.lon, sites, q, progress)
        cells2d = cells.reshape(grid.shape)
        area = shares(cells2d[grid.inside], weight[grid.inside])
        population = shares(town_codes, towns.population) if len(towns) else None
        stretches[name] = StretchCoverage(
            quantile=q,
            cells=cells2d,
            towns=town_codes,
            area_share=area[Verdict.ALLOWED.value],
            population_share=None if population is None else population[Verdict.ALLOWED.value],
            area_by_verdict=area,
            population_by_verdict=population or {},
        )
    return Coverage(
        region=grid.region,
        grid=grid,
        towns=towns,
        sites=tuple(sites),
        landmarks_per_chip=judge.landmarks_per_chip,
        landmark_faults=judge.landmark_faults,
        stretches=stretches,
    )


def shares(codes: CodeArray, weights: FloatArray) -> dict[str, float]:
    """Weighted share of each verdict (every verdict present, summing to 1)."""
    total = float(np.sum(weights))
    if total <= 0:
        raise ConfigError("nothing to weigh: the region has no weight on this grid")
    return {v.value: float(np.sum(weights[codes == code_of(v)])) / total for v in VERDICTS}


def judge_over(
    policy: RegionPolicy,
    region: str,
    grid: RegionGrid,
    towns: Places,
    *,
    landmarks_per_chip: int,
    model: LatencyModel | None = None,
    landmark_faults: int = 0,
) -> HonestJudge:
    """A judge whose witnesses are this grid's land cells and these towns."""
    return HonestJudge(
        policy,
        region,
        landmarks_per_chip=landmarks_per_chip,
        model=model,
        witnesses=Witnesses.of(grid, towns),
        landmark_faults=landmark_faults,
    )


def measure(
    policy: RegionPolicy,
    region: str,
    sites: Sequence[LandmarkSite],
    *,
    landmarks_per_chip: int,
    resolution_deg: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    landmark_faults: int = 0,
) -> tuple[Coverage, HonestJudge]:
    """Coverage of a region on its normal grid with every town; progress gets (done, total).

    Raises:
        ConfigError: see :func:`region_grid` and :func:`evaluate`.
    """
    grid = region_grid(policy, region, resolution_deg)
    towns = region_towns(policy, region)
    judge = judge_over(
        policy,
        region,
        grid,
        towns,
        landmarks_per_chip=landmarks_per_chip,
        landmark_faults=landmark_faults,
    )
    total = (int(grid.land.sum()) + len(towns)) * len(STRETCHES)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    return evaluate(judge, grid, towns, sites, progress=advance), judge
