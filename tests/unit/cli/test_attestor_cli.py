"""`geoattest attestor run` refuses bad configuration with one line, before doing anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from command import assert_one_line_error

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))


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
        "landmarks": [],
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
    ],
    ids=["missing-key", "bad-landmark", "no-keystore", "no-transport", "plaintext-afar"],
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
