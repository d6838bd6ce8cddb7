"""A real ``geoattest landmark serve`` under a flood of junk datagrams from the chip's own
host, sent by another process, while the real agent's round driver runs a round."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRegistry
from geoattest.protocol.round import RoundSecrets
from geoattest.v1 import landmark_service_pb2, landmark_service_pb2_grpc, round_pb2

pytestmark = pytest.mark.slow

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
LISTENING = re.compile(r"listening on udp (\S+):(\d+)")
GRPC = re.compile(r"gRPC on \S+:(\d+)")
PATIENCE_S = 60.0
"""How long to wait for a process to get somewhere before calling it stuck."""
FLOODER = """
import socket, sys, threading
from geoattest.attacks.junk import flood
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
print("flooding", flush=True)
flood(sock, ("127.0.0.1", int(sys.argv[1])), threading.Event(), burst=8, pause_s=0.002)
"""


def stopped(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=PATIENCE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def landmark(tmp_path) -> Iterator[tuple[int, LandmarkStub, LandmarkEndpoint]]:
    """A landmark serving as strictly as an honest chip allows: two rounds' worth of rate
    per host (a flood that could spend it would starve every round from there)."""
    key, registry = tmp_path / "lm-fra", tmp_path / "registry.json"
    made = subprocess.run(
        [GEOATTEST, "landmark", "keygen", "--id", "lm-fra", "--lat", "50.11", "--lon", "8.68",
         "--operator", "fra-operator", "--out", str(key), "--registry", str(registry)],
        capture_output=True, text=True, check=False, timeout=PATIENCE_S,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    process = subprocess.Popen(
        [GEOATTEST, "landmark", "serve", "--key", str(key), "--registry", str(registry),
         "--rate", "1", "--burst", "2", "--challenge-timeout-ms", "5000", "--grpc-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        udp, grpc_port = LISTENING.search(line), GRPC.search(line)
        assert udp is not None, line
        assert grpc_port is not None, line
        record = LandmarkRegistry.load(registry).get("lm-fra")
        assert record is not None
        endpoint = LandmarkEndpoint("lm-fra", "127.0.0.1", int(udp.group(2)), record.verifying_key)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port.group(1)}") as channel:
            yield (
                int(udp.group(2)),
                landmark_service_pb2_grpc.LandmarkServiceStub(channel),
                endpoint,
            )
    finally:
        stopped(process)


LandmarkStub = landmark_service_pb2_grpc.LandmarkServiceStub


def counters(stub: LandmarkStub) -> landmark_service_pb2.LandmarkCounters:
    return stub.GetCounters(landmark_service_pb2.GetCountersRequest(), timeout=PATIENCE_S)


def test_a_junk_flood_from_the_chip_s_host_does_not_starve_its_round(landmark):
    port, stub, endpoint = landmark
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOODER, str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert flooder.stdout is not None
        assert flooder.stdout.readline().strip() == "flooding"
        give_up = time.monotonic() + PATIENCE_S
        while counters(stub).datagrams_malformed < 200:
            assert time.monotonic() < give_up, "the flood never reached the landmark"
            time.sleep(0.01)
        envelope = run_round(
            endpoint,
            "chip-1",
            KeySigner.generate(),
            RoundSecrets(os.urandom),
            RoundSettings(exchanges=8, deadline_s=PATIENCE_S),
        )
        during = counters(stub)
    finally:
        stopped(flooder)
    assert round_pb2.TimingReceipt.FromString(envelope.payload).exchanges == 8
    assert (during.receipts_signed, during.rounds_failed) == (1, 0)
    assert during.datagrams_malformed > 200
    assert during.opens_retried > 200  # the flood's Opens: a Retry each, no state
