"""Honest-path latency: how long a datagram takes between two places on the Internet.

The model (parameters in ``data/latency_model.json``, documented in
``docs/LATENCY_MODEL.md``)::

    one-way delay = distance / fibre speed * stretch      (propagation, fibre at 2/3 c)
                  + access delay at each endpoint
                  + jitter                                  (exponential, never negative)

``distance`` is the WGS-84 geodesic (the verifier's earth model). ``stretch`` is how much
longer the routed path is than the straight fibre line: a lognormal shifted by
``stretch_floor`` (1.0, so an honest path is never faster than straight fibre), fitted to
a median and a p90 that depend on distance (short hops route worse) and on the path class.

The model says what honest networks do; it never feeds a decision. Decisions use c.

Example:

>>> import random
>>> model = LatencyModel.default()
>>> rng = random.Random(7)
>>> frankfurt, tokyo = (50.11, 8.68), (35.68, 139.69)
>>> stretch = model.sample_stretch(great_circle_km(frankfurt, tokyo), rng)
>>> delay_s = model.one_way_delay_s(frankfurt, tokyo, rng, stretch=stretch)
>>> delay_s > great_circle_km(frankfurt, tokyo) / SPEED_OF_LIGHT_KM_PER_S  # never beats light
True

Randomness is always passed in: a ``random.Random`` for one link at a time, a numpy
``Generator`` for the vectorised variants used by fleet studies.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from geographiclib.geodesic import Geodesic

from geoattest.errors import ConfigError
from geoattest.files import read_json
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S

LatLon = tuple[float, float]
"""(latitude, longitude) in degrees, WGS-84."""
FloatArray = npt.NDArray[np.float64]

MEAN_EARTH_RADIUS_KM = 6371.0088
"""IUGG mean radius, used only by the vectorised haversine."""
_Z90 = NormalDist().inv_cdf(0.9)
_SCHEMA = "geoattest.netsim.latency_model/v1"


class PathClass(StrEnum):
    """Kinds of Internet path, each with its own stretch, access delay and jitter."""

    CLOUD = "cloud"
    """Data centre to data centre (cloud inter-region tables)."""
    CN_CONSUMER = "cn_consumer"
    """Consumer access paths out of mainland China: routes markedly worse."""


def great_circle_km(a: LatLon, b: LatLon) -> float:
    """WGS-84 geodesic distance, the same earth model the verifier bounds with.

    Symmetric to the last bit (the points are put in a fixed order), so a path and its
    reverse have exactly the same light floor.
    """
    (lat1, lon1), (lat2, lon2) = sorted((a, b))
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"]) / 1000.0


def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Vectorised sphere distance for fleet studies (within about 0.6 % of the geodesic).

    Only for sampling honest delays in bulk; anything that checks physics uses
    :func:`great_circle_km`.
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * MEAN_EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def light_floor_s(distance_km: float) -> float:
    """The least time anything can take to cover ``distance_km``: distance over c."""
    return distance_km / SPEED_OF_LIGHT_KM_PER_S


@dataclass(frozen=True)
class StretchAnchor:
    """The stretch distribution's median and p90 for paths of one length."""

    distance_km: float
    median: float
    p90: float


@dataclass(frozen=True)
class PathParameters:
    """Everything the model knows about one path class."""

    anchors: tuple[StretchAnchor, ...]
    """Sorted by distance; median and p90 interpolate linearly in log distance between
    anchors and stay constant beyond the first and the last."""
    access_delay_s: float
    """One-way delay at each endpoint (host stack, data-centre fabric, last mile)."""
    jitter_mean_s: float
    jitter_fraction_of_propagation: float
    """Jitter is exponential with mean ``jitter_mean_s + fraction * propagation``."""


