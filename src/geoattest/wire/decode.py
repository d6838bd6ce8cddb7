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
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Largest gRPC request or response, both ways: a full batch of typical proofs fits."""
INT64_MAX = 2**63 - 1
"""The largest count, time or cursor geoattest keeps: the store holds them as signed 64-bit
integers, so an unsigned 64-bit field above this names nothing that can exist."""


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


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``at`` and the offset after it."""
    value = shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise WireError(Reason.MALFORMED_MESSAGE, "truncated or overlong varint")


_FIXED_BYTES = {1: 8, 5: 4}
"""Payload bytes of the fixed-width wire types (64-bit, 32-bit)."""


def count_field(data: bytes, field_number: int, *, limit: int) -> int:
    """How often the top-level field ``field_number`` occurs in the message ``data``,
    found by walking the fields' tags and lengths without parsing any of them: a
    repeated field can be counted (and a message refused for it) before anything is
    built from it.

    Raises:
        WireError: OVERSIZED_MESSAGE (more than ``limit`` bytes) or MALFORMED_MESSAGE
            (the framing does not hold together).
    """
    if len(data) > limit:
        raise WireError(Reason.OVERSIZED_MESSAGE, f"message of {len(data)} bytes exceeds {limit}")
    count = at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError(Reason.MALFORMED_MESSAGE, "field number 0")
        if wire_type == 0:
            _, at = _varint(data, at)
        elif wire_type == 2:
            length, at = _varint(data, at)
            at += length
        elif wire_type in _FIXED_BYTES:
            at += _FIXED_BYTES[wire_type]
        else:
            raise WireError(Reason.MALFORMED_MESSAGE, f"wire type {wire_type} is not used")
        if at > len(data):
            raise WireError(Reason.MALFORMED_MESSAGE, "a field runs past the message's end")
        count += number == field_number
    return count
