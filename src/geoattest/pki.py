"""Manufacturer CA, device certificates, landmark registry, revocation, result keys.

The manufacturer (the Endorser) provisions every chip with a device key and an X.509
device certificate whose subject ``serialNumber`` is the device id and whose ``title`` is
the chip model. The verifier checks a device chain once, at enrolment, with
``cryptography.x509.verification`` at the enrolment time; any failure of any kind is a
:class:`~geoattest.errors.EvidenceError` with ``device.bad_chain``.

The CA signs with ECDSA (P-256 or P-384): the Web PKI algorithm set that
``cryptography.x509.verification`` enforces does not admit Ed25519 signatures on
certificates. Device and landmark keys may use any of the three algorithms.

Device ids and models go into X.520 attributes, so they obey X.520: a device id is 1..64
PrintableString characters (letters, digits, space and ``'()+,-.:=?``; no ``_``), a model
1..64 printable characters. Bad names are refused with a :class:`ConfigError` before any
file is written.

Files are plain and inspectable: PEM keys (mode 0600) and certificates, and JSON for the
landmark registry and revocation lists.

Example::

    ca = ManufacturerCA.create("Example Accelerators", now)
    certificate = ca.issue_device_certificate(device_public_key, "chip-sg-01", "H100", now)
    anchors = TrustAnchors([ca.certificate])
    device = anchors.verify_device(certificate.public_bytes(Encoding.DER), [], now)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from geoattest.crypto import (
    Algorithm,
    KeySigner,
    PrivateKey,
    PublicKey,
    VerifyingKey,
    generate_private_key,
    load_private_key_pem,
    private_key_pem,
)
from geoattest.errors import ConfigError, EvidenceError, Reason

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"
CA_ALGORITHMS = (Algorithm.ES256, Algorithm.ES384)
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 64  # X.520 upper bound for commonName, serialNumber, title, organizationName
CA_NAME_SUFFIX = " device root"
PRINTABLE_STRING = frozenset(string.ascii_letters + string.digits + " '()+,-.:=?")
"""The ASN.1 PrintableString alphabet (X.680), less '/', which ids may not hold."""


def check_identifier(value: str, what: str) -> str:
    """Ids travel in datagrams and file names: short, printable, no separators.

    Raises:
        ConfigError: the id is empty, too long, unprintable or holds '/'.
    """
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable() or "/" in value:
        raise ConfigError(f"{what} must be 1..{MAX_ID_LENGTH} printable characters without '/'")
    return value


def check_device_id(device_id: str) -> str:
    """A device id is a certificate's X.520 serialNumber: at most 64 PrintableString characters.

    Raises:
        ConfigError: the id does not fit that attribute (or holds '/').
    """
    if not 1 <= len(device_id) <= MAX_NAME_LENGTH or not set(device_id) <= PRINTABLE_STRING:
        raise ConfigError(
            f"device id {device_id!r} must be 1..{MAX_NAME_LENGTH} characters of letters, "
            "digits, space and '()+,-.:=? (an X.520 serialNumber)"
        )
    return device_id


def _check_name(value: str, what: str, limit: int = MAX_NAME_LENGTH) -> str:
    if not 1 <= len(value) <= limit or not value.isprintable():
        raise ConfigError(f"{what} {value!r} must be 1..{limit} printable characters")
    return value


def _validity_end(start: dt.datetime, validity: dt.timedelta) -> dt.datetime:
    if validity <= dt.timedelta(0):
        raise ConfigError("validity must be positive")
    try:
        return start + validity
    except OverflowError:
        raise ConfigError(f"validity of {validity.days} days runs past the year 9999") from None


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_new(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)


def prepare_output_dir(directory: Path) -> None:
    """An output folder must be new or empty: provisioning never overwrites keys."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} already exists and is not an empty directory")
    directory.mkdir(parents=True, exist_ok=True)


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def _key_usage(*, certifies: bool) -> x509.KeyUsage:
    """A CA key only certifies; a device key only signs."""
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


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """What a verified device chain yields.

    ``device_id`` is the subject serialNumber attribute, ``model`` the subject title,
    ``serial_number`` the certificate's own X.509 serial.
    """

    device_id: str
    model: str
    serial_number: int
    verifying_key: VerifyingKey
    certificate: x509.Certificate


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
        _check_name(name, "manufacturer name", MAX_NAME_LENGTH - len(CA_NAME_SUFFIX))
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
            .add_extension(_key_usage(certifies=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, _signature_hash(key))
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: Path) -> ManufacturerCA:
        """Open a CA directory made by :meth:`save`.

        Raises:
            ConfigError: files missing or unreadable, a non-ECDSA key, a certificate that is
                not a CA's or belongs to another key.
        """
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if not key_path.is_file() or not cert_path.is_file():
            raise ConfigError(
                f"{directory} is not a CA directory (no {CA_KEY_FILE}/{CA_CERT_FILE})"
            )
        key = load_private_key_pem(key_path.read_bytes(), what=str(key_path))
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
        write_private(directory / CA_KEY_FILE, private_key_pem(self._key))
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
        _check_name(model, "model")
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
            .add_extension(_key_usage(certifies=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .sign(self._key, _signature_hash(self._key))
        )


def _device_leaf_policy() -> ExtensionPolicy:
    """Device certificates carry no SAN (they name no host): require what they do carry."""
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.CRITICAL, None)
        .require_present(x509.KeyUsage, Criticality.CRITICAL, None)
    )