class LatencyModel:
    """Samples honest one-way delays; see the module docstring for the formula."""

    def __init__(
        self,
        paths: Mapping[PathClass, PathParameters],
        *,
        fibre_speed_km_per_s: float = SPEED_OF_LIGHT_KM_PER_S / 1.5,
        stretch_floor: float = 1.0,
    ) -> None:
        """Check the parameters once so that sampling never meets a bad value.

        Raises:
            ConfigError: a path class is missing, or a parameter is out of range.
        """
        if not 0 < fibre_speed_km_per_s <= SPEED_OF_LIGHT_KM_PER_S:
            raise ConfigError(f"fibre speed {fibre_speed_km_per_s} km/s is not in (0, c]")
        if stretch_floor < 1.0:
            raise ConfigError(f"stretch floor {stretch_floor} < 1: faster than straight fibre")
        missing = set(PathClass) - set(paths)
        if missing:
            raise ConfigError(f"latency model lacks path classes {sorted(missing)}")
        for path_class, params in paths.items():
            _check_path(path_class, params, stretch_floor)
        self.fibre_speed_km_per_s = fibre_speed_km_per_s
        self.stretch_floor = stretch_floor
        self._paths = dict(paths)

    # --- construction ---

    @classmethod
    def default(cls) -> LatencyModel:
        """The calibrated model shipped with geoattest."""
        source = resources.files("geoattest.netsim") / "data" / "latency_model.json"
        return cls.from_mapping(
            _object(json.loads(source.read_text(encoding="utf-8")), str(source))
        )

    @classmethod
    def from_file(cls, path: Path) -> LatencyModel:
        """Load a model file in the shipped format.

        Raises:
            ConfigError: the file cannot be read or does not describe a valid model.
        """
        return cls.from_mapping(_object(read_json(path, "latency model"), str(path)))

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> LatencyModel:
        """Build a model from a parsed model document (the JSON file's shape).

        Raises:
            ConfigError: the document is not a valid model.
        """
        try:
            if doc["schema"] != _SCHEMA:
                raise ConfigError(f"latency model schema is {doc['schema']!r}, not {_SCHEMA!r}")
            paths = {
                PathClass(name): PathParameters(
                    anchors=tuple(
                        StretchAnchor(float(a["distance_km"]), float(a["median"]), float(a["p90"]))
                        for a in entry["stretch_anchors"]
                    ),
                    access_delay_s=float(entry["access_delay_ms"]) / 1e3,
                    jitter_mean_s=float(entry["jitter_mean_ms"]) / 1e3,
                    jitter_fraction_of_propagation=float(entry["jitter_fraction_of_propagation"]),
                )
                for name, entry in doc["path_classes"].items()
            }
            index = float(doc["fibre_refractive_index"])
            floor = float(doc["stretch_floor"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            # a missing key, a value of the wrong type or one no float can hold
            raise ConfigError(f"latency model is malformed: {e!r}"[:300]) from e
        if not math.isfinite(index) or not math.isfinite(floor):
            raise ConfigError("fibre refractive index and stretch floor must be finite")
        if index < 1.0:
            raise ConfigError(f"fibre refractive index {index} < 1: faster than light")
        return cls(paths, fibre_speed_km_per_s=SPEED_OF_LIGHT_KM_PER_S / index, stretch_floor=floor)

    def parameters(self, path_class: PathClass) -> PathParameters:
        """The parameters of one path class."""
        return self._paths[path_class]

    # --- stretch ---

    def stretch_quantile(
        self, distance_km: float, q: float, path_class: PathClass = PathClass.CLOUD
    ) -> float:
        """The stretch that a fraction ``q`` of honest paths of this length stay under."""
        return float(self.stretch_quantiles(distance_km, q, path_class))

    def stretch_quantiles(
        self, distance_km: npt.ArrayLike, q: float, path_class: PathClass = PathClass.CLOUD
    ) -> FloatArray:
        """Vectorised :meth:`stretch_quantile`: one stretch per distance."""
        if not 0 < q < 1:
            raise ConfigError(f"quantile {q} is not in (0, 1)")
        d = np.asarray(distance_km, dtype=np.float64)
        return np.asarray(self._stretch_from_z(d, NormalDist().inv_cdf(q), path_class))

    def median_stretch(self, distance_km: float, path_class: PathClass = PathClass.CLOUD) -> float:
        """Median stretch of honest paths of this length."""
        return self.stretch_quantile(distance_km, 0.5, path_class)

    def p90_stretch(self, distance_km: float, path_class: PathClass = PathClass.CLOUD) -> float:
        """90th-percentile stretch of honest paths of this length."""
        return self.stretch_quantile(distance_km, 0.9, path_class)

    def sample_stretch(
        self, distance_km: float, rng: random.Random, path_class: PathClass = PathClass.CLOUD
    ) -> float:
        """Draw one path's stretch; a link keeps it for its lifetime (routes are stable)."""
        return float(self._stretch_from_z(distance_km, rng.gauss(0.0, 1.0), path_class))

    def sample_stretches(
        self,
        distance_km: npt.ArrayLike,
        gen: np.random.Generator,
        path_class: PathClass = PathClass.CLOUD,
    ) -> FloatArray:
        """Vectorised :meth:`sample_stretch`: one stretch per distance."""
        d = np.asarray(distance_km, dtype=np.float64)
        stretches: FloatArray = self._stretch_from_z(d, gen.standard_normal(d.shape), path_class)
        return stretches

    # --- delay ---

    def propagation_s(self, distance_km: npt.ArrayLike, stretch: npt.ArrayLike) -> Any:
        """Time in the fibre: distance at the fibre speed times the path's stretch."""
        return np.multiply(distance_km, stretch) / self.fibre_speed_km_per_s

    def base_delay_s(
        self, distance_km: float, stretch: float, path_class: PathClass = PathClass.CLOUD
    ) -> float:
        """One-way delay without jitter: propagation plus access delay at both ends."""
        access = self._paths[path_class].access_delay_s
        return float(self.propagation_s(distance_km, stretch)) + 2 * access

    def sample_jitter_s(
        self,
        distance_km: float,
        stretch: float,
        rng: random.Random,
        path_class: PathClass = PathClass.CLOUD,
    ) -> float:
        """Queueing jitter for one datagram: exponential, so it only ever adds delay."""
        mean = float(self._jitter_mean_s(self.propagation_s(distance_km, stretch), path_class))
        return rng.expovariate(1.0 / mean) if mean > 0 else 0.0

    def one_way_delay_s(
        self,
        a: LatLon,
        b: LatLon,
        rng: random.Random,
        *,
        stretch: float | None = None,
        path_class: PathClass = PathClass.CLOUD,
    ) -> float:
        """One datagram's honest delay from ``a`` to ``b``.

        Args:
            a: sender location.
            b: receiver location.
            rng: the source of randomness (jitter, and the stretch when not given).
            stretch: the path's fixed stretch; drawn afresh when ``None``.
            path_class: which published path population to follow.
        """
        distance = great_circle_km(a, b)
        if stretch is None:
            stretch = self.sample_stretch(distance, rng, path_class)
        return self.base_delay_s(distance, stretch, path_class) + self.sample_jitter_s(
            distance, stretch, rng, path_class
        )

    def one_way_delays_s(
        self,
        distance_km: npt.ArrayLike,
        gen: np.random.Generator,
        *,
        stretch: npt.ArrayLike | None = None,
        path_class: PathClass = PathClass.CLOUD,
    ) -> FloatArray:
        """Vectorised :meth:`one_way_delay_s` over precomputed distances (see
        :func:`haversine_km`); draws stretches too when ``stretch`` is ``None``."""
        d = np.asarray(distance_km, dtype=np.float64)
        s = self.sample_stretches(d, gen, path_class) if stretch is None else stretch
        propagation: FloatArray = self.propagation_s(d, s)
        jitter = gen.exponential(self._jitter_mean_s(propagation, path_class), d.shape)
        return np.asarray(propagation + 2 * self._paths[path_class].access_delay_s + jitter)

    # --- internals ---

    def _jitter_mean_s(self, propagation_s: Any, path_class: PathClass) -> Any:
        p = self._paths[path_class]
        return p.jitter_mean_s + p.jitter_fraction_of_propagation * propagation_s

    def _stretch_from_z(self, distance_km: Any, z: Any, path_class: PathClass) -> Any:
        """Map standard-normal draws to stretches: floor + exp(mu + sigma * z), with mu and
        sigma fitted to the median and p90 interpolated at each distance."""
        anchors = self._paths[path_class].anchors
        log_d = np.log(np.maximum(distance_km, 1e-9))
        at = [math.log(a.distance_km) for a in anchors]
        median = np.interp(log_d, at, [a.median for a in anchors])
        p90 = np.interp(log_d, at, [a.p90 for a in anchors])
        excess = median - self.stretch_floor
        sigma = np.log((p90 - self.stretch_floor) / excess) / _Z90
        return self.stretch_floor + excess * np.exp(sigma * z)


def _check_path(path_class: PathClass, p: PathParameters, floor: float) -> None:
    where = f"path class {path_class.value}"
    if not p.anchors:
        raise ConfigError(f"{where} has no stretch anchors")
    distances = [a.distance_km for a in p.anchors]
    if distances != sorted(set(distances)) or distances[0] <= 0:
        raise ConfigError(f"{where}: anchor distances must be positive and increasing")
    for a in p.anchors:
        if not floor < a.median < a.p90:
            raise ConfigError(f"{where}: need floor < median < p90 at {a.distance_km} km")
    values = (p.access_delay_s, p.jitter_mean_s, p.jitter_fraction_of_propagation)
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"{where}: access delay and jitter must be finite and >= 0")


def _object(doc: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise ConfigError(f"latency model {where} is not a JSON object")
    return doc
