"""The verifier's log as an operator's log shipper reads it: one JSON object per line, one
line per call with its method, caller, outcome and duration, and a proof refused because
the disk is full is one line with its reason, not a traceback.

The full disk is real: the verifier process's file-size limit (``RLIMIT_FSIZE``) is set
to one byte while it runs, so SQLite's next write to its journal fails in the kernel.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import time
from pathlib import Path

import pytest
from command import GEOATTEST
from verifier_world import VerifierWorld

from geoattest.units import SECOND_NS
from geoattest.wire.client import VerifierClient, VerifierRefused

pytestmark = pytest.mark.slow

GUARD_S = 60.0


def test_a_refusal_for_a_full_disk_is_one_json_line_with_its_reason(tmp_path: Path):
    world = VerifierWorld.create(tmp_path)
    chip = world.chip("dev-1")
    process = subprocess.Popen(
        [GEOATTEST, *world.serve_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # a pipe, not a file: the file-size limit spares it
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        assert listening.startswith("verifier listening on "), listening
        target = listening.split()[-1]
        now_ns = time.time_ns()

        async def run() -> VerifierRefused:
            async with VerifierClient(target, timeout_s=GUARD_S) as client:
                await client.enroll(chip.enroll_request())
                await client.submit(world.proof(chip, unix_ns=now_ns - 2 * SECOND_NS))
                resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1, 1))
                with pytest.raises(VerifierRefused) as refused:
                    await client.submit(world.proof(chip, unix_ns=now_ns - SECOND_NS))
                return refused.value

        refusal = asyncio.run(run())
        assert refusal.reason == "store.unavailable"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=GUARD_S)

    lines = err.strip().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert "Traceback" not in err
    calls = [r for r in records if r["message"] == "rpc"]
    assert [c["method"] for c in calls] == ["Enroll", "SubmitProof", "SubmitProof"]
    assert all(c["caller"] == "loopback" for c in calls)
    assert all(c["peer"].startswith("ipv4:127.0.0.1:") for c in calls)
    assert all(c["duration_ms"] >= 0 for c in calls)
    assert [c["outcome"] for c in calls] == ["OK", "OK", "UNAVAILABLE"]
    refused = calls[-1]
    assert refused["reason"] == "store.unavailable"
    assert refused["cause"]  # the driver's words stay in the log, never reach the client
    assert len([r for r in records if r["level"] in {"ERROR", "WARNING"}]) == 0
