"""``geoattest bench timing``: the timed exchange through the real landmark and agent
against a bare UDP echo on loopback, measured in the same run.

Each side runs in its own process, as a landmark and a chip would: the landmark
(:class:`~geoattest.verifier.landmark.LandmarkServer`, kernel receive stamps) and the echo server
in child processes, the agent (:func:`geoattest.attestor.rounds.run_round`) and the pinger here.
Echoes and rounds alternate in blocks so that both see the same machine load.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.bench.report import KM_PER_US, Figures, median, progress, quantile
from geoattest.crypto import KeySigner, generate_private_key, load_private_key_pem, private_key_pem
from geoattest.protocol.round import LandmarkRound, RoundSecrets
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer, Limits
from geoattest.verifier.landmark.clock import (
    ANCILLARY_BYTES,
    enable_kernel_timestamps,
    kernel_stamp,
)

UNLIMITED = Limits(rate_per_s=1e9, burst=1e9)
RESPONSE_BYTES = 38
"""A Response datagram's size: the echo carries the same payload."""


def landmark_child(pem: bytes, landmark_id: str, kernel: bool, conn: Connection) -> None:
    """A landmark server; on each request it sends every exchange RTT since the last."""
    signer = KeySigner(load_private_key_pem(pem, what="bench key"))
    rtts: list[int] = []

    def record(finished: LandmarkRound) -> None:
        rtts.extend(e.rtt_ns for e in finished.timed)

    with LandmarkServer(
        LandmarkIdentity(landmark_id, 0.0, 0.0),
        signer,
        limits=UNLIMITED,
        kernel_timestamps=kernel,
        on_finished=record,
    ) as server:
        conn.send((server.address[1], server.kernel_timestamps))
        while conn.recv():
            conn.send(list(rtts))
            rtts.clear()


def echo_child(conn: Connection) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    conn.send(sock.getsockname()[1])
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data, peer)


@contextmanager
def child(target: Callable[..., None], *args: object) -> Iterator[tuple[Connection, Any]]:
    """A child process running ``target(*args, conn)``; yields the conn and its first message."""
    ctx = multiprocessing.get_context("spawn")
    parent, theirs = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    try:
        yield parent, parent.recv()
    finally:
        process.terminate()
        process.join()


def echo_block(port: int, n: int) -> tuple[list[int], list[int]]:
    """n echoes of a Response-sized datagram: RTTs by user stamps and by kernel stamps."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    kernel_ok = enable_kernel_timestamps(sock)
    payload = bytes(RESPONSE_BYTES)
    user, kernel = [], []
    mono, real = time.monotonic_ns, time.time_ns
    for _ in range(n):
        t_real = real()
        t0 = mono()
        sock.send(payload)
        _, ancillary, _, _ = sock.recvmsg(4096, ANCILLARY_BYTES)
        user.append(mono() - t0)
        stamp = kernel_stamp(ancillary) if kernel_ok else None
        if stamp is not None:
            kernel.append(stamp - t_real)
    sock.close()
    return user, kernel


def rounds_block(
    endpoint: LandmarkEndpoint,
    landmark: Connection,
    device: KeySigner,
    secrets: RoundSecrets,
    n: int,
) -> tuple[list[int], list[int]]:
    """n rounds: every exchange's RTT (as the landmark timed it) and each receipt's rtt_min."""
    settings = RoundSettings(exchanges=8)
    minima = []
    for _ in range(n):
        envelope = run_round(endpoint, "dev-bench", device, secrets, settings)
        minima.append(round_pb2.TimingReceipt.FromString(envelope.payload).rtt_min_ns)
    landmark.send(True)
    return landmark.recv(), minima


def run(samples: int = 4000, blocks: int = 8) -> Figures:
    """p50/p99 of ``samples`` echoes and as many timed exchanges (rounds of 8)."""
    device = KeySigner.generate()
    secrets = RoundSecrets(os.urandom)
    landmark_key = generate_private_key()
    per_block = max(8, samples // blocks)
    echo: list[int] = []
    exchange: list[int] = []
    minima: list[int] = []
    with (
        child(echo_child) as (_, echo_port),
        child(landmark_child, private_key_pem(landmark_key), "lm-bench", True) as (
            landmark,
            (port, kernel_on),
        ),
        progress("timing: echo and exchange blocks", blocks) as (bar, task),
    ):
        endpoint = LandmarkEndpoint(
            "lm-bench", "127.0.0.1", port, KeySigner(landmark_key).verifying_key
        )
        rounds_block(endpoint, landmark, device, secrets, 4)  # warm up both paths
        echo_block(echo_port, 100)
        for _ in range(blocks):
            echo += echo_block(echo_port, per_block)[0]
            timed, mins = rounds_block(endpoint, landmark, device, secrets, per_block // 8)
            exchange += timed
            minima += mins
            bar.advance(task)
    echo_p50, exchange_p50 = median(echo) / 1e3, median(exchange) / 1e3
    echo_p99, exchange_p99 = quantile(echo, 0.99) / 1e3, quantile(exchange, 0.99) / 1e3
    return {
        "udp_echo_p50_us": round(echo_p50, 2),
        "udp_echo_p99_us": round(echo_p99, 2),
        "exchange_p50_us": round(exchange_p50, 2),
        "exchange_p99_us": round(exchange_p99, 2),
        "ratio_p50": round(exchange_p50 / echo_p50, 3),
        "ratio_p99": round(exchange_p99 / echo_p99, 3),
        "overhead_km_at_c": round((exchange_p50 - echo_p50) * KM_PER_US, 3),
        "exchange_km_at_c": round(exchange_p50 * KM_PER_US, 3),
        "receipt_rtt_min_p50_us": round(median(minima) / 1e3, 2),
        "echo_samples": len(echo),
        "exchange_samples": len(exchange),
        "kernel_timestamps": str(kernel_on),
    }
