"""Decode untrusted bytes into protobuf messages: a typed error, never a traceback."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from geoattest.errors import Reason, WireError

M = TypeVar("M", bound=Message)

MAX_DATAGRAM_BYTES = 2048
"""Largest UDP datagram of the round protocol (a receipt with its transcript fits in 1 KiB)."""
MAX_PROOF_BYTES = 64 * 1024
"""Largest location proof envelope (16 receipts of about 1 KiB each fit with room)."""


def decode(message_type: type[M], data: bytes, *, limit: int) -> M:
    """Parse ``data`` as ``message_type``, refusing oversized input before parsing.

    Raises:
        WireError: OVERSIZED_MESSAGE or MALFORMED_MESSAGE.
    """
    if len(data) > limit:
        raise WireError(
            Reason.OVERSIZED_MESSAGE,
            f"{message_type.__name__} of {len(data)} bytes exceeds {limit}",
        )
    message = message_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        # protobuf raises DecodeError for bad framing; ValueError/RuntimeError for
        # invalid UTF-8 in string fields and recursion limits in some runtimes.
        raise WireError(Reason.MALFORMED_MESSAGE, f"not a valid {message_type.__name__}") from exc
    return message
