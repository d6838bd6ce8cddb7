"""What timing can resolve: the table in ``docs/LIMITS.md``, computed by the appraiser itself.

For each pair of places (a licensed site and a foreign city across a border) it asks the
real appraiser, with the default policy (land assumption, 1 km border margin), what a
landmark standing *at the site* (the best case there is) can prove at a given RTT, and
finds by bisection the largest RTT that still proves the site inside its country and the
largest that proves the foreign city outside it. Regenerate with
``geoattest geo limits > docs/LIMITS.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from geoattest.geo.appraiser import GeoAppraiser
from geoattest.geo.policy import build_policy, country_region
from geoattest.geo.sphere import distance_km
from geoattest.verdict import KM_PER_NS_OF_RTT, LandmarkBound, Verdict

FIBRE_KM_PER_MS_RTT = 299_792.458 * (2.0 / 3.0) / 1000.0 / 2.0
"""One-way km per ms of RTT in fibre (2/3 c), for the 'honest metro RTT' column."""
RTTS_MS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lon: float
    code: str


@dataclass(frozen=True, slots=True)
class Pair:
    site: Place
    foreign: Place


PAIRS = (
    Pair(
        Place("Singapore (Raffles Place)", 1.2840, 103.8510, "SG"),
        Place("Johor Bahru", 1.4927, 103.7414, "MY"),
    ),
    Pair(
        Place("Singapore (Jurong West)", 1.3404, 103.7090, "SG"),
        Place("Johor Bahru", 1.4927, 103.7414, "MY"),
    ),
    Pair(
        Place("Hong Kong (Central)", 22.2800, 114.1588, "HK"),
        Place("Shenzhen (Futian)", 22.5410, 114.0540, "CN"),
    ),
    Pair(Place("Macau", 22.1987, 113.5439, "MO"), Place("Zhuhai", 22.2707, 113.5767, "CN")),
    Pair(
        Place("Taipei", 25.0330, 121.5654, "TW"), Place("Fuzhou (Fujian)", 26.0745, 119.2965, "CN")
    ),
    Pair(Place("Seoul", 37.5665, 126.9780, "KR"), Place("Dandong", 40.1292, 124.3947, "CN")),
    Pair(Place("Frankfurt", 50.1109, 8.6821, "DE"), Place("Prague", 50.0755, 14.4378, "CZ")),
)


@dataclass(frozen=True, slots=True)
class Limit:
    pair: Pair
    distance_km: float
    allowed_up_to_us: float
    """Largest RTT (us) at which a landmark at the site still proves the site inside."""
    outside_up_to_us: float
    """Largest RTT (us) at which a landmark at the foreign city proves it outside."""
    verdicts: tuple[Verdict, ...]
    """The site's verdict at each of :data:`RTTS_MS`."""


def _appraiser(codes: set[str]) -> GeoAppraiser:
    regions = [country_region(c, [c]) for c in sorted(codes)]
    return build_policy("limits", 1, regions).appraiser()


def _verdict(appraiser: GeoAppraiser, place: Place, region: str, rtt_ns: int) -> Verdict:
    bound = LandmarkBound("here", place.lat, place.lon, rtt_ns)
    return appraiser.appraise([bound], region).verdict


def _largest_rtt_us(holds: Callable[[int], bool]) -> float:
    """Largest RTT (us, to 0.1 us) for which ``holds`` is true, or 0 if none."""
    lo, hi = 0, 100_000_000  # ns
    if not holds(0):
        return 0.0
    while hi - lo > 100:
        mid = (lo + hi) // 2
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo / 1000.0


def compute_limits(pairs: tuple[Pair, ...] = PAIRS) -> list[Limit]:
    """Every pair's row, computed with the appraiser."""
    appraiser = _appraiser({c for p in pairs for c in (p.site.code, p.foreign.code)})
    out = []
    for pair in pairs:
        site, foreign = pair.site, pair.foreign

        def site_allowed(ns: int, s: Place = site) -> bool:
            return _verdict(appraiser, s, s.code, ns) is Verdict.ALLOWED

        def foreign_outside(ns: int, f: Place = foreign, s: Place = site) -> bool:
            return _verdict(appraiser, f, s.code, ns) is Verdict.OUTSIDE

        allowed = _largest_rtt_us(site_allowed)
        outside = _largest_rtt_us(foreign_outside)
        verdicts = tuple(
            _verdict(appraiser, site, site.code, math.ceil(ms * 1e6)) for ms in RTTS_MS
        )
        km = float(distance_km(site.lat, site.lon, foreign.lat, foreign.lon))
        out.append(Limit(pair, km, allowed, outside, verdicts))
    return out


def _km(us: float) -> float:
    return us * 1000.0 * KM_PER_NS_OF_RTT


def limits_markdown(limits: list[Limit]) -> str:
    """The whole ``docs/LIMITS.md``, table included."""
    head = "| site vs foreign city | apart | prove site inside: RTT at most | "
    head += "prove foreign city outside: RTT at most | "
    head += " | ".join(f"site at {ms:g} ms" for ms in RTTS_MS) + " |"
    rule = "|" + "---|" * (3 + 1 + len(RTTS_MS))
    rows = []
    for lim in limits:
        verdicts = " | ".join(v.value for v in lim.verdicts)
        rows.append(
            f"| {lim.pair.site.name} ({lim.pair.site.code}) vs {lim.pair.foreign.name} "
            f"({lim.pair.foreign.code}) | {lim.distance_km:.0f} km "
            f"| {lim.allowed_up_to_us:.1f} us ({_km(lim.allowed_up_to_us):.1f} km) "
            f"| {lim.outside_up_to_us:.1f} us ({_km(lim.outside_up_to_us):.1f} km) "
            f"| {verdicts} |"
        )
    metro = 2 * 10 * 1.7 / (2 * FIBRE_KM_PER_MS_RTT)
    return "\n".join(
        [
            "# What timing can resolve",
            "",
            "Generated by `geoattest geo limits > docs/LIMITS.md`; every figure below comes",
            "from the appraiser itself, with the default policy (chips on land, 1 km border",
            "margin, Natural Earth 1:10m, German point of view).",
            "",
            "The best case there is: a landmark standing *at* the site (same building), so the",
            "disk is centred on the chip and its radius is `c * RTT / 2` (149.9 km per ms),",
            "widened by the earth-model margin (0.6%) and the border margin (1 km).",
            "",
            "- *prove site inside*: the largest RTT at which that landmark still gets",
            "  ALLOWED for the site's country; the km figure is the disk radius it buys.",
            "- *prove foreign city outside*: the largest RTT at which a landmark at the",
            "  foreign city gets OUTSIDE for the site's country.",
            "- *site at X ms*: the verdict for a chip at the site, landmark at the site,",
            "  measured RTT X. Any RTT above the first column gives INCONCLUSIVE, never a",
            "  wrong answer.",
            "",
            head,
            rule,
            *rows,
            "",
            "## Reading the table",
            "",
            "An honest RTT is never close to the light-speed floor. Fibre runs at about 2/3 c,",
            "paths are about 1.7 times the straight line, and every switch, NIC and kernel",
            "adds microseconds: a landmark 10 km away across a metro network sees at least",
            f"about {metro * 1000:.0f} us of propagation alone, typically 0.2 to 0.5 ms in",
            "total. So the honest answer for Hong Kong vs Shenzhen, Macau vs Zhuhai and",
            "Singapore vs Johor Bahru is INCONCLUSIVE at any Internet RTT: proving them needs",
            "a landmark in the same data centre with tens of microseconds of RTT (a dedicated",
            "link and a responder that answers in microseconds, as the armed GPU responder",
            "does). Taipei vs Fujian (the strait is about 130 km of sea) and Frankfurt vs",
            "Prague are decidable with a landmark in the same metro area, because the chip",
            "sits far from any foreign land. Seoul's binding border is not Dandong's but",
            "North Korea's, about 40 km away: it needs a metro RTT of about 0.25 ms.",
            "",
            "The nearest landmark's distance dominates: a disk is typically 2.5 to 3 times the",
            "true distance at honest Internet RTTs, so a landmark farther from the chip than",
            "about a third of the distance to the border can never prove it inside.",
            "",
        ]
    )
