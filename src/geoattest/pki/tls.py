"""The operator's TLS CA: who may talk to the verifier, and as what.

A deployment's operator runs a small CA of its own (``geoattest tls init``) and issues one
certificate per party (``geoattest tls issue --role ...``): the verifier's server
certificate, and client certificates for relying parties, operators, auditors and
landmarks. The role is the certificate subject's organizationalUnitName; the verifier
believes it only in a certificate that this CA signed. Chips do not get a certificate
here: a chip authenticates with the device certificate its manufacturer issued (the chain
``Enroll`` already checks), so the operator can never mint a chip's identity.

A party's directory (``tls issue --out DIR``) holds ``key.pem`` (0600, encrypted when a key
passphrase is set, see :mod:`geoattest.pki.keyfiles`), ``cert.pem`` and ``ca.crt`` (the
operator CA, which a client checks the server against and the server checks clients
against).

Example:

>>> import datetime as dt
>>> now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
>>> ca = OperatorCA.create("Example DC", now)
>>> key, cert = ca.issue(Role.AUDITOR, "audit-office", now)
>>> role_of(cert, ca.certificate)
<Role.AUDITOR: 'auditor'>
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from geoattest.crypto import PrivateKey, private_key_pem
from geoattest.errors import ConfigError
from geoattest.files import prepare_output_dir, write_new
from geoattest.pki.ca import key_usage
from geoattest.pki.keyfiles import (
    KEY_FILE,
    load_certificate_pem,
    read_private_key,
    write_private_key,
)
from geoattest.pki.names import MAX_NAME_LENGTH, check_name

TLS_CA_KEY_FILE = "tls-ca.key"
TLS_CA_CERT_FILE = "tls-ca.crt"
CERT_FILE = "cert.pem"
CA_FILE = "ca.crt"
DEFAULT_SERVER_HOSTS = ("localhost", "127.0.0.1", "::1")


class Role(StrEnum):
    """What a party may do at the verifier (the table is the verifier's, per method)."""

    DEVICE = "device"
    """A chip: enrols itself and submits its own proofs (manufacturer certificate)."""
    RELYING_PARTY = "relying-party"
    """Reads device status and the result keys."""
    OPERATOR = "operator"
    """Alerts, rejections, licences, revocations, landmarks, exclusions."""
    AUDITOR = "auditor"
    """Reads the audit log and its checkpoints."""
    LANDMARK = "landmark"
    """A landmark handing in the receipts of its peer audits."""
    MONITOR = "monitor"
    """Scrapes the metrics endpoints over HTTPS (Prometheus); nothing else."""
    SERVER = "server"
    """The verifier's own server certificate; never a client."""


ISSUED_ROLES = tuple(r for r in Role if r is not Role.DEVICE)
"""Roles the operator CA issues; a device's certificate comes from its manufacturer."""


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        ]
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class OperatorCA:
    """The operator's TLS root: an ECDSA P-256 key and its self-signed certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def create(
        cls, name: str, now: dt.datetime, validity: dt.timedelta = dt.timedelta(days=3650)
    ) -> OperatorCA:
        """A new root named ``"<name> TLS root"``, valid from ``now``."""
        check_name(name, "operator name", MAX_NAME_LENGTH - len(" TLS root"))
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(f"{name} TLS root", "ca")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(certifies=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: Path) -> OperatorCA:
        """Open a directory made by :meth:`save`.

        Raises:
            KeyExposedError: the key file is readable by others.
            ConfigError: files missing, unreadable, or not a P-256 CA and its key.
        """
        key_path, cert_path = directory / TLS_CA_KEY_FILE, directory / TLS_CA_CERT_FILE
        if not key_path.is_file() or not cert_path.is_file():
            raise ConfigError(
                f"{directory} is not a TLS CA directory (no {TLS_CA_KEY_FILE}/{TLS_CA_CERT_FILE})"
            )
        key = read_private_key(key_path, "TLS CA key")
        certificate = load_certificate_pem(cert_path)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or certificate.public_key() != (
            key.public_key()
        ):
            raise ConfigError(f"{cert_path} does not belong to {key_path}")
        return cls(key, certificate)

    def save(self, directory: Path) -> None:
        """Write the key (owner-only) and the certificate into a new or empty directory."""
        prepare_output_dir(directory)
        write_private_key(directory / TLS_CA_KEY_FILE, self._key)
        write_new(directory / TLS_CA_CERT_FILE, self.certificate.public_bytes(_PEM))

    def issue(
        self,
        role: Role,
        name: str,
        now: dt.datetime,
        *,
        hosts: Sequence[str] = (),
        validity: dt.timedelta = dt.timedelta(days=365),
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key and its certificate for ``name`` in ``role``.

        A server certificate names ``hosts`` (DNS names or IP addresses) for clients to
        check; a client certificate names none. Neither outlives the CA.

        Raises:
            ConfigError: a device role (the manufacturer issues those), a bad name, or a
                server certificate without hosts.
        """
        if role is Role.DEVICE:
            raise ConfigError(
                "a chip authenticates with its manufacturer's device certificate; "
                "the operator CA issues no device certificates"
            )
        check_name(name, "certificate name")
        if role is Role.SERVER and not hosts:
            raise ConfigError("a server certificate needs at least one --host")
        key = ec.generate_private_key(ec.SECP256R1())
        usage = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if role is Role.SERVER
            else (ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name, role.value))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(min(now + validity, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(certifies=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False
            )
        return key, builder.sign(self._key, hashes.SHA256())

    def issue_to(
        self,
        directory: Path,
        role: Role,
        name: str,
        now: dt.datetime,
        *,
        hosts: Sequence[str] = (),
        validity: dt.timedelta = dt.timedelta(days=365),
    ) -> x509.Certificate:
        """:meth:`issue` into a new party directory (``key.pem``, ``cert.pem``, ``ca.crt``)."""
        key, certificate = self.issue(role, name, now, hosts=hosts, validity=validity)
        prepare_output_dir(directory)
        write_private_key(directory / KEY_FILE, key)
        write_new(directory / CERT_FILE, certificate.public_bytes(_PEM))
        write_new(directory / CA_FILE, self.certificate.public_bytes(_PEM))
        return certificate


_PEM = serialization.Encoding.PEM


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``certificate`` (no other check)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def serves_tls(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` may authenticate a server (its extended key usage)."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.SERVER_AUTH in usage


def role_of(certificate: x509.Certificate, operator_ca: x509.Certificate) -> Role | None:
    """The role an operator-issued client certificate names; None when the operator CA
    did not sign it, or it names no client role."""
    if not issued_by(certificate, operator_ca):
        return None
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    try:
        role = Role(str(units[0].value)) if len(units) == 1 else None
    except ValueError:
        return None
    return role if role in ISSUED_ROLES and role is not Role.SERVER else None


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """A party's TLS material, as gRPC takes it: its key (unencrypted, in memory only),
    its certificate and the operator CA it checks its peer against."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @classmethod
    def load(cls, directory: Path) -> TlsIdentity:
        """Open a party directory made by ``tls issue``.

        Raises:
            KeyExposedError: its key file is readable by others.
            ConfigError: a file is missing or unusable.
        """
        for needed in (KEY_FILE, CERT_FILE, CA_FILE):
            if not (directory / needed).is_file():
                raise ConfigError(f"TLS directory {directory} has no {needed}")
        key = read_private_key(directory / KEY_FILE, "TLS key")
        certificate = load_certificate_pem(directory / CERT_FILE)
        ca = load_certificate_pem(directory / CA_FILE)
        return cls.of(key, certificate, ca)

    @classmethod
    def of(
        cls, key: PrivateKey, certificate: x509.Certificate, ca: x509.Certificate
    ) -> TlsIdentity:
        if certificate.public_key() != key.public_key():
            raise ConfigError("the TLS certificate does not belong to its key")
        return cls(private_key_pem(key), certificate.public_bytes(_PEM), ca.public_bytes(_PEM))
