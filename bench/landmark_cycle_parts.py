"""The landmark's cycle per exchange, part by part, on ``geoattest bench agent``'s workload.

Run: ``python bench/landmark_cycle_parts.py [PROOFS]`` (about 20 s at the default 200), and
the same with ``PYTHONPATH`` naming another checkout's ``src``, alternating the two. The
landmarks run in child processes as in ``bench agent``, with their socket's calls and the
server's parts wrapped with ``perf_counter_ns`` (about 0.4 µs of each figure is the
wrapper's own); prints the agent's CPU per proof and, for two landmarks, each part's median
µs and count: ``recv`` (the receive with its stamp), ``handle`` (the dispatcher),
``sendmsg`` (a challenge's send with its stamp request), ``errqueue`` (a transmit stamp read
back) and the server's whole ``_send``; where the landmark times in C (``landmark_io``
native), ``recv`` is the native receive with its readings and ``send_timed`` the native
send with its stamp read back, each one call. Names the server's private parts: a
reproducer for BENCHMARKS.md, not an interface.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any

from geoattest import priorities
from geoattest.bench import agent as bench_agent
from geoattest.bench import timing
from geoattest.crypto import KeySigner, load_private_key_pem
from geoattest.verifier.landmark import server as landmark_server
from geoattest.verifier.landmark.dispatch import Dispatcher
from geoattest.verifier.landmark.server import LandmarkIdentity, LandmarkServer

WARMUP = 30
parts: defaultdict[str, list[int]] = defaultdict(list)
now_ns = time.perf_counter_ns


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = now_ns()
        try:
            return function(*args, **kwargs)
        finally:
            parts[name].append(now_ns() - t0)

    return wrapper


class TimedSocket:
    """The landmark's socket, its receives and sends timed."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recvmsg(self, *args: Any) -> Any:
        errqueue = len(args) > 2 and args[2] & socket.MSG_ERRQUEUE
        return timed("errqueue" if errqueue else "recv", self._sock.recvmsg)(*args)

    def sendmsg(self, *args: Any) -> Any:
        return timed("sendmsg", self._sock.sendmsg)(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def landmark(pem: bytes, landmark_id: str, kernel: bool, conn: Connection) -> None:
    """``bench agent``'s landmark child, its parts timed; answers "parts" with the medians."""
    Dispatcher.handle = timed("handle", Dispatcher.handle)  # type: ignore[method-assign]
    LandmarkServer._send = timed("_send", LandmarkServer._send)  # type: ignore[method-assign]
    server = LandmarkServer(
        LandmarkIdentity(landmark_id, 0.0, 0.0),
        KeySigner(load_private_key_pem(pem, what="bench key")),
        limits=timing.UNLIMITED,
        kernel_timestamps=kernel,
        realtime_priority=priorities.LANDMARK,
        spin_s=timing.LANDMARK_SPIN_S,
    )
    server._sock = TimedSocket(server._sock)  # type: ignore[assignment]
    if server.landmark_io == "native":
        native = landmark_server._timed_io
        landmark_server._timed_io = SimpleNamespace(  # type: ignore[assignment]
            receive=timed("recv", native.receive),
            send_timed=timed("send_timed", native.send_timed),
        )
    with server:
        conn.send((server.address[1], server.kernel_timestamps, server.landmark_io))
        while conn.recv():
            conn.send({k: (statistics.median(v) / 1000, len(v)) for k, v in parts.items()})
            parts.clear()


def main(proofs: int) -> None:
    conns: list[Connection] = []
    child = bench_agent.child

    @contextmanager
    def timed_child(target: Callable[..., None], *args: object) -> Iterator[tuple[Connection, Any]]:
        with child(landmark if target is timing.landmark_child else target, *args) as (c, first):
            conns.append(c)
            yield c, first

    bench_agent.child = timed_child  # type: ignore[assignment]
    with bench_agent.agent(4, 8) as bench:
        for _ in range(WARMUP):
            bench.proof()
        for conn in conns:
            conn.send(True)
            conn.recv()
        t0 = time.process_time()
        for _ in range(proofs):
            bench.proof()
        print(f"agent CPU per proof {(time.process_time() - t0) / proofs * 1e6:.0f} µs")
        for conn in conns[:2]:
            conn.send(True)
            medians = conn.recv()
            print("  ".join(f"{k} {us:.1f} µs ({n})" for k, (us, n) in sorted(medians.items())))
        for conn in conns:
            conn.send(False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
