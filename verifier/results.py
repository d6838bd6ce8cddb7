"""Attestation results: an EAR-shaped JWT (ES256) per appraised proof.

A relying party (or the chip's own licence enforcement) checks a result with any JOSE
library and the verifier's JWKS; nothing else of geoattest is needed. The claims follow
the EAR profile (``tag:github.com,2023:veraison/ear``)::

    {"eat_profile": ..., "iat": ..., "exp": <evidence time + stale window, at most the
     licence end>, "iss": <verifier id>,
     "ear.verifier-id": {"developer": "geoattest", "build": "geoattest <version>"},
     "submods": {"chip-<device id>": {
         "ear.status": "affirming" | "warning" | "contraindicated",
         "ear.trustworthiness-vector": {"instance-identity": 2, "hardware": 2,
                                        "sourced-data": 2},
         "ear.appraisal-policy-id": "policy:region/<id>@<version>",
         "ear.x-geoattest.verdict": "ALLOWED", "ear.x-geoattest.reason": "",
         "ear.x-geoattest.counter": 7, "ear.x-geoattest.evidence-time": <s>,
         "ear.x-geoattest.licensed-region": "DE",
         "ear.x-geoattest.licence": {"id": "EL-2026-0042", "version": 3,
                                     "valid-until": <s>, "withdrawn": false},
         "ear.x-geoattest.bounds": [{"landmark_id": ..., "rtt_us": ..., "bound_km": ...}],
         "ear.x-geoattest.feasible-region": <GeoJSON geometry or null>}}}

``ear.status`` follows the verdict (only ALLOWED affirms) and is never better than the
worst claim of the trust vector, as EAR's ``UpdateStatusFromTrustVector`` requires.
``ear.x-geoattest.licence`` names the version of the export licence the proof was judged
under (absent only where no licence source was consulted), and ``exp`` is never past its
``valid-until``.
"""

from __future__ import annotations

import binascii
import functools
import math
from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from geoattest import __version__
from geoattest.errors import Reason
from geoattest.pki import ResultKey
from geoattest.units import SECOND_NS
from geoattest.verdict import Verdict
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.pipeline import Appraisal

_SORTED = orjson.OPT_SORT_KEYS
EAR_PROFILE = "tag:github.com,2023:veraison/ear"
CLAIM_PREFIX = "ear.x-geoattest."
_VERDICT = f"{CLAIM_PREFIX}verdict"
_REASON = f"{CLAIM_PREFIX}reason"
_COUNTER = f"{CLAIM_PREFIX}counter"
_EVIDENCE_TIME = f"{CLAIM_PREFIX}evidence-time"
_LICENSED_REGION = f"{CLAIM_PREFIX}licensed-region"
_LICENCE = f"{CLAIM_PREFIX}licence"
_BOUNDS = f"{CLAIM_PREFIX}bounds"
_FEASIBLE_REGION = f"{CLAIM_PREFIX}feasible-region"


class EarStatus(StrEnum):
    """EAR trust tiers, best first."""

    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


class TrustClaim(IntEnum):
    """EAR trust-claim code points used here (Veraison ``trustclaim.go``)."""

    NO_CLAIM = 0
    UNEXPECTED_EVIDENCE = 1
    AFFIRMING = 2
    """instance-identity recognized / hardware genuine / sourced-data trusted."""
    WARNING = 32
    """hardware unsafe / sourced-data untrusted sources."""
    CONTRAINDICATED = 96
    """instance-identity untrustworthy / hardware or sourced-data contraindicated."""
    UNRECOGNIZED = 97
    CRYPTO_FAILED = 99


_VERDICT_STATUS = {
    Verdict.ALLOWED: EarStatus.AFFIRMING,
    Verdict.INCONCLUSIVE: EarStatus.WARNING,
}
"""Anything else (OUTSIDE, INCONSISTENT, REJECTED, an unknown verdict) contraindicates."""

_AFFIRMED = {
    "instance-identity": TrustClaim.AFFIRMING,
    "hardware": TrustClaim.AFFIRMING,
    "sourced-data": TrustClaim.AFFIRMING,
}

_REJECTION_CLAIMS: Mapping[Reason, tuple[str, TrustClaim]] = {
    Reason.UNKNOWN_DEVICE: ("instance-identity", TrustClaim.UNRECOGNIZED),
    Reason.REVOKED_DEVICE: ("hardware", TrustClaim.CONTRAINDICATED),
    Reason.BAD_CHAIN: ("hardware", TrustClaim.UNRECOGNIZED),
    Reason.BAD_SIGNATURE: ("instance-identity", TrustClaim.CRYPTO_FAILED),
    Reason.UNKNOWN_KEY: ("instance-identity", TrustClaim.CRYPTO_FAILED),
    Reason.DEVICE_MISMATCH: ("instance-identity", TrustClaim.CONTRAINDICATED),
    Reason.FORK: ("instance-identity", TrustClaim.CONTRAINDICATED),
    Reason.REPLAYED_PROOF: ("instance-identity", TrustClaim.CONTRAINDICATED),
    Reason.COUNTER_NOT_INCREASING: ("instance-identity", TrustClaim.CONTRAINDICATED),
    Reason.CHAIN_BROKEN: ("instance-identity", TrustClaim.CONTRAINDICATED),
    Reason.BAD_MEASUREMENT: ("hardware", TrustClaim.CONTRAINDICATED),
    Reason.BAD_TRANSCRIPT_SIGNATURE: ("instance-identity", TrustClaim.CRYPTO_FAILED),
    Reason.BAD_RECEIPT_SIGNATURE: ("sourced-data", TrustClaim.CRYPTO_FAILED),
    Reason.UNKNOWN_LANDMARK: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.REVOKED_LANDMARK: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.REPLAYED_RECEIPT: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.TRANSCRIPT_MISMATCH: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.RECEIPT_FOR_OTHER_DEVICE: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.DUPLICATE_LANDMARK: ("sourced-data", TrustClaim.CONTRAINDICATED),
    Reason.STALE_RECEIPT: ("sourced-data", TrustClaim.WARNING),
    Reason.FUTURE_RECEIPT: ("sourced-data", TrustClaim.WARNING),
    Reason.QUORUM_NOT_MET: ("sourced-data", TrustClaim.WARNING),
}
"""Which claim a rejection speaks against; other reasons are unexpected evidence."""


