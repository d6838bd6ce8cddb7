"""Live landmark audits: four ``geoattest landmark serve`` processes on loopback time each
other and hand the receipts to a real ``geoattest verifier serve``. Three are registered
where they stand (one site); lm-syd is registered in Sydney, so every peer times it faster
than light and the verifier excludes it, storing the exclusion and its alert. The exclusion
holds across a verifier restart, and an operator can list and lift it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from command import GEOATTEST, run_geoattest
from verifier_world import VerifierWorld

from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import Alert, SqlStore

pytestmark = pytest.mark.slow

SITES = {
    "lm-a": (50.1100, 8.6800),
    "lm-b": (50.1105, 8.6805),
    "lm-c": (50.1095, 8.6795),
    "lm-syd": (-33.87, 151.21),
}
"""Where each landmark is registered; all of them run on this host."""
MISPLACED = "lm-syd"
DEADLINE_S = 180.0
"""Generous: the audits run every second, but the machine may be busy."""


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@contextmanager
def process(args: list[str], log: Path, first_line: str) -> Iterator[subprocess.Popen[str]]:
    """A ``geoattest`` process (stderr to ``log``) once it printed ``first_line``."""
    with log.open("w") as errors:
        running = subprocess.Popen(
            [GEOATTEST, *args], stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            assert running.stdout is not None
            line = running.stdout.readline()
            assert first_line in line, line + log.read_text()
            yield running
        finally:
            if running.poll() is None:
                running.send_signal(signal.SIGTERM)
            running.wait(timeout=60)
            if running.stdout is not None:
                running.stdout.close()


def stored(db: Path) -> tuple[list[Alert], set[str], int]:
    """The landmark alerts, the exclusions in force and the peer measurements, as stored."""
    store = SqlStore.open(db)
    try:
        alerts = [a for a in store.alerts() if a.kind == AlertKind.INCONSISTENT_LANDMARKS]
        return alerts, set(store.excluded_landmarks()), len(store.dump()["peer_measurements"])
    finally:
        store.close()


def test_live_audits_exclude_a_misplaced_landmark_and_the_exclusion_holds(tmp_path: Path):
    world = VerifierWorld.create(tmp_path)
    serve_args = world.serve_args(f"127.0.0.1:{free_port(socket.SOCK_STREAM)}")
    verifier_address = serve_args[serve_args.index("--listen") + 1]
    registry = tmp_path / "landmarks.json"
    registry.unlink()
    for landmark_id, (lat, lon) in SITES.items():
        made = run_geoattest(
            "landmark", "keygen", "--id", landmark_id, "--lat", str(lat), "--lon", str(lon),
            "--operator", f"{landmark_id}-operator",
            "--out", str(tmp_path / landmark_id), "--registry", str(registry),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    ports = {landmark_id: free_port(socket.SOCK_DGRAM) for landmark_id in SITES}

    def landmark_args(landmark_id: str) -> list[str]:
        peers = [f"{peer}=127.0.0.1:{port}" for peer, port in ports.items() if peer != landmark_id]
        return [
            "landmark", "serve", "--key", str(tmp_path / landmark_id),
            "--registry", str(registry), "--port", str(ports[landmark_id]),
            "--verifier", verifier_address, "--verifier-plaintext", "--audit-every-s", "1",
            *(arg for peer in peers for arg in ("--audit-peer", peer)),
        ]  # fmt: skip

    with ExitStack() as landmarks:
        with process(serve_args, tmp_path / "verifier-1.log", "verifier listening on"):
            for landmark_id in SITES:
                landmarks.enter_context(
                    process(
                        landmark_args(landmark_id),
                        tmp_path / f"{landmark_id}.log",
                        "auditing 3 peers",
                    )
                )
            poll(f"{MISPLACED} excluded", lambda: stored(world.db_path)[1] == {MISPLACED})
            alerts, _, measured_before = stored(world.db_path)
            (alert,) = alerts
            assert alert.device_id == ""
            assert alert.reason == "receipt.revoked_landmark"
            assert alert.detail.startswith(f"landmark {MISPLACED} timed ")
            assert alert.detail.endswith("faster than light between registered sites: excluded")

            listed = run_geoattest("verifier", "exclusions", "--db", str(world.db_path))
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.startswith(f"{MISPLACED} IN FORCE excluded ")

        # The verifier restarts while the landmarks go on auditing: the exclusion holds,
        # and the new audits do not raise it again.
        with process(serve_args, tmp_path / "verifier-2.log", "verifier listening on"):
            poll(
                "audits after the restart",
                lambda: stored(world.db_path)[2] >= measured_before + 2 * len(SITES),
            )
            alerts, excluded, _ = stored(world.db_path)
            assert excluded == {MISPLACED}
            assert len(alerts) == 1

            # Lifted, it counts again until new audits catch it: they do, and alert again.
            lifted = run_geoattest(
                "verifier", "lift", MISPLACED, "--db", str(world.db_path),
                "--by", "alice", "--why", "re-surveyed",
            )  # fmt: skip
            assert lifted.returncode == 0, lifted.stderr
            assert f"landmark {MISPLACED}: exclusion lifted by alice" in lifted.stdout
            poll("the second exclusion", lambda: len(stored(world.db_path)[0]) == 2)
            listed = run_geoattest("verifier", "exclusions", "--db", str(world.db_path))
            lines = listed.stdout.splitlines()
            assert lines[0].startswith(f"{MISPLACED} LIFTED ")
            assert " by alice (re-surveyed); excluded " in lines[0]
            assert lines[1].startswith(f"{MISPLACED} IN FORCE ")
