"""The manufacturer roots a verifier trusts, and the device chain check at enrolment.

The verifier checks a device chain once, at enrolment, with
``cryptography.x509.verification`` at the enrolment time; any failure of any kind is an
:class:`~geoattest.errors.EvidenceError` with ``device.bad_chain``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.pki.keyfiles import load_certificate_pem


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


MAX_INTERMEDIATES = 4
"""Most untrusted intermediates an enrolment may offer: geoattest's own CAs issue device
certificates from the root (none), and Web PKI chains hold two or three. The verifier
tries each offered certificate as a path step, about a millisecond apiece while an
enrolment holds the service's lock: one request of 8 MiB once offered twenty thousand."""


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
            EvidenceError: BAD_CHAIN, with what failed in the detail (more than
                :data:`MAX_INTERMEDIATES` intermediates are refused unread).
        """
        if len(intermediates_der) > MAX_INTERMEDIATES:
            raise EvidenceError(
                Reason.BAD_CHAIN,
                f"{len(intermediates_der)} intermediates offered, at most {MAX_INTERMEDIATES}",
            )
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
