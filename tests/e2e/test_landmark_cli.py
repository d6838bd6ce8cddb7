"""``geoattest landmark serve`` as a process: it serves rounds, stops cleanly on a signal,
and every bad input is a one-line error naming it and a non-zero exit. What binds or resolves
runs the real console script; refusals made before anything starts run in process through
the same entry point (``invoke``)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from command import assert_one_line_error, invoke, run_geoattest

from geoattest import priorities
from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.cli.landmark_serve import landmark_app
from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRegistry
from geoattest.protocol.round import RoundSecrets
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark.server import NATIVE_IO
from geoattest.wire.rounds import realtime, restore_scheduling

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
LISTENING = re.compile(r"listening on udp (\S+):(\d+)")


run = invoke


@pytest.fixture(scope="module")
def landmark_dir(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("landmark")
    key, registry = base / "lm-fra", base / "registry.json"
    made = run(
        "landmark", "keygen", "--id", "lm-fra", "--operator", "de-carrier",
        "--lat", "50.11", "--lon", "8.68",
        "--out", str(key), "--registry", str(registry),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return key, registry


@pytest.fixture
def serving(landmark_dir) -> Iterator[tuple[subprocess.Popen[str], int]]:
    key, registry = landmark_dir
    process = subprocess.Popen(
        [GEOATTEST, "landmark", "serve", "--key", str(key), "--registry", str(registry)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = LISTENING.search(line)
        assert match is not None
        # the start line names which path times the receives and sends
        assert f"{'native' if NATIVE_IO else 'python'} timed I/O" in line, line
        yield process, int(match.group(2))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serve_answers_rounds_and_stops_cleanly_on_sigterm(serving, landmark_dir):
    process, port = serving
    record = LandmarkRegistry.load(landmark_dir[1]).get("lm-fra")
    assert record is not None
    endpoint = LandmarkEndpoint("lm-fra", "127.0.0.1", port, record.verifying_key)
    envelope = run_round(
        endpoint, "dev-1", KeySigner.generate(), RoundSecrets(os.urandom), RoundSettings(4)
    )
    assert round_pb2.TimingReceipt.FromString(envelope.payload).exchanges == 4
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    records = [json.loads(line) for line in process.stderr.read().splitlines()]
    assert records[-1]["message"] == "stopped"
    assert records[-1]["landmark_id"] == "lm-fra"
    assert (records[-1]["rounds_opened"], records[-1]["receipts_signed"]) == (1, 1)


def test_serve_times_rounds_from_a_real_time_thread_where_permitted(serving, landmark_dir):
    """By default the serving thread runs at the landmark's ``SCHED_FIFO`` priority where the
    process may (as root, as in CI), and no thread does where it may not."""
    process, port = serving
    record = LandmarkRegistry.load(landmark_dir[1]).get("lm-fra")
    assert record is not None
    endpoint = LandmarkEndpoint("lm-fra", "127.0.0.1", port, record.verifying_key)
    run_round(endpoint, "dev-1", KeySigner.generate(), RoundSecrets(os.urandom), RoundSettings(4))
    permitted = realtime(priorities.LANDMARK)
    if permitted is not None:
        restore_scheduling(permitted)
    fifo = []
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        tid = int(task.name)
        if os.sched_getscheduler(tid) == os.SCHED_FIFO:
            fifo.append(os.sched_getparam(tid).sched_priority)
    assert fifo == ([priorities.LANDMARK] if permitted is not None else [])


def test_serve_polls_for_a_short_paths_answers_by_default():
    serve = typer.main.get_command(landmark_app).commands["serve"]  # type: ignore[attr-defined]
    spin = next(p for p in serve.params if p.name == "spin_us")
    assert spin.default == priorities.LANDMARK_POLL_US > 0


def test_serve_reads_answers_by_polling_where_the_host_lets_it_spin(landmark_dir):
    """Polling long enough for any loopback path, the landmark reads every answer after a
    round's first by a poll where it may spin (at real-time priority with a second CPU, as
    root in CI), and reports how many in its last log line."""
    key, registry = landmark_dir
    process = subprocess.Popen(
        [GEOATTEST, "landmark", "serve", "--key", str(key), "--registry", str(registry),
         "--spin-us", "500000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        match = LISTENING.search(process.stdout.readline())
        assert match is not None
        record = LandmarkRegistry.load(registry).get("lm-fra")
        assert record is not None
        endpoint = LandmarkEndpoint(
            "lm-fra", "127.0.0.1", int(match.group(2)), record.verifying_key
        )
        run_round(
            endpoint, "dev-1", KeySigner.generate(), RoundSecrets(os.urandom), RoundSettings(4)
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert process.stderr is not None
        last = json.loads(process.stderr.read().splitlines()[-1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    permitted = realtime(priorities.LANDMARK)
    if permitted is not None:
        restore_scheduling(permitted)
    if permitted is not None and len(os.sched_getaffinity(0)) > 1:
        assert last["datagrams_polled"] == 3
    else:
        assert last["datagrams_polled"] in range(4)


@pytest.mark.parametrize("value", ["-1", "100", "high"])
def test_serve_with_a_bad_realtime_priority_names_it(landmark_dir, value):
    result = run("landmark", "serve", "--key", str(landmark_dir[0]), "--realtime-priority", value)
    assert_one_line_error(result, "--realtime-priority")


def test_serve_stops_cleanly_on_ctrl_c(serving):
    process, _ = serving
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0


def test_serve_on_a_port_in_use_names_it(landmark_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        result = run_geoattest("landmark", "serve", "--key", str(landmark_dir[0]), "--port", port)
    assert_one_line_error(result, f"127.0.0.1:{port}", "in use")


def test_serve_with_a_missing_key_dir_names_it(tmp_path):
    missing = str(tmp_path / "nowhere")
    assert_one_line_error(run("landmark", "serve", "--key", missing), missing)


def test_serve_with_a_key_dir_without_a_key_names_it(tmp_path):
    assert_one_line_error(run("landmark", "serve", "--key", str(tmp_path)), "key.pem")


def test_serve_with_an_unresolvable_host_names_it(landmark_dir):
    result = run_geoattest(
        "landmark", "serve", "--key", str(landmark_dir[0]), "--host", "no-such.invalid"
    )
    assert_one_line_error(result, "no-such.invalid")


def test_serve_on_an_address_not_of_this_host_names_it(landmark_dir):
    result = run_geoattest(
        "landmark", "serve", "--key", str(landmark_dir[0]), "--host", "192.0.2.1"
    )
    assert_one_line_error(result, "192.0.2.1")


def test_serve_with_an_unknown_flag_names_it(landmark_dir):
    result = run("landmark", "serve", "--key", str(landmark_dir[0]), "--colour", "blue")
    assert_one_line_error(result, "--colour")


def test_serve_with_a_bad_flag_value_names_it(landmark_dir):
    result = run("landmark", "serve", "--key", str(landmark_dir[0]), "--exchanges-max", "99")
    assert_one_line_error(result, "--exchanges-max")


def test_serve_refuses_a_key_the_registry_does_not_list(landmark_dir, tmp_path):
    other = tmp_path / "other"
    made = run(
        "landmark",
        "keygen",
        "--id",
        "lm-fra",
        "--operator",
        "de-carrier",
        "--lat",
        "1",
        "--lon",
        "2",
        "--out",
        str(other),
    )
    assert made.returncode == 0, made.stderr
    result = run("landmark", "serve", "--key", str(other), "--registry", str(landmark_dir[1]))
    assert_one_line_error(result, "another key", "lm-fra")


def test_serve_with_a_missing_registry_names_it(landmark_dir, tmp_path):
    missing = str(tmp_path / "registry.json")
    result = run("landmark", "serve", "--key", str(landmark_dir[0]), "--registry", missing)
    assert_one_line_error(result, missing)


def test_serve_with_an_unusable_grpc_port_names_it(landmark_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_geoattest(
            "landmark", "serve", "--key", str(landmark_dir[0]), "--grpc-port", port
        )
    assert_one_line_error(result, f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("registered", "verifier", "peer", "needle"),
    [
        (False, "127.0.0.1:1", "lm-zrh=127.0.0.1:4000", "--audit-peer needs --registry"),
        (True, "127.0.0.1:1", "x", "--audit-peer 'x' is not LANDMARK_ID=HOST:PORT"),
        (True, "127.0.0.1:1", "lm-zrh=127.0.0.1:4000", "landmark lm-zrh is not in"),
        (True, "127.0.0.1:1", "lm-fra=127.0.0.1:4000", "lm-fra is this landmark"),
        (True, "nowhere", "lm-fra=127.0.0.1:4000", "--verifier 'nowhere' is not HOST:PORT"),
    ],
)
def test_serve_with_a_bad_audit_option_names_it(landmark_dir, registered, verifier, peer, needle):
    key, registry = landmark_dir
    args = ["--verifier", verifier, "--audit-peer", peer]
    if registered:
        args += ["--registry", str(registry)]
    assert_one_line_error(run("landmark", "serve", "--key", str(key), *args), needle)
