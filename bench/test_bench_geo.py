"""Geography on the verifier's hot path: verdict time per proof against a country policy,
as a ratio to the same proof's signature checks (2k + 1 ES256 verifications), one run.

Run ``python bench/test_bench_geo.py`` for the ratio table, and
``pytest bench/test_bench_geo.py --benchmark-only`` for the pytest-benchmark figures.

Proofs are realistic: chips at 16 data-centre sites, each proof using the k nearest of
30 landmark cities, with honest RTTs (fibre at 2/3 c, path stretch 1.7, 0.1 ms access),
judged against the chip's own country under the default policy (land assumption).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable

import pytest

from geoattest.crypto import KeySigner
from geoattest.geo import GeoAppraiser, build_policy, country_region
from geoattest.geo.sphere import destination, distance_km
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S, LandmarkBound

CHIPS = [
    # Data-centre sites 10 to 60 km from the nearest landmark city.
    ("DE", 50.47, 8.37),  # Limburg, north-west of Frankfurt
    ("FR", 48.70, 2.17),  # Saclay, south-west of Paris
    ("SG", 1.35, 103.70),  # Jurong, Singapore
    ("JP", 35.86, 139.66),  # Saitama, north of Tokyo
    ("TW", 24.95, 121.23),  # Taoyuan
    ("KR", 37.27, 127.01),  # Suwon, south of Seoul
    ("US", 41.60, -88.08),  # Joliet, south-west of Chicago
    ("HK", 22.37, 114.11),  # Tsuen Wan, Hong Kong
    ("AU", -33.80, 150.90),  # Western Sydney
    ("BR", -23.19, -46.88),  # Jundiai, north of Sao Paulo
    ("IN", 19.03, 73.03),  # Navi Mumbai
    ("NL", 52.40, 4.65),  # Haarlem, west of Amsterdam
    ("US", 39.30, -77.20),  # Maryland, between Ashburn and New York's landmarks
    ("CN", 31.30, 120.60),  # Suzhou, west of Shanghai
    ("DE", 52.40, 13.06),  # Potsdam, south-west of Berlin
    ("JP", 34.80, 135.40),  # Osaka suburbs
]
LANDMARKS = [
    (50.05, 8.57),
    (52.52, 13.40),
    (48.14, 11.58),
    (48.85, 2.35),
    (51.51, -0.13),
    (52.37, 4.90),
    (50.08, 14.44),
    (47.37, 8.54),
    (45.46, 9.19),
    (40.42, -3.70),
    (1.29, 103.85),
    (3.14, 101.69),
    (-6.21, 106.85),
    (13.76, 100.50),
    (22.30, 114.17),
    (25.04, 121.53),
    (31.23, 121.47),
    (37.55, 126.99),
    (35.69, 139.69),
    (34.69, 135.50),
    (41.88, -87.63),
    (40.71, -74.01),
    (39.04, -77.49),
    (37.77, -122.42),
    (47.61, -122.33),
    (-33.87, 151.21),
    (-37.81, 144.96),
    (-23.55, -46.63),
    (19.08, 72.88),
    (28.61, 77.21),
]
FIBRE_KM_PER_NS = SPEED_OF_LIGHT_KM_PER_S * (2 / 3) / 1e9
STRETCH = 1.7
ACCESS_NS = 100_000


def honest_rtt_ns(km: float) -> int:
    return math.ceil(2 * km * STRETCH / FIBRE_KM_PER_NS) + ACCESS_NS


def proofs(k: int) -> list[tuple[list[LandmarkBound], str]]:
    """One proof per chip: its k nearest landmarks, honest RTTs, its own country."""
    out = []
    for code, lat, lon in CHIPS:
        nearest = sorted(LANDMARKS, key=lambda p: float(distance_km(lat, lon, p[0], p[1])))[:k]
        bounds = [
            LandmarkBound(f"lm{i}", p[0], p[1], honest_rtt_ns(float(distance_km(lat, lon, *p))))
            for i, p in enumerate(nearest)
        ]
        out.append((bounds, code))
    return out


def surrounded(k: int) -> list[tuple[list[LandmarkBound], str]]:
    """Worst case: k landmarks ring each chip 150 km out on near-light-speed links, so
    every disk cuts the feasible region and all k polygons are intersected."""
    out = []
    for code, lat, lon in CHIPS:
        bounds = []
        for i in range(k):
            la, lo = destination(lat, lon, 360.0 * i / k, 150.0)
            km = float(distance_km(lat, lon, float(la), float(lo)))
            rtt = math.ceil(2 * km * 1.1 / (SPEED_OF_LIGHT_KM_PER_S / 1e9))
            bounds.append(LandmarkBound(f"ring{i}", float(la), float(lo), rtt))
        out.append((bounds, code))
    return out


def country_appraiser(*, by_reach: bool = True) -> GeoAppraiser:
    """``by_reach``: with the reach shortcut (:mod:`geoattest.geo.reach`), or the land
    index always (its baseline)."""
    codes = sorted({c for c, _, _ in CHIPS} | {"CN", "MY", "ID", "CZ", "CH", "IT", "ES", "GB"})
    policy = build_policy(
        "bench-countries",
        1,
        [country_region(c, [c]) for c in codes],
        embargo=["KP", "IR", "SY", "CU", "RU", "BY"],
    )
    return GeoAppraiser(policy, by_reach=by_reach)


def signature_checks(k: int) -> Callable[[], None]:
    """The 2k + 1 ES256 verifications of a proof with k receipts (300-byte messages)."""
    signer = KeySigner.generate()
    message = b"\x5a" * 300
    signature = signer.sign(message)
    key = signer.verifying_key
    n = 2 * k + 1

    def check() -> None:
        for _ in range(n):
            key.verify(signature, message)

    return check


def verdicts(appraiser: GeoAppraiser, k: int, worst: bool = False) -> Callable[[], None]:
    """Appraise every chip's proof once."""
    cases = surrounded(k) if worst else proofs(k)

    def run() -> None:
        for bounds, region in cases:
            appraiser.appraise(bounds, region)

    return run