class TrustAnchors:
    """The manufacturer roots a verifier trusts for device certificates."""

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        if not roots:
            raise ConfigError("at least one trusted manufacturer root is required")
        self.roots = list(roots)
        self._store = Store(self.roots)

    @classmethod
    def from_pem_files(cls, paths: Iterable[Path]) -> TrustAnchors:
        """Trust the root certificate in each PEM file.

        Raises:
            ConfigError: no files, or a file that is unreadable or not a PEM certificate.
        """
        return cls([load_certificate_pem(Path(p)) for p in paths])

    def verify_device(
        self, leaf_der: bytes, intermediates_der: Sequence[bytes], at: dt.datetime
    ) -> DeviceCertificate:
        """Check a device chain at ``at``; any failure is ``device.bad_chain``.

        The client verifier's Web PKI rules want a subjectAltName on the leaf, which a chip
        has no use for, so the leaf policy requires what device certificates do carry
        (critical basicConstraints and keyUsage) and the CA policy stays Web PKI's.

        Args:
            leaf_der: the device certificate, DER.
            intermediates_der: untrusted intermediates, DER (none for geoattest's own CAs).
            at: the time the chain must be valid at (the evidence time, never a clock read).

        Returns:
            The device's id, model, serial and verifying key.

        Raises:
            EvidenceError: BAD_CHAIN, with what failed in the detail.
        """
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
            intermediates = [x509.load_der_x509_certificate(d) for d in intermediates_der]
            verifier = (
                PolicyBuilder()
                .store(self._store)
                .time(at)
                .extension_policies(
                    ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                    ee_policy=_device_leaf_policy(),
                )
                .build_client_verifier()
            )
            verifier.verify(leaf, intermediates)
            constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
            device_ids = leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
            models = leaf.subject.get_attributes_for_oid(NameOID.TITLE)
            public_key = leaf.public_key()
        except (
            ValueError,
            TypeError,
            VerificationError,
            x509.ExtensionNotFound,
            x509.InvalidVersion,
        ) as exc:
            raise EvidenceError(Reason.BAD_CHAIN, str(exc)[:300]) from exc
        if constraints.ca:
            raise EvidenceError(Reason.BAD_CHAIN, "a CA certificate is not a device")
        if len(device_ids) != 1 or len(models) != 1:
            raise EvidenceError(Reason.BAD_CHAIN, "device certificate lacks serialNumber or title")
        try:
            verifying_key = VerifyingKey.from_der(
                public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        except EvidenceError as exc:
            raise EvidenceError(Reason.BAD_CHAIN, exc.detail) from exc
        return DeviceCertificate(
            device_id=str(device_ids[0].value),
            model=str(models[0].value),
            serial_number=leaf.serial_number,
            verifying_key=verifying_key,
            certificate=leaf,
        )


@dataclass(frozen=True, slots=True)
class LandmarkRecord:
    """A landmark as the registry lists it: where it is and the key its receipts carry."""

    landmark_id: str
    latitude: float
    longitude: float
    verifying_key: VerifyingKey
    name: str = ""


def check_coordinates(latitude: float, longitude: float) -> None:
    """Refuse coordinates no place has (NaN fails both comparisons).

    Raises:
        ConfigError: latitude outside -90..90 or longitude outside -180..180.
    """
    if not -90.0 <= latitude <= 90.0:
        raise ConfigError(f"latitude {latitude} is outside -90..90")
    if not -180.0 <= longitude <= 180.0:
        raise ConfigError(f"longitude {longitude} is outside -180..180")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON") from exc


def _write_json_atomic(path: Path, document: Any) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


class LandmarkRegistry:
    """Landmarks by id, stored as a JSON document.

    Format: ``{"landmarks": [{"id", "name", "lat", "lon", "public_key", "key_id"}]}`` with
    ``public_key`` the hex of the SubjectPublicKeyInfo DER; ``key_id`` is informative only
    (it is recomputed from the key on load).
    """

    def __init__(self, records: Iterable[LandmarkRecord] = ()) -> None:
        self._records: dict[str, LandmarkRecord] = {}
        for record in records:
            self.add(record)

    def add(self, record: LandmarkRecord) -> None:
        """Register a landmark.

        Raises:
            ConfigError: a bad id or coordinates, or an id already registered.
        """
        check_identifier(record.landmark_id, "landmark id")
        check_coordinates(record.latitude, record.longitude)
        if record.landmark_id in self._records:
            raise ConfigError(f"landmark {record.landmark_id} is already registered")
        self._records[record.landmark_id] = record

    def get(self, landmark_id: str) -> LandmarkRecord | None:
        return self._records.get(landmark_id)

    def __iter__(self) -> Iterator[LandmarkRecord]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def load(cls, path: Path) -> LandmarkRegistry:
        """Read a registry file.

        Raises:
            ConfigError: missing, not JSON, malformed, or a bad or duplicate entry.
        """
        document = _read_json(path, "landmark registry")
        try:
            entries = document["landmarks"]
            records = [
                LandmarkRecord(
                    landmark_id=str(entry["id"]),
                    latitude=float(entry["lat"]),
                    longitude=float(entry["lon"]),
                    verifying_key=VerifyingKey.from_der(bytes.fromhex(entry["public_key"])),
                    name=str(entry.get("name", "")),
                )
                for entry in entries
            ]
        except (KeyError, TypeError, ValueError, EvidenceError) as exc:
            raise ConfigError(f"landmark registry {path} is malformed: {exc}") from exc
        return cls(records)

    def save(self, path: Path) -> None:
        """Replace the registry file atomically.

        Raises:
            ConfigError: the file cannot be written.
        """
        _write_json_atomic(
            path,
            {
                "landmarks": [
                    {
                        "id": r.landmark_id,
                        "name": r.name,
                        "lat": r.latitude,
                        "lon": r.longitude,
                        "public_key": r.verifying_key.der().hex(),
                        "key_id": r.verifying_key.key_id,
                    }
                    for r in self
                ]
            },
        )


@dataclass(frozen=True, slots=True)
class RevocationList:
    """Revoked devices and landmarks. The version only increases.

    Format: ``{"version": int, "devices": [id, ...], "landmarks": [id, ...]}``. A verifier
    that has seen version n refuses anything older, so an adversary cannot roll a
    revocation back by serving an old file.
    """

    version: int = 0
    devices: frozenset[str] = field(default_factory=frozenset)
    landmarks: frozenset[str] = field(default_factory=frozenset)

    def device_revoked(self, device_id: str) -> bool:
        return device_id in self.devices

    def landmark_revoked(self, landmark_id: str) -> bool:
        return landmark_id in self.landmarks

    def with_device(self, device_id: str) -> RevocationList:
        check_identifier(device_id, "device id")
        return RevocationList(self.version + 1, self.devices | {device_id}, self.landmarks)

    def with_landmark(self, landmark_id: str) -> RevocationList:
        check_identifier(landmark_id, "landmark id")
        return RevocationList(self.version + 1, self.devices, self.landmarks | {landmark_id})

    @classmethod
    def load(cls, path: Path) -> RevocationList:
        """Read a revocation list file.

        Raises:
            ConfigError: missing, not JSON, or malformed.
        """
        document = _read_json(path, "revocation list")
        try:
            return cls(
                version=int(document["version"]),
                devices=frozenset(str(d) for d in document["devices"]),
                landmarks=frozenset(str(x) for x in document["landmarks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"revocation list {path} is malformed: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the list; refuse to replace a newer or equal version (rollback).

        Raises:
            ConfigError: the file holds this version or a later one, or cannot be written.
        """
        if path.exists():
            current = RevocationList.load(path)
            if current.version >= self.version:
                raise ConfigError(
                    f"{path} holds version {current.version}; refusing to write {self.version}"
                )
        _write_json_atomic(
            path,
            {
                "version": self.version,
                "devices": sorted(self.devices),
                "landmarks": sorted(self.landmarks),
            },
        )


KEY_FILE = "key.pem"


def save_signing_key(directory: Path, key: PrivateKey) -> None:
    """A new key directory with the private key (0600) and its public half."""
    prepare_output_dir(directory)
    write_private(directory / KEY_FILE, private_key_pem(key))
    write_new(
        directory / "public.pem",
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


LANDMARK_FILE = "landmark.json"


def save_landmark_key(directory: Path, key: PrivateKey, record: LandmarkRecord) -> None:
    """A landmark's key directory: its key and who and where it is (for 'landmark serve')."""
    save_signing_key(directory, key)
    identity = {
        "id": record.landmark_id,
        "lat": record.latitude,
        "lon": record.longitude,
        "name": record.name,
    }
    write_new(directory / LANDMARK_FILE, json.dumps(identity).encode() + b"\n")


def load_landmark_key(directory: Path) -> tuple[KeySigner, LandmarkRecord]:
    """A landmark key directory written by :func:`save_landmark_key`.

    Raises:
        ConfigError: the directory, its key or its ``landmark.json`` is missing or malformed.
    """
    if not directory.is_dir():
        raise ConfigError(f"landmark key directory {directory} does not exist")
    signer = load_signer(directory, "landmark key directory")
    path = directory / LANDMARK_FILE
    try:
        document = json.loads(path.read_bytes())
        record = LandmarkRecord(
            str(document["id"]),
            float(document["lat"]),
            float(document["lon"]),
            signer.verifying_key,
            str(document.get("name", "")),
        )
    except FileNotFoundError:
        raise ConfigError(f"landmark key directory {directory} has no {LANDMARK_FILE}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is malformed: {exc!r}") from None
    check_coordinates(record.latitude, record.longitude)
    return signer, record


def load_signer(directory: Path, what: str) -> KeySigner:
    """Open a key directory's private key as an in-memory signer (landmarks).

    Raises:
        ConfigError: no key file, or not a supported PEM private key.
    """
    path = directory / KEY_FILE
    if not path.is_file():
        raise ConfigError(f"{what} {directory} has no {KEY_FILE}")
    return KeySigner(load_private_key_pem(path.read_bytes(), what=str(path)))


class ResultKey:
    """The verifier's ES256 key for attestation results, published as a JWKS.

    Stored as ``key.pem`` (0600), ``public.pem`` and ``jwks.json``; the JWK's ``kid`` is the
    key id (hex SHA-256 of the SubjectPublicKeyInfo DER).
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if key.curve.name != "secp256r1":
            raise ConfigError("the result key must be a P-256 key (ES256)")
        self.private_key = key
        self.key_id = VerifyingKey.from_public_key(key.public_key()).key_id

    @classmethod
    def generate(cls) -> ResultKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, directory: Path) -> ResultKey:
        """Open a result key directory made by :meth:`save`.

        Raises:
            ConfigError: no key file, or not a P-256 key.
        """
        path = directory / KEY_FILE
        if not path.is_file():
            raise ConfigError(f"result key directory {directory} has no {KEY_FILE}")
        key = load_private_key_pem(path.read_bytes(), what=str(path))
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{directory / KEY_FILE} is not an ECDSA P-256 key")
        return cls(key)

    def save(self, directory: Path) -> None:
        """Write the key (0600), its public half and ``jwks.json`` into a new directory.

        Raises:
            ConfigError: the directory exists and is not empty.
        """
        save_signing_key(directory, self.private_key)
        write_new(directory / "jwks.json", json.dumps(self.jwks(), indent=2).encode() + b"\n")

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (PyJWT's encoding) with kid, use and alg set."""
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key())
        )
        jwk.update(kid=self.key_id, use="sig", alg="ES256")
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}
