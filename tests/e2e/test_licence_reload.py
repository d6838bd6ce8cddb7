"""A licence changed under a running ``geoattest verifier serve`` (two workers): SIGHUP
re-reads the licences file and the next proof over gRPC is judged by the new version; a
file that does not load is refused and changes nothing; ``verifier licences apply``
withdraws a licence from the command line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from verifier_world import ProvisionedChip, VerifierWorld

from geoattest.v1 import evidence_pb2
from geoattest.verifier.results import CLAIM_PREFIX, submod_name
from geoattest.wire.client import VerifierClient, VerifierRefused

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))

pytestmark = pytest.mark.slow


def write_licence(world: VerifierWorld, entry: dict[str, Any]) -> None:
    world.licences_path.write_text(json.dumps({"licences": {"dev-1": entry}}))


def read_until(stream: Any, text: str) -> str:
    """Lines of the verifier's log up to the first that contains ``text``."""
    while text not in (line := stream.readline()):
        assert line, f"the verifier's log ended before {text!r}"
    return line


def prove(world: VerifierWorld, target: str, chip: ProvisionedChip, *, advance: bool = True):
    proof = world.proof(chip, unix_ns=time.time_ns() - 10**9, advance=advance)

    async def submit() -> evidence_pb2.AttestationResult:
        async with VerifierClient(target) as client:
            return await client.submit(proof)

    return asyncio.run(submit())


def licence_claim(world: VerifierWorld, result: evidence_pb2.AttestationResult) -> Any:
    key = jwt.PyJWK(world.result_key.jwks()["keys"][0]).key
    claims = jwt.decode(result.result_token, key, algorithms=["ES256"])
    return claims["submods"][submod_name("dev-1")][f"{CLAIM_PREFIX}licence"]


def test_sighup_and_apply_put_a_changed_licence_in_force_for_the_next_proof(tmp_path):
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).replace(microsecond=0)
    world = VerifierWorld.create(tmp_path, licensed={"dev-1": "FRA-300"})
    write_licence(world, {"region": "FRA-300", "valid_until": until.isoformat()})
    process = subprocess.Popen(
        [GEOATTEST, *world.serve_args(), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = process.stdout.readline()
        assert line.startswith("verifier listening on "), line
        target = line.split()[-1]
        chip = world.chip("dev-1")

        async def enrol() -> None:
            async with VerifierClient(target) as client:
                await client.enroll(chip.enroll_request())

        asyncio.run(enrol())
        first = prove(world, target, chip)
        assert first.verdict == evidence_pb2.VERDICT_ALLOWED
        assert licence_claim(world, first)["version"] == 1

        # Narrowed away from the chip's site (Frankfurt) to Sydney.
        write_licence(world, {"region": "SYD-300", "valid_until": until.isoformat()})
        process.send_signal(signal.SIGHUP)
        assert "dev-1 v2" in read_until(process.stderr, "licences reloaded")
        narrowed = prove(world, target, chip)
        assert narrowed.verdict == evidence_pb2.VERDICT_OUTSIDE
        assert licence_claim(world, narrowed) == {
            "id": "dev-1",
            "version": 2,
            "valid-until": int(until.timestamp()),
            "withdrawn": False,
        }

        # A file that does not load is refused; the licence in force stays.
        world.licences_path.write_text('{"licences": {"dev-1": {"region": "ATLANTIS"}}}')
        process.send_signal(signal.SIGHUP)
        assert "unchanged" in read_until(process.stderr, "licence reload refused")
        again = prove(world, target, chip)
        assert again.verdict == evidence_pb2.VERDICT_OUTSIDE
        assert licence_claim(world, again)["version"] == 2

        # Withdrawn from the command line, while the verifier runs.
        write_licence(
            world, {"region": "FRA-300", "valid_until": until.isoformat(), "withdrawn": True}
        )
        policy = tmp_path / "policy.json"
        applied = subprocess.run(
            [GEOATTEST, "verifier", "licences", "apply", "--db", str(world.db_path),
             "--policy", str(policy), "--licences", str(world.licences_path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        assert "dev-1: licence dev-1 version 3, region FRA-300, withdrawn" in applied.stdout
        with pytest.raises(VerifierRefused) as refused:  # a REJECTED proof is a refusal
            prove(world, target, chip, advance=False)
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.reason == "device.licence_withdrawn"
        assert "dev-1 v3" in refused.value.detail
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0
