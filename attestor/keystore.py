"""The device key store: it signs, and has no way to hand the private key out.

It emulates a chip's secure element: the key is generated inside ``provision`` and only
``sign`` uses it, and the sealing key derived from it only seals and opens the agent's
sealed state (:mod:`geoattest.attestor.sealed`). No method or property returns private key
material. (Python cannot stop code in the same process from reading memory; the point is
the API a real secure element would offer, so that nothing in the agent is written to need
the key's bytes.) On disk the key file is created owner-only (0600), and the device
certificate sits beside it for enrolment.

Layout::

    device.key      PKCS#8 PEM private key, mode 0600
    device.crt      the device certificate, PEM
    ca.crt          the manufacturer root that issued it, PEM (for reference)
    counters/<slot> the emulated monotonic counter of each sealed slot (fuses or RPMB on a
                    real chip; see :mod:`geoattest.attestor.sealed`)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from geoattest.attestor.sealed import MonotonicCounter, SealedSlot, SealingKey
from geoattest.crypto import (
    DEFAULT_ALGORITHM,
    Algorithm,
    KeySigner,
    PrivateKey,
    VerifyingKey,
    generate_private_key,
)
from geoattest.errors import ConfigError
from geoattest.files import prepare_output_dir, write_new
from geoattest.pki import ManufacturerCA, load_certificate_pem
from geoattest.pki.keyfiles import read_private_key, write_private_key
from geoattest.wire.client import device_tls_credentials

KEY_FILE = "device.key"
CERT_FILE = "device.crt"
ROOT_FILE = "ca.crt"
COUNTERS_DIR = "counters"


class DeviceKeyStore:
    """A :class:`~geoattest.crypto.Signer` whose key never leaves it."""

    __slots__ = (
        "_key",
        "_sealing_key",
        "_signer",
        "certificate",
        "device_id",
        "directory",
        "model",
    )

    def __init__(self, directory: Path, key: PrivateKey, certificate: x509.Certificate) -> None:
        signer = KeySigner(key)
        if certificate.public_key() != signer.verifying_key.public_key:
            raise ConfigError("device certificate does not match the device key")
        ids = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        models = certificate.subject.get_attributes_for_oid(NameOID.TITLE)
        if len(ids) != 1 or len(models) != 1:
            raise ConfigError("device certificate lacks its serialNumber or title")
        self._key = key
        self._signer = signer
        self._sealing_key = SealingKey.derive(key)
        self.directory = directory
        self.certificate = certificate
        self.device_id = str(ids[0].value)
        self.model = str(models[0].value)

    @classmethod
    def provision(
        cls,
        directory: Path,
        ca: ManufacturerCA,
        *,
        device_id: str,
        model: str,
        now: dt.datetime,
        algorithm: Algorithm = DEFAULT_ALGORITHM,
        validity: dt.timedelta = dt.timedelta(days=5 * 365),
    ) -> DeviceKeyStore:
        """Make a device key inside a new key store and have the CA certify it.

        The key is generated here and written only to the store's own file; the caller
        gets the store, never the key. Nothing is written if the CA refuses.

        Args:
            directory: new or empty directory for the store.
            ca: the manufacturer CA that certifies the key.
            device_id: the certificate serialNumber
                (see :func:`~geoattest.pki.names.check_device_id`).
            model: the chip model (the certificate title).
            now: start of the certificate's validity.
            algorithm: the device key's signature algorithm.
            validity: requested certificate lifetime (cut at the root's expiry).

        Raises:
            ConfigError: a bad id, model or validity, a root not valid at ``now``, or an
                existing non-empty directory.
        """
        key = generate_private_key(algorithm)
        certificate = ca.issue_device_certificate(key.public_key(), device_id, model, now, validity)
        prepare_output_dir(directory)
        write_private_key(directory / KEY_FILE, key)
        write_new(directory / CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM))
        write_new(directory / ROOT_FILE, ca.certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, certificate)

    @classmethod
    def open(cls, directory: Path) -> DeviceKeyStore:
        """Open a store made by :meth:`provision`.

        Raises:
            KeyExposedError: the key file is readable by others.
            ConfigError: files missing or unreadable, a missing or wrong passphrase, or a
                certificate for another key.
        """
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        if not key_path.is_file() or not cert_path.is_file():
            raise ConfigError(f"{directory} is not a device key store (no {KEY_FILE}/{CERT_FILE})")
        key = read_private_key(key_path, "device key")
        return cls(directory, key, load_certificate_pem(cert_path))

    @property
    def verifying_key(self) -> VerifyingKey:
        """The public half, as the verifier will find it in the certificate."""
        return self._signer.verifying_key

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (already PAE-framed by the caller) with the device key."""
        return self._signer.sign(message)

    def certificate_der(self) -> bytes:
        """The device certificate for enrolment; the root issues it directly (no intermediates)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def tls_credentials(self, verifier_ca: x509.Certificate) -> grpc.ChannelCredentials:
        """Credentials to reach the verifier over mutual TLS as this chip: the device
        certificate and key authenticate it, ``verifier_ca`` (the operator's TLS CA)
        authenticates the verifier. The key goes into the TLS stack as a secure element's
        would into its TLS engine; no method hands it to the caller."""
        return device_tls_credentials(self._key, self.certificate, verifier_ca)

    def sealed_slot(self, name: str, path: Path) -> SealedSlot:
        """The sealed slot ``name``, kept in ``path`` on the host's storage, sealed under
        this chip's sealing key and counted by this store's counter for ``name``."""
        counter = MonotonicCounter(self.directory / COUNTERS_DIR / name)
        return SealedSlot(path, name, self._sealing_key, counter)
