"""The agent's spin per wait on ``geoattest bench agent``'s workload: how long it polls
for each next challenge, which is the landmark's turn as the agent sees it.

Run: ``python bench/agent_spin_per_wait.py [PROOFS]`` (about 10 s at the default 300), and
the same with ``PYTHONPATH`` naming another checkout's ``src``, alternating the two. Each
spinning wait (:func:`geoattest.wire.rounds.poll`) is timed with ``time.thread_time``
(about a microsecond of the figure is the timer's own); prints the CPU per proof, the spun
CPU per proof and per wait.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from geoattest.bench.agent import agent
from geoattest.wire import rounds

WARMUP = 30
spun = [0.0, 0]


def counted_poll(
    recv: Callable[[int, int], bytes], until: float, clock: Callable[[], float]
) -> bytes | None:
    t0 = time.thread_time()
    try:
        return poll(recv, until, clock)
    finally:
        spun[0] += time.thread_time() - t0
        spun[1] += 1


poll = rounds.poll


def main(proofs: int) -> None:
    rounds.poll = counted_poll
    with agent(4, 8) as bench:
        for _ in range(WARMUP):
            bench.proof()
        spun[0], spun[1] = 0.0, 0
        cpu = []
        for _ in range(proofs):
            t0 = time.process_time()
            bench.proof()
            cpu.append(time.process_time() - t0)
    per_wait_us = spun[0] / max(1, spun[1]) * 1e6
    print(
        f"CPU per proof (median) {statistics.median(cpu) * 1e6:.0f} µs; spun "
        f"{spun[0] / proofs * 1e6:.0f} µs per proof over {spun[1] / proofs:.1f} waits: "
        f"{per_wait_us:.1f} µs per wait"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
