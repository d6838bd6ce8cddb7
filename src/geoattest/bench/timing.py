"""``geoattest bench timing``: the timed exchange through the real landmark and agent
against a bare UDP echo on loopback, measured in the same run.

Each side runs in its own process, as a landmark and a chip would: the landmark
(:class:`~geoattest.verifier.landmark.LandmarkServer`, kernel receive stamps) and the echo server
in child processes, the agent (:func:`geoattest.attestor.rounds.run_round`) and the pinger here.
Echoes and rounds alternate in blocks so that both see the same machine load.

Two echoes are the baselines: today's blocking one (the pinger sleeps in ``recvmsg`` at
normal priority), and one that waits as the agent does (:mod:`geoattest.wire.rounds`: at
the timed phase's real-time priority where permitted, spinning in the waits the agent's
rule spins when the host has a core to spare or that priority holds with a second CPU,
else blocking), so the receipt's ``rtt_min`` is set against an echo that waits for its
answer the same way. The landmark's serving thread
and the echo server run at the same real-time priority where permitted, as ``landmark
serve`` runs it by default. ``--load`` runs ``stress-ng --cpu 2`` beside it all
(:func:`cpu_load`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from multiprocessing.connection import Connection
from typing import Any

from geoattest import priorities
from geoattest.attestor.rounds import LandmarkEndpoint, PathFloors, RoundSettings, run_round
from geoattest.bench.report import KM_PER_US, Figures, median, progress, quantile
from geoattest.crypto import KeySigner, generate_private_key, load_private_key_pem, private_key_pem
from geoattest.errors import ConfigError
from geoattest.lifecycle import worker_signals
from geoattest.protocol.round import LandmarkRound, RoundSecrets
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer, Limits
from geoattest.verifier.landmark.clock import (
    ANCILLARY_BYTES,
    enable_kernel_timestamps,
    kernel_stamp,
)
from geoattest.wire.rounds import realtime, restore_scheduling, spin_permitted, spins_wait

UNLIMITED = Limits(rate_per_s=1e9, burst=1e9)
LANDMARK_SPIN_S = priorities.LANDMARK_POLL_US / 1e6
"""The bench's landmarks poll as long as ``landmark serve`` does by default for an answer on a
short path (``LandmarkServer``'s ``spin_s``): a loopback exchange's turn is well within it."""
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
        realtime_priority=priorities.LANDMARK,
        spin_s=LANDMARK_SPIN_S,
    ) as server:
        conn.send((server.address[1], server.kernel_timestamps, server.landmark_io))
        while conn.recv():
            conn.send(list(rtts))
            rtts.clear()


def echo_child(conn: Connection) -> None:
    """A bare UDP echo server, at the landmark's priority (:func:`landmark_child`)."""
    realtime(priorities.LANDMARK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    conn.send(sock.getsockname()[1])
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data, peer)


def _child_main(target: Callable[..., None], *args: object) -> None:
    """A child's process: ``target(*args)``, Ctrl-C left to the parent that ends it."""
    worker_signals()
    target(*args)


@contextmanager
def child(target: Callable[..., None], *args: object) -> Iterator[tuple[Connection, Any]]:
    """A child process running ``target(*args, conn)``; yields the conn and its first message."""
    ctx = multiprocessing.get_context("spawn")
    parent, theirs = ctx.Pipe()
    process = ctx.Process(target=_child_main, args=(target, *args, theirs), daemon=True)
    process.start()
    try:
        yield parent, parent.recv()
    finally:
        process.terminate()
        process.join()


def echo_block(
    port: int,
    n: int,
    *,
    as_agent: bool = False,
    settings: RoundSettings | None = None,
    round_exchanges: int | None = None,
    sock: socket.socket | None = None,
) -> tuple[list[int], list[int]]:
    """n echoes of a Response-sized datagram: RTTs by user stamps and by kernel stamps.

    ``as_agent``: the echoes stand for the round trips of rounds run with ``settings``
    (default :class:`RoundSettings`), ``round_exchanges`` answers (default its
    ``exchanges``) between an Open and a Close each, and each is waited for as the agent
    waits for the datagram after it (at the timed phase's real-time priority where
    permitted): an answer's echo spins, for at most ``spin_s``, where the agent's rule
    spins that wait (:func:`~geoattest.wire.rounds.spins_wait`) and the host lets it
    (:func:`~geoattest.wire.rounds.spin_permitted`, asked once per round's echoes at its
    Open's, as the agent asks once per round); the rest block.
    Otherwise every echo blocks in ``recvmsg`` at the thread's own priority.
    ``sock``: a socket the caller keeps, connected to ``port``, as the agent keeps one per
    landmark across its rounds: no socket is made or closed here, and no kernel stamp is
    read (the agent reads none); else a socket of its own for these echoes, stamped.
    """
    kept = sock is not None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
    kernel_ok = not kept and enable_kernel_timestamps(sock)
    ancillary_bytes = ANCILLARY_BYTES if kernel_ok else 0
    payload = bytes(RESPONSE_BYTES)
    settings = settings or RoundSettings()
    trips = (settings.exchanges if round_exchanges is None else round_exchanges) + 2
    spin_ns = int(settings.spin_s * 1e9)
    restore = realtime(settings.realtime_priority) if as_agent else None
    user, kernel = [], []
    mono, real, recvmsg = time.monotonic_ns, time.time_ns, sock.recvmsg
    spun = 0
    may_spin = False
    for i in range(n):
        answered = i % trips - 1  # the challenge answered before this wait; -1: the Open
        if answered < 0:
            spun = 0
            may_spin = as_agent and spin_permitted(restore is not None)
        spin = may_spin and 0 <= answered < trips - 2 and spins_wait(settings, spun, answered)
        spun += spin
        t_real = real() if kernel_ok else 0
        t0 = mono()
        sock.send(payload)
        ancillary = None
        while spin:
            try:
                _, ancillary, _, _ = recvmsg(4096, ancillary_bytes, socket.MSG_DONTWAIT)
            except BlockingIOError:
                spin = mono() - t0 < spin_ns
            else:
                break
        if ancillary is None:
            _, ancillary, _, _ = recvmsg(4096, ancillary_bytes)
        user.append(mono() - t0)
        stamp = kernel_stamp(ancillary) if kernel_ok else None
        if stamp is not None:
            kernel.append(stamp - t_real)
    if restore is not None:
        restore_scheduling(restore)
    if not kept:
        sock.close()
    return user, kernel


@contextmanager
def cpu_load(cpus: int = 2) -> Iterator[str]:
    """``stress-ng --cpu N`` running for the duration; yields its command line.

    Raises:
        ConfigError: stress-ng is not installed.
    """
    program = shutil.which("stress-ng")
    if program is None:
        raise ConfigError("--load needs stress-ng on PATH (Debian: apt-get install stress-ng)")
    command = [program, "--cpu", str(cpus), "--quiet"]
    process = subprocess.Popen(  # noqa: S603  (our own fixed command line)
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        time.sleep(0.5)  # its workers running before anything is measured
        if process.poll() is not None:
            raise ConfigError(f"stress-ng exited at once with status {process.returncode}")
        yield f"stress-ng --cpu {cpus}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its workers are in its own session
        process.wait()


def load_context(load: bool) -> contextlib.AbstractContextManager[str]:
    """:func:`cpu_load` when asked for, else nothing running beside the benchmark."""
    return cpu_load() if load else nullcontext("none")


def realtime_permitted() -> bool:
    """Whether the agent's timed phase gets its real-time priority on this host."""
    before = realtime(RoundSettings().realtime_priority)
    if before is None:
        return False
    restore_scheduling(before)
    return True


def timed_phase_priority() -> str:
    """The priority the agent's timed phase runs at on this host (:func:`realtime`)."""
    if not realtime_permitted():
        return "normal (SCHED_FIFO not permitted)"
    return f"SCHED_FIFO {RoundSettings().realtime_priority}"


def rounds_block(
    endpoint: LandmarkEndpoint,
    landmark: Connection,
    device: KeySigner,
    secrets: RoundSecrets,
    n: int,
    *,
    floors: PathFloors | None = None,
) -> tuple[list[int], list[int], int]:
    """n rounds (adaptive with ``floors``): every exchange's RTT (as the landmark timed
    it), each receipt's rtt_min, and in how many rounds the host let the agent spin
    (:func:`~geoattest.wire.rounds.spin_permitted`)."""
    settings = RoundSettings(exchanges=8)
    minima = []
    spun = 0
    held = realtime_permitted()
    for _ in range(n):
        spun += spin_permitted(held)
        envelope = run_round(endpoint, "dev-bench", device, secrets, settings, floors=floors)
        minima.append(round_pb2.TimingReceipt.FromString(envelope.payload).rtt_min_ns)
    landmark.send(True)
    return landmark.recv(), minima, spun


def run(samples: int = 4000, blocks: int = 8, *, load: bool = False) -> Figures:
    """p50/p99 of ``samples`` echoes of each kind and as many timed exchanges (rounds of 8);
    ``load``: with ``stress-ng --cpu 2`` running."""
    device = KeySigner.generate()
    secrets = RoundSecrets(os.urandom)
    landmark_key = generate_private_key()
    per_block = max(8, samples // blocks)
    echo: list[int] = []
    echo_as_agent: list[int] = []
    exchange: list[int] = []
    minima: list[int] = []
    spun = 0
    floors = PathFloors()
    with (
        load_context(load) as load_name,
        child(echo_child) as (_, echo_port),
        child(landmark_child, private_key_pem(landmark_key), "lm-bench", True) as (
            landmark,
            (port, kernel_on, landmark_io),
        ),
        progress("timing: echo and exchange blocks", blocks) as (bar, task),
    ):
        endpoint = LandmarkEndpoint(
            "lm-bench", "127.0.0.1", port, KeySigner(landmark_key).verifying_key
        )
        rounds_block(endpoint, landmark, device, secrets, 4, floors=floors)  # warm up both paths
        echo_block(echo_port, 100)
        for _ in range(blocks):
            echo += echo_block(echo_port, per_block)[0]
            echo_as_agent += echo_block(echo_port, per_block, as_agent=True)[0]
            timed, mins, spun_now = rounds_block(
                endpoint, landmark, device, secrets, per_block // 8, floors=floors
            )
            exchange += timed
            minima += mins
            spun += spun_now
            bar.advance(task)
    echo_p50, exchange_p50 = median(echo) / 1e3, median(exchange) / 1e3
    echo_p99, exchange_p99 = quantile(echo, 0.99) / 1e3, quantile(exchange, 0.99) / 1e3
    same_p50, rtt_min_p50 = median(echo_as_agent) / 1e3, median(minima) / 1e3
    return {
        "load": load_name,
        "timed_phase": timed_phase_priority(),
        "udp_echo_p50_us": round(echo_p50, 2),
        "udp_echo_p99_us": round(echo_p99, 2),
        "udp_echo_as_agent_p50_us": round(same_p50, 2),
        "exchange_p50_us": round(exchange_p50, 2),
        "exchange_p99_us": round(exchange_p99, 2),
        "ratio_p50": round(exchange_p50 / echo_p50, 3),
        "ratio_p99": round(exchange_p99 / echo_p99, 3),
        "overhead_km_at_c": round((exchange_p50 - echo_p50) * KM_PER_US, 3),
        "exchange_km_at_c": round(exchange_p50 * KM_PER_US, 3),
        "receipt_rtt_min_p50_us": round(rtt_min_p50, 2),
        "receipt_ratio_to_echo_as_agent": round(rtt_min_p50 / same_p50, 3),
        "receipt_km_at_c": round(rtt_min_p50 * KM_PER_US, 3),
        "rounds_spinning_share": round(spun / max(1, len(minima)), 3),
        "exchanges_per_round": round(len(exchange) / max(1, len(minima)), 2),
        "echo_samples": len(echo),
        "exchange_samples": len(exchange),
        "kernel_timestamps": str(kernel_on),
        "landmark_io": landmark_io,
    }
