"""Timer precision and relay overhead on loopback, measured in one run.

Run: ``python bench/netsim_latency.py`` (about 20 s). Reports

- the precise timer's lateness (fire time minus due time) for callbacks due 0.1-3 ms ahead;
- the round-trip time of a bare UDP echo on loopback, and through the relay with a
  zero-delay model (pure relay cost: two extra hops and the timer hand-off each way);
- the relay's excess over a 1 ms-each-way emulated delay (RTT - 2 ms - bare echo p50).
"""

from __future__ import annotations

import os
import platform
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from geoattest.netsim.adversary import Adversary, ConstantDelay, Role, Site
from geoattest.netsim.latency import LatencyModel
from geoattest.netsim.relay import Emulator
from geoattest.netsim.timer import PreciseTimer

ZERO_MODEL = LatencyModel.from_mapping(
    {
        "schema": "geoattest.netsim.latency_model/v1",
        "fibre_refractive_index": 1.5,
        "stretch_floor": 1.0,
        "path_classes": {
            name: {
                "stretch_anchors": [{"distance_km": 1000.0, "median": 1.7, "p90": 3.0}],
                "access_delay_ms": 0.0,
                "jitter_mean_ms": 0.0,
                "jitter_fraction_of_propagation": 0.0,
            }
            for name in ("cloud", "cn_consumer")
        },
    }
)
"""No access delay, no jitter; with both ends at one place, no propagation either."""
HERE = (50.11, 8.68)
CHIP = Site("chip", HERE, Role.CHIP)
LANDMARK = Site("lm", HERE, Role.LANDMARK)


def timer_lateness_ns(n: int = 2000, seed: int = 1) -> list[int]:
    """Schedule ``n`` callbacks 0.1-3 ms ahead, one at a time, and record how late each ran."""
    rng = random.Random(seed)
    late: list[int] = []
    done = threading.Event()
    with PreciseTimer() as timer:
        for _ in range(n):
            due = timer.now_ns() + rng.randint(100_000, 3_000_000)
            done.clear()
            timer.schedule(
                due, lambda due=due: (late.append(time.monotonic_ns() - due), done.set())
            )
            done.wait()
    return late


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """A UDP echo on loopback (the stand-in landmark), served by one thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, sender = sock.recvfrom(2048)
            except TimeoutError:
                continue
            sock.sendto(data, sender)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join()
        sock.close()


@contextmanager
def pinger(target: tuple[str, int]) -> Iterator[Callable[[], int]]:
    """A client socket; yields a function that does one round trip and returns its RTT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    payload = bytes(64)

    def once() -> int:
        start = time.monotonic_ns()
        sock.sendto(payload, target)
        sock.recvfrom(2048)
        return time.monotonic_ns() - start

    try:
        yield once
    finally:
        sock.close()


@contextmanager
def relayed(landmark: tuple[str, int], adversary: Adversary | None) -> Iterator[tuple[str, int]]:
    """One emulator link with the zero-delay model in front of ``landmark``."""
    emulator = Emulator(ZERO_MODEL, adversary=adversary)
    link = emulator.add_link(CHIP, LANDMARK, landmark)
    with emulator:
        yield link.address


def rtts_ns(target: tuple[str, int], n: int) -> list[int]:
    with pinger(target) as once:
        for _ in range(50):  # warm-up
            once()
        return [once() for _ in range(n)]


def quantile(samples: list[int], q: float) -> float:
    return statistics.quantiles(samples, n=100)[round(q * 100) - 1]


def main(n: int = 2000) -> None:
    rows: list[tuple[str, list[int]]] = [("timer lateness", timer_lateness_ns(n))]
    with echo_server() as landmark:
        direct = rtts_ns(landmark, n)
        with relayed(landmark, None) as address:
            relay_zero = rtts_ns(address, n)
        with relayed(landmark, ConstantDelay(0.001)) as address:
            relay_1ms = rtts_ns(address, n)
    direct_p50 = statistics.median(direct)
    rows += [
        ("UDP echo RTT, direct", direct),
        ("UDP echo RTT, via relay (zero delay)", relay_zero),
        (
            "relay excess over 2 x 1 ms and direct p50",
            [r - 2_000_000 - int(direct_p50) for r in relay_1ms],
        ),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )
    print(f"{'measure':46} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8}  (n={n})")
    for name, samples in rows:
        p50, p90, p99 = (quantile(samples, q) / 1e3 for q in (0.5, 0.9, 0.99))
        print(f"{name:46} {p50:8.1f} {p90:8.1f} {p99:8.1f}")
    print(f"relay zero-delay p50 / direct p50: {statistics.median(relay_zero) / direct_p50:.2f}x")


if __name__ == "__main__":
    main()
