"""The token inspector: an EAR result token decoded, and checked against the verifier's
published keys (its JWKS, as ``GetResultKeys`` serves it), with the reason when it fails.

The check is what any relying party does with an ordinary JOSE library: the key named by
the header's ``kid`` among the published keys, ES256 only, the signature, then the
expiry. Nothing of the verifier's private state is needed.

Example::

    inspection = inspect_token(token, jwks)
    inspection.valid, inspection.failure, inspection.claims
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHMS = ["ES256"]


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a token says and whether the verifier's keys vouch for it."""

    valid: bool
    failure: str = ""
    """Why it does not check (empty when it does)."""
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    """The claims as written, whether or not the signature checks: read them as unproven
    when ``valid`` is false."""


def token_device(claims: dict[str, Any]) -> str:
    """The device a result is about (its one ``chip-<device id>`` submodule; empty if
    none or several)."""
    submods = claims.get("submods")
    names = [n for n in submods if n.startswith("chip-")] if isinstance(submods, dict) else []
    return names[0].removeprefix("chip-") if len(names) == 1 else ""


MAX_NESTING = 64
"""The deepest a token's header or claims may nest and still be shown: a result's claims
nest about five levels, and the page renders them recursively."""


def _unverified_part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or claims (1), decoded without any check; empty when it is not
    a JSON object, or one nested deeper than :data:`MAX_NESTING`."""
    try:
        segment = token.split(".")[index]
        decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) and _nesting(decoded) <= MAX_NESTING else {}


def _nesting(value: object) -> int:
    """How many levels of objects and arrays ``value`` nests, counted level by level
    without recursion."""
    depth, level = 0, [value]
    while True:
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return depth
        depth += 1


def inspect_token(token: str, jwks: dict[str, Any] | None, *, keys_error: str = "") -> Inspection:
    """Decode ``token`` and check it against ``jwks`` (None: the keys could not be had,
    ``keys_error`` says why)."""
    token = "".join(token.split())
    header, claims = _unverified_part(token, 0), _unverified_part(token, 1)
    if token.count(".") != 2 or not header:
        return Inspection(False, "not a JWT: expected header.claims.signature", header, claims)
    if jwks is None:
        why = f"the verifier's keys are unavailable: {keys_error}"
        return Inspection(False, why, header, claims)
    kid = header.get("kid")
    published = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
    key = next((k for k in published if k.get("kid") == kid), None)
    if key is None:
        known = ", ".join(str(k.get("kid")) for k in published) or "none"
        return Inspection(
            False, f"no published key has kid {kid!r} (published: {known})", header, claims
        )
    if header.get("alg") not in ALGORITHMS:
        return Inspection(False, f"algorithm {header.get('alg')!r} is not ES256", header, claims)
    try:
        jwt.decode(
            token,
            jwt.PyJWK(key).key,
            algorithms=ALGORITHMS,
            options={"verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        return Inspection(False, f"the signature does not verify under key {kid}", header, claims)
    except jwt.ExpiredSignatureError:
        return Inspection(False, "the token has expired (its exp is past)", header, claims)
    except jwt.PyJWTError as exc:
        return Inspection(False, f"the token does not check: {exc}", header, claims)
    return Inspection(True, "", header, claims)
