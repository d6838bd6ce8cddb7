"""The live relay on loopback: real sockets, modelled delays, clean shutdown."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from geoattest.errors import ConfigError
from geoattest.netsim.adversary import (
    Action,
    ConstantDelay,
    DatagramDelivery,
    Direction,
    Drop,
    Duplicate,
    Role,
    Site,
    Transit,
)
from geoattest.netsim.latency import LatencyModel
from geoattest.netsim.relay import Emulator

MODEL = LatencyModel.default()
CHIP = Site("chip-paris", (48.86, 2.35), Role.CHIP)
FRANKFURT = Site("lm-fra", (50.11, 8.68), Role.LANDMARK)
LONDON = Site("lm-lon", (51.51, -0.13), Role.LANDMARK)


class EchoLandmark:
    """A UDP echo server on loopback standing in for a landmark."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.received += 1
            self.sock.sendto(data, sender)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def landmark() -> Iterator[EchoLandmark]:
    echo = EchoLandmark()
    yield echo
    echo.close()


@pytest.fixture
def agent() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)
    yield sock
    sock.close()


def test_round_trip_takes_at_least_the_modelled_delay_both_ways(
    landmark: EchoLandmark, agent: socket.socket
) -> None:
    emulator = Emulator(MODEL, seed=1, adversary=ConstantDelay(0.002))
    link = emulator.add_link(CHIP, FRANKFURT, landmark.address)
    with emulator:
        floor_ns = 2 * (link.route.base_delay_s + 0.002) * 1e9
        for i in range(5):
            sent = time.monotonic_ns()
            agent.sendto(b"ping %d" % i, link.address)
            data, sender = agent.recvfrom(2048)
            assert time.monotonic_ns() - sent >= floor_ns
            assert (data, sender) == (b"ping %d" % i, link.address)
    assert link.route.stats.received == {Direction.UPLINK: 5, Direction.DOWNLINK: 5}
    assert link.route.stats.delivered == {Direction.UPLINK: 5, Direction.DOWNLINK: 5}
    assert landmark.received == 5


def test_datagrams_keep_their_order_on_a_link(landmark: EchoLandmark, agent: socket.socket) -> None:
    emulator = Emulator(MODEL, seed=2, adversary=ConstantDelay(0.001))
    link = emulator.add_link(CHIP, FRANKFURT, landmark.address, stretch=1.5)
    with emulator:
        for i in range(50):
            agent.sendto(b"%d" % i, link.address)
        got = [int(agent.recvfrom(2048)[0]) for _ in range(50)]
    assert got == list(range(50))  # jitter delays, never reorders


def test_many_links_in_one_emulator(agent: socket.socket) -> None:
    landmarks = [EchoLandmark() for _ in range(3)]
    try:
        emulator = Emulator(MODEL, seed=3)
        sites = [FRANKFURT, LONDON, Site("lm-mad", (40.42, -3.70), Role.LANDMARK)]
        links = [
            emulator.add_link(CHIP, s, lm.address) for s, lm in zip(sites, landmarks, strict=True)
        ]
        assert len({link.address for link in links}) == 3
        with emulator:
            for link in links:
                agent.sendto(link.route.landmark.name.encode(), link.address)
            replies = {agent.recvfrom(2048) for _ in links}
        assert replies == {(link.route.landmark.name.encode(), link.address) for link in links}
    finally:
        for lm in landmarks:
            lm.close()


def test_duplicates_arrive_and_drops_do_not(landmark: EchoLandmark, agent: socket.socket) -> None:
    emulator = Emulator(MODEL, seed=4)
    dup = emulator.add_link(CHIP, FRANKFURT, landmark.address, adversary=Duplicate(copies=1))
    lost = emulator.add_link(CHIP, LONDON, landmark.address, adversary=Drop(1.0))
    with emulator:
        agent.sendto(b"twice", dup.address)
        agent.sendto(b"never", lost.address)
        # one copy up, echoed twice, each echo duplicated on the way down
        replies = [agent.recvfrom(2048)[0] for _ in range(4)]
        agent.settimeout(0.2)
        with pytest.raises(TimeoutError):
            agent.recvfrom(2048)
    assert replies == [b"twice"] * 4
    assert dup.route.stats.planned[Action.DUPLICATE] == 3
    assert lost.route.stats.dropped[Direction.UPLINK] == 1
    assert landmark.received == 2


def test_landmark_datagrams_before_the_agent_spoke_are_unroutable(agent: socket.socket) -> None:
    landmark = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    landmark.bind(("127.0.0.1", 0))
    try:
        emulator = Emulator(MODEL)
        link = emulator.add_link(CHIP, FRANKFURT, landmark.getsockname())
        with emulator:
            landmark.sendto(b"early", link.address)
            agent.sendto(b"hello", link.address)  # arrives after "early" on the same socket
            landmark.settimeout(30)
            assert landmark.recvfrom(2048)[0] == b"hello"
        assert link.unroutable == 1
    finally:
        landmark.close()


def test_stop_joins_threads_and_closes_sockets(landmark: EchoLandmark) -> None:
    before = set(threading.enumerate())
    emulator = Emulator(MODEL)
    links = [emulator.add_link(CHIP, FRANKFURT, landmark.address) for _ in range(3)]
    emulator.start()
    with pytest.raises(ConfigError, match="before starting"):
        emulator.add_link(CHIP, LONDON, landmark.address)
    emulator.stop()
    assert set(threading.enumerate()) == before
    assert all(link.closed for link in links)


class Teleport:
    """A broken adversary: delivers instantly."""

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        return [DatagramDelivery(0, transit.payload)]


def test_an_adversary_breaking_physics_is_dropped_and_reported_at_stop(
    landmark: EchoLandmark, agent: socket.socket
) -> None:
    emulator = Emulator(MODEL)
    broken = emulator.add_link(CHIP, FRANKFURT, landmark.address, adversary=Teleport())
    fine = emulator.add_link(CHIP, LONDON, landmark.address)
    emulator.start()
    agent.sendto(b"bad", broken.address)
    agent.sendto(b"good", fine.address)
    assert agent.recvfrom(2048)[0] == b"good"
    with pytest.raises(ConfigError, match="faster than light"):
        emulator.stop()
    assert landmark.received == 1
