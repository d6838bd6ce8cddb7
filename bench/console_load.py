"""The console under a large fleet: page latency with 100,000 enrolled devices.

Run: ``python bench/console_load.py [--devices 100000] [--requests 200]``. It writes a
verifier database with ``--devices`` enrolled devices, each with an accepted proof (a
feasible region and a verdict) at one of 40 data centres around the world, two landmarks
each, and an alert for every 50th device; starts the console on loopback (uvicorn, as
``geoattest console`` serves it); and times ``--requests`` sequential requests of each
page over HTTP, reporting p50, p99 and the largest. The devices are written straight into
the store's tables (no signatures), since only the console's reads are measured.

The fleet map is aggregated on the server: its SVG size is printed too, to show that
100,000 devices are a few dozen shapes, not 100,000 polygons.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import uvicorn
from sqlalchemy import insert

from geoattest.console.app import ConsoleFiles, console_app, load_console
from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRecord, LandmarkRegistry
from geoattest.verifier.store import (
    DeviceState,
    SqlStore,
    alerts,
    chain_heads,
    devices,
    export_licences,
    proofs,
)

PAGES = ("/", "/fleet/map.svg", "/fleet.json", "/alerts", "/devices/dev-000042", "/landmarks")
VERDICTS = ("ALLOWED", "ALLOWED", "ALLOWED", "INCONCLUSIVE", "OUTSIDE")


def seed(root: Path, count: int) -> ConsoleFiles:
    """A database of ``count`` devices with proofs and licences, a registry and a policy
    in ``root``."""
    rng = random.Random(7)
    sites = [(rng.uniform(-40, 60), rng.uniform(-120, 140)) for _ in range(40)]
    records = []
    for i, (lat, lon) in enumerate(sites):
        records += [
            LandmarkRecord(f"lm-{i:02d}-{side}", lat + d, lon, KeySigner.generate().verifying_key)
            for side, d in (("a", 0.0), ("b", 0.01))
        ]
    LandmarkRegistry(records).save(root / "landmarks.json")
    (root / "policy.json").write_text(
        json.dumps({"id": "bench", "version": 1, "regions": {"ALL": {"countries": ["DE"]}}})
    )
    db = root / "verifier.db"
    SqlStore.open(db).close()
    store = SqlStore.open(db)
    device_rows, head_rows, proof_rows, alert_rows = [], [], [], []
    licence_rows = []
    spki = KeySigner.generate().verifying_key.der()  # one real key: the device page parses it
    now_ns = time.time_ns()
    for i in range(count):
        device_id = f"dev-{i:06d}"
        site = i % len(sites)
        lat, lon = sites[site]
        verdict = VERDICTS[i % len(VERDICTS)]
        rtt_ns = rng.randint(20_000, 400_000)
        bounds = orjson.dumps(
            [
                [f"lm-{site:02d}-a", lat, lon, rtt_ns, 0.0],
                [f"lm-{site:02d}-b", lat + 0.01, lon, rtt_ns + 5000, 0.0],
            ]
        ).decode()
        digest = i.to_bytes(32, "big")
        device_rows.append(
            {
                "device_id": device_id, "key_id": f"key-{i}", "spki": spki, "model": "H100",
                "cert_serial": str(i), "not_valid_after_ns": 2**62, "licensed_region": "ALL",
                "licence_expires_ns": 2**62, "enrolled_at_ns": now_ns,
                "state": DeviceState.ATTESTING.value,
            }
        )  # fmt: skip
        head_rows.append(
            {
                "device_id": device_id, "counter": 1, "digest": digest, "previous_digest": b"",
                "accepted_at_ns": now_ns + i, "landmark_times": "{}", "verdict": verdict,
                "evidence_time_ns": now_ns, "licence_version": 1,
            }
        )  # fmt: skip
        licence_rows.append(
            {
                "device_id": device_id, "licence_id": device_id, "version": 1, "region": "ALL",
                "valid_until_ns": 2**62, "withdrawn": False, "changed_at_ns": now_ns,
            }
        )  # fmt: skip
        proof_rows.append(
            {
                "id": i + 1, "device_id": device_id, "counter": 1, "digest": digest,
                "previous_digest": b"", "envelope": b"-", "accepted": True, "verdict": verdict,
                "reason": "", "detail": "", "bounds": bounds, "evidence_time_ns": now_ns,
                "received_at_ns": now_ns, "token": "x.y.z",
            }
        )  # fmt: skip
        if i % 50 == 0:
            alert_rows.append(
                {
                    "alert_id": f"a{i}", "device_id": device_id,
                    "kind": "OUTSIDE_LICENSED_REGION", "reason": "", "detail": "bench",
                    "time_ns": now_ns, "proof_id": i + 1,
                }
            )  # fmt: skip
    with store._write() as conn:
        for table, rows in (
            (devices, device_rows),
            (proofs, proof_rows),
            (chain_heads, head_rows),
            (export_licences, licence_rows),
            (alerts, alert_rows),
        ):
            conn.execute(insert(table), rows)
    store.close()
    return ConsoleFiles(db, root / "policy.json", root / "landmarks.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        files = seed(Path(folder), args.devices)
        print(f"seeded {args.devices} devices in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        console = load_console(files)
        print(f"console loaded the fleet in {time.perf_counter() - started:.1f} s")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(console_app(console), log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        print(f"{'page':24} {'first ms':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>9}")
        for page in PAGES:
            times = []
            size = 0
            for _ in range(args.requests):
                begun = time.perf_counter()
                with urllib.request.urlopen(url + page, timeout=120) as response:
                    size = len(response.read())
                times.append((time.perf_counter() - begun) * 1000)
            cuts = statistics.quantiles(times, n=100, method="inclusive")
            print(
                f"{page:24} {times[0]:9.1f} {cuts[49]:8.1f} {cuts[98]:8.1f} {max(times):8.1f}"
                f" {size:9d}"
            )
        server.should_exit = True
        thread.join()


if __name__ == "__main__":
    main()
