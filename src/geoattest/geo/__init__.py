"""Geography: from landmark-timed bounds to a verdict that is never wrong toward ALLOWED.

Public API::

    from geoattest.geo import load_policy, build_policy, country_region
    appraiser = load_policy("policy.json").appraiser()   # a RegionAppraiser
    appraisal = appraiser.appraise(bounds, "SG")

See ``docs/GEOGRAPHY.md`` for why the feasible region is sound.
"""

from geoattest.geo.appraiser import GeoAppraiser
from geoattest.geo.countries import Countries, natural_earth
from geoattest.geo.estimate import Estimate, estimate_location
from geoattest.geo.policy import (
    LicensedRegion,
    LocationAssumption,
    RegionPolicy,
    build_policy,
    circle_region,
    country_region,
    geojson_region,
    load_policy,
    policy_from_mapping,
)

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
