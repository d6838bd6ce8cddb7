"""SIGKILL the verifier under load, restart it: every acknowledged proof is in the database,
and agents retrying their unacknowledged proofs get them accepted (or the stored answer)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from verifier_world import ProvisionedChip, VerifierWorld

from geoattest.verifier.store import SqlStore
from geoattest.wire.client import VerifierClient, VerifierRefused

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
CHIPS = 4
PROOFS_PER_CHIP = 12
MS = 1_000_000

pytestmark = pytest.mark.slow


def start_verifier(world: VerifierWorld) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [GEOATTEST, *world.serve_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("verifier listening on "), line
    return process, line.split()[-1]


def build_proofs(world: VerifierWorld, chip: ProvisionedChip) -> list:
    start = time.time_ns() - PROOFS_PER_CHIP * MS
    return [world.proof(chip, unix_ns=start + i * MS) for i in range(PROOFS_PER_CHIP)]


async def submit_until_killed(target: str, proofs: dict[str, list], acked: set, kill_after: int):
    """One agent per chip submits its proofs in order; the verifier is killed mid-way."""
    killed = asyncio.Event()

    async def agent(device_id: str) -> None:
        async with VerifierClient(target, timeout_s=10) as client:
            for proof in proofs[device_id]:
                try:
                    result = await client.submit(proof)
                except VerifierRefused:
                    return  # the verifier died under us
                acked.add((device_id, result.counter))
                if len(acked) >= kill_after:
                    killed.set()

    agents = [asyncio.create_task(agent(d)) for d in proofs]
    await killed.wait()
    return agents


def test_sigkill_under_load_loses_no_acknowledged_proof(tmp_path):
    valid_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat()
    world = VerifierWorld.create(tmp_path, valid_until=valid_until)
    chips = [world.chip(f"dev-{i}") for i in range(1, CHIPS + 1)]
    proofs = {chip.device_id: build_proofs(world, chip) for chip in chips}
    process, target = start_verifier(world)
    acked: set[tuple[str, int]] = set()

    async def load_then_kill() -> None:
        async with VerifierClient(target) as client:
            for chip in chips:
                await client.enroll(chip.enroll_request())
        agents = await submit_until_killed(target, proofs, acked, kill_after=CHIPS * 4)
        os.kill(process.pid, signal.SIGKILL)  # mid-load: other submissions are in flight
        await asyncio.gather(*agents, return_exceptions=True)

    try:
        asyncio.run(load_then_kill())
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert CHIPS * 4 <= len(acked) < CHIPS * PROOFS_PER_CHIP, "the kill came mid-load"

    store = SqlStore.open(world.db_path)
    stored = {(d, c) for d in proofs for c in store.accepted_counters(d)}
    store.close()
    assert acked <= stored, f"acknowledged but lost: {sorted(acked - stored)}"

    process, target = start_verifier(world)

    async def retry_everything() -> list:
        async with VerifierClient(target) as client:
            return [await client.submit(p) for d in proofs for p in proofs[d]]

    try:
        results = asyncio.run(retry_everything())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert [r.counter for r in results] == list(range(1, PROOFS_PER_CHIP + 1)) * CHIPS
    store = SqlStore.open(world.db_path)
    for device_id in proofs:
        assert store.accepted_counters(device_id) == list(range(1, PROOFS_PER_CHIP + 1))
    store.close()
