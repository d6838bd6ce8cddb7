"""PKI commands through the real console script: files made, errors one line, exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from command import assert_one_line_error, run_geoattest

from attestor.keystore import DeviceKeyStore
from geoattest.pki import LandmarkRegistry, RevocationList

run = run_geoattest


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki") / "ca"
    result = run("ca", "init", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_provisioned_device_chains_to_the_ca(ca_dir, tmp_path):
    result = run(
        "device",
        "provision",
        "--ca",
        str(ca_dir),
        "--device-id",
        "dev-1",
        "--model",
        "H100",
        "--out",
        str(tmp_path / "dev"),
    )
    assert result.returncode == 0, result.stderr
    store = DeviceKeyStore.open(tmp_path / "dev")
    assert store.device_id == "dev-1"
    assert store.certificate.issuer == DeviceKeyStore.open(tmp_path / "dev").certificate.issuer


def test_ca_init_refuses_an_existing_output(ca_dir):
    assert_one_line_error(run("ca", "init", "--out", str(ca_dir)), str(ca_dir), "already exists")


def test_ca_init_refuses_an_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run("ca", "init", "--out", str(blocker / "ca")), str(blocker))


def test_provision_with_a_missing_ca(tmp_path):
    result = run(
        "device",
        "provision",
        "--ca",
        str(tmp_path / "nope"),
        "--device-id",
        "d",
        "--model",
        "m",
        "--out",
        str(tmp_path / "dev"),
    )
    assert_one_line_error(result, "nope", "not a CA directory")
    assert not (tmp_path / "dev").exists()


def test_provision_with_a_wrong_ca(ca_dir, tmp_path):
    """A CA directory whose certificate belongs to another key is refused."""
    assert run("ca", "init", "--out", str(tmp_path / "other")).returncode == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ca.key").write_bytes((ca_dir / "ca.key").read_bytes())
    (broken / "ca.crt").write_bytes((tmp_path / "other" / "ca.crt").read_bytes())
    result = run(
        "device",
        "provision",
        "--ca",
        str(broken),
        "--device-id",
        "d",
        "--model",
        "m",
        "--out",
        str(tmp_path / "dev"),
    )
    assert_one_line_error(result, "does not belong")


def test_provision_with_a_garbage_ca(tmp_path):
    garbage = tmp_path / "ca"
    garbage.mkdir()
    (garbage / "ca.key").write_text("not a key")
    (garbage / "ca.crt").write_text("not a cert")
    result = run(
        "device",
        "provision",
        "--ca",
        str(garbage),
        "--device-id",
        "d",
        "--model",
        "m",
        "--out",
        str(tmp_path / "dev"),
    )
    assert_one_line_error(result, "ca.key")


def test_provision_refuses_an_existing_output(ca_dir, tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "device.key").write_text("keep me")
    result = run(
        "device",
        "provision",
        "--ca",
        str(ca_dir),
        "--device-id",
        "d",
        "--model",
        "m",
        "--out",
        str(tmp_path / "dev"),
    )
    assert_one_line_error(result, "already exists")
    assert (tmp_path / "dev" / "device.key").read_text() == "keep me"


def test_landmark_keygen_registers_and_refuses_duplicates(tmp_path):
    registry = tmp_path / "landmarks.json"
    ok = run(
        "landmark",
        "keygen",
        "--id",
        "lm-sg",
        "--lat",
        "1.29",
        "--lon",
        "103.85",
        "--out",
        str(tmp_path / "sg"),
        "--registry",
        str(registry),
    )
    assert ok.returncode == 0, ok.stderr
    record = LandmarkRegistry.load(registry).get("lm-sg")
    assert record is not None
    assert (record.latitude, record.longitude) == (1.29, 103.85)
    dup = run(
        "landmark",
        "keygen",
        "--id",
        "lm-sg",
        "--lat",
        "1",
        "--lon",
        "1",
        "--out",
        str(tmp_path / "sg2"),
        "--registry",
        str(registry),
    )
    assert_one_line_error(dup, "already registered")


@pytest.mark.parametrize(
    ("lat", "lon", "needle"),
    [("95", "0", "latitude"), ("0", "200", "longitude"), ("north", "0", "--lat")],
)
def test_landmark_keygen_refuses_bad_coordinates(tmp_path, lat, lon, needle):
    result = run(
        "landmark", "keygen", "--id", "x", "--lat", lat, "--lon", lon, "--out", str(tmp_path / "x")
    )
    assert_one_line_error(result, needle)


def test_revocations_accumulate_with_increasing_versions(tmp_path):
    path = tmp_path / "rev.json"
    assert (
        run("device", "revoke", "--revocations", str(path), "--device-id", "dev-1").returncode == 0
    )
    assert run("landmark", "revoke", "--revocations", str(path), "--id", "lm-1").returncode == 0
    revocations = RevocationList.load(path)
    assert revocations.version == 2
    assert revocations.device_revoked("dev-1")
    assert revocations.landmark_revoked("lm-1")


def test_verifier_keygen_writes_a_jwks(tmp_path):
    assert run("verifier", "keygen", "--out", str(tmp_path / "vk")).returncode == 0
    jwks = json.loads((tmp_path / "vk" / "jwks.json").read_text())
    assert jwks["keys"][0]["alg"] == "ES256"


@pytest.mark.parametrize(
    "args",
    [
        ["ca", "init", "--bogus"],
        ["ca", "init"],
        ["device", "provision", "--ca"],
        ["ca", "init", "--out", "x", "--algorithm", "RSA"],
    ],
)
def test_bad_flags_are_one_line_errors(args):
    assert_one_line_error(run(*args), "geoattest")


@pytest.mark.parametrize("group", [[], ["ca"], ["device"], ["landmark"], ["verifier"], ["geo"]])
def test_every_command_has_help(group):
    result = run(*group, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout
