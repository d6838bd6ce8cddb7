"""A netem-like UDP relay on loopback: real sockets, emulated geography.

Each :class:`Link` stands for the network path between one chip (at a location) and one
landmark (at a location, listening on a real UDP address). The link owns a loopback
port; the chip's agent sends to it instead of to the landmark. The relay forwards each
datagram after the delay its :class:`~geoattest.netsim.route.Route` plans (honest
propagation with the link's fixed stretch, fresh jitter, then the adversary), via a
:class:`~geoattest.netsim.timer.PreciseTimer`::

    agent --udp--> link.address --(delay)--> landmark
    agent <--(delay)-- link.address <--udp-- landmark

Datagrams from the landmark's address go down to the last address the agent sent from;
anything else goes up. One receiver thread serves every link (``selectors``); the
timer thread sends. N chips x M landmarks is N*M links in one :class:`Emulator`::

    emulator = Emulator(seed=1)
    links = {
        (chip.name, lm.name): emulator.add_link(chip, lm, landmark_addresses[lm.name])
        for chip in chips
        for lm in landmarks
    }                                             # add every link first, then start
    with emulator:                                # started on entry, stopped on exit
        agent_sock.sendto(open_msg, links["chip-1", "lm-fra"].address)

Delays are measured from the instant the relay received the datagram, so the relay's
own processing is inside the emulated delay, not added to it.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
from functools import partial

from geoattest.errors import ConfigError, GeoattestError
from geoattest.lifecycle import Running
from geoattest.netsim.adversary import Adversary, Direction, Site
from geoattest.netsim.latency import LatencyModel, PathClass
from geoattest.netsim.route import Route
from geoattest.netsim.timer import PreciseTimer

Address = tuple[str, int]
MAX_DATAGRAM = 65_535


class Link:
    """One chip-landmark path through the relay, with its own loopback port."""

    def __init__(
        self, route: Route, landmark_address: Address, rng: random.Random, timer: PreciseTimer
    ) -> None:
        self.route = route
        self.landmark_address = landmark_address
        self._rng = rng
        self._timer = timer
        self._agent_address: Address | None = None
        self.unroutable = 0
        """Datagrams from the landmark that arrived before the agent had sent anything."""
        self.send_errors = 0
        """Deliveries the kernel refused (full buffers): lost, as on a real network."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self.address: Address = self._sock.getsockname()
        """Where the agent sends to reach the landmark through this link."""

    @property
    def closed(self) -> bool:
        """Whether the link's socket is closed."""
        return self._sock.fileno() == -1

    def _drain(self) -> None:
        """Read every datagram waiting on the socket and schedule its deliveries."""
        while True:
            try:
                payload, sender = self._sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            received_ns = self._timer.now_ns()
            if sender == self.landmark_address:
                direction, target = Direction.DOWNLINK, self._agent_address
                if target is None:
                    self.unroutable += 1
                    continue
            else:
                direction, target = Direction.UPLINK, self.landmark_address
                self._agent_address = sender
            for d in self.route.carry(direction, payload, received_ns, self._rng):
                self._timer.schedule(
                    received_ns + d.delay_ns,
                    partial(self._deliver, d.payload, target, direction),
                )

    def _deliver(self, payload: bytes, target: Address, direction: Direction) -> None:
        try:
            self._sock.sendto(payload, target)
        except OSError:
            self.send_errors += 1
            return
        self.route.stats.delivered[direction] += 1

    def _close(self) -> None:
        self._sock.close()


class Emulator(Running):
    """Many links, one receiver thread and one precise timer; start, then stop once."""

    def __init__(
        self,
        model: LatencyModel | None = None,
        *,
        seed: int | str = 0,
        adversary: Adversary | None = None,
        timer: PreciseTimer | None = None,
    ) -> None:
        """Prepare an emulator; links are added next, then it is started.

        Args:
            model: the honest latency model (the shipped calibration by default).
            seed: makes each link's stretch and jitter reproducible.
            adversary: consulted for every datagram on every link without its own.
            timer: a timer to use (say, with a tuned spin window); its own by default.
        """
        self.model = model or LatencyModel.default()
        self.adversary = adversary
        self.links: list[Link] = []
        self._seed = seed
        self._timer = timer or PreciseTimer()
        self._selector = selectors.DefaultSelector()
        self._waker_r, self._waker_w = socket.socketpair()
        self._selector.register(self._waker_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._failure: GeoattestError | None = None

    def add_link(
        self,
        chip: Site,
        landmark: Site,
        landmark_address: Address,
        *,
        path_class: PathClass = PathClass.CLOUD,
        stretch: float | None = None,
        adversary: Adversary | None = None,
    ) -> Link:
        """Open a link from ``chip`` to the landmark serving at ``landmark_address``.

        Raises:
            ConfigError: the emulator is already running (add links before start), or
                ``stretch`` is below the model's floor.
        """
        if self._thread is not None:
            raise ConfigError("add links before starting the emulator")
        seed = f"{self._seed}/{len(self.links)}/{chip.name}/{landmark.name}"
        rng = random.Random(seed)  # noqa: S311 -- simulation, not secrets
        route = Route(
            chip,
            landmark,
            self.model,
            rng,
            adversary=adversary or self.adversary,
            path_class=path_class,
            stretch=stretch,
        )
        link = Link(route, landmark_address, rng, self._timer)
        self._selector.register(link._sock, selectors.EVENT_READ, link)
        self.links.append(link)
        return link

    def start(self) -> None:
        """Start forwarding."""
        self._timer.start()
        self._thread = threading.Thread(target=self._serve, name="netsim-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop forwarding, join both threads and close every socket.

        Datagrams still in flight are lost, as on a real network.

        Raises:
            ConfigError: an adversary planned a delivery faster than light (the datagram
                was dropped when it happened; the error surfaces here).
        """
        self._waker_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
        try:
            self._timer.stop()
        finally:
            self._selector.close()
            for link in self.links:
                link._close()
            self._waker_r.close()
            self._waker_w.close()
        if self._failure is not None:
            raise self._failure

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                link: Link | None = key.data
                if link is None:
                    return
                try:
                    link._drain()
                except GeoattestError as e:
                    self._failure = self._failure or e
