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

import base64
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


def trust_vector(appraisal: Appraisal) -> dict[str, int]:
    """The EAR trust vector for one appraisal."""
    vector = {name: int(claim) for name, claim in _AFFIRMED.items()}
    if appraisal.verdict is Verdict.REJECTED:
        name, claim = _REJECTION_CLAIMS.get(
            appraisal.reason or Reason.MALFORMED_MESSAGE,
            ("sourced-data", TrustClaim.UNEXPECTED_EVIDENCE),
        )
        vector[name] = int(claim)
    elif appraisal.verdict is Verdict.INCONSISTENT:
        vector["sourced-data"] = int(TrustClaim.CONTRAINDICATED)
    return vector


def _tier(claim: int) -> EarStatus:
    if 2 <= claim <= 31:
        return EarStatus.AFFIRMING
    if 32 <= claim <= 95:
        return EarStatus.WARNING
    return EarStatus.CONTRAINDICATED


def ear_status(appraisal: Appraisal, vector: Mapping[str, int]) -> EarStatus:
    """The verdict's status, lowered to the worst claim of the vector."""
    order = list(EarStatus)
    statuses = [_VERDICT_STATUS.get(appraisal.verdict, EarStatus.CONTRAINDICATED)]
    statuses += [_tier(claim) for claim in vector.values()]
    return max(statuses, key=order.index)


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

    def jwks(self) -> dict[str, Any]:
        return self.key.jwks()

    def sign(self, appraisal: Appraisal, *, expires_ns: int, now_ns: int) -> str:
        """The signed result for an appraisal of a known device's proof."""
        vector = trust_vector(appraisal)
        region = appraisal.region
        submod = {
            "ear.status": ear_status(appraisal, vector).value,
            "ear.trustworthiness-vector": vector,
            "ear.appraisal-policy-id": self.policy_id,
            f"{CLAIM_PREFIX}verdict": appraisal.verdict.value,
            f"{CLAIM_PREFIX}reason": appraisal.reason.value if appraisal.reason else "",
            f"{CLAIM_PREFIX}counter": appraisal.counter,
            f"{CLAIM_PREFIX}evidence-time": appraisal.evidence_time_ns // SECOND_NS,
            f"{CLAIM_PREFIX}licensed-region": appraisal.licensed_region,
            **(
                {f"{CLAIM_PREFIX}licence": licence_claim(appraisal.licence)}
                if appraisal.licence is not None
                else {}
            ),
            f"{CLAIM_PREFIX}bounds": [
                {
                    "landmark_id": b.landmark_id,
                    "rtt_us": round(b.rtt_min_ns / 1000, 3),
                    "bound_km": math.ceil(b.bound_km * 1000) / 1000,  # outward
                }
                for b in appraisal.bounds
            ],
            f"{CLAIM_PREFIX}feasible-region": (
                dict(region.feasible_region) if region and region.feasible_region else None
            ),
        }
        claims = {
            "eat_profile": EAR_PROFILE,
            "iat": now_ns // SECOND_NS,
            "exp": expires_ns // SECOND_NS,
            "iss": self.verifier_id,
            "ear.verifier-id": {"developer": "geoattest", "build": f"geoattest {__version__}"},
            "submods": {submod_name(appraisal.device_id): submod},
        }
        # One JWS compact serialisation (RFC 7515), as PyJWS writes it, without its
        # per-call header building: the header is the signer's, fixed; orjson formats the
        # feasible region's vertices ten times faster than the json module.
        signing_input = self._header + b"." + _b64url(orjson.dumps(claims))
        r, s = decode_dss_signature(
            self.key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        )
        signature = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        return (signing_input + b"." + _b64url(signature)).decode("ascii")


_P256_BYTES = 32
"""Each of an ES256 signature's two integers, as JWS writes them (RFC 7518, 3.4)."""


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