def trust_vector(verdict: Verdict, reason: Reason | None) -> dict[str, int]:
    """The EAR trust vector for an appraisal's verdict and reason."""
    vector = {name: int(claim) for name, claim in _AFFIRMED.items()}
    if verdict is Verdict.REJECTED:
        name, claim = _REJECTION_CLAIMS.get(
            reason or Reason.MALFORMED_MESSAGE,
            ("sourced-data", TrustClaim.UNEXPECTED_EVIDENCE),
        )
        vector[name] = int(claim)
    elif verdict is Verdict.INCONSISTENT:
        vector["sourced-data"] = int(TrustClaim.CONTRAINDICATED)
    return vector


def _tier(claim: int) -> EarStatus:
    if 2 <= claim <= 31:
        return EarStatus.AFFIRMING
    if 32 <= claim <= 95:
        return EarStatus.WARNING
    return EarStatus.CONTRAINDICATED


def ear_status(verdict: Verdict, vector: Mapping[str, int]) -> EarStatus:
    """The verdict's status, lowered to the worst claim of the vector."""
    order = list(EarStatus)
    statuses = [_VERDICT_STATUS.get(verdict, EarStatus.CONTRAINDICATED)]
    statuses += [_tier(claim) for claim in vector.values()]
    return max(statuses, key=order.index)


@functools.cache
def status_claims(verdict: Verdict, reason: Reason | None) -> tuple[str, dict[str, int]]:
    """``ear.status`` and the trust vector of a verdict and reason, worked out once per
    pair (both enums are finite). The vector is shared between tokens: never change it."""
    vector = trust_vector(verdict, reason)
    return ear_status(verdict, vector).value, vector


def licence_claim(licence: ExportLicence) -> dict[str, object]:
    """The licence version a result was judged under, as the token names it."""
    return {
        "id": licence.name,
        "version": licence.version,
        "valid-until": licence.valid_until_ns // SECOND_NS,
        "withdrawn": licence.withdrawn,
    }


def submod_name(device_id: str) -> str:
    return f"chip-{device_id}"


class ResultSigner:
    """Signs results with the verifier's ES256 key; holds no mutable state."""

    def __init__(self, key: ResultKey, *, verifier_id: str, policy_id: str) -> None:
        self.key = key
        self.verifier_id = verifier_id
        self.policy_id = policy_id
        self._header = _b64url(
            orjson.dumps({"alg": "ES256", "kid": key.key_id, "typ": "JWT"}, option=_SORTED)
        )
        self._verifier_claim = {"developer": "geoattest", "build": f"geoattest {__version__}"}

    def jwks(self) -> dict[str, Any]:
        return self.key.jwks()

    def sign(self, appraisal: Appraisal, *, expires_ns: int, now_ns: int) -> str:
        """The signed result for an appraisal of a known device's proof."""
        verdict, reason = appraisal.verdict, appraisal.reason
        status, vector = status_claims(verdict, reason)
        region = appraisal.region
        submod: dict[str, object] = {
            "ear.status": status,
            "ear.trustworthiness-vector": vector,
            "ear.appraisal-policy-id": self.policy_id,
            _VERDICT: verdict.value,
            _REASON: reason.value if reason else "",
            _COUNTER: appraisal.counter,
            _EVIDENCE_TIME: appraisal.evidence_time_ns // SECOND_NS,
            _LICENSED_REGION: appraisal.licensed_region,
        }
        if appraisal.licence is not None:
            submod[_LICENCE] = licence_claim(appraisal.licence)
        submod[_BOUNDS] = [
            {
                "landmark_id": b.landmark_id,
                "rtt_us": round(b.rtt_min_ns / 1000, 3),
                "bound_km": math.ceil(b.bound_km * 1000) / 1000,  # outward
            }
            for b in appraisal.bounds
        ]
        submod[_FEASIBLE_REGION] = (
            dict(region.feasible_region) if region and region.feasible_region else None
        )
        claims = {
            "eat_profile": EAR_PROFILE,
            "iat": now_ns // SECOND_NS,
            "exp": expires_ns // SECOND_NS,
            "iss": self.verifier_id,
            "ear.verifier-id": self._verifier_claim,
            "submods": {submod_name(appraisal.device_id): submod},
        }
        # One JWS compact serialisation (RFC 7515), as PyJWS writes it, without its
        # per-call header building: the header is the signer's, fixed; orjson formats the
        # feasible region's vertices ten times faster than the json module.
        signing_input = self._header + b"." + _b64url(orjson.dumps(claims))
        r, s = decode_dss_signature(self.key.private_key.sign(signing_input, _ES256))
        signature = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        return (signing_input + b"." + _b64url(signature)).decode("ascii")


_P256_BYTES = 32
"""Each of an ES256 signature's two integers, as JWS writes them (RFC 7518, 3.4)."""
_ES256 = ec.ECDSA(hashes.SHA256())
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515, section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")
