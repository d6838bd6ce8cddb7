"""PKI: the manufacturer CA, trust anchors, landmark registry, revocation, result keys.

The manufacturer (the Endorser) provisions every chip with a device key and an X.509
device certificate (:mod:`~geoattest.pki.ca`); the verifier trusts the manufacturer roots
and checks a device chain at enrolment (:mod:`~geoattest.pki.anchors`), knows the
landmarks (:mod:`~geoattest.pki.landmarks`) and what is revoked
(:mod:`~geoattest.pki.revocation`), and signs results with a key relying parties fetch as
a JWKS (:mod:`~geoattest.pki.result_key`). Ids and names are checked before they reach a
certificate or a file (:mod:`~geoattest.pki.names`); key directories are plain PEM files
(:mod:`~geoattest.pki.keyfiles`).

Example:

>>> import datetime as dt
>>> from cryptography.hazmat.primitives.serialization import Encoding
>>> from geoattest.crypto import KeySigner
>>> now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
>>> ca = ManufacturerCA.create("Example Accelerators", now)
>>> device_key = KeySigner.generate().verifying_key.public_key
>>> certificate = ca.issue_device_certificate(device_key, "chip-sg-01", "H100", now)
>>> anchors = TrustAnchors([ca.certificate])
>>> device = anchors.verify_device(certificate.public_bytes(Encoding.DER), [], now)
>>> device.device_id, device.model
('chip-sg-01', 'H100')
"""

from geoattest.pki.anchors import DeviceCertificate, TrustAnchors
from geoattest.pki.ca import ManufacturerCA
from geoattest.pki.keyfiles import load_certificate_pem, load_signer
from geoattest.pki.landmarks import (
    LandmarkKey,
    LandmarkRecord,
    LandmarkRegistry,
    check_coordinates,
    load_landmark_key,
    save_landmark_key,
)
from geoattest.pki.names import check_device_id, check_identifier
from geoattest.pki.result_key import ResultKey
from geoattest.pki.revocation import RevocationList

__all__ = [
    "DeviceCertificate",
    "LandmarkKey",
    "LandmarkRecord",
    "LandmarkRegistry",
    "ManufacturerCA",
    "ResultKey",
    "RevocationList",
    "TrustAnchors",
    "check_coordinates",
    "check_device_id",
    "check_identifier",
    "load_certificate_pem",
    "load_landmark_key",
    "load_signer",
    "save_landmark_key",
]
