"""The client reads a refusal back into a reason it knows, whatever the server sent."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from geoattest.errors import GeoattestError, Reason
from geoattest.v1 import verifier_service_pb2
from geoattest.wire.client import (
    REASON_METADATA,
    VerifierClient,
    VerifierRefused,
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

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"GetResultKeys": grpc.unary_unary_rpc_method_handler(refuse)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


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
