"""The client reads a refusal back into a reason it knows, whatever the server sent."""

from __future__ import annotations

import contextlib
import operator
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoattest.errors import GeoattestError, Reason
from geoattest.v1 import envelope_pb2, evidence_pb2, verifier_service_pb2
from geoattest.wire.client import (
    REASON_METADATA,
    VerifierClient,
    VerifierRefused,
    batch_request_bytes,
    refusal_reason,
)

SERVICE = verifier_service_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name


def test_a_known_reason_is_that_reason():
    assert refusal_reason(grpc.StatusCode.PERMISSION_DENIED, "proof.fork") is Reason.FORK


def test_a_reason_this_client_does_not_know_is_unknown_not_a_crash():
    code = grpc.StatusCode.FAILED_PRECONDITION
    assert refusal_reason(code, "proof.from_a_newer_verifier") is Reason.UNKNOWN_REASON
    assert refusal_reason(code, "") is Reason.UNKNOWN_REASON


def test_no_reason_is_unreachable_when_grpc_says_no_verifier_answered():
    assert refusal_reason(grpc.StatusCode.UNAVAILABLE, None) is Reason.UNREACHABLE
    assert refusal_reason(grpc.StatusCode.DEADLINE_EXCEEDED, None) is Reason.UNREACHABLE
    assert refusal_reason(grpc.StatusCode.INTERNAL, None) is Reason.UNKNOWN_REASON


def test_a_refusal_is_a_geoattest_error_with_its_code_and_detail():
    refused = VerifierRefused(grpc.StatusCode.ABORTED, Reason.STORE_CONFLICT, "store.conflict: x")
    assert isinstance(refused, GeoattestError)
    assert (refused.code, refused.reason, refused.detail) == (
        grpc.StatusCode.ABORTED,
        Reason.STORE_CONFLICT,
        "store.conflict: x",
    )
    assert str(refused) == "ABORTED: store.conflict: x"


Handler = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]


@contextlib.asynccontextmanager
async def serving(method: str, handler: Handler) -> AsyncIterator[str]:
    """A server on 127.0.0.1 answering one VerifierService method with ``handler``."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {method: grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.fixture
async def refusing() -> AsyncIterator[str]:
    """A server whose GetResultKeys refuses with a reason no geoattest version defines."""

    async def refuse(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            "tomorrow.reason: from a newer verifier",
            ((REASON_METADATA, "tomorrow.reason"),),
        )
        raise AssertionError("abort returned")

    async with serving("GetResultKeys", refuse) as target:
        yield target


async def test_a_newer_verifiers_reason_reaches_the_caller_as_unknown(refusing):
    async with VerifierClient(refusing, timeout_s=20) as client:
        with pytest.raises(VerifierRefused) as refused:
            await client.result_keys()
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.reason is Reason.UNKNOWN_REASON
    assert refused.value.detail == "tomorrow.reason: from a newer verifier"


async def test_no_verifier_at_the_address_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{probe.getsockname()[1]}"
    async with VerifierClient(target, timeout_s=2) as client:
        with pytest.raises(VerifierRefused) as refused:
            await client.result_keys()
    assert refused.value.code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert refused.value.reason is Reason.UNREACHABLE


envelopes = st.builds(
    envelope_pb2.Envelope,
    payload_type=st.text(max_size=40),
    # Past 127 and 16,383 bytes the lengths take two and three varint bytes.
    payload=st.builds(operator.mul, st.binary(max_size=8), st.integers(0, 3_000)),
    key_id=st.text(max_size=70),
    signature=st.binary(max_size=80),
)


@given(st.lists(envelopes, max_size=6))
def test_a_batch_framed_around_serialised_envelopes_is_the_request_protobuf_builds(proofs):
    built = verifier_service_pb2.SubmitProofBatchRequest(
        proofs=[verifier_service_pb2.SubmitProofRequest(proof=p) for p in proofs]
    ).SerializeToString()
    assert batch_request_bytes([p.SerializeToString() for p in proofs]) == built


@pytest.fixture
async def recording() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that keeps each SubmitProofBatch request's bytes as they arrive and
    answers with one ALLOWED result per entry."""
    received: list[bytes] = []

    async def record(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        received.append(request)
        entries = verifier_service_pb2.SubmitProofBatchRequest.FromString(request).proofs
        return verifier_service_pb2.SubmitProofBatchResponse(
            results=[
                evidence_pb2.AttestationResult(verdict=evidence_pb2.VERDICT_ALLOWED)
                for _ in entries
            ]
        ).SerializeToString()

    async with serving("SubmitProofBatch", record) as target:
        yield target, received


async def test_a_batch_sent_as_bytes_reaches_the_server_byte_for_byte_as_from_envelopes(
    recording,
):
    target, received = recording
    proofs = [
        envelope_pb2.Envelope(
            payload_type="application/vnd.geoattest.location-proof+protobuf",
            payload=bytes(range(256)) * size,
            key_id=f"{i:064x}",
            signature=b"\x30" * 71,
        )
        for i, size in enumerate((0, 1, 70))
    ]
    async with VerifierClient(target, timeout_s=20) as client:
        from_envelopes = await client.submit_batch(proofs)
        from_bytes = await client.submit_batch_encoded([p.SerializeToString() for p in proofs])
    assert len(received) == 2
    assert received[0] == received[1]
    assert from_bytes == from_envelopes
    assert [r.verdict for r in from_bytes] == [evidence_pb2.VERDICT_ALLOWED] * 3
