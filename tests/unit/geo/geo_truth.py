"""Ground truth for geography tests: WGS-84 geodesics (geographiclib) and honest RTTs.

Bounds are built the way a landmark would measure them: the true ellipsoidal distance,
turned into the smallest RTT in whole nanoseconds that light in vacuum allows, plus any
delay the network or an adversary adds. Nothing here uses the code under test.
"""

from __future__ import annotations

import functools
import math

from geographiclib.geodesic import Geodesic

from geoattest.geo import GeoAppraiser, LocationAssumption, build_policy, country_region
from geoattest.verdict import KM_PER_NS_OF_RTT, LandmarkBound

WGS84 = Geodesic.WGS84


def geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"]) / 1000.0


def honest_rtt_ns(distance_km: float, delay_ns: int = 0) -> int:
    """The smallest whole-ns RTT a chip at ``distance_km`` can produce, plus a delay."""
    return math.ceil(distance_km / KM_PER_NS_OF_RTT) + 1 + delay_ns


def bound_from(
    name: str, lat: float, lon: float, chip: tuple[float, float], delay_ns: int = 0
) -> LandmarkBound:
    d = geodesic_km(lat, lon, chip[0], chip[1])
    return LandmarkBound(name, lat, lon, honest_rtt_ns(d, delay_ns))


def rtt_for_km(km: float) -> int:
    """The RTT whose light-speed bound is ``km``."""
    return math.ceil(km / KM_PER_NS_OF_RTT)


@functools.cache
def asia_appraiser(location: str = LocationAssumption.LAND.value) -> GeoAppraiser:
    """Regions for the border tests: each single country, plus China and its SARs."""
    codes = ["SG", "MY", "HK", "MO", "TW", "CN", "DE", "FR", "NO", "JP", "FJ", "RU", "US", "KP"]
    regions = [country_region(c, [c]) for c in codes]
    regions.append(country_region("greater-china", ["CN", "HK", "MO"]))
    return build_policy(
        "test-asia", 1, regions, embargo=["KP"], location=location, border_margin_km=1.0
    ).appraiser()
