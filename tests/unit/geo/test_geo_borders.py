"""Real borders: points just inside and just outside Singapore, Hong Kong, Macau and Taiwan
resolve to the right country, and the verdicts follow the data.

Each pair is a point a few hundred metres inside one country and a point across the border
(or strait), found on Natural Earth 1:10m (German point of view) and kept within 3 km of
each other so that they really are "just" inside and outside.
"""

from __future__ import annotations

import pytest
import shapely
from geo_truth import asia_appraiser, bound_from, geodesic_km, rtt_for_km

from geoattest.geo.countries import natural_earth
from geoattest.verdict import LandmarkBound, Verdict

PAIRS = [
    # (inside, its code, outside, the outside code)
    ((1.43971, 103.78650), "SG", (1.45578, 103.77244), "MY"),  # Woodlands / Johor Bahru
    ((1.32000, 103.65000), "SG", (1.35000, 103.62000), None),  # Tuas / the Strait of Johor
    ((22.51465, 114.07035), "HK", (22.52242, 114.06258), "CN"),  # Lok Ma Chau / Futian
    ((22.55347, 114.22512), "HK", (22.55771, 114.22875), "CN"),  # Sha Tau Kok
    ((22.21326, 113.54500), "MO", (22.22322, 113.54500), "CN"),  # Macau peninsula / Gongbei
    ((22.14500, 113.56000), "MO", (22.13000, 113.52000), None),  # Cotai / Hengqin channel
    ((24.43000, 118.45000), "TW", (24.44500, 118.19000), None),  # Kinmen / Xiamen harbour
    ((24.47267, 118.28543), "TW", (24.49841, 118.18612), "CN"),  # Kinmen / Xiamen island
]


@pytest.mark.parametrize(("inside", "code", "outside", "other"), PAIRS)
def test_points_either_side_of_a_border_resolve_to_their_country(
    inside: tuple[float, float], code: str, outside: tuple[float, float], other: str | None
) -> None:
    countries = natural_earth()
    assert countries.country_at(*inside) == code
    assert countries.country_at(*outside) == other
    # "Just" inside: within 3 km of the country's edge.
    edge = countries.get(code).shape.boundary
    assert edge.distance(shapely.Point(inside[1], inside[0])) * 111.32 < 3.0


def test_taiwan_main_island_and_the_mainland_are_different_countries() -> None:
    countries = natural_earth()
    assert countries.country_at(25.033, 121.565) == "TW"  # Taipei
    assert countries.country_at(26.07, 119.30) == "CN"  # Fuzhou
    assert countries.country_at(22.32, 114.17) == "HK"
    assert countries.country_at(22.19, 113.54) == "MO"


def test_france_and_norway_resolve_despite_natural_earths_minus_99() -> None:
    countries = natural_earth()
    assert countries.country_at(48.85, 2.35) == "FR"
    assert countries.country_at(59.91, 10.75) == "NO"
    assert countries.country_at(42.66, 21.16) == "XK"  # Kosovo, German point of view
    assert countries.has("FR")
    assert countries.has("NO")
    assert not countries.has("-99")


def _colocated(point: tuple[float, float], km: float) -> LandmarkBound:
    """A landmark at the point itself with an RTT worth ``km``."""
    return LandmarkBound("here", point[0], point[1], rtt_for_km(km))


@pytest.mark.parametrize(("inside", "code", "outside", "other"), PAIRS)
def test_a_tight_bound_decides_each_side_and_a_loose_one_does_not(
    inside: tuple[float, float], code: str, outside: tuple[float, float], other: str | None
) -> None:
    appraiser = asia_appraiser()
    gap = geodesic_km(*inside, *outside)
    # A bound much smaller than the distance to the border: decided.
    tight = appraiser.appraise([_colocated(inside, 0.01)], code)
    assert tight.verdict in (Verdict.ALLOWED, Verdict.INCONCLUSIVE)
    # A bound that reaches across the border: never ALLOWED.
    loose = appraiser.appraise([_colocated(inside, gap + 1.0)], code)
    if other is not None:
        assert loose.verdict is Verdict.INCONCLUSIVE
    # From the outside point, never ALLOWED for the inside country.
    if other is not None:
        for km in (0.01, gap / 2, gap + 1.0, 50.0):
            result = appraiser.appraise([_colocated(outside, km)], code)
            assert result.verdict is not Verdict.ALLOWED
        far = appraiser.appraise([_colocated(outside, 0.01)], code)
        assert far.verdict in (Verdict.OUTSIDE, Verdict.INCONCLUSIVE)


def test_singapore_chip_with_a_nearby_landmark_is_allowed_despite_the_sea() -> None:
    """Coastal sites: the disk reaches the sea, the land clip makes ALLOWED possible."""
    chip = (1.3521, 103.8198)
    appraiser = asia_appraiser()
    bounds = [bound_from("sg-lm", 1.3000, 103.8500, chip, delay_ns=20_000)]
    result = appraiser.appraise(bounds, "SG")
    assert result.verdict is Verdict.ALLOWED
    no_land = asia_appraiser("anywhere").appraise(bounds, "SG")
    assert no_land.verdict is Verdict.INCONCLUSIVE


def test_hong_kong_vs_shenzhen_at_internet_rtts_is_inconclusive() -> None:
    chip = (22.28, 114.16)  # Central, Hong Kong
    bounds = [bound_from("hk-lm", 22.30, 114.17, chip, delay_ns=500_000)]  # +0.5 ms
    result = asia_appraiser().appraise(bounds, "HK")
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.verdict is not Verdict.ALLOWED
    assert asia_appraiser().appraise(bounds, "greater-china").verdict is Verdict.ALLOWED
