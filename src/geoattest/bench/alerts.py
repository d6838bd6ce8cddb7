"""``geoattest bench alerts``: alert latency across replicas, from sending a forked proof
to replica A until its CLONE alert reaches a ``WatchAlerts`` subscriber at replica B, both
``verifier serve`` processes over one database: PostgreSQL (B is woken by ``LISTEN/NOTIFY``)
and, in the same run, SQLite (B polls the table).

Each latency includes A's appraisal of the proof and its commit, so it bounds the
propagation alone from above; the baseline measured beside it is the same forked proof's
round trip to A alone (its refusal), so ``*_over_refusal`` is what the trip to another
replica adds, as a ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Fleet
from geoattest.bench.postgres import postgresql_databases
from geoattest.bench.report import Figures, median, progress, quantile
from geoattest.demo.run import Party
from geoattest.v1 import verifier_service_pb2
from geoattest.wire.client import VerifierClient, VerifierRefused, enrolment_request

SUBSCRIBED_S = 1.0
"""Time for B's stream to be served before the first fork is sent (it starts from then)."""


async def measure(
    fleet: Fleet, a: str, b: str, advance: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Milliseconds from each forked proof's send to its alert at ``b``, and to its
    refusal by ``a``."""
    async with VerifierClient(a, timeout_s=60) as at_a, VerifierClient(b) as at_b:
        forks = []
        for chip in fleet.chips:
            await at_a.enroll(
                enrolment_request(
                    chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
                )
            )
            forks.append(fleet.proof(chip, advance=False))  # the same place in the chain
            await at_a.submit(fleet.proof(chip))
        stream = at_b.watch_alerts()
        first: asyncio.Future[verifier_service_pb2.Alert] | None = asyncio.ensure_future(
            anext(stream)
        )
        await asyncio.sleep(SUBSCRIBED_S)
        latencies, refusals = [], []
        for fork in forks:
            sent = time.perf_counter()
            with contextlib.suppress(VerifierRefused):  # refused as a fork, as it must be
                await at_a.submit(fork)
            refusals.append((time.perf_counter() - sent) * 1e3)
            await (first if first is not None else anext(stream))
            first = None
            latencies.append((time.perf_counter() - sent) * 1e3)
            advance()
        return latencies, refusals


def replicas_latency(
    fleet: Fleet, db: str | None, advance: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Two replicas over ``db`` (None: a SQLite file), the latencies between them."""
    with tempfile.TemporaryDirectory(prefix="geoattest-alerts-") as tmp:
        root = Path(tmp)
        argv = fleet.write(root)
        if db is not None:
            argv[argv.index("--db") + 1] = db
        command = [sys.executable, "-m", "geoattest", *argv]
        a = Party("replica-a", command, root / "a.log")
        b = Party("replica-b", command, root / "b.log")
        try:
            targets = str(a.wait_for_address()), str(b.wait_for_address())
            return asyncio.run(measure(fleet, *targets, advance))
        finally:
            a.stop()
            b.stop()


def run(alerts: int = 100, db: str = "postgresql") -> Figures:
    """p50/p99 alert latency at the other replica, PostgreSQL then SQLite; ``db``:
    ``postgresql`` (a temporary server) or a server's ``postgresql://`` URL."""
    figures: Figures = {"alerts": alerts}
    with progress("alerts", 2 * alerts) as (bar, task), postgresql_databases(db) as database:
        for name, where in (("postgresql", database()), ("sqlite", None)):
            fleet = Fleet(alerts)
            latencies, refusals = replicas_latency(fleet, where, lambda: bar.advance(task))
            figures |= {
                f"{name}_alert_p50_ms": round(median(latencies), 2),
                f"{name}_alert_p99_ms": round(quantile(latencies, 0.99), 2),
                f"{name}_refusal_p50_ms": round(median(refusals), 2),
                f"{name}_alert_p50_over_refusal": round(median(latencies) / median(refusals), 2),
            }
    return figures
