"""A deployment as an operator runs it, command by command: ``tls init`` and ``tls issue``,
``verifier serve`` over mutual TLS with an audit log, a chip proving over its device
certificate, ``admin`` changes, a party in the wrong role, then ``audit verify`` and
``audit prove`` offline after the verifier stopped."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from command import assert_one_line_error
from verifier_world import VerifierWorld

from geoattest.demo.run import Party
from geoattest.pki import RevocationList, load_certificate_pem
from geoattest.pki.tls import TLS_CA_CERT_FILE
from geoattest.v1 import evidence_pb2
from geoattest.wire.client import VerifierClient

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))

pytestmark = pytest.mark.slow


def geoattest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GEOATTEST, *args], capture_output=True, text=True, timeout=300, check=False
    )


def ok(*args: str) -> str:
    result = geoattest(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_operator_runs_a_verifier_over_mutual_tls_with_an_audit_log(tmp_path):
    valid_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat()
    world = VerifierWorld.create(tmp_path, valid_until=valid_until)
    tls = tmp_path / "parties"
    ok("tls", "init", "--out", str(tls / "ca"))
    for role, name in (("server", "verifier"), ("operator", "alice"), ("auditor", "bob")):
        ok("tls", "issue", "--ca", str(tls / "ca"), "--role", role, "--name", name,
           "--out", str(tls / role))  # fmt: skip
    RevocationList().save(tmp_path / "revocations.json")
    log = tmp_path / "audit.log"
    args = [
        *world.serve_args(tls=tls / "server"),
        "--audit-log", str(log), "--revocations", str(tmp_path / "revocations.json"),
    ]  # fmt: skip
    verifier = Party("verifier", [GEOATTEST, *args], tmp_path / "verifier.log")
    try:
        target = str(verifier.wait_for_address())
        chip = world.chip("dev-1")
        ca = load_certificate_pem(tls / "ca" / TLS_CA_CERT_FILE)

        async def prove() -> evidence_pb2.AttestationResult:
            async with VerifierClient(target, credentials=chip.tls_credentials(ca)) as client:
                await client.enroll(chip.enroll_request())
                return await client.submit(world.proof(chip, unix_ns=time.time_ns()))

        result = asyncio.run(prove())
        assert result.verdict == evidence_pb2.VERDICT_ALLOWED
        operator = ["--target", target, "--tls", str(tls / "operator")]
        assert "dev-1" in ok("verifier", "status", "--device-id", "dev-1", *operator)
        wrong = geoattest("verifier", "status", "--device-id", "dev-1", "--target", target,
                          "--tls", str(tls / "auditor"))  # fmt: skip
        assert_one_line_error(wrong, "PERMISSION_DENIED", "access.wrong_role")
        bad = geoattest("admin", "licence", "set", "--device-id", "dev-1", "--region", "XX",
                        "--valid-until", "2030-01-01", *operator)  # fmt: skip
        assert_one_line_error(bad, "INVALID_ARGUMENT", "admin.invalid", "XX")
        assert "revoked" in ok("admin", "device", "revoke", "--device-id", "dev-1",
                               "--why", "stolen", *operator)  # fmt: skip
    finally:
        verifier.stop()

    public = str(world.root / "result-key" / "public.pem")
    assert "signed checkpoints match" in ok("audit", "verify", "--log", str(log),
                                             "--public-key", public)  # fmt: skip
    proof = json.loads(ok("audit", "prove", "--log", str(log), "--public-key", public,
                          "--token", result.result_token))  # fmt: skip
    assert json.loads(proof["entry"])["device_id"] == "dev-1"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["kind"] for e in entries] == ["appraisal", "admin"]
    assert entries[1]["who"] == "alice"
