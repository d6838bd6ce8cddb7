"""The timed exchange through the real landmark and agent vs a bare UDP echo, one run.

The detailed table behind BENCHMARKS 'Timing path'; ``geoattest bench timing`` is the
headline figure, and shares the processes and blocks defined in geoattest.bench.timing.

Run: ``python bench/landmark_timing.py [samples]`` (about 30 s at the default 4,000).

Each side of each pair runs in its own process, as a landmark and a chip would: the
timing side in a child process, the answering side here. Measurements alternate in
blocks so that both see the same machine load.

- **echo**: a bare UDP echo; the pinger times it with ``monotonic_ns`` around
  ``sendto``/``recvmsg`` (user stamps) and, on the same datagrams, with the kernel's
  receive stamp (kernel stamps).
- **exchange**: rounds of one exchange each through :class:`LandmarkServer` and
  :func:`geoattest.attestor.rounds.run_round`; each receipt's ``rtt_min_ns`` is that exchange's RTT
  as the landmark measured it. Once with kernel receive stamps (the default) and once
  with monotonic stamps taken after ``recvmsg``.
- **rtt_min of 8**: what a production receipt carries, the minimum over 8 exchanges.
- **k = 3, sequential vs concurrent**: rtt_min per receipt when the agent runs three
  landmarks one after another or at once.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import timeit

from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_rounds
from geoattest.bench.timing import child, echo_block, echo_child, landmark_child, rounds_block
from geoattest.crypto import (
    KeySigner,
    generate_private_key,
    private_key_pem,
)
from geoattest.protocol.round import AgentRound, LandmarkRound, RoundSecrets, decode_datagram
from geoattest.v1 import round_pb2

KM_PER_US = 0.149896229  # c / 2 per microsecond of RTT
BLOCKS = 8


def quantile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def agent_answer_us() -> float:
    """CPU time of the agent's answer path (decode, hash, encode) for one challenge."""
    landmark, device = KeySigner.generate(), KeySigner.generate()
    agent = AgentRound(
        "d", "l", landmark.verifying_key, device, secret=os.urandom(32), exchanges=32
    )
    lm = LandmarkRound(
        "l", landmark, decode_datagram(agent.open()).open, round_id=os.urandom(16),
        randomness=os.urandom,
    )  # fmt: skip
    challenge = lm.next_challenge(0)
    number = 20_000
    return timeit.timeit(lambda: agent.receive(challenge), number=number) / number * 1e6


def main(n: int = 4000) -> None:
    device = KeySigner.generate()
    secrets = RoundSecrets(os.urandom)
    private_keys = [generate_private_key() for _ in range(3)]
    keys = [KeySigner(k) for k in private_keys]
    pems = [private_key_pem(k) for k in private_keys]
    per_block = n // BLOCKS
    rows: dict[str, list[int]] = {
        k: []
        for k in (
            "echo, user stamps",
            "echo, kernel stamps",
            "exchange, landmark kernel stamps",
            "exchange, landmark monotonic stamps",
            "rtt_min of 8 exchanges (kernel)",
            "k=3 sequential, rtt_min of 8",
            "k=3 concurrent, rtt_min of 8",
        )
    }
    with (
        child(echo_child) as (_, echo_port),
        child(landmark_child, pems[0], "lm-0", True) as (lm_k, (port_k, kernel_on)),
        child(landmark_child, pems[1], "lm-1", False) as (lm_m, (port_m, _)),
        child(landmark_child, pems[2], "lm-2", True) as (lm_2, (port_2, _)),
    ):
        ep = [
            LandmarkEndpoint(f"lm-{i}", "127.0.0.1", p, keys[i].verifying_key)
            for i, p in enumerate((port_k, port_m, port_2))
        ]
        rounds_block(ep[0], lm_k, device, secrets, 20)  # warm up
        echo_block(echo_port, 200)
        for _ in range(BLOCKS):
            user, kernel = echo_block(echo_port, per_block)
            rows["echo, user stamps"] += user
            rows["echo, kernel stamps"] += kernel
            exchanges, minima, _ = rounds_block(ep[0], lm_k, device, secrets, per_block // 8)
            rows["exchange, landmark kernel stamps"] += exchanges
            rows["rtt_min of 8 exchanges (kernel)"] += minima
            exchanges, _, _ = rounds_block(ep[1], lm_m, device, secrets, per_block // 8)
            rows["exchange, landmark monotonic stamps"] += exchanges
            for concurrent, name in ((False, "sequential"), (True, "concurrent")):
                for _ in range(per_block // 40):
                    outcomes = run_rounds(
                        [ep[0], ep[2], ep[1]], "dev-bench", device, secrets,
                        RoundSettings(exchanges=8), concurrent=concurrent,
                    )  # fmt: skip
                    rows[f"k=3 {name}, rtt_min of 8"] += [
                        round_pb2.TimingReceipt.FromString(o.receipt.payload).rtt_min_ns
                        for o in outcomes
                        if o.receipt is not None
                    ]
        for landmark in (lm_k, lm_m, lm_2):  # drop what the k=3 rounds left behind
            landmark.send(True)
            landmark.recv()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; kernel stamps: {kernel_on}"
    )
    print(f"{'measure (RTT)':40} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'n':>6}")
    for name, samples in rows.items():
        p50, p90, p99 = (quantile(samples, q) for q in (0.5, 0.9, 0.99))
        print(f"{name:40} {p50:8.1f} {p90:8.1f} {p99:8.1f} {len(samples):6}")
    echo = statistics.median(rows["echo, user stamps"])
    echo_kernel = statistics.median(rows["echo, kernel stamps"])
    exchange = statistics.median(rows["exchange, landmark kernel stamps"])
    print(f"ratio_p50 exchange / echo (user stamps):   {exchange / echo:.2f}")
    print(f"ratio_p50 exchange / echo (kernel stamps): {exchange / echo_kernel:.2f}")
    print(
        f"exchange p50 = {exchange / 1e3:.1f} us = {exchange / 1e3 * KM_PER_US:.2f} km at c; "
        f"over the kernel-stamped echo: {(exchange - echo_kernel) / 1e3:.1f} us = "
        f"{(exchange - echo_kernel) / 1e3 * KM_PER_US:.2f} km"
    )
    print(f"agent answer path (decode, hash, encode), CPU: {agent_answer_us():.2f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
