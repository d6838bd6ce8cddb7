"""Alert latency across replicas: from sending a forked proof to replica A until its CLONE
alert reaches a ``WatchAlerts`` subscriber at replica B, both ``verifier serve`` processes
over one database.

Run: ``python bench/alert_latency.py --db postgresql://... [--alerts 200]`` (an empty
database), or with no ``--db`` for SQLite (a file in a temporary directory, where replica B
learns of A's alerts by polling). Prints p50 and p99 in ms. The time includes A's appraisal
of the proof and its commit: an upper bound on the propagation alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Fleet
from geoattest.bench.report import median, quantile
from geoattest.demo.run import Party
from geoattest.wire.client import VerifierClient, VerifierRefused, enrolment_request


async def measure(fleet: Fleet, a: str, b: str) -> list[float]:
    """Milliseconds from each forked proof's send to its alert at ``b``."""
    async with VerifierClient(a, timeout_s=60) as at_a, VerifierClient(b) as at_b:
        for chip in fleet.chips:
            await at_a.enroll(
                enrolment_request(
                    chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
                )
            )
            await at_a.submit(fleet.proof(chip))
        stream = at_b.watch_alerts()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(1.0)  # the stream starts from now once it is served
        latencies = []
        for chip in fleet.chips:
            fork = fleet.proof(chip, advance=False)
            sent = time.perf_counter()
            with contextlib.suppress(VerifierRefused):  # refused as a fork, as it must be
                await at_a.submit(fork)
            await (first if first is not None else anext(stream))
            first = None
            latencies.append((time.perf_counter() - sent) * 1e3)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None, help="an empty PostgreSQL database's URL")
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()
    fleet = Fleet(args.alerts)
    with tempfile.TemporaryDirectory(prefix="geoattest-alerts-") as tmp:
        root = Path(tmp)
        argv = fleet.write(root)
        if args.db:
            argv[argv.index("--db") + 1] = args.db
        command = [sys.executable, "-m", "geoattest", *argv]
        a = Party("replica-a", command, root / "a.log")
        b = Party("replica-b", command, root / "b.log")
        try:
            targets = str(a.wait_for_address()), str(b.wait_for_address())
            latencies = asyncio.run(measure(fleet, *targets))
        finally:
            a.stop()
            b.stop()
    print(
        f"{'postgresql' if args.db else 'sqlite'}: {len(latencies)} alerts, "
        f"p50 {median(latencies):.1f} ms, p99 {quantile(latencies, 0.99):.1f} ms"
    )


if __name__ == "__main__":
    main()
