"""A real Prometheus (the distribution's ``prometheus``) scrapes a real verifier over HTTPS
with a monitor certificate, and a real landmark over loopback HTTP; its query API then
shows both targets up and the counters the test drove: proofs by verdict at the verifier,
receipts at the landmark.

``.ci/run`` installs the package; elsewhere the test skips without it, in CI it fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from command import GEOATTEST
from verifier_world import VerifierWorld

from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRegistry
from geoattest.pki.keyfiles import KEY_FILE
from geoattest.pki.tls import CA_FILE, CERT_FILE, OperatorCA, Role
from geoattest.protocol.round import RoundSecrets
from geoattest.units import SECOND_NS
from geoattest.wire.client import VerifierClient

pytestmark = pytest.mark.slow

GUARD_S = 120.0
"""A failure guard only."""


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("GEOATTEST_CI"):
            pytest.fail("prometheus is missing in CI (.ci/run installs it)")
        pytest.skip("the prometheus package is not installed")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _started(argv: list[str], processes: list[subprocess.Popen[str]], *prefixes: str) -> list[str]:
    """Start ``argv``; its first stdout lines, which must begin with ``prefixes`` in turn
    (they name the addresses it serves on)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    processes.append(process)
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in prefixes]
    for line, prefix in zip(lines, prefixes, strict=True):
        assert line.startswith(prefix), line
    return lines


def _query(api: str, expression: str) -> dict[str, float]:
    """An instant query's result: each series' job and its value."""
    url = f"{api}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    with urllib.request.urlopen(url, timeout=GUARD_S) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in answer["data"]["result"]}


def _eventually(api: str, expression: str, expected: dict[str, float]) -> None:
    """Query until ``expression`` gives ``expected`` (scrapes come every second)."""
    give_up = time.monotonic() + GUARD_S
    found: dict[str, float] = {}
    while found != expected:
        assert time.monotonic() < give_up, (expression, found)
        time.sleep(0.5)
        try:
            found = _query(api, expression)
        except urllib.error.URLError:  # Prometheus still starting
            continue


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        process.wait(GUARD_S)


def _scrape_config(monitor: Path, verifier: str, landmark: str) -> str:
    """Prometheus's configuration: the verifier over HTTPS with the monitor's certificate,
    the landmark over plain HTTP; a scrape every second. (JSON is YAML too.)"""
    tls = {
        "ca_file": str(monitor / CA_FILE),
        "cert_file": str(monitor / CERT_FILE),
        "key_file": str(monitor / KEY_FILE),
    }
    jobs = [
        {"job_name": "verifier", "scheme": "https", "tls_config": tls, "target": verifier},
        {"job_name": "landmark", "target": landmark},
    ]
    for job in jobs:
        job["static_configs"] = [{"targets": [urllib.parse.urlsplit(job.pop("target")).netloc]}]
    return json.dumps(
        {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs}
    )


def test_prometheus_scrapes_the_verifier_over_https_and_the_landmark(tmp_path: Path, processes):
    prometheus = _prometheus()
    world = VerifierWorld.create(tmp_path)
    server_tls = world.server_tls()
    monitor = tmp_path / "tls" / "monitor"
    ca = OperatorCA.load(tmp_path / "tls" / "ca")
    ca.issue_to(monitor, Role.MONITOR, "prometheus", dt.datetime.now(dt.UTC))
    metrics = ["--metrics", "127.0.0.1:0", "--metrics-tls", str(server_tls)]
    verifier_lines = _started(
        [GEOATTEST, *world.serve_args(), *metrics],
        processes,
        "verifier metrics on https://",
        "verifier listening on ",
    )
    key_dir, registry = tmp_path / "lm-fra", tmp_path / "lm-registry.json"
    made = subprocess.run(
        [GEOATTEST, "landmark", "keygen", "--id", "lm-fra", "--operator", "de-carrier",
         "--lat", "50.11", "--lon", "8.68", "--out", str(key_dir), "--registry", str(registry)],
        capture_output=True, text=True, check=False, timeout=GUARD_S,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    landmark_lines = _started(
        [GEOATTEST, "landmark", "serve", "--key", str(key_dir), "--metrics", "127.0.0.1:0"],
        processes,
        "landmark metrics on http://",
        "landmark lm-fra listening on udp ",
    )
    udp = re.search(r"udp (\S+):(\d+)", landmark_lines[1])
    assert udp is not None

    # What the counters must show: three proofs (two ALLOWED, one OUTSIDE), two receipts.
    target = verifier_lines[1].split()[-1]
    now_ns = time.time_ns()

    async def prove() -> None:
        async with VerifierClient(target, timeout_s=GUARD_S) as client:
            for device_id in ("dev-1", "dev-2", "dev-syd"):
                chip = world.chip(device_id)
                await client.enroll(chip.enroll_request())
                await client.submit(world.proof(chip, unix_ns=now_ns - SECOND_NS))

    asyncio.run(prove())
    record = LandmarkRegistry.load(registry).get("lm-fra")
    assert record is not None
    landmark = LandmarkEndpoint("lm-fra", udp.group(1), int(udp.group(2)), record.verifying_key)
    for _ in range(2):
        secrets = RoundSecrets(os.urandom)
        run_round(landmark, "dev-1", KeySigner.generate(), secrets, RoundSettings(2))

    config = tmp_path / "prometheus.yml"
    config.write_text(
        _scrape_config(monitor, verifier_lines[0].split()[-1], landmark_lines[0].split()[-1])
    )
    web = f"127.0.0.1:{_free_port()}"
    argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    argv.append(f"--web.listen-address={web}")
    processes.append(
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    )
    api = f"http://{web}"
    _eventually(api, "up", {"verifier": 1, "landmark": 1})
    proofs = "sum by (job) (geoattest_verifier_proofs_total{{verdict={!r}}})"
    _eventually(api, proofs.format("ALLOWED"), {"verifier": 2})
    _eventually(api, proofs.format("OUTSIDE"), {"verifier": 1})
    _eventually(api, "geoattest_landmark_receipts_signed_total", {"landmark": 2})
