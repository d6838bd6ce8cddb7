"""`geoattest attestor run` refuses bad configuration with one line, before doing anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from command import assert_one_line_error

from geoattest.crypto import KeySigner

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
KEY_HEX = KeySigner.generate().verifying_key.der().hex()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GEOATTEST, *args], capture_output=True, text=True, timeout=60, check=False
    )


def base_config() -> dict:
    return {
        "device_id": "dev-1",
        "keystore": "keys",
        "outbox": "outbox",
        "verifier": "127.0.0.1:1",
        "plaintext": True,
        "verifier_id": "v",
        "landmarks": [{"id": "lm-a", "address": "127.0.0.1:40001", "public_key": KEY_HEX}],
    }


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.pop("verifier"), "malformed"),
        (
            lambda c: c.update(landmarks=[{"id": "x", "address": "nohost", "public_key": "00"}]),
            "HOST:PORT",
        ),
        (lambda c: None, "not a device key store"),
        (lambda c: c.pop("plaintext"), '"verifier_ca"'),
        (lambda c: c.update(verifier="10.0.0.1:50051"), "only for loopback"),
        (lambda c: c.update(cadence_s=float("nan")), "NaN is not a JSON number"),
        (lambda c: c.update(cadence_s=-1), "cadence_s"),
        (lambda c: c.update(cadence_s=float("inf")), "Infinity is not a JSON number"),
        (lambda c: c.update(exchanges=0), "exchanges"),
        (lambda c: c.update(exchanges=-3), "exchanges"),
        (lambda c: c.update(exchanges=10**9), "exchanges"),
        (lambda c: c.update(landmarks=[]), "at least one landmark"),
        (lambda c: c.update(verifier="127.0.0.1"), "HOST:PORT"),
        (lambda c: (c.pop("plaintext"), c.update(verifier_ca="ca", verifier="v")), "HOST:PORT"),
    ],
    ids=[
        "missing-key",
        "bad-landmark",
        "no-keystore",
        "no-transport",
        "plaintext-afar",
        "cadence-nan",
        "cadence-negative",
        "cadence-inf",
        "exchanges-0",
        "exchanges-negative",
        "exchanges-huge",
        "no-landmarks",
        "verifier-no-port",
        "verifier-tls-no-port",
    ],
)
def test_bad_agent_config_is_one_line(tmp_path, mutate, needle):
    config = base_config()
    mutate(config)
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(config))
    assert_one_line_error(run("attestor", "run", "--config", str(path)), needle)


def test_missing_agent_config_is_one_line(tmp_path):
    result = run("attestor", "run", "--config", str(tmp_path / "nope.json"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: agent config {tmp_path / 'nope.json'} does not exist"
    ]
