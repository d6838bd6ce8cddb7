"""The network adversary: what an owner of the path can do to each datagram.

An :class:`Adversary` is consulted once per datagram per direction, by the live relay
(:mod:`geoattest.netsim.relay`) and by the virtual network (:mod:`geoattest.netsim.virtual`)
alike, so adversaries are pure: they see a :class:`Transit` (where the datagram goes, what
it carries, how long the path would take) and an rng, and return the :class:`DatagramDelivery`
list to make. An empty list drops the datagram. No sockets, no clocks.

Physics still holds. Delays are totals from the send instant, and the network refuses
any delivery faster than ``transit.floor_ns`` (the geodesic distance between the
endpoints at c): an adversary may add delay, or reroute over a faster medium, but never
beat light. Example::

    adversary = Compose(  # a microwave link to the near landmark, and slow the far one
        FasterThanFibre(model, chip.location, near.location, speed_fraction_of_c=0.95),
        SelectiveDelay({"lm-far": 0.004}),
    )
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from geoattest.errors import ConfigError
from geoattest.netsim.latency import LatencyModel, LatLon, PathClass, great_circle_km
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S


class Role(StrEnum):
    """What an endpoint is in the protocol."""

    CHIP = "chip"
    """An on-chip agent (the Attester): the adversary owns its host and network."""
    LANDMARK = "landmark"
    """A trusted timing server at surveyed coordinates."""


class Direction(StrEnum):
    """Which way a datagram travels on a chip-landmark route."""

    UPLINK = "uplink"
    """From the route's chip end to its landmark end."""
    DOWNLINK = "downlink"
    """From the route's landmark end to its chip end."""


class Action(StrEnum):
    """Why a delivery happens; networks count deliveries by action."""

    FORWARD = "forward"
    """The datagram itself, on its own path, possibly held back."""
    REROUTE = "reroute"
    """The datagram itself, on a path the adversary chose (a helper, a faster link)."""
    DUPLICATE = "duplicate"
    """An extra copy sent close behind the original."""
    REPLAY = "replay"
    """A copy held back and sent again much later."""
    INJECT = "inject"
    """A datagram the adversary made up, sent from the sender's own address."""


@dataclass(frozen=True)
class Site:
    """A named endpoint at a place."""

    name: str
    location: LatLon
    role: Role


@dataclass(frozen=True)
class Transit:
    """One datagram in flight, as an adversary on the path sees it."""

    src: Site
    dst: Site
    direction: Direction
    landmark_id: str
    """The landmark end's name (per-landmark adversaries key on it)."""
    payload: bytes
    sent_ns: int
    """When the datagram left the sender, on the network's clock."""
    seq: int
    """Index of this datagram on its route and direction, from 0."""
    delay_ns: int
    """What delivering it would take now: the honest path, or a plan an earlier
    adversary in a :class:`Compose` made."""
    floor_ns: int
    """Distance between the endpoints at c: no delivery may be faster."""
    action: Action = Action.FORWARD

    def deliver(self, extra_ns: int = 0, action: Action | None = None) -> DatagramDelivery:
        """This datagram on its current path, ``extra_ns`` later."""
        return DatagramDelivery(self.delay_ns + extra_ns, self.payload, action or self.action)


@dataclass(frozen=True)
class DatagramDelivery:
    """One datagram to hand to the receiver ``delay_ns`` after it was sent."""

    delay_ns: int
    payload: bytes
    action: Action = Action.FORWARD


class Adversary(Protocol):
    """Decides the fate of each datagram. Must be pure apart from ``rng``."""

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        """The deliveries to make for this datagram; empty drops it."""
        ...


def to_ns(seconds: float) -> int:
    """Seconds to whole nanoseconds, rounded up so a delay never undercuts its model.

    Delays are integers from here on, so sums and comparisons are exact (an honest path
    keeps its order, a link at exactly c meets the light floor exactly).
    """
    return math.ceil(seconds * 1e9)


def _non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, not {value}")


def _probability(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"probability {value} is not in [0, 1]")


@dataclass(frozen=True)
class ConstantDelay:
    """Hold every datagram back by the same amount."""

    extra_s: float

    def __post_init__(self) -> None:
        _non_negative("extra delay", self.extra_s)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        return [transit.deliver(to_ns(self.extra_s))]


@dataclass(frozen=True)
class SelectiveDelay:
    """Hold datagrams back by a per-landmark amount (to push the fix away from some)."""

    per_landmark_s: Mapping[str, float]

    def __post_init__(self) -> None:
        for landmark, extra in self.per_landmark_s.items():
            _non_negative(f"extra delay for {landmark}", extra)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        return [transit.deliver(to_ns(self.per_landmark_s.get(transit.landmark_id, 0.0)))]


@dataclass(frozen=True)
class AdaptiveDelay:
    """Add just enough delay that each landmark sees the chip as if it sat at ``claimed``.

    The target is the model's delay from ``claimed`` to the far end at the ``quantile``
    stretch; the adversary can only add, so landmarks nearer the true site than the
    claimed one see the claim, and the others see the truth.
    """

    model: LatencyModel
    claimed: LatLon
    quantile: float = 0.5
    path_class: PathClass = PathClass.CLOUD
    _targets: dict[LatLon, int] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError(f"quantile {self.quantile} is not in (0, 1)")

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        far_end = transit.dst if transit.direction is Direction.UPLINK else transit.src
        target = self._targets.get(far_end.location)
        if target is None:
            d = great_circle_km(self.claimed, far_end.location)
            stretch = self.model.stretch_quantile(d, self.quantile, self.path_class)
            target = to_ns(self.model.base_delay_s(d, stretch, self.path_class))
            self._targets[far_end.location] = target
        return [transit.deliver(max(0, target - transit.delay_ns))]


@dataclass(frozen=True)
class Drop:
    """Lose each datagram with probability ``probability``."""

    probability: float

    def __post_init__(self) -> None:
        _probability(self.probability)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        return [] if rng.random() < self.probability else [transit.deliver()]


@dataclass(frozen=True)
class Duplicate:
    """Deliver each datagram ``copies`` extra times, ``spacing_s`` apart."""

    copies: int = 1
    spacing_s: float = 0.0

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise ConfigError(f"copies must be >= 1, not {self.copies}")
        _non_negative("duplicate spacing", self.spacing_s)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:  # noqa: ARG002
        return [transit.deliver()] + [
            transit.deliver(k * to_ns(self.spacing_s), Action.DUPLICATE)
            for k in range(1, self.copies + 1)
        ]


@dataclass(frozen=True)
class Reorder:
    """Hold a random fraction of datagrams back by ``hold_s`` so later ones overtake."""

    probability: float
    hold_s: float

    def __post_init__(self) -> None:
        _probability(self.probability)
        _non_negative("reorder hold", self.hold_s)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        held = rng.random() < self.probability
        return [transit.deliver(to_ns(self.hold_s) if held else 0)]


@dataclass(frozen=True)
class Replay:
    """Deliver each datagram, then a recorded copy again ``after_s`` later."""

    after_s: float
    probability: float = 1.0

    def __post_init__(self) -> None:
        _non_negative("replay delay", self.after_s)
        _probability(self.probability)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        original = transit.deliver()
        if rng.random() >= self.probability:
            return [original]
        return [original, transit.deliver(to_ns(self.after_s), Action.REPLAY)]


@dataclass(frozen=True)
class HelperRelay:
    """Route every datagram through a helper at ``helper``: sender -> helper -> receiver.

    Each leg follows the model at its median stretch (a stable route), plus jitter.
    By the triangle inequality this is never faster than light on the direct path.
    """

    model: LatencyModel
    helper: LatLon
    path_class: PathClass = PathClass.CLOUD

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        legs = _leg_s(self.model, transit.src.location, self.helper, rng, self.path_class) + _leg_s(
            self.model, self.helper, transit.dst.location, rng, self.path_class
        )
        return [DatagramDelivery(to_ns(legs), transit.payload, Action.REROUTE)]


@dataclass(frozen=True)
class FasterThanFibre:
    """A private straight link between ``a`` and ``b`` at a fraction of c (microwave about
    0.95, hollow-core fibre about 0.997), used whenever it beats the path in hand.

    Datagrams reach the nearer end of the link and leave from the other over ordinary
    model legs (median stretch, plus jitter); a link end at the sender's or receiver's own
    site costs nothing.
    """

    model: LatencyModel
    a: LatLon
    b: LatLon
    speed_fraction_of_c: float
    path_class: PathClass = PathClass.CLOUD

    def __post_init__(self) -> None:
        if not 0 < self.speed_fraction_of_c <= 1:
            raise ConfigError(f"link speed {self.speed_fraction_of_c} c is not in (0, c]")

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        link_s = great_circle_km(self.a, self.b) / (
            self.speed_fraction_of_c * SPEED_OF_LIGHT_KM_PER_S
        )
        src, dst = transit.src.location, transit.dst.location
        via_link = to_ns(
            min(
                _leg_s(self.model, src, start, rng, self.path_class)
                + link_s
                + _leg_s(self.model, end, dst, rng, self.path_class)
                for start, end in ((self.a, self.b), (self.b, self.a))
            )
        )
        if via_link >= transit.delay_ns:
            return [transit.deliver()]
        return [DatagramDelivery(via_link, transit.payload, Action.REROUTE)]


@dataclass(frozen=True)
class Compose:
    """Apply adversaries in order: each one acts on every delivery the previous made.

    Put path-choosing adversaries (helpers, fast links) before delaying ones.
    """

    stages: tuple[Adversary, ...]

    def __init__(self, *stages: Adversary) -> None:
        object.__setattr__(self, "stages", stages)

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        planned: Sequence[DatagramDelivery] = [transit.deliver()]
        for stage in self.stages:
            planned = [
                out
                for d in planned
                for out in stage.intercept(
                    replace(transit, payload=d.payload, delay_ns=d.delay_ns, action=d.action), rng
                )
            ]
        return planned


@dataclass(frozen=True)
class Targeted:
    """Apply ``adversary`` only on routes whose chip is one of ``chips``."""

    chips: frozenset[str]
    adversary: Adversary

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        chip = transit.src if transit.direction is Direction.UPLINK else transit.dst
        if chip.name in self.chips:
            return self.adversary.intercept(transit, rng)
        return [transit.deliver()]


def _leg_s(
    model: LatencyModel, a: LatLon, b: LatLon, rng: random.Random, path_class: PathClass
) -> float:
    """One leg of an adversary's path; free when both ends are the same site."""
    if a == b:
        return 0.0
    d = great_circle_km(a, b)
    stretch = model.median_stretch(d, path_class)
    return model.base_delay_s(d, stretch, path_class) + model.sample_jitter_s(
        d, stretch, rng, path_class
    )
