"""The landmark's turn per timed exchange as the server's own thread runs it, for
instruction counts.

Run: ``valgrind --tool=callgrind --callgrind-out-file=/dev/null python
bench/landmark_turn_instructions.py ROUNDS`` for two values of ROUNDS (say 20 and 60); the
difference of the two totals over the difference of the exchanges is the instructions per
exchange (``==PID== Collected : N`` in valgrind's summary), whatever the load.

The server runs its loop in its thread, as it serves; this thread is a minimal chip that
answers each challenge with the bytes of a Response (its answer is never checked: the
round is not closed), so almost every instruction counted per exchange is the landmark's:
its receive, the dispatcher's answer path, the next challenge's send and its transmit stamp.
"""

from __future__ import annotations

import os
import socket
import sys

from geoattest.crypto import KeySigner
from geoattest.protocol.round import response_head
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark.dispatch import Limits
from geoattest.verifier.landmark.server import LandmarkIdentity, LandmarkServer

EXCHANGES = 32
LIMITS = Limits(rate_per_s=1e9, burst=1e9, max_rounds=1 << 20, max_rounds_per_source=1 << 20)


def main(rounds: int) -> None:
    server = LandmarkServer(
        LandmarkIdentity("lm", 0.0, 0.0), KeySigner.generate(), limits=LIMITS, sweep_interval_s=3600
    )
    server.start()
    chip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    chip.connect(server.address)
    open_message = round_pb2.Open(device_id="dev", commit=os.urandom(32), exchanges=EXCHANGES)
    chip.send(round_pb2.Datagram(open=open_message).SerializeToString())
    open_message.cookie = round_pb2.Datagram.FromString(chip.recv(4096)).retry.cookie
    opening = round_pb2.Datagram(open=open_message).SerializeToString()
    answer = bytes(32)
    for _ in range(rounds):
        chip.send(opening)
        challenge = chip.recv(4096)
        round_id = round_pb2.Datagram.FromString(challenge).challenge.round_id
        for index in range(EXCHANGES):
            chip.send(response_head(round_id, index) + answer)
            challenge = chip.recv(4096)
        assert round_pb2.Datagram.FromString(challenge).WhichOneof("kind") == "complete"
    timed = server.counters().exchanges_timed
    assert timed == rounds * EXCHANGES, timed
    # The serving thread (a daemon) is left blocked in its receive: stopping it would wait
    # out its sweep interval.
    print(f"{timed} exchanges timed")


if __name__ == "__main__":
    main(int(sys.argv[1]))
