"""The virtual network: exact event order, modelled delays, adversaries, one seed one history."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from geoattest.errors import ConfigError
from geoattest.netsim.adversary import (
    Action,
    Adversary,
    Direction,
    Drop,
    Duplicate,
    FasterThanFibre,
    Reorder,
    Replay,
    Role,
)
from geoattest.netsim.latency import LatencyModel, great_circle_km, light_floor_s
from geoattest.netsim.virtual import VirtualClock, VirtualNetwork

MODEL = LatencyModel.default()
PARIS = (48.86, 2.35)
FRANKFURT = (50.11, 8.68)
TOKYO = (35.68, 139.69)


def test_clock_runs_events_in_time_order_ties_in_scheduling_order() -> None:
    clock = VirtualClock(start_ns=100)
    seen: list[tuple[str, int]] = []
    for name, at in [("c", 300), ("a", 200), ("b", 200), ("d", 100)]:
        clock.schedule(at, lambda name=name: seen.append((name, clock.now_ns())))
    assert clock.run_until(250) == 3
    assert seen == [("d", 100), ("a", 200), ("b", 200)]
    assert clock.now_ns() == 250
    assert clock.run() == 1
    assert seen[-1] == ("c", 300)
    with pytest.raises(ConfigError, match="before now"):
        clock.schedule(299, lambda: None)


def test_a_party_that_never_stops_is_cut_off() -> None:
    clock = VirtualClock()

    def again() -> None:
        clock.schedule(clock.now_ns() + 1, again)

    clock.schedule(0, again)
    with pytest.raises(ConfigError, match="still busy"):
        clock.run(max_events=100)


class Log:
    """A landmark that echoes, and a chip that records what came back."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[bytes, int]] = []

    def echo(self, payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
        return [(src, payload)]

    def record(self, payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
        self.arrivals.append((payload, now_ns))
        return []


def ping(
    n: int,
    *,
    seed: int = 0,
    adversary: Adversary | None = None,
    landmark: tuple[float, float] = TOKYO,
) -> tuple[VirtualNetwork, Log]:
    clock = VirtualClock()
    net = VirtualNetwork(clock, MODEL, seed=seed, adversary=adversary)
    log = Log()
    net.attach("lm", landmark, Role.LANDMARK, log.echo)
    net.attach("chip", PARIS, Role.CHIP, log.record)
    for i in range(n):
        clock.schedule(i * 1_000_000, lambda i=i: net.send("chip", "lm", b"%d" % i))
    clock.run()
    return net, log


def test_round_trips_take_at_least_the_modelled_base_delay_both_ways() -> None:
    net, log = ping(20)
    route = net.route("lm", "chip")
    assert route.chip.name == "chip"
    assert len(log.arrivals) == 20
    for payload, at in log.arrivals:
        sent = int(payload) * 1_000_000
        assert at - sent >= 2 * route.base_delay_s * 1e9
    assert route.stats.delivered == {Direction.UPLINK: 20, Direction.DOWNLINK: 20}


def test_same_seed_same_history_other_seed_other_history() -> None:
    assert ping(10, seed=4)[1].arrivals == ping(10, seed=4)[1].arrivals
    assert ping(10, seed=4)[1].arrivals != ping(10, seed=5)[1].arrivals


def test_drop_duplicate_and_replay_counts() -> None:
    _, log = ping(10, adversary=Drop(1.0))
    assert log.arrivals == []
    net, log = ping(10, adversary=Duplicate(copies=1))
    # each copy is echoed, and each echo is duplicated: 4 arrivals per ping
    assert len(log.arrivals) == 40
    assert net.route("chip", "lm").stats.planned[Action.DUPLICATE] == 10 + 20
    net, log = ping(5, adversary=Replay(after_s=1.0))
    assert len(log.arrivals) == 20
    late = [at for p, at in log.arrivals if at > int(p) * 1_000_000 + 10**9]
    assert len(late) == 15  # every arrival that went through at least one replay


def test_honest_paths_deliver_in_the_order_sent() -> None:
    clock = VirtualClock()
    net = VirtualNetwork(clock, MODEL, seed=9)
    log = Log()
    net.attach("lm", TOKYO, Role.LANDMARK, log.record)
    net.attach("chip", PARIS, Role.CHIP, log.record)
    for i in range(500):  # back to back: jitter alone would swap many neighbours
        net.send("chip", "lm", b"%d" % i)
    clock.run()
    assert [int(p) for p, _ in log.arrivals] == list(range(500))


def test_reorder_lets_later_datagrams_overtake() -> None:
    _, log = ping(200, adversary=Reorder(0.3, hold_s=0.005))
    order = [int(p) for p, _ in log.arrivals]
    assert sorted(order) == list(range(200))
    assert order != sorted(order)


def test_fast_link_shortens_round_trips_but_never_below_light() -> None:
    fast = FasterThanFibre(MODEL, PARIS, TOKYO, 0.997)
    _, honest = ping(5)
    _, log = ping(5, adversary=fast)
    floor_ns = 2 * light_floor_s(great_circle_km(PARIS, TOKYO)) * 1e9
    for (p, at), (_, honest_at) in zip(log.arrivals, honest.arrivals, strict=True):
        rtt = at - int(p) * 1_000_000
        assert floor_ns <= rtt < honest_at - int(p) * 1_000_000


def test_unknown_or_duplicate_endpoints_are_config_errors() -> None:
    net = VirtualNetwork(VirtualClock(), MODEL)
    net.attach("a", PARIS, Role.CHIP, Log().record)
    with pytest.raises(ConfigError, match="already attached"):
        net.attach("a", PARIS, Role.CHIP, Log().record)
    with pytest.raises(ConfigError, match="no endpoint"):
        net.send("a", "nowhere", b"x")
