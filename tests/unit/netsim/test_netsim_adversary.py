"""Adversaries and routes: each attack does what it says, and none ever beats light."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.errors import ConfigError
from geoattest.netsim.adversary import (
    Action,
    AdaptiveDelay,
    Adversary,
    Compose,
    ConstantDelay,
    DatagramDelivery,
    Direction,
    Drop,
    Duplicate,
    FasterThanFibre,
    HelperRelay,
    Reorder,
    Replay,
    Role,
    SelectiveDelay,
    Site,
    Targeted,
    Transit,
)
from geoattest.netsim.latency import LatencyModel, LatLon, great_circle_km, light_floor_s
from geoattest.netsim.route import Route

MODEL = LatencyModel.default()
PARIS = Site("chip-paris", (48.86, 2.35), Role.CHIP)
FRANKFURT = Site("lm-fra", (50.11, 8.68), Role.LANDMARK)
SINGAPORE = Site("lm-sin", (1.35, 103.82), Role.LANDMARK)


def route(adversary: Adversary | None, landmark: Site = FRANKFURT, chip: Site = PARIS) -> Route:
    return Route(chip, landmark, MODEL, random.Random(0), adversary=adversary)


def carry(r: Route, n: int = 1, direction: Direction = Direction.UPLINK) -> list[DatagramDelivery]:
    rng = random.Random(1)
    return [d for i in range(n) for d in r.carry(direction, b"x%d" % i, i, rng)]


# --- physics, whatever the adversary ---

locations = st.tuples(
    st.floats(-89.0, 89.0, allow_nan=False), st.floats(-180.0, 180.0, allow_nan=False)
)
delays = st.floats(0.0, 0.05, allow_nan=False)
probabilities = st.floats(0.0, 1.0, allow_nan=False)


def adversaries(chip: LatLon, landmark: LatLon) -> st.SearchStrategy[Adversary]:
    ends = st.one_of(st.just(chip), st.just(landmark), locations)
    single: st.SearchStrategy[Adversary] = st.one_of(
        st.builds(ConstantDelay, delays),
        st.builds(SelectiveDelay, st.dictionaries(st.just("lm"), delays)),
        st.builds(AdaptiveDelay, st.just(MODEL), locations, st.floats(0.01, 0.99)),
        st.builds(Drop, probabilities),
        st.builds(Duplicate, st.integers(1, 3), delays),
        st.builds(Reorder, probabilities, delays),
        st.builds(Replay, delays, probabilities),
        st.builds(HelperRelay, st.just(MODEL), locations),
        st.builds(FasterThanFibre, st.just(MODEL), ends, ends, st.floats(0.5, 1.0)),
    )
    return st.one_of(single, st.lists(single, min_size=1, max_size=3).map(lambda a: Compose(*a)))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), chip=locations, landmark=locations, seed=st.integers(0, 2**32))
def test_no_adversary_delivers_faster_than_light(
    data: st.DataObject, chip: LatLon, landmark: LatLon, seed: int
) -> None:
    adversary = data.draw(adversaries(chip, landmark))
    r = Route(
        Site("chip", chip, Role.CHIP),
        Site("lm", landmark, Role.LANDMARK),
        MODEL,
        random.Random(seed),
        adversary=adversary,
    )
    floor_ns = light_floor_s(great_circle_km(chip, landmark)) * 1e9
    rng = random.Random(seed)
    for direction in Direction:
        for d in r.carry(direction, b"p", 0, rng):
            assert d.delay_ns >= floor_ns


class Teleport:
    """A broken adversary: delivers instantly."""

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        return [DatagramDelivery(0, transit.payload)]


def test_route_refuses_a_delivery_faster_than_light() -> None:
    with pytest.raises(ConfigError, match="faster than light"):
        carry(route(Teleport()))


def test_faster_than_fibre_beats_the_honest_path_but_not_light() -> None:
    honest = carry(route(None, SINGAPORE), 20)
    fast = carry(
        route(FasterThanFibre(MODEL, PARIS.location, SINGAPORE.location, 0.95), SINGAPORE), 20
    )
    floor = route(None, SINGAPORE).floor_ns
    assert all(d.action is Action.REROUTE for d in fast)
    assert all(f.delay_ns == pytest.approx(floor / 0.95) for f in fast)
    assert max(f.delay_ns for f in fast) < min(h.delay_ns for h in honest)
    light = carry(route(FasterThanFibre(MODEL, SINGAPORE.location, PARIS.location, 1.0), SINGAPORE))
    assert light[0].delay_ns == floor


def test_a_useless_fast_link_is_not_used() -> None:
    far_away = FasterThanFibre(MODEL, (-33.9, 151.2), (-37.8, 145.0), 0.997)
    assert all(d.action is Action.FORWARD for d in carry(route(far_away), 10))


def test_helper_relay_is_slower_than_going_direct() -> None:
    direct = Route(PARIS, FRANKFURT, MODEL, random.Random(0), stretch=1.0)
    via_helper = carry(route(HelperRelay(MODEL, (40.4, -3.7))), 10)
    assert all(d.action is Action.REROUTE for d in via_helper)
    assert min(d.delay_ns for d in via_helper) > direct.base_delay_s * 1e9


def test_constant_and_selective_delays_add_exactly() -> None:
    honest = carry(route(None), 5)
    held = carry(route(ConstantDelay(0.003)), 5)
    assert [h.delay_ns - o.delay_ns for h, o in zip(held, honest, strict=True)] == [3_000_000] * 5
    selective = SelectiveDelay({"lm-sin": 0.01})
    assert [d.delay_ns for d in carry(route(selective), 5)] == [d.delay_ns for d in honest]
    far = carry(route(selective, SINGAPORE), 5)
    assert [d.delay_ns for d in far] == [
        d.delay_ns + 10_000_000 for d in carry(route(None, SINGAPORE), 5)
    ]


def test_adaptive_delay_mimics_a_farther_site_and_never_removes_delay() -> None:
    beijing = (39.9, 116.4)
    adaptive = AdaptiveDelay(MODEL, beijing)
    near = carry(route(adaptive, FRANKFURT), 5)  # Paris->Frankfurt mimics Beijing->Frankfurt
    d = great_circle_km(beijing, FRANKFURT.location)
    target = MODEL.base_delay_s(d, MODEL.median_stretch(d))
    assert all(x.delay_ns >= target * 1e9 for x in near)
    honest = carry(route(None, FRANKFURT), 5)
    assert all(a.delay_ns >= h.delay_ns for a, h in zip(near, honest, strict=True))


def test_drop_duplicate_replay_counts() -> None:
    dropped = route(Drop(1.0))
    assert carry(dropped, 10) == []
    assert dropped.stats.dropped[Direction.UPLINK] == 10
    dup = route(Duplicate(copies=2, spacing_s=0.001))
    out = carry(dup, 4)
    assert dup.stats.planned == {Action.FORWARD: 4, Action.DUPLICATE: 8}
    assert [d.delay_ns - out[0].delay_ns for d in out[:3]] == [0, 1_000_000, 2_000_000]
    replay = route(Replay(after_s=0.5))
    out = carry(replay, 3)
    assert replay.stats.planned == {Action.FORWARD: 3, Action.REPLAY: 3}
    assert out[1].delay_ns == out[0].delay_ns + 500_000_000
    assert out[1].payload == out[0].payload
    half = route(Drop(0.5))
    assert 350 < len(carry(half, 1000)) < 650


def test_reorder_holds_a_fraction_back() -> None:
    r = route(Reorder(0.3, 0.01))
    out = carry(r, 1000)
    held = sum(d.delay_ns > (r.base_delay_s + 0.009) * 1e9 for d in out)
    assert 200 < held < 400


def test_targeted_only_touches_the_named_chips() -> None:
    other = Site("chip-other", PARIS.location, Role.CHIP)
    targeted = Targeted(frozenset({"chip-paris"}), Drop(1.0))
    assert carry(route(targeted), 3) == []
    assert carry(route(targeted, FRANKFURT, PARIS), 1, Direction.DOWNLINK) == []
    assert len(carry(route(targeted, FRANKFURT, other), 3)) == 3


def test_compose_applies_stages_to_every_copy() -> None:
    out = carry(route(Compose(Duplicate(1), ConstantDelay(0.002))), 1)
    honest = carry(route(None), 1)[0]
    assert [d.action for d in out] == [Action.FORWARD, Action.DUPLICATE]
    assert [d.delay_ns for d in out] == [honest.delay_ns + 2_000_000] * 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConstantDelay(-0.001),
        lambda: ConstantDelay(float("inf")),
        lambda: SelectiveDelay({"lm": -1.0}),
        lambda: Drop(1.5),
        lambda: Duplicate(0),
        lambda: Reorder(0.5, -1.0),
        lambda: Replay(float("nan")),
        lambda: AdaptiveDelay(MODEL, (0.0, 0.0), quantile=1.0),
        lambda: FasterThanFibre(MODEL, (0.0, 0.0), (1.0, 1.0), 1.01),
        lambda: FasterThanFibre(MODEL, (0.0, 0.0), (1.0, 1.0), 0.0),
    ],
)
def test_bad_adversary_parameters_are_config_errors(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()


def test_route_refuses_a_stretch_below_the_floor() -> None:
    with pytest.raises(ConfigError, match="below the floor"):
        Route(PARIS, FRANKFURT, MODEL, random.Random(0), stretch=0.9)
