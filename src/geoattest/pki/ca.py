"""The manufacturer's root CA (the Endorser): it certifies device keys.

The CA signs with ECDSA (P-256 or P-384): the Web PKI algorithm set that
``cryptography.x509.verification`` enforces does not admit Ed25519 signatures on
certificates. Device keys may use any of the three algorithms.

A device certificate's subject ``serialNumber`` is the device id and its ``title`` the
chip model (see :mod:`geoattest.pki.names` for what they may hold).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from geoattest.crypto import (
    Algorithm,
    PrivateKey,
    PublicKey,
    generate_private_key,
)
from geoattest.errors import ConfigError
from geoattest.files import prepare_output_dir, write_new
from geoattest.pki.keyfiles import load_certificate_pem, read_private_key, write_private_key
from geoattest.pki.names import MAX_NAME_LENGTH, check_device_id, check_name

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"
CA_ALGORITHMS = (Algorithm.ES256, Algorithm.ES384)
CA_NAME_SUFFIX = " device root"


def _validity_end(start: dt.datetime, validity: dt.timedelta) -> dt.datetime:
    if validity <= dt.timedelta(0):
        raise ConfigError("validity must be positive")
    try:
        return start + validity
    except OverflowError:
        raise ConfigError(f"validity of {validity.days} days runs past the year 9999") from None


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def key_usage(*, certifies: bool) -> x509.KeyUsage:
    """A CA key only certifies; any other key (a device's, a TLS peer's) only signs."""
    return x509.KeyUsage(
        digital_signature=not certifies,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certifies,
        crl_sign=certifies,
        encipher_only=False,
        decipher_only=False,
    )


class ManufacturerCA:
    """The manufacturer's root key and self-signed root certificate.

    Stored in a directory as ``ca.key`` (PKCS#8 PEM, mode 0600) and ``ca.crt`` (PEM). The
    root issues device certificates directly (path length 0): there are no intermediates.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def create(
        cls,
        name: str,
        now: dt.datetime,
        algorithm: Algorithm = Algorithm.ES256,
        validity: dt.timedelta = dt.timedelta(days=3650),
    ) -> ManufacturerCA:
        """Make a root key and its self-signed certificate, valid from ``now``.

        Args:
            name: manufacturer name (organizationName; commonName is "<name> device root").
            now: start of validity.
            algorithm: ES256 or ES384; Ed25519 is refused (see the module docstring).
            validity: how long the root is valid.

        Raises:
            ConfigError: an Ed25519 CA, a bad name or a bad validity.
        """
        check_name(name, "manufacturer name", MAX_NAME_LENGTH - len(CA_NAME_SUFFIX))
        not_after = _validity_end(now, validity)
        if algorithm not in CA_ALGORITHMS:
            raise ConfigError(
                f"a manufacturer CA signs with {' or '.join(CA_ALGORITHMS)}, not {algorithm}"
            )
        key = generate_private_key(algorithm)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}{CA_NAME_SUFFIX}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            ]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(certifies=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, _signature_hash(key))
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: Path) -> ManufacturerCA:
        """Open a CA directory made by :meth:`save`.

        Raises:
            KeyExposedError: the key file is readable by others.
            ConfigError: files missing or unreadable, a non-ECDSA key, a missing or wrong
                passphrase, a certificate that is not a CA's or belongs to another key.
        """
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if not key_path.is_file() or not cert_path.is_file():
            raise ConfigError(
                f"{directory} is not a CA directory (no {CA_KEY_FILE}/{CA_CERT_FILE})"
            )
        key = read_private_key(key_path, "manufacturer root key")
        certificate = load_certificate_pem(cert_path)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{key_path} is not an ECDSA key")
        if certificate.public_key() != key.public_key():
            raise ConfigError(f"{cert_path} does not belong to {key_path}")
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (x509.ExtensionNotFound, ValueError):
            is_ca = False
        if not is_ca:
            raise ConfigError(f"{cert_path} is not a CA certificate")
        return cls(key, certificate)

    def save(self, directory: Path) -> None:
        """Write ``ca.key`` (0600) and ``ca.crt`` into a new or empty directory.

        Raises:
            ConfigError: the directory exists and is not empty.
            OSError: the directory cannot be made or written.
        """
        prepare_output_dir(directory)
        write_private_key(directory / CA_KEY_FILE, self._key)
        write_new(
            directory / CA_CERT_FILE, self.certificate.public_bytes(serialization.Encoding.PEM)
        )

    def issue_device_certificate(
        self,
        public_key: PublicKey,
        device_id: str,
        model: str,
        now: dt.datetime,
        validity: dt.timedelta = dt.timedelta(days=5 * 365),
    ) -> x509.Certificate:
        """Certify a device key: subject serialNumber = device id, title = model.

        The certificate never outlives the root.

        Args:
            public_key: the device's public key (any supported algorithm).
            device_id: 1..64 PrintableString characters.
            model: the chip model, 1..64 printable characters.
            now: start of validity; the root must be valid then.
            validity: requested lifetime (cut at the root's expiry).

        Raises:
            ConfigError: a bad id, model or validity, or a root not valid at ``now``.
        """
        check_device_id(device_id)
        check_name(model, "model")
        not_after = _validity_end(now, validity)
        root_start = self.certificate.not_valid_before_utc
        root_end = self.certificate.not_valid_after_utc
        if not root_start <= now < root_end:
            raise ConfigError(
                f"the manufacturer root is valid from {root_start:%Y-%m-%d} to "
                f"{root_end:%Y-%m-%d}, not at {now:%Y-%m-%d %H:%M}"
            )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, device_id),
                x509.NameAttribute(NameOID.TITLE, model),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(min(not_after, root_end))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(certifies=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .sign(self._key, _signature_hash(self._key))
        )
