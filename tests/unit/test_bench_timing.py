"""The echo baselines of ``bench timing`` and ``bench agent`` wait as the agent waits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from geoattest.bench import timing
from geoattest.bench.agent import BareAgent
from geoattest.crypto import KeySigner
from geoattest.wire.rounds import RoundSettings


@contextmanager
def echo_server() -> Iterator[int]:
    """A UDP echo on loopback in a thread, at normal priority; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stopping.set()
        thread.join()
        sock.close()


@pytest.mark.parametrize("rounds", [1, 3])
def test_the_echo_as_the_agent_waits_asks_whether_to_spin_once_per_round(
    monkeypatch: pytest.MonkeyPatch, rounds: int
) -> None:
    asked: list[bool] = []

    def spin_permitted(realtime_held: bool) -> bool:
        asked.append(realtime_held)
        return True

    monkeypatch.setattr(timing, "spin_permitted", spin_permitted)
    settings = RoundSettings(exchanges=4)
    with echo_server() as port:
        user, _ = timing.echo_block(port, rounds * 6, as_agent=True, settings=settings)
        assert len(user) == rounds * 6
        assert len(asked) == rounds
        asked.clear()
        timing.echo_block(port, rounds * 6, settings=settings)
    assert asked == []


def test_the_bare_agent_keeps_one_socket_across_its_rounds_as_the_agent_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[socket.socket] = []
    real_socket = socket.socket

    def counting_socket(*args: object, **kwargs: object) -> socket.socket:
        made.append(real_socket(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    settings = RoundSettings(exchanges=4)
    with echo_server() as port:
        bare = BareAgent(port, KeySigner.generate(), settings)
        monkeypatch.setattr(socket, "socket", counting_socket)
        try:
            for _ in range(3):
                bare.run([6, 6, 6, 6])
            assert made == []  # no socket per round, no kernel stamps read
            assert bare.sock.fileno() >= 0
        finally:
            bare.close()
    assert bare.sock.fileno() == -1


def test_a_kept_socket_is_left_open_and_unstamped() -> None:
    with echo_server() as port, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        user, kernel = timing.echo_block(port, 12, as_agent=True, sock=sock)
        assert len(user) == 12
        assert kernel == []
        sock.send(b"still open")
        assert sock.recv(64) == b"still open"
    # its own socket, as bench timing uses it, is stamped (Linux stamps loopback datagrams)
    with echo_server() as port:
        user, kernel = timing.echo_block(port, 12)
        assert len(user) == 12
        assert len(kernel) == 12
