"""An in-memory network on a virtual clock: deterministic, fast, no sockets.

The same latency model, routes and adversaries as the live relay, driven by a
discrete-event loop instead of real time, so attack tests and fleet studies are exact and
repeatable: one seed, one history. Parties are sans-I/O: each endpoint is a handler fed
``(payload, sender name, now_ns)`` that returns the datagrams to send in reply::

    clock = VirtualClock()
    net = VirtualNetwork(clock, seed=3, adversary=ConstantDelay(0.002))
    net.attach("lm-fra", (50.11, 8.68), Role.LANDMARK, landmark_handler)
    net.attach("chip-1", (48.86, 2.35), Role.CHIP, agent_handler)
    net.send("chip-1", "lm-fra", open_message)
    clock.run()

Replies leave at the instant the datagram arrived (handlers take no time). A datagram
between two endpoints travels on the route between them, built on first use with a
stretch drawn from the network's rng; the route's chip end is the endpoint whose role is
CHIP (the sender when both or neither are).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from functools import partial

from geoattest.errors import ConfigError
from geoattest.netsim.adversary import Adversary, Direction, Role, Site
from geoattest.netsim.latency import LatencyModel, LatLon, PathClass
from geoattest.netsim.route import Route

Handler = Callable[[bytes, str, int], Iterable[tuple[str, bytes]]]
"""An endpoint: ``(payload, sender, now_ns) -> [(destination, payload), ...]``."""


class VirtualClock:
    """A discrete-event loop: callbacks run in time order (ties in scheduling order)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def now_ns(self) -> int:
        """The current virtual time."""
        return self._now_ns

    @property
    def pending(self) -> int:
        """Events scheduled and not yet run."""
        return len(self._queue)

    def schedule(self, at_ns: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` at ``at_ns``.

        Raises:
            ConfigError: ``at_ns`` is in the past.
        """
        if at_ns < self._now_ns:
            raise ConfigError(f"cannot schedule at {at_ns} ns, before now ({self._now_ns} ns)")
        heapq.heappush(self._queue, (at_ns, next(self._order), callback))

    def run_until(self, at_ns: int) -> int:
        """Run every event due at or before ``at_ns``, then move the clock there.

        Returns the number of events run.
        """
        ran = 0
        while self._queue and self._queue[0][0] <= at_ns:
            due_ns, _, callback = heapq.heappop(self._queue)
            self._now_ns = due_ns
            callback()
            ran += 1
        self._now_ns = max(self._now_ns, at_ns)
        return ran

    def run(self, max_events: int = 10_000_000) -> int:
        """Run until no event is left; returns the number run.

        Raises:
            ConfigError: more than ``max_events`` ran (a party that never stops talking).
        """
        ran = 0
        while self._queue:
            if ran >= max_events:
                raise ConfigError(f"still busy after {max_events} events")
            ran += self.run_until(self._queue[0][0])
        return ran


class VirtualNetwork:
    """Endpoints at places, exchanging datagrams through modelled routes."""

    def __init__(
        self,
        clock: VirtualClock,
        model: LatencyModel | None = None,
        *,
        seed: int | str = 0,
        adversary: Adversary | None = None,
        path_class: PathClass = PathClass.CLOUD,
    ) -> None:
        self.clock = clock
        self.model = model or LatencyModel.default()
        self.adversary = adversary
        self.path_class = path_class
        self._rng = random.Random(seed)  # noqa: S311 -- simulation, not secrets
        self._sites: dict[str, Site] = {}
        self._handlers: dict[str, Handler] = {}
        self._routes: dict[frozenset[str], Route] = {}

    def attach(self, name: str, location: LatLon, role: Role, handler: Handler) -> Site:
        """Place an endpoint on the network.

        Raises:
            ConfigError: the name is taken.
        """
        if name in self._sites:
            raise ConfigError(f"endpoint {name!r} is already attached")
        site = Site(name, location, role)
        self._sites[name] = site
        self._handlers[name] = handler
        return site

    def route(self, a: str, b: str) -> Route:
        """The route between two endpoints (built, with its stretch, on first use).

        Raises:
            ConfigError: an endpoint is not attached.
        """
        key = frozenset((a, b))
        route = self._routes.get(key)
        if route is None:
            src, dst = self._site(a), self._site(b)
            dst_is_the_chip = dst.role is Role.CHIP and src.role is not Role.CHIP
            chip, landmark = (dst, src) if dst_is_the_chip else (src, dst)
            route = Route(
                chip,
                landmark,
                self.model,
                self._rng,
                adversary=self.adversary,
                path_class=self.path_class,
            )
            self._routes[key] = route
        return route

    def send(self, src: str, dst: str, payload: bytes) -> None:
        """Send a datagram now; its deliveries are scheduled on the clock.

        Raises:
            ConfigError: an endpoint is not attached, or the adversary broke physics.
        """
        route = self.route(src, dst)
        direction = Direction.UPLINK if route.chip.name == src else Direction.DOWNLINK
        now = self.clock.now_ns()
        for d in route.carry(direction, payload, now, self._rng):
            self.clock.schedule(
                now + d.delay_ns, partial(self._deliver, route, direction, src, dst, d.payload)
            )

    def _deliver(
        self, route: Route, direction: Direction, src: str, dst: str, payload: bytes
    ) -> None:
        route.stats.delivered[direction] += 1
        for reply_to, reply in self._handlers[dst](payload, src, self.clock.now_ns()):
            self.send(dst, reply_to, reply)

    def _site(self, name: str) -> Site:
        try:
            return self._sites[name]
        except KeyError:
            raise ConfigError(f"no endpoint named {name!r} is attached") from None
