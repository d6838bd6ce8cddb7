"""Network emulator micro benchmarks (pytest-benchmark).

Run: ``pytest bench/test_bench_netsim.py --benchmark-only``. The echo pair runs in one
session so the relay's cost reads directly against a bare loopback echo; timer lateness
percentiles come from ``python bench/netsim_latency.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from netsim_latency import echo_server, pinger, relayed

from geoattest.netsim.adversary import Direction, Role, Site
from geoattest.netsim.latency import LatencyModel, haversine_km
from geoattest.netsim.route import Route
from geoattest.netsim.virtual import VirtualClock, VirtualNetwork

MODEL = LatencyModel.default()
PARIS = Site("chip", (48.86, 2.35), Role.CHIP)
TOKYO = Site("lm", (35.68, 139.69), Role.LANDMARK)


def test_sample_a_million_link_delays(benchmark: Callable[..., object]) -> None:
    gen = np.random.default_rng(0)
    lat1, lat2 = gen.uniform(-60, 60, (2, 1_000_000))
    lon1, lon2 = gen.uniform(-180, 180, (2, 1_000_000))

    def sample() -> object:
        return MODEL.one_way_delays_s(haversine_km(lat1, lon1, lat2, lon2), gen)

    benchmark(sample)


def test_route_carries_one_datagram(benchmark: Callable[..., object]) -> None:
    rng = random.Random(0)
    route = Route(PARIS, TOKYO, MODEL, rng)
    benchmark(route.carry, Direction.UPLINK, b"x" * 64, 0, rng)


def test_virtual_network_ping_pong(benchmark: Callable[..., object]) -> None:
    clock = VirtualClock()
    net = VirtualNetwork(clock, MODEL)
    net.attach("lm", TOKYO.location, Role.LANDMARK, lambda p, src, now: [(src, p)])
    net.attach("chip", PARIS.location, Role.CHIP, lambda p, src, now: [])

    def ping() -> None:
        net.send("chip", "lm", b"x" * 64)
        clock.run()

    benchmark(ping)


@pytest.fixture(scope="module")
def landmark() -> Iterator[tuple[str, int]]:
    with echo_server() as address:
        yield address


def test_udp_echo_direct(benchmark: Callable[..., object], landmark: tuple[str, int]) -> None:
    with pinger(landmark) as once:
        benchmark(once)


def test_udp_echo_via_relay_zero_delay(
    benchmark: Callable[..., object], landmark: tuple[str, int]
) -> None:
    with relayed(landmark, None) as address, pinger(address) as once:
        benchmark(once)
