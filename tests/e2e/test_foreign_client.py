"""A client that is not ours: Node's @grpc/grpc-js, loading our .proto files at run time,
talks to a real ``geoattest verifier serve`` over mutual TLS, with certificates made by
``geoattest tls``. If the .proto files and the server disagree (names, field numbers,
types, status codes), or its TLS is not what a standard stack expects, this client sees it
where our generated Python code would not."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from verifier_world import VERIFIER_ID, VerifierWorld

from geoattest.demo.run import Party
from geoattest.pki import load_certificate_pem
from geoattest.pki.tls import TLS_CA_CERT_FILE
from geoattest.wire.client import VerifierClient, enrolment_request

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
PROTO_ROOT = REPO / "proto"
SERVICE = "geoattest.v1.VerifierService"

pytestmark = pytest.mark.slow


def node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the foreign-client test (CI has them)")
    return node, npm


@pytest.fixture(scope="module")
def node_client() -> str:
    """Node with the locked @grpc packages installed from tests/node's own lockfile."""
    node, npm = node_tools()
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stderr[-2000:]}"
    return node


def geoattest(*args: str) -> None:
    result = subprocess.run(
        [GEOATTEST, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[tuple[VerifierWorld, str]]:
    valid_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat()
    world = VerifierWorld.create(tmp_path, valid_until=valid_until)
    tls = tmp_path / "tls"
    geoattest("tls", "init", "--out", str(tls / "ca"))
    for role, name in (("server", "verifier"), ("relying-party", "bank"), ("auditor", "audit")):
        geoattest("tls", "issue", "--ca", str(tls / "ca"), "--role", role, "--name", name,
                  "--out", str(tls / role))  # fmt: skip
    args = world.serve_args(tls=tls / "server")
    party = Party("verifier", [GEOATTEST, *args], tmp_path / "verifier.log")
    try:
        yield world, str(party.wait_for_address())
    finally:
        party.stop()


def call_with_node(node: str, target: str, tls: Path, *calls: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [node, str(NODE_DIR / "client.mjs"), target, str(PROTO_ROOT), str(tls), *calls],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    assert [a["call"] for a in answers] == list(calls)
    return answers


def test_node_grpc_js_sees_health_and_device_status(node_client, verifier):
    world, target = verifier
    chip = world.chip("dev-1")

    ca = load_certificate_pem(world.root / "tls" / "ca" / TLS_CA_CERT_FILE)

    async def enrol() -> None:
        async with VerifierClient(target, credentials=chip.tls_credentials(ca)) as client:
            await client.enroll(
                enrolment_request(
                    chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
                )
            )

    asyncio.run(enrol())
    tls = world.root / "tls"
    server, service, missing_service, known, unknown = call_with_node(
        node_client,
        target,
        tls / "relying-party",
        "health:",
        f"health:{SERVICE}",
        "health:geoattest.v1.NoSuchService",
        "status:dev-1",
        "status:dev-nobody",
    )
    assert server == {"call": "health:", "ok": True, "response": {"status": "SERVING"}}
    assert service["response"] == {"status": "SERVING"}
    assert missing_service["ok"] is False
    assert missing_service["code"] == "NOT_FOUND"

    assert known["ok"] is True, known
    status = known["response"]
    assert status["device_id"] == "dev-1"
    assert status["state"] == "ENROLLED"
    assert status["licensed_region"] == world.licensed["dev-1"]
    assert status["last_counter"] == "0"  # uint64 arrives as a decimal string
    assert status["last_verdict"].startswith("VERDICT_")

    assert unknown["ok"] is False
    assert unknown["code"] == "NOT_FOUND"
    assert unknown["reason"] == "device.unknown"

    (wrong_role,) = call_with_node(node_client, target, tls / "auditor", "status:dev-1")
    assert wrong_role["ok"] is False
    assert wrong_role["code"] == "PERMISSION_DENIED"
    assert wrong_role["reason"] == "access.wrong_role"
