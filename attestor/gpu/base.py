"""The responder interface, the CPU responder and the typed errors (no GPU needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from geoattest.errors import ConfigError, Reason, RoundError
from geoattest.lifecycle import Closing

SECRET_BYTES = 32
"""r, as in :mod:`geoattest.protocol.round` (a test pins the two together)."""
CHALLENGE_BYTES = 16
ANSWER_BYTES = 32


class ResponderError(RoundError):
    """The responder could not answer: not armed, closed, expired, or no answer in time.

    A RoundError, because a round whose answer cannot be produced is void; the landmark
    never sees a wrong answer from it, only a missing one.
    """


class GpuUnavailableError(ConfigError):
    """A GPU responder was asked for where there is no usable CUDA device or CuPy."""


@runtime_checkable
class RoundResponder(Protocol):
    """What the agent's round driver uses to produce z_j for one round at a time.

    ``arm`` happens before Open is sent (its cost is off the landmark's clock),
    ``answer`` on every challenge (on the clock), ``close`` before Close reveals r.
    """

    name: str

    def arm(self, secret: bytes) -> None: ...

    def answer(self, challenge: bytes) -> bytes: ...

    def close(self) -> None: ...


def check_secret(secret: bytes) -> None:
    if len(secret) != SECRET_BYTES:
        raise ResponderError(Reason.MISSING_FIELD, f"round secret must be {SECRET_BYTES} bytes")


def check_challenge(challenge: bytes) -> None:
    if len(challenge) != CHALLENGE_BYTES:
        raise ResponderError(Reason.MISSING_FIELD, f"challenge must be {CHALLENGE_BYTES} bytes")


class CpuResponder(Closing):
    """z_j on the CPU with hashlib: the protocol's own definition, and the default path.

    ``with responder:`` closes it (wiping r) however the block ends.
    """

    name = "cpu"

    def __init__(self) -> None:
        self._secret: bytes | None = None

    def arm(self, secret: bytes) -> None:
        check_secret(secret)
        self._secret = bytes(secret)

    def answer(self, challenge: bytes) -> bytes:
        if self._secret is None:
            raise ResponderError(Reason.ROUND_UNEXPECTED_MESSAGE, "responder is not armed")
        check_challenge(challenge)
        return self.digest(self._secret, bytes(challenge))

    def digest(self, secret: bytes, challenge: bytes) -> bytes:
        """SHA-256(r || c); a subclass computes the same another way."""
        return hashlib.sha256(secret + challenge).digest()

    def close(self) -> None:
        self._secret = None


def source_path() -> Path:
    """The CUDA source (kept as package data, so an installed agent carries it)."""
    return Path(__file__).with_name("data") / "responder.cu"
