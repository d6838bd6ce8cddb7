"""Private keys at rest: owner-only from birth, refused when exposed, optionally encrypted.

The key-writing commands run through ``geoattest.cli.main`` in process (the console
script's own entry point and error handling); the one-line errors run the real script.
The checks on opening a key go through the same loaders the services use.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from command import assert_one_line_error, run_geoattest

from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.cli import main
from geoattest.crypto import ENCRYPTED_PEM_LABEL
from geoattest.errors import ConfigError, KeyExposedError, Reason
from geoattest.files import write_private
from geoattest.pki import ManufacturerCA, ResultKey, load_landmark_key
from geoattest.pki.keyfiles import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, key_passphrase

PASSPHRASE = "correct horse battery staple"


def make_keys(root: Path, env: dict[str, str] | None = None) -> dict[str, Path]:
    """Run the four key-writing commands; return each private key file by command."""
    commands = {
        "ca init": ["ca", "init", "--out", str(root / "ca")],
        "device provision": [
            "device", "provision", "--ca", str(root / "ca"), "--device-id", "chip-1",
            "--model", "H100", "--out", str(root / "chip-1"),
        ],
        "landmark keygen": [
            "landmark", "keygen", "--id", "lm-1", "--operator", "op", "--lat", "1.3",
            "--lon", "103.8", "--out", str(root / "lm-1"),
        ],
        "verifier keygen": ["verifier", "keygen", "--out", str(root / "result")],
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        for args in commands.values():
            patch.setattr("sys.argv", ["geoattest", *args])
            with pytest.raises(SystemExit) as exit_:
                main()
            assert exit_.value.code == 0
    return {
        "ca init": root / "ca" / "ca.key",
        "device provision": root / "chip-1" / "device.key",
        "landmark keygen": root / "lm-1" / "key.pem",
        "verifier keygen": root / "result" / "key.pem",
    }


def open_all(root: Path) -> None:
    ManufacturerCA.load(root / "ca")
    DeviceKeyStore.open(root / "chip-1")
    load_landmark_key(root / "lm-1")
    ResultKey.load(root / "result")


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict[str, Path]:
    return make_keys(tmp_path_factory.mktemp("plain"))


def test_every_command_writes_an_owner_only_key_and_no_temporary(plain):
    for command, path in plain.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, command
        assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], command
        assert ENCRYPTED_PEM_LABEL not in path.read_bytes(), command


def test_a_key_is_written_whole_under_its_name_or_not_at_all(tmp_path):
    write_private(tmp_path / "key.pem", b"secret")
    with pytest.raises(FileExistsError):
        write_private(tmp_path / "key.pem", b"other")
    assert (tmp_path / "key.pem").read_bytes() == b"secret"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_an_exposed_key_is_refused_by_every_loader(plain, mode):
    root = plain["ca init"].parents[1]
    for command, path in plain.items():
        path.chmod(mode)
        try:
            with pytest.raises(KeyExposedError) as refused:
                open_all(root)
            assert refused.value.reason is Reason.KEY_EXPOSED
            assert "chmod 600" in refused.value.detail, command
            assert str(path) in refused.value.detail, command
        finally:
            path.chmod(0o600)
    open_all(root)


def test_an_exposed_key_is_a_one_line_cli_error(plain, tmp_path):
    ca_key = plain["ca init"]
    ca_key.chmod(0o644)
    try:
        result = run_geoattest(
            "device", "provision", "--ca", str(ca_key.parent), "--device-id", "chip-2",
            "--model", "H100", "--out", str(tmp_path / "chip-2"),
        )  # fmt: skip
    finally:
        ca_key.chmod(0o600)
    assert_one_line_error(result, str(ca_key), "readable by others", "chmod 600")
    assert not (tmp_path / "chip-2").exists()


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory) -> dict[str, Path]:
    return make_keys(tmp_path_factory.mktemp("encrypted"), {PASSPHRASE_ENV: PASSPHRASE})


def test_keys_are_encrypted_under_the_passphrase_from_the_environment(encrypted, monkeypatch):
    root = encrypted["ca init"].parents[1]
    for command, path in encrypted.items():
        assert ENCRYPTED_PEM_LABEL in path.read_bytes(), command
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, command
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    open_all(root)


def test_an_encrypted_key_without_or_with_a_wrong_passphrase_is_refused(encrypted, monkeypatch):
    root = encrypted["ca init"].parents[1]
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(PASSPHRASE_FILE_ENV, raising=False)
    with pytest.raises(ConfigError, match="is encrypted: give its passphrase"):
        open_all(root)
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        open_all(root)


def test_the_passphrase_may_come_from_an_owner_only_file(encrypted, tmp_path, monkeypatch):
    root = encrypted["ca init"].parents[1]
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    secret = tmp_path / "passphrase"
    write_private(secret, PASSPHRASE.encode() + b"\n")
    monkeypatch.setenv(PASSPHRASE_FILE_ENV, str(secret))
    open_all(root)
    secret.chmod(0o644)
    with pytest.raises(KeyExposedError):
        key_passphrase()
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    with pytest.raises(ConfigError, match="not both"):
        key_passphrase()


def test_an_encrypted_key_without_its_passphrase_is_a_one_line_cli_error(encrypted, tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    result = run_geoattest(
        "device", "provision", "--ca", str(encrypted["ca init"].parent), "--device-id",
        "chip-2", "--model", "H100", "--out", str(tmp_path / "chip-2"), env=environ,
    )  # fmt: skip
    assert_one_line_error(result, "is encrypted", PASSPHRASE_ENV)


@pytest.mark.parametrize(
    "command", [["ca", "init"], ["device", "provision"], ["landmark", "keygen"]]
)
def test_no_command_takes_a_passphrase_flag(command, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["geoattest", *command, "--help"])
    with pytest.raises(SystemExit):
        main()
    assert "passphrase" not in capsys.readouterr().out.lower()
