"""A chip-landmark route: the one place that turns a sent datagram into deliveries.

Both networks (the live relay and the virtual one) hand every datagram to
:meth:`Route.carry`, which samples the honest delay from the latency model, lets the
adversary act, and enforces physics: a delivery faster than light between the two
endpoints is a bug in an adversary and raises, never silently happens.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from geoattest.errors import ConfigError
from geoattest.netsim.adversary import (
    Action,
    Adversary,
    DatagramDelivery,
    Direction,
    Site,
    Transit,
    to_ns,
)
from geoattest.netsim.latency import LatencyModel, PathClass, great_circle_km, light_floor_s


@dataclass
class RouteStats:
    """What happened on a route. ``delivered`` is counted by the network that delivers."""

    received: Counter[Direction] = field(default_factory=Counter)
    dropped: Counter[Direction] = field(default_factory=Counter)
    planned: Counter[Action] = field(default_factory=Counter)
    delivered: Counter[Direction] = field(default_factory=Counter)


class Route:
    """The path between a chip and a landmark, with a stretch fixed when it is built
    (Internet routes are stable for hours); every datagram gets fresh jitter, and the
    honest path delivers in the order sent (only an adversary reorders)."""

    def __init__(
        self,
        chip: Site,
        landmark: Site,
        model: LatencyModel,
        rng: random.Random,
        *,
        adversary: Adversary | None = None,
        path_class: PathClass = PathClass.CLOUD,
        stretch: float | None = None,
    ) -> None:
        """Draw the stretch from ``rng`` unless one is given.

        Raises:
            ConfigError: ``stretch`` is below the model's floor.
        """
        self.chip = chip
        self.landmark = landmark
        self.model = model
        self.adversary = adversary
        self.path_class = path_class
        self.distance_km = great_circle_km(chip.location, landmark.location)
        if stretch is None:
            stretch = model.sample_stretch(self.distance_km, rng, path_class)
        elif not stretch >= model.stretch_floor:
            raise ConfigError(f"stretch {stretch} is below the floor {model.stretch_floor}")
        self.stretch = stretch
        self.floor_ns = to_ns(light_floor_s(self.distance_km))
        self.base_delay_s = model.base_delay_s(self.distance_km, stretch, path_class)
        self.stats = RouteStats()
        self._last_arrival_ns: Counter[Direction] = Counter()

    def carry(
        self, direction: Direction, payload: bytes, sent_ns: int, rng: random.Random
    ) -> list[DatagramDelivery]:
        """The deliveries for one datagram sent at ``sent_ns`` (empty: dropped).

        Raises:
            ConfigError: the adversary planned a delivery faster than light.
        """
        seq = self.stats.received[direction]
        self.stats.received[direction] += 1
        jitter_s = self.model.sample_jitter_s(self.distance_km, self.stretch, rng, self.path_class)
        # A path is a queue: jitter delays a datagram, it never lets one overtake another.
        honest_ns = max(
            to_ns(self.base_delay_s + jitter_s), self._last_arrival_ns[direction] - sent_ns
        )
        self._last_arrival_ns[direction] = sent_ns + honest_ns
        src, dst = (
            (self.chip, self.landmark)
            if direction is Direction.UPLINK
            else (self.landmark, self.chip)
        )
        transit = Transit(
            src=src,
            dst=dst,
            direction=direction,
            landmark_id=self.landmark.name,
            payload=payload,
            sent_ns=sent_ns,
            seq=seq,
            delay_ns=honest_ns,
            floor_ns=self.floor_ns,
        )
        deliveries = (
            [transit.deliver()]
            if self.adversary is None
            else list(self.adversary.intercept(transit, rng))
        )
        for d in deliveries:
            if d.delay_ns < self.floor_ns:
                raise ConfigError(
                    f"{type(self.adversary).__name__} planned a {d.action.value} delivery "
                    f"in {d.delay_ns} ns, faster than light over {self.distance_km:.1f} km "
                    f"({self.floor_ns} ns)"
                )
            self.stats.planned[d.action] += 1
        if not deliveries:
            self.stats.dropped[direction] += 1
        return deliveries
