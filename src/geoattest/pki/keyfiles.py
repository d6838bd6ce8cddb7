"""Key directories and PEM files: what provisioning writes and the services open.

A key directory holds ``key.pem`` (PKCS#8 PEM, mode 0600) and ``public.pem`` (its
SubjectPublicKeyInfo PEM); certificates are PEM files. Files are plain so that an
operator can inspect them with ordinary tools.

Every private key file is written owner-only and refused when it is not
(:func:`geoattest.files.read_private`). When ``GEOATTEST_KEY_PASSPHRASE`` (the passphrase)
or ``GEOATTEST_KEY_PASSPHRASE_FILE`` (a file holding it, itself owner-only) is set, new keys
are encrypted under the passphrase and encrypted keys are opened with it; a passphrase is
never taken from the command line, where other users see it in the process list.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from geoattest.crypto import (
    ENCRYPTED_PEM_LABEL,
    KeySigner,
    PrivateKey,
    load_private_key_pem,
    private_key_pem,
)
from geoattest.errors import ConfigError
from geoattest.files import prepare_output_dir, read_pem, read_private, write_new, write_private

KEY_FILE = "key.pem"
PUBLIC_KEY_FILE = "public.pem"
PASSPHRASE_ENV = "GEOATTEST_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "GEOATTEST_KEY_PASSPHRASE_FILE"


def key_passphrase() -> bytes | None:
    """The passphrase that protects private keys at rest, from the environment, or None.

    A passphrase file holds the passphrase on its first line; it must be owner-only.

    Raises:
        ConfigError: both variables are set, the file cannot be read, or it is empty.
        KeyExposedError: the passphrase file is readable by others.
    """
    value, file = os.environ.get(PASSPHRASE_ENV), os.environ.get(PASSPHRASE_FILE_ENV)
    if value is not None and file is not None:
        raise ConfigError(f"set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, not both")
    if file is not None:
        try:
            lines = read_private(Path(file)).splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {file}: {exc.strerror or exc}") from exc
        passphrase = lines[0] if lines else b""
    elif value is not None:
        passphrase = value.encode()
    else:
        return None
    if not passphrase:
        raise ConfigError("the key passphrase is empty")
    return passphrase


def write_private_key(path: Path, key: PrivateKey) -> None:
    """A new owner-only key file, encrypted when a passphrase is set (:func:`key_passphrase`).

    Raises:
        ConfigError: a bad passphrase setting.
        FileExistsError: ``path`` exists (keys are never overwritten).
    """
    write_private(path, private_key_pem(key, key_passphrase()))


def read_private_key(path: Path, what: str) -> PrivateKey:
    """Open an owner-only key file, decrypting it when it is encrypted.

    Raises:
        KeyExposedError: the file is readable by its group or others.
        ConfigError: unreadable, not a supported PEM key, or a missing or wrong passphrase.
    """
    try:
        data = read_private(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    passphrase = key_passphrase() if ENCRYPTED_PEM_LABEL in data else None
    return load_private_key_pem(data, what=str(path), passphrase=passphrase)


def load_certificate_pem(path: Path) -> x509.Certificate:
    """Read one PEM certificate.

    Raises:
        ConfigError: the file cannot be read or holds no PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(read_pem(path, "certificate"))
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate") from exc


def save_signing_key(directory: Path, key: PrivateKey) -> None:
    """A new key directory with the private key (0600) and its public half.

    Raises:
        ConfigError: the directory exists and is not empty.
    """
    prepare_output_dir(directory)
    write_private_key(directory / KEY_FILE, key)
    write_new(
        directory / PUBLIC_KEY_FILE,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def load_private_key(directory: Path, what: str) -> PrivateKey:
    """A key directory's private key; ``what`` names the directory in errors.

    Raises:
        KeyExposedError: the key file is readable by others.
        ConfigError: no key file, not a supported PEM private key, or a missing or wrong
            passphrase.
    """
    path = directory / KEY_FILE
    if not path.is_file():
        raise ConfigError(f"{what} {directory} has no {KEY_FILE}")
    return read_private_key(path, what)


def load_signer(directory: Path, what: str) -> KeySigner:
    """Open a key directory's private key as an in-memory signer (landmarks).

    Raises:
        ConfigError: no key file, or not a supported PEM private key.
    """
    return KeySigner(load_private_key(directory, what))
