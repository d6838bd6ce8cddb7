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
    try:
        message = decode(message_type, data, limit=4096)
    except WireError as err:
        assert err.reason is Reason.MALFORMED_MESSAGE
    else:
        assert isinstance(message, message_type)


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
