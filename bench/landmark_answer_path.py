"""The landmark server's work per timed exchange, with real sockets, in one process.

Run: ``python bench/landmark_answer_path.py [rounds [warm]]`` (a few seconds at the default
300 rounds, the first 50 not timed).

On a short path the agent spins from its answer until the next challenge, so everything the
landmark's loop does per exchange is agent CPU too: reading the answer (``recvmsg`` with its
receive stamp), the dispatch layer (routing, timing, the next challenge), and the send with
its transmit stamp read back. Here an agent's state machine answers over a loopback socket
and the server's own ``handle`` and ``_send`` run in this thread, as its loop runs them; the
figures are the p50 over the timed exchanges after the first ``warm`` rounds, so compare
them run against run on one machine, not with the cross-process figures of ``geoattest bench
agent``.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time

from geoattest.bench.timing import UNLIMITED
from geoattest.crypto import KeySigner
from geoattest.protocol.round import AgentRound, AgentRoundState
from geoattest.verifier.landmark.clock import ANCILLARY_BYTES, kernel_stamp, read_bracket
from geoattest.verifier.landmark.server import LandmarkIdentity, LandmarkServer


def main(rounds: int = 300, warm: int = 50) -> None:
    landmark, device = KeySigner.generate(), KeySigner.generate()
    server = LandmarkServer(LandmarkIdentity("lm", 0.0, 0.0), landmark, limits=UNLIMITED)
    sock = server._sock  # the server's thread is not started: this one runs its loop
    chip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    chip.connect(server.address)
    handling: list[int] = []
    sending: list[int] = []

    def exchange(timed: bool) -> None:
        data, ancillary, _, source = sock.recvmsg(4096, ANCILLARY_BYTES)
        t0 = time.perf_counter_ns()
        out = server._dispatcher.handle(data, source, read_bracket(), kernel_stamp(ancillary))
        t1 = time.perf_counter_ns()
        if out is not None:
            server._send(out)
        if timed:
            handling.append(t1 - t0)
            sending.append(time.perf_counter_ns() - t1)

    for number in range(rounds):
        agent = AgentRound(
            "dev", "lm", landmark.verifying_key, device, secret=os.urandom(32), exchanges=8
        )
        chip.send(agent.open())
        exchange(False)  # the Retry
        reply = agent.receive(chip.recv(4096))
        while reply is not None:
            answering = agent.state is AgentRoundState.ANSWERING
            chip.send(reply)
            exchange(answering and number >= warm)
            reply = agent.receive(chip.recv(4096))
            agent.prepare()
    chip.close()
    sock.close()
    total = [h + s for h, s in zip(handling, sending, strict=True)]
    handle, send = statistics.median(handling) / 1e3, statistics.median(sending) / 1e3
    print(
        f"landmark per exchange, p50 over {len(total)}: handle {handle:.1f} µs, send and "
        f"transmit stamp {send:.1f} µs, total {statistics.median(total) / 1e3:.1f} µs"
    )


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
