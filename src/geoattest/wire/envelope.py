"""DSSE-style signed envelopes with one payload type per purpose.

The signature covers ``PAE(payload_type, payload)``::

    "DSSEv1" SP LEN(payload_type) SP payload_type SP LEN(payload) SP payload

(LEN is the ASCII decimal byte length). The envelope carries the exact signed bytes,
and :func:`open_envelope` returns them as they arrived: nothing is re-serialised
before verification, and the payload type decides what the bytes may be decoded as.

Example:

>>> from geoattest.crypto import KeySigner
>>> from geoattest.errors import EvidenceError, Reason
>>> device = KeySigner.generate()
>>> envelope = seal(PayloadType.LOCATION_PROOF, b"proof bytes", device)
>>> open_envelope(envelope, PayloadType.LOCATION_PROOF, device.verifying_key)
b'proof bytes'
>>> envelope.payload_type = PayloadType.TIMING_RECEIPT.value  # relabelled in transit
>>> try:
...     open_envelope(envelope, PayloadType.TIMING_RECEIPT, device.verifying_key)
... except EvidenceError as refused:
...     refused.reason is Reason.BAD_SIGNATURE
True
"""

from __future__ import annotations

from enum import StrEnum

from geoattest.crypto import Signer, VerifyingKey
from geoattest.errors import EvidenceError, Reason
from geoattest.v1 import envelope_pb2

MAX_SIGNATURE_BYTES = 256


class PayloadType(StrEnum):
    """The signing contexts. Each purpose has its own, so signatures never cross over."""

    ROUND_TRANSCRIPT = "application/vnd.geoattest.round-transcript.v1+protobuf"
    """Device key over a RoundTranscript at the end of a timed round."""
    TIMING_RECEIPT = "application/vnd.geoattest.timing-receipt.v1+protobuf"
    """Landmark key over a TimingReceipt."""
    LOCATION_PROOF = "application/vnd.geoattest.location-proof.v1+protobuf"
    """Device key over a LocationProof."""
    ENROLMENT = "application/vnd.geoattest.enrolment.v1+protobuf"
    """Device key over an EnrolmentClaim (proof of possession at enrolment)."""
    AUDIT_CHECKPOINT = "application/vnd.geoattest.audit-checkpoint.v1+note"
    """Verifier's result key over an audit log checkpoint's note body."""


def _pae_prefix(payload_type: str) -> bytes:
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b " % (len(type_bytes), type_bytes)


_PAE_PREFIXES = {kind.value: _pae_prefix(kind.value) for kind in PayloadType}
"""Each defined payload type's part of the encoding, built once: envelopes are opened
on the verifier's hot path, several per proof."""

_PAYLOAD_TYPES: dict[str, PayloadType] = {kind.value: kind for kind in PayloadType}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: unambiguous, so type and body cannot be shifted."""
    prefix = _PAE_PREFIXES.get(payload_type) or _pae_prefix(payload_type)
    return b"%b%d %b" % (prefix, len(payload), payload)


def seal(payload_type: PayloadType, payload: bytes, signer: Signer) -> envelope_pb2.Envelope:
    """Sign ``payload`` for one purpose and wrap it with the exact bytes signed."""
    return envelope_pb2.Envelope(
        payload_type=payload_type.value,
        payload=payload,
        key_id=signer.verifying_key.key_id,
        signature=signer.sign(pae(payload_type.value, payload)),
    )


def payload_type_of(envelope: envelope_pb2.Envelope) -> PayloadType:
    """The envelope's payload type, if geoattest defines it."""
    return _known(envelope.payload_type)


def _known(payload_type: str) -> PayloadType:
    known = _PAYLOAD_TYPES.get(payload_type)
    if known is None:
        raise EvidenceError(Reason.UNKNOWN_PAYLOAD_TYPE, f"payload type {payload_type[:80]!r}")
    return known


def check_shape(envelope: envelope_pb2.Envelope) -> None:
    signature = envelope.signature
    if not envelope.payload_type or not signature or not envelope.key_id:
        raise EvidenceError(Reason.BAD_ENVELOPE, "payload type, key id and signature required")
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise EvidenceError(Reason.BAD_ENVELOPE, "signature too long")


def open_envelope(
    envelope: envelope_pb2.Envelope, expected: PayloadType, key: VerifyingKey
) -> bytes:
    """Check shape, purpose, key and signature; return the signed payload bytes.

    Raises:
        EvidenceError: BAD_ENVELOPE, UNKNOWN_PAYLOAD_TYPE, WRONG_PAYLOAD_TYPE,
            UNKNOWN_KEY or BAD_SIGNATURE, in that order of checking.
    """
    check_shape(envelope)
    return open_shaped(envelope, expected, key)


def open_shaped(envelope: envelope_pb2.Envelope, expected: PayloadType, key: VerifyingKey) -> bytes:
    """:func:`open_envelope` for an envelope :func:`check_shape` has passed already.

    Raises:
        EvidenceError: UNKNOWN_PAYLOAD_TYPE, WRONG_PAYLOAD_TYPE, UNKNOWN_KEY or
            BAD_SIGNATURE, in that order of checking.
    """
    payload_type = envelope.payload_type
    actual = _known(payload_type)
    if actual is not expected:
        raise EvidenceError(
            Reason.WRONG_PAYLOAD_TYPE, f"expected {expected.name}, got {actual.name}"
        )
    key_id = envelope.key_id
    if key_id != key.key_id:
        raise EvidenceError(Reason.UNKNOWN_KEY, f"key id {key_id[:16]}... not expected")
    payload = envelope.payload
    if not key.verify(envelope.signature, pae(payload_type, payload)):
        raise EvidenceError(Reason.BAD_SIGNATURE, f"{expected.name} signature does not verify")
    return payload
