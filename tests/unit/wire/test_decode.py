"""Untrusted bytes decode into a message or a typed WireError, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.errors import Reason, WireError
from geoattest.v1 import envelope_pb2, evidence_pb2, identity_pb2, round_pb2, verifier_service_pb2
from geoattest.wire.decode import count_field, decode

MESSAGES = [
    envelope_pb2.Envelope,
    round_pb2.Datagram,
    round_pb2.TimingReceipt,
    round_pb2.RoundTranscript,
    evidence_pb2.LocationProof,
    identity_pb2.DeviceIdentity,
    verifier_service_pb2.EnrollRequest,
    verifier_service_pb2.SubmitProofBatchRequest,
]


@pytest.mark.parametrize("message_type", MESSAGES, ids=lambda m: m.__name__)
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_decode_or_fail_typed(message_type, data):
    """Decoding is total (a message or MALFORMED_MESSAGE) and what it decodes survives a
    round trip: unknown fields kept, nothing read twice differently."""
    try:
        message = decode(message_type, data, limit=4096)
    except WireError as err:
        assert err.reason is Reason.MALFORMED_MESSAGE
    else:
        assert isinstance(message, message_type)
        again = decode(message_type, message.SerializeToString(), limit=8192)
        assert again == message
        assert again.SerializeToString() == message.SerializeToString()


@pytest.mark.parametrize("message_type", MESSAGES, ids=lambda m: m.__name__)
def test_oversized_input_is_refused_before_parsing(message_type):
    with pytest.raises(WireError) as err:
        decode(message_type, b"\x00" * 4097, limit=4096)
    assert err.value.reason is Reason.OVERSIZED_MESSAGE


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400))
def test_truncated_receipt_datagrams_fail_typed_or_decode_shorter(cut):
    datagram = round_pb2.Datagram(
        challenge=round_pb2.Challenge(round_id=b"r" * 16, index=7, challenge=b"c" * 16)
    ).SerializeToString()
    try:
        decoded = decode(round_pb2.Datagram, datagram[:cut], limit=2048)
    except WireError as err:
        assert err.reason is Reason.MALFORMED_MESSAGE
    else:
        assert decoded.ByteSize() <= len(datagram)


def test_invalid_utf8_in_a_string_field_is_malformed():
    # field 1 (device_id), wire type 2, length 2, bytes that are not UTF-8
    with pytest.raises(WireError) as err:
        decode(round_pb2.Open, b"\x0a\x02\xff\xfe", limit=2048)
    assert err.value.reason is Reason.MALFORMED_MESSAGE


@given(
    proofs=st.lists(
        st.builds(
            envelope_pb2.Envelope,
            payload_type=st.text(max_size=20),
            payload=st.binary(max_size=300),
            key_id=st.text(max_size=20),
            signature=st.binary(max_size=80),
        ),
        max_size=40,
    )
)
def test_count_field_counts_a_batch_s_entries_without_parsing_them(proofs):
    batch = verifier_service_pb2.SubmitProofBatchRequest(
        proofs=[verifier_service_pb2.SubmitProofRequest(proof=p) for p in proofs]
    )
    data = batch.SerializeToString()
    assert count_field(data, 1, limit=len(data)) == len(proofs)


@given(data=st.binary(max_size=200))
def test_count_field_on_junk_counts_or_refuses_as_malformed(data):
    try:
        count = count_field(data, 1, limit=1000)
    except WireError as refused:
        assert refused.reason is Reason.MALFORMED_MESSAGE
    else:
        assert 0 <= count <= len(data)


def test_count_field_refuses_oversized_input_unread():
    with pytest.raises(WireError) as refused:
        count_field(b"\x0a\x00" * 10, 1, limit=19)
    assert refused.value.reason is Reason.OVERSIZED_MESSAGE


def _varint(value: int, padding: int = 0) -> bytes:
    """``value`` as a varint, with ``padding`` redundant continuation bytes (overlong)."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value or padding:
            out.append(low | 0x80)
            if not value:
                out.extend(b"\x80" * (padding - 1))
                out.append(0)
                return bytes(out)
        else:
            out.append(low)
            return bytes(out)


@st.composite
def wire_field(draw: st.DrawFn) -> bytes:
    """One field: mostly well framed (a batch entry, or an unknown field of any wire type,
    tags and lengths sometimes overlong), now and then framed wrongly (a tag past 32
    bits, a length that does not fit, a group or an unused wire type)."""
    number = draw(st.sampled_from([1, 1, 1, 2, 7, 2**29 - 1]))
    junk = draw(st.integers(0, 29)) == 0
    wire_type = draw(st.sampled_from([2, 3, 4, 6, 7] if junk else [2, 2, 2, 0, 1, 5]))
    high = draw(st.sampled_from([1 << 32, 1 << 35, 1 << 61])) if junk else 0
    tag = _varint(((number << 3) | wire_type) + high, draw(st.sampled_from([0, 0, 1, 4])))
    if wire_type == 0:
        return tag + _varint(draw(st.integers(0, 2**64 - 1)), draw(st.sampled_from([0, 0, 2])))
    if wire_type in (1, 5):
        size = (8 if wire_type == 1 else 4) + (draw(st.integers(-2, 2)) if junk else 0)
        return tag + draw(st.binary(min_size=max(0, size), max_size=max(0, size)))
    if wire_type == 2:
        entry = verifier_service_pb2.SubmitProofRequest(
            proof=envelope_pb2.Envelope(payload_type="t", payload=b"p", key_id="k", signature=b"s")
        ).SerializeToString()
        body = draw(st.one_of(st.just(entry), st.just(b""), st.binary(max_size=12)))
        length = len(body) + (draw(st.sampled_from([-1, 1, 2**32])) if junk else 0)
        return tag + _varint(max(0, length), draw(st.sampled_from([0, 0, 1, 4]))) + body
    return tag


@settings(max_examples=500, deadline=None)
@given(st.lists(wire_field(), max_size=12))
def test_count_field_never_counts_fewer_entries_than_the_decoder_accepts(fields):
    """The batch limit is checked on ``count_field``'s count before the batch is decoded:
    whatever framing the decoder accepts (overlong tags and lengths, tags past 32 bits,
    unknown fields of every wire type), the count is never below the entries it builds;
    and the decoded batch survives a round trip unchanged."""
    data = b"".join(fields)
    try:
        batch = decode(verifier_service_pb2.SubmitProofBatchRequest, data, limit=len(data))
    except WireError as refused:
        assert refused.reason is Reason.MALFORMED_MESSAGE
        return
    again = verifier_service_pb2.SubmitProofBatchRequest.FromString(batch.SerializeToString())
    assert again == batch
    try:
        count = count_field(data, 1, limit=len(data))
    except WireError as refused:
        assert refused.reason is Reason.MALFORMED_MESSAGE  # fails closed: the batch is refused
    else:
        assert count >= len(batch.proofs)
