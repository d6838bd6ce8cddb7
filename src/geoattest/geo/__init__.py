"""Geography: from landmark-timed bounds to a verdict that is never wrong toward ALLOWED.

A policy (``load_policy`` reads one from a file, ``build_policy`` makes one in code)
gives a :class:`~geoattest.verdict.RegionAppraiser`, which turns landmark bounds into a
verdict. See ``docs/GEOGRAPHY.md`` for why the feasible region is sound.

Example:

>>> from geoattest.geo import build_policy, country_region
>>> from geoattest.verdict import LandmarkBound
>>> appraiser = build_policy("example", 1, [country_region("SG", ["SG"])]).appraiser()
>>> def verdict(rtt_ns, landmark=("lm-sin", 1.3349, 103.8920)):
...     return appraiser.appraise([LandmarkBound(*landmark, rtt_min_ns=rtt_ns)], "SG").verdict
>>> verdict(50_000)  # within 7.5 km of a Singapore landmark: all of that land is Singapore
<Verdict.ALLOWED: 'ALLOWED'>
>>> verdict(200_000)  # within 30 km: Johor Bahru, in Malaysia, is as close
<Verdict.INCONCLUSIVE: 'INCONCLUSIVE'>
>>> verdict(100_000, ("lm-hkg", 22.3193, 114.1694))  # within 15 km of Hong Kong
<Verdict.OUTSIDE: 'OUTSIDE'>
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from geoattest.geo.assumption import LocationAssumption

if TYPE_CHECKING:
    from geoattest.geo.appraiser import GeoAppraiser
    from geoattest.geo.countries import Countries, natural_earth
    from geoattest.geo.estimate import Estimate, estimate_location
    from geoattest.geo.policy import (
        LicensedRegion,
        RegionPolicy,
        build_policy,
        circle_region,
        country_region,
        geojson_region,
        load_policy,
        policy_from_mapping,
    )

# The public names load on first use: shapely and numpy are not needed by commands that
# only name a location assumption, nor by an install without the verifier extra.
_HOME = {
    "GeoAppraiser": "appraiser",
    "Countries": "countries",
    "natural_earth": "countries",
    "Estimate": "estimate",
    "estimate_location": "estimate",
    "LicensedRegion": "policy",
    "RegionPolicy": "policy",
    "build_policy": "policy",
    "circle_region": "policy",
    "country_region": "policy",
    "geojson_region": "policy",
    "load_policy": "policy",
    "policy_from_mapping": "policy",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)


__all__ = [
    "Countries",
    "Estimate",
    "GeoAppraiser",
    "LicensedRegion",
    "LocationAssumption",
    "RegionPolicy",
    "build_policy",
    "circle_region",
    "country_region",
    "estimate_location",
    "geojson_region",
    "load_policy",
    "natural_earth",
    "policy_from_mapping",
]
