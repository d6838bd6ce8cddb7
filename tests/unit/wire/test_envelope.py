"""Signed envelopes: one purpose per signature, and every failure has its own reason."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoattest.crypto import Algorithm, KeySigner
from geoattest.errors import EvidenceError, Reason
from geoattest.v1 import envelope_pb2
from geoattest.wire.envelope import PayloadType, open_envelope, pae, seal

PAYLOAD = b"\x08\x01\x12\x05hello"


def test_pae_matches_the_dsse_specification_vector():
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@given(
    st.one_of(st.sampled_from([kind.value for kind in PayloadType]), st.text(max_size=80)),
    st.binary(max_size=300),
)
def test_pae_is_the_specifications_encoding_for_any_type_and_payload(
    payload_type: str, payload: bytes
) -> None:
    """The defined types' encodings are built once; every type encodes as DSSE says."""
    type_bytes = payload_type.encode("utf-8")
    assert pae(payload_type, payload) == b"DSSEv1 " + b" ".join(
        [str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload]
    )


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_seal_and_open_round_trip_for_every_algorithm(algorithm):
    signer = KeySigner.generate(algorithm)
    envelope = seal(PayloadType.LOCATION_PROOF, PAYLOAD, signer)
    assert open_envelope(envelope, PayloadType.LOCATION_PROOF, signer.verifying_key) == PAYLOAD


@pytest.mark.parametrize(
    ("signed_as", "opened_as"),
    list(itertools.permutations(PayloadType, 2)),
    ids=lambda t: t.name,
)
def test_signature_for_one_purpose_fails_as_any_other(signed_as, opened_as):
    signer = KeySigner.generate()
    envelope = seal(signed_as, PAYLOAD, signer)
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, opened_as, signer.verifying_key)
    assert err.value.reason is Reason.WRONG_PAYLOAD_TYPE
    # Relabelling the envelope does not help: the signature covers the type.
    envelope.payload_type = opened_as.value
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, opened_as, signer.verifying_key)
    assert err.value.reason is Reason.BAD_SIGNATURE


def test_changed_payload_byte_fails_as_bad_signature():
    signer = KeySigner.generate()
    envelope = seal(PayloadType.TIMING_RECEIPT, PAYLOAD, signer)
    envelope.payload = PAYLOAD[:-1] + b"!"
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.TIMING_RECEIPT, signer.verifying_key)
    assert err.value.reason is Reason.BAD_SIGNATURE


def test_wrong_key_fails_as_unknown_key():
    envelope = seal(PayloadType.TIMING_RECEIPT, PAYLOAD, KeySigner.generate())
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.TIMING_RECEIPT, KeySigner.generate().verifying_key)
    assert err.value.reason is Reason.UNKNOWN_KEY


def test_key_id_claiming_another_key_fails_as_bad_signature():
    honest, forger = KeySigner.generate(), KeySigner.generate()
    envelope = seal(PayloadType.TIMING_RECEIPT, PAYLOAD, forger)
    envelope.key_id = honest.verifying_key.key_id
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.TIMING_RECEIPT, honest.verifying_key)
    assert err.value.reason is Reason.BAD_SIGNATURE


def test_unknown_payload_type_has_its_own_reason():
    signer = KeySigner.generate()
    envelope = seal(PayloadType.TIMING_RECEIPT, PAYLOAD, signer)
    envelope.payload_type = "application/vnd.other+json"
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.TIMING_RECEIPT, signer.verifying_key)
    assert err.value.reason is Reason.UNKNOWN_PAYLOAD_TYPE


@pytest.mark.parametrize("field", ["payload_type", "key_id", "signature"])
def test_envelope_missing_a_field_is_malformed(field):
    signer = KeySigner.generate()
    envelope = seal(PayloadType.TIMING_RECEIPT, PAYLOAD, signer)
    envelope.ClearField(field)
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.TIMING_RECEIPT, signer.verifying_key)
    assert err.value.reason is Reason.BAD_ENVELOPE


@given(position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_flipped_signature_byte_fails(position, flip):
    signer = KEY
    envelope = seal(PayloadType.LOCATION_PROOF, PAYLOAD, signer)
    signature = bytearray(envelope.signature)
    signature[position % len(signature)] ^= flip
    envelope.signature = bytes(signature)
    with pytest.raises(EvidenceError) as err:
        open_envelope(envelope, PayloadType.LOCATION_PROOF, signer.verifying_key)
    assert err.value.reason is Reason.BAD_SIGNATURE


KEY = KeySigner.generate(Algorithm.EDDSA)


def test_envelope_carries_the_exact_signed_bytes():
    signer = KeySigner.generate()
    odd = b"\x0a\x00\x0a\x00"  # not what protobuf would re-serialise to
    envelope = envelope_pb2.Envelope.FromString(
        seal(PayloadType.LOCATION_PROOF, odd, signer).SerializeToString()
    )
    assert open_envelope(envelope, PayloadType.LOCATION_PROOF, signer.verifying_key) == odd
