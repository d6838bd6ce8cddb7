"""Licence enforcement on the chip: no valid licence past a grace period -> degraded.

The licence is the verifier's latest attestation result for this chip: an EAR-shaped JWT
(ES256) whose submodule for this chip says ``affirming`` (the chip was proven inside its
licensed region) and whose ``exp`` is when that proof stops counting. The agent checks
it with the verifier's published keys (JWKS) and nothing else. The status is a pure
function of the accepted licence, the boot time and ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt

EAR_AFFIRMING = "affirming"


class LicenceStatus(Enum):
    """What the emulated chip may do."""

    LICENSED = "licensed"
    """A valid affirming result is in force: full performance."""
    GRACE = "grace"
    """No result in force, but within the grace period after the last one (or boot)."""
    DEGRADED = "degraded"
    """No result in force for longer than the grace period: the chip runs degraded."""


def submod_name(device_id: str) -> str:
    return f"chip-{device_id}"


@dataclass(frozen=True, slots=True)
class AcceptedLicence:
    expires_at_s: int
    token: str


class AgentLicence:
    """The chip's side of its licence: holds the newest valid affirming result (the
    verifier's licence token) and answers what the chip may do now."""

    def __init__(
        self, device_id: str, jwks: Mapping[str, Any], *, grace_s: int, booted_at_s: int
    ) -> None:
        self.device_id = device_id
        self._keys = jwt.PyJWKSet.from_dict(dict(jwks))
        self.grace_s = grace_s
        self.booted_at_s = booted_at_s
        self.current: AcceptedLicence | None = None
        self._lapsed_at_s = booted_at_s

    def offer(self, token: str, now_s: int) -> bool:
        """Take ``token`` as the licence if it is valid, affirming and for this chip."""
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
            key = self._keys[kid]
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["ES256"],
                options={"require": ["exp", "iat"], "verify_exp": False},
            )
        except (jwt.PyJWTError, KeyError):
            return False
        submods = claims.get("submods")
        if not isinstance(submods, dict):
            return False
        mine = submods.get(submod_name(self.device_id))
        if not isinstance(mine, dict):
            return False
        if mine.get("ear.status") != EAR_AFFIRMING:
            # A genuine newer result that does not affirm ends the licence: the grace
            # period starts now, whatever an earlier result promised; a licence that had
            # already lapsed keeps its lapse time (no second grace period).
            if self.current is not None:
                self._lapsed_at_s = min(now_s, self.current.expires_at_s)
            self.current = None
            return False
        expires = int(claims["exp"])
        if expires <= now_s:
            return False
        if self.current is None or expires > self.current.expires_at_s:
            self.current = AcceptedLicence(expires, token)
        return True

    def status(self, now_s: int) -> LicenceStatus:
        if self.current is not None and now_s < self.current.expires_at_s:
            return LicenceStatus.LICENSED
        lapsed_at = self.current.expires_at_s if self.current else self._lapsed_at_s
        if now_s < lapsed_at + self.grace_s:
            return LicenceStatus.GRACE
        return LicenceStatus.DEGRADED
