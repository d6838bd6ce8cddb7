"""Key directories and PEM files: what provisioning writes and the services open.

A key directory holds ``key.pem`` (PKCS#8 PEM, mode 0600) and ``public.pem`` (its
SubjectPublicKeyInfo PEM); certificates are PEM files. Files are plain so that an
operator can inspect them with ordinary tools.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from geoattest.crypto import KeySigner, PrivateKey, load_private_key_pem, private_key_pem
from geoattest.errors import ConfigError
from geoattest.files import prepare_output_dir, write_new, write_private

KEY_FILE = "key.pem"
PUBLIC_KEY_FILE = "public.pem"


def load_certificate_pem(path: Path) -> x509.Certificate:
    """Read one PEM certificate.

    Raises:
        ConfigError: the file cannot be read or holds no PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
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
    write_private(directory / KEY_FILE, private_key_pem(key))
    write_new(
        directory / PUBLIC_KEY_FILE,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def load_private_key(directory: Path, what: str) -> PrivateKey:
    """A key directory's private key; ``what`` names the directory in errors.

    Raises:
        ConfigError: no key file, or not a supported PEM private key.
    """
    path = directory / KEY_FILE
    if not path.is_file():
        raise ConfigError(f"{what} {directory} has no {KEY_FILE}")
    return load_private_key_pem(path.read_bytes(), what=str(path))


def load_signer(directory: Path, what: str) -> KeySigner:
    """Open a key directory's private key as an in-memory signer (landmarks).

    Raises:
        ConfigError: no key file, or not a supported PEM private key.
    """
    return KeySigner(load_private_key(directory, what))
