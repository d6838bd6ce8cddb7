"""Where the agent's CPU per proof goes, on ``geoattest bench agent``'s workload.

Run: ``python bench/agent_cpu_split.py`` (about 10 s). The agent's socket calls, round
state machine (by datagram kind), socket setup and proof signing are wrapped with
``time.process_time`` counters (the clock ``bench agent`` uses; the counters themselves
add about 300 µs per proof, most of it in the last row). Then the same state-machine calls
run back to back in memory, caches warm, for comparison. cProfile's deterministic timer
inflates calls this short several times over, hence counters.
"""

from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable

from geoattest.bench.agent import agent
from geoattest.crypto import KeySigner
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
from geoattest.wire import rounds as agent_rounds

PROOFS = 300
WARMUP = 20
cpu: defaultdict[str, float] = defaultdict(float)
calls: defaultdict[str, int] = defaultdict(int)


def count(name: str, function: Callable[..., object], *args: object) -> object:
    t0 = time.process_time()
    try:
        return function(*args)
    finally:
        cpu[name] += time.process_time() - t0
        calls[name] += 1


class CountedSocket:
    """The agent's connected socket, its sends and receives counted."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int, flags: int = 0) -> object:
        name = "recv (syscall, sleep, wake-up)" if not flags else "recv polled (spinning)"
        return count(name, self._sock.recv, size, flags)

    def send(self, data: bytes) -> object:
        return count("send (syscall)", self._sock.send, data)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> object:
        """The rest (``family``, ``getpeername``: what a kept socket is checked by)."""
        return getattr(self._sock, name)


def instrument() -> Callable[[AgentRound, bytes], bytes | None]:
    connect = agent_rounds._connect
    receive = AgentRound.receive
    extend = ProofChain.extend

    def counted_connect(
        endpoint: agent_rounds.LandmarkEndpoint, resolved: object, timeout_s: float
    ) -> object:
        name = "socket setup (socket, connect, SO_RCVTIMEO; once per landmark)"
        return CountedSocket(count(name, connect, endpoint, resolved, timeout_s))

    def counted_receive(self: AgentRound, data: bytes) -> bytes | None:
        kind = decode_datagram(data).WhichOneof("kind")
        return count(f"AgentRound.receive: {kind}", receive, self, data)

    def counted_extend(chain: ProofChain, *args: object, **kwargs: object) -> object:
        return count(
            "ProofChain.extend (proof encode, sign)", lambda: extend(chain, *args, **kwargs)
        )

    agent_rounds._connect = counted_connect
    ProofChain.extend = counted_extend
    AgentRound.receive = counted_receive
    return receive


def hot(
    receive: Callable[[AgentRound, bytes], bytes | None], k: int, exchanges: int
) -> dict[str, float]:
    """µs per proof of the same ``AgentRound.receive`` calls, back to back in memory."""
    device, landmark = KeySigner.generate(), KeySigner.generate()
    totals: defaultdict[str, float] = defaultdict(float)
    rounds = 200
    for _ in range(rounds):
        agent_round = AgentRound(
            "dev-bench",
            "lm",
            landmark.verifying_key,
            device,
            secret=os.urandom(32),
            exchanges=exchanges,
        )
        open_message = decode_datagram(agent_round.open()).open
        lm = LandmarkRound(
            "lm", landmark, open_message, round_id=os.urandom(16), randomness=os.urandom
        )
        now = time.monotonic_ns()
        datagram: bytes | None = lm.next_challenge(now)
        while datagram is not None:
            kind = decode_datagram(datagram).WhichOneof("kind")
            t0 = time.process_time()
            reply = receive(agent_round, datagram)
            totals[f"AgentRound.receive: {kind}"] += time.process_time() - t0
            if reply is None:
                break
            now += 10_000
            datagram = lm.receive(reply, now, time.time_ns())
    return {name: total / rounds * k * 1e6 for name, total in totals.items()}


def main(k: int = 4, exchanges: int = 8) -> None:
    receive = instrument()
    with agent(k, exchanges) as bench:
        for _ in range(WARMUP):
            bench.proof()
        cpu.clear()
        calls.clear()
        t0 = time.process_time()
        for _ in range(PROOFS):
            bench.proof()
        total = time.process_time() - t0
    warm = hot(receive, k, exchanges)
    print(f"agent CPU per proof (k = {k}, n = {exchanges}): {total / PROOFS * 1e6:.0f} µs\n")
    print("| part | µs per proof | calls per proof | same calls in memory, µs |\n|---|---|---|---|")
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(
            f"| {name} | {seconds / PROOFS * 1e6:.0f} | {calls[name] / PROOFS:.0f} "
            f"| {f'{warm[name]:.0f}' if name in warm else ''} |"
        )
    rest = total - sum(cpu.values())
    print(f"| the rest (round loop, clocks, close, the counters) | {rest / PROOFS * 1e6:.0f} | | |")


if __name__ == "__main__":
    main()
