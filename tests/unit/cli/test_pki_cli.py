"""PKI commands: files made, errors one line, exit non-zero.

The module's CA is made by the real console script, and the top-level help comes from it;
the other cases run ``geoattest.cli.main`` in process (``invoke``), which goes through the
same parsing and error handling (typer's CliRunner would bypass it) without an interpreter
start per case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from command import assert_one_line_error, invoke, main_error, run_geoattest

from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.files import write_private
from geoattest.pki import LandmarkRegistry, RevocationList

run = invoke


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki") / "ca"
    result = run_geoattest("ca", "init", "--out", str(out))
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
    write_private(broken / "ca.key", (ca_dir / "ca.key").read_bytes())
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
        "--operator",
        "op-sg",
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
        "--operator",
        "op-sg",
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
        "landmark",
        "keygen",
        "--id",
        "x",
        "--operator",
        "op",
        "--lat",
        lat,
        "--lon",
        lon,
        "--out",
        str(tmp_path / "x"),
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
    result = run(*group, "--help") if group else run_geoattest("--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--device-id", "dev_1"], "device id 'dev_1'"),
        (["--device-id", "d" * 65], "1..64"),
        (["--model", "m" * 65], "model"),
        (["--validity-days", "0"], "--validity-days"),
        (["--validity-days", "99999999999"], "--validity-days"),
        (["--algorithm", "RS256"], "--algorithm"),
    ],
    ids=["underscore", "long-id", "long-model", "zero-days", "huge-days", "rsa"],
)
def test_provision_refuses_bad_values_before_writing(ca_dir, tmp_path, args, needle):
    defaults = {"--device-id": "dev-1", "--model": "H100"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        defaults[flag] = value
    flags = [item for pair in defaults.items() for item in pair]
    out = tmp_path / "dev"
    line = main_error("device", "provision", "--ca", str(ca_dir), "--out", str(out), *flags)
    assert needle in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["", "n" * 53])
def test_ca_init_refuses_a_name_that_does_not_fit(tmp_path, name):
    line = main_error("ca", "init", "--out", str(tmp_path / "ca"), "--name", name)
    assert "manufacturer name" in line
    assert not (tmp_path / "ca").exists()


def test_ca_init_refuses_ed25519(tmp_path):
    line = main_error("ca", "init", "--out", str(tmp_path / "ca"), "--algorithm", "EdDSA")
    assert "ES256 or ES384" in line


def test_provision_refuses_a_device_certificate_posing_as_a_ca(ca_dir, tmp_path):
    assert (
        run(
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
        ).returncode
        == 0
    )
    fake = tmp_path / "fake"
    fake.mkdir()
    write_private(fake / "ca.key", (tmp_path / "dev" / "device.key").read_bytes())
    (fake / "ca.crt").write_bytes((tmp_path / "dev" / "device.crt").read_bytes())
    line = main_error(
        "device",
        "provision",
        "--ca",
        str(fake),
        "--device-id",
        "e",
        "--model",
        "m",
        "--out",
        str(tmp_path / "dev2"),
    )
    assert "not a CA certificate" in line


@pytest.mark.parametrize("group", ["device", "landmark"])
def test_revoke_into_a_missing_folder_names_the_file(tmp_path, group):
    path = tmp_path / "missing" / "rev.json"
    id_flag = "--device-id" if group == "device" else "--id"
    line = main_error(group, "revoke", "--revocations", str(path), id_flag, "x")
    assert f"cannot write {path}" in line


def test_revoke_refuses_a_garbage_list(tmp_path):
    path = tmp_path / "rev.json"
    path.write_text("garbage")
    line = main_error("device", "revoke", "--revocations", str(path), "--device-id", "x")
    assert "not valid JSON" in line
    assert path.read_text() == "garbage"


def test_landmark_keygen_refuses_a_garbage_registry_before_writing_a_key(tmp_path):
    registry = tmp_path / "landmarks.json"
    registry.write_text("{")
    out = tmp_path / "lm"
    line = main_error(
        "landmark",
        "keygen",
        "--id",
        "lm",
        "--operator",
        "op",
        "--lat",
        "0",
        "--lon",
        "0",
        "--out",
        str(out),
        "--registry",
        str(registry),
    )
    assert "not valid JSON" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("registry", "needle"),
    [("missing/landmarks.json", "does not exist"), ("folder", "is a directory")],
)
def test_landmark_keygen_refuses_a_registry_it_cannot_write_before_writing_a_key(
    tmp_path, registry, needle
):
    (tmp_path / "folder").mkdir()
    out = tmp_path / "lm"
    args = ("--id", "lm", "--operator", "op", "--lat", "0", "--lon", "0", "--out", str(out))
    line = main_error("landmark", "keygen", *args, "--registry", str(tmp_path / registry))
    assert "--registry" in line
    assert needle in line
    assert not out.exists()


def test_verifier_keygen_refuses_an_existing_output(tmp_path):
    (tmp_path / "vk").mkdir()
    (tmp_path / "vk" / "key.pem").write_text("keep me")
    line = main_error("verifier", "keygen", "--out", str(tmp_path / "vk"))
    assert "already exists" in line
    assert (tmp_path / "vk" / "key.pem").read_text() == "keep me"


def _keygen(tmp_path: Path, landmark_id: str, operator: str, registry: Path) -> Path:
    out = tmp_path / landmark_id
    made = run(
        "landmark", "keygen", "--id", landmark_id, "--operator", operator,
        "--lat", "1.29", "--lon", "103.85", "--out", str(out), "--registry", str(registry),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return out


def test_landmark_keygen_records_the_operator(tmp_path):
    registry = tmp_path / "landmarks.json"
    key = _keygen(tmp_path, "lm-sg", "sg-carrier", registry)
    record = LandmarkRegistry.load(registry).get("lm-sg")
    assert record is not None
    assert record.operator == "sg-carrier"
    assert json.loads((key / "landmark.json").read_text())["operator"] == "sg-carrier"


def test_landmark_register_refuses_a_key_already_registered_under_another_id(tmp_path):
    """One operator copies a landmark's key directory and registers it under a second id:
    the key would count twice towards a quorum, so the registry refuses it."""
    registry = tmp_path / "landmarks.json"
    key = _keygen(tmp_path, "lm-sg", "sg-carrier", registry)
    before = registry.read_bytes()
    copy = tmp_path / "lm-sg-again"
    copy.mkdir()
    for file in key.iterdir():
        shutil.copy(file, copy / file.name)  # with its mode: the key stays owner-only
    identity = json.loads((copy / "landmark.json").read_text())
    (copy / "landmark.json").write_text(json.dumps({**identity, "id": "lm-sg-2"}))
    result = run("landmark", "register", "--key", str(copy), "--registry", str(registry))
    assert_one_line_error(result, "lm-sg-2", "already registered as landmark lm-sg")
    assert registry.read_bytes() == before


def test_a_registry_file_holding_one_key_twice_does_not_load(tmp_path):
    registry = tmp_path / "landmarks.json"
    _keygen(tmp_path, "lm-sg", "sg-carrier", registry)
    document = json.loads(registry.read_text())
    twin = {**document["landmarks"][0], "id": "lm-sg-2", "operator": "other"}
    registry.write_text(json.dumps({"landmarks": [*document["landmarks"], twin]}))
    other = _keygen(tmp_path / "x", "lm-x", "x-carrier", tmp_path / "x.json")
    result = run("landmark", "register", "--key", str(other), "--registry", str(registry))
    assert_one_line_error(result, "already registered as landmark lm-sg")


def test_landmark_revoke_by_id_with_the_registry_revokes_the_key_too(tmp_path):
    registry, path = tmp_path / "landmarks.json", tmp_path / "rev.json"
    _keygen(tmp_path, "lm-sg", "sg-carrier", registry)
    key_id = LandmarkRegistry.load(registry).get("lm-sg").verifying_key.key_id  # type: ignore[union-attr]
    result = run(
        "landmark", "revoke", "--revocations", str(path), "--id", "lm-sg",
        "--registry", str(registry),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    revocations = RevocationList.load(path)
    assert revocations.landmark_revoked("lm-sg")
    assert revocations.landmark_revoked("lm-other-id", key_id)


def test_landmark_revoke_by_key_id(tmp_path):
    path = tmp_path / "rev.json"
    key_id = "ab" * 32
    result = run("landmark", "revoke", "--revocations", str(path), "--key-id", key_id)
    assert result.returncode == 0, result.stderr
    assert RevocationList.load(path).landmark_keys == {key_id}


def test_landmark_revoke_refuses_nothing_to_revoke_and_a_bad_key_id(tmp_path):
    path = tmp_path / "rev.json"
    assert_one_line_error(run("landmark", "revoke", "--revocations", str(path)), "--key-id")
    result = run("landmark", "revoke", "--revocations", str(path), "--key-id", "XYZ")
    assert_one_line_error(result, "64 lower-case hex")
    assert not path.exists()