@pytest.fixture(scope="module")
def appraiser() -> GeoAppraiser:
    return country_appraiser()


@pytest.mark.parametrize("k", [4, 8])
def test_bench_verdict_per_proof(benchmark, appraiser: GeoAppraiser, k: int) -> None:
    run = verdicts(appraiser, k)
    run()  # warm
    benchmark.extra_info["proofs_per_round"] = len(CHIPS)
    benchmark(run)


@pytest.mark.parametrize("k", [4, 8])
def test_bench_verdict_per_proof_every_disk_cuts(
    benchmark, appraiser: GeoAppraiser, k: int
) -> None:
    run = verdicts(appraiser, k, worst=True)
    run()
    benchmark(run)


def in_data_centres() -> list[tuple[list[LandmarkBound], str]]:
    """Each chip 2 km from a landmark of its own data centre (a 0.1 ms access RTT), with
    its k = 4 nearest cities' landmarks beside it: one disk alone draws the region."""
    out = []
    for bounds, code in proofs(4):
        lat, lon = (float(x) for x in destination(bounds[0].latitude, bounds[0].longitude, 0, 2))
        local = LandmarkBound("dc", lat, lon, ACCESS_NS // 10)
        out.append(([local, *bounds], code))
    return out


@pytest.mark.parametrize("by_reach", [True, False], ids=["by-reach", "land-index"])
@pytest.mark.parametrize("call", ["appraise", "verdict"])
def test_bench_one_disk_draws_the_region(benchmark, call: str, by_reach: bool) -> None:
    """The reach shortcut against its baseline (the land index), in the same run."""
    appraiser = country_appraiser(by_reach=by_reach)
    cases = in_data_centres()
    method = getattr(appraiser, call)

    def run() -> None:
        for bounds, region in cases:
            method(bounds, region)

    run()
    benchmark.extra_info["proofs_per_round"] = len(cases)
    benchmark(run)


@pytest.mark.parametrize("k", [4, 8])
def test_bench_signature_checks_per_proof(benchmark, k: int) -> None:
    benchmark.extra_info["verifications"] = 2 * k + 1
    benchmark(signature_checks(k))


def _median_us(fn: Callable[[], None], per_call: int, rounds: int = 31, inner: int = 40) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner / per_call * 1e6)
    return statistics.median(samples)


def main() -> None:
    appraiser = country_appraiser()
    print(f"{platform.machine()}, CPython {platform.python_version()}")
    print("| proofs | k | verdict per proof (us) | 2k+1 ES256 verifications (us) | ratio |")
    print("|---|---|---|---|---|")
    for worst, k in ((False, 4), (False, 8), (True, 4), (True, 8)):
        run = verdicts(appraiser, k, worst)
        run()
        # Interleave the two measurements so load on the machine hits both alike.
        geo, sig = [], []
        check = signature_checks(k)
        for _ in range(5):
            geo.append(_median_us(run, len(CHIPS), rounds=7, inner=20))
            sig.append(_median_us(check, 1, rounds=7, inner=60))
        g, s = statistics.median(geo), statistics.median(sig)
        label = "every disk cuts" if worst else "nearest landmarks"
        print(f"| {label} | {k} | {g:.0f} | {s:.0f} | {g / s:.3f} |")
    counts: dict[str, int] = {}
    for k in (4, 8):
        for bounds, region in proofs(k):
            v = appraiser.appraise(bounds, region).verdict.value
            counts[f"k={k} {v}"] = counts.get(f"k={k} {v}", 0) + 1
    print("verdict mix:", ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
