"""Licence enforcement on the chip: no valid licence past a grace period -> degraded.

The licence is the verifier's latest attestation result for this chip: an EAR-shaped JWT
(ES256) whose submodule for this chip says ``affirming`` (the chip was proven inside its
licensed region) and whose ``exp`` is when that proof stops counting. The agent checks
it with the verifier's published keys (JWKS) and nothing else. The status is a pure
function of the chip's :class:`LicenceState` (the accepted licence and when the chip
degrades without one) and ``now``; the state is sealed (:mod:`geoattest.attestor.sealed`)
so that it survives a reboot and cannot be rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import jwt

from geoattest.attestor.sealed import SealedSlot
from geoattest.errors import Reason, SealedStateError

EAR_AFFIRMING = "affirming"
LICENCE_SLOT = "licence"
"""The sealed slot (and monotonic counter) of the agent's licence state."""
LICENCE_STATE_FILE = "licence.sealed"
"""Where an agent keeps its sealed licence state unless configured otherwise."""


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


@dataclass(frozen=True, slots=True)
class LicenceState:
    """All the chip holds of its licence: sealed on every change, restored at boot."""

    licence: AcceptedLicence | None
    """The newest valid affirming result for this chip (possibly expired by now)."""
    lapses_at_s: int
    """With no licence held: when the chip degrades (the end of its grace period)."""
    grace_s: int
    """How long the chip keeps full performance after its licence expires."""
    superseded_at_s: int = 0
    """Issue time of the newest genuine result that did not affirm: an affirming result
    issued no later than it is older news and never licenses the chip again."""

    @property
    def degrades_at_s(self) -> int:
        """When the chip degrades unless a fresh licence arrives first."""
        if self.licence is not None:
            return self.licence.expires_at_s + self.grace_s
        return self.lapses_at_s

    def status(self, now_s: int) -> LicenceStatus:
        if self.licence is not None and now_s < self.licence.expires_at_s:
            return LicenceStatus.LICENSED
        if now_s < self.degrades_at_s:
            return LicenceStatus.GRACE
        return LicenceStatus.DEGRADED

    def encode(self) -> bytes:
        licence = self.licence
        return json.dumps(
            {
                "licence": None
                if licence is None
                else {"expires_at_s": licence.expires_at_s, "token": licence.token},
                "lapses_at_s": self.lapses_at_s,
                "grace_s": self.grace_s,
                "superseded_at_s": self.superseded_at_s,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> LicenceState:
        """The state :meth:`encode` wrote.

        Raises:
            SealedStateError: ``sealed.edited``: not a licence state (the slot authenticated,
                so only another version of the agent could have written it).
        """
        try:
            raw = json.loads(data)
            held = raw["licence"]
            licence = (
                None if held is None else AcceptedLicence(int(held["expires_at_s"]), held["token"])
            )
            return cls(
                licence,
                int(raw["lapses_at_s"]),
                int(raw["grace_s"]),
                int(raw.get("superseded_at_s", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SealedStateError(
                Reason.SEALED_EDITED, f"the sealed licence state does not parse: {exc!r}"
            ) from None


class AgentLicence:
    """The chip's side of its licence: holds the newest valid affirming result (the
    verifier's licence token) and answers what the chip may do now.

    With a sealed ``slot`` (the agent's own, from its key store) the state outlives the
    process: it is sealed on every change and restored when the agent starts, so a reboot
    never starts a fresh grace period. A first boot (a slot never written) starts the grace
    period at ``booted_at_s``. A sealed state that is rolled back, edited or missing is
    refused (kept in :attr:`refused`) and the chip boots *lapsed*: degraded at once, with
    no grace period, until a fresh valid result arrives. A restored state keeps its grace
    period or the configured one, whichever is shorter.
    """

    def __init__(
        self,
        device_id: str,
        jwks: Mapping[str, Any],
        *,
        grace_s: int,
        booted_at_s: int,
        slot: SealedSlot | None = None,
    ) -> None:
        self.device_id = device_id
        self._keys = jwt.PyJWKSet.from_dict(dict(jwks))
        self.booted_at_s = booted_at_s
        self.refused: SealedStateError | None = None
        """Why the sealed state was not restored at boot; None if it was (or was new)."""
        self._slot = slot
        self.state = LicenceState(None, booted_at_s + grace_s, grace_s)
        if slot is None:
            return
        try:
            sealed = slot.read()
            restored = None if sealed is None else LicenceState.decode(sealed)
        except SealedStateError as refused:
            self.refused = refused
            self._keep(LicenceState(None, booted_at_s, grace_s), seal=True)
            return
        if restored is None:
            self._keep(self.state, seal=True)
        else:
            self.state = restored
            self._keep(replace(restored, grace_s=min(restored.grace_s, grace_s)))

    def _keep(self, state: LicenceState, *, seal: bool = False) -> None:
        """Make ``state`` the chip's; seal it if it changed (or ``seal``)."""
        changed = state != self.state
        self.state = state
        if self._slot is not None and (changed or seal):
            self._slot.write(state.encode())

    @property
    def current(self) -> AcceptedLicence | None:
        """The licence held (possibly expired by now)."""
        return self.state.licence

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
        state = self.state
        issued = int(claims["iat"])
        if mine.get("ear.status") != EAR_AFFIRMING:
            # A genuine result that does not affirm ends the licence: the grace period
            # starts now, whatever an earlier result promised; a licence that had already
            # lapsed keeps its lapse time (no second grace period). Affirming results
            # issued up to it are superseded, so a host cannot replay one afterwards.
            superseded = max(state.superseded_at_s, issued)
            if state.licence is not None:
                lapsed_at = min(now_s, state.licence.expires_at_s)
                state = LicenceState(None, lapsed_at + state.grace_s, state.grace_s)
            self._keep(replace(state, superseded_at_s=superseded))
            return False
        expires = int(claims["exp"])
        if expires <= now_s or issued <= state.superseded_at_s:
            return False
        if state.licence is None or expires > state.licence.expires_at_s:
            self._keep(replace(state, licence=AcceptedLicence(expires, token)))
        return True

    def status(self, now_s: int) -> LicenceStatus:
        return self.state.status(now_s)
