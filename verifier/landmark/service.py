"""The landmark's management service over gRPC: who it is, and its counters.

Served by a small synchronous gRPC server beside the UDP thread. Its worker threads sleep
in gRPC's core without the interpreter lock until a call arrives, so an idle management
port costs the timed path nothing; a call takes the lock for microseconds.

Example::

    info = start_info_service(landmark, "127.0.0.1", 0)
    ...
    info.server.stop(grace=1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from geoattest.address import require_loopback
from geoattest.errors import ConfigError, WireError
from geoattest.pki.tls import TlsIdentity
from geoattest.v1 import identity_pb2, landmark_service_pb2
from geoattest.verifier.grpc_server import STATUS, check_bindable
from geoattest.verifier.landmark.server import LandmarkServer
from geoattest.wire.client import REASON_METADATA
from geoattest.wire.decode import decode

SERVICE_NAME = landmark_service_pb2.DESCRIPTOR.services_by_name["LandmarkService"].full_name
MAX_REQUEST_BYTES = 1024
"""Both requests are empty messages: anything much larger is not one of them."""


class LandmarkServicer:
    """GetInfo and GetCounters over raw bytes, so that a request that is not one is
    refused with ``wire.malformed_message`` (INVALID_ARGUMENT), as the verifier refuses
    it, not answered INTERNAL with a line in the error log for each."""

    def __init__(self, landmark: LandmarkServer) -> None:
        self._landmark = landmark

    def GetInfo(self, data: bytes, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        _decode_request(context, landmark_service_pb2.GetInfoRequest, data)
        identity = self._landmark.identity
        return identity_pb2.LandmarkInfo(
            landmark_id=identity.landmark_id,
            latitude=identity.latitude,
            longitude=identity.longitude,
            public_key_der=self._landmark.signer.verifying_key.der(),
        ).SerializeToString()

    def GetCounters(self, data: bytes, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        _decode_request(context, landmark_service_pb2.GetCountersRequest, data)
        counters = self._landmark.counters()
        return landmark_service_pb2.LandmarkCounters(
            rounds_opened=counters.rounds_opened,
            receipts_signed=counters.receipts_signed,
            rounds_failed=counters.rounds_failed,
            datagrams_malformed=counters.datagrams_malformed,
            datagrams_rate_limited=counters.datagrams_rate_limited,
            datagrams_rejected=counters.datagrams_rejected,
            opens_retried=counters.opens_retried,
        ).SerializeToString()

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The service's methods, each taking and answering raw bytes."""

        def unary(
            fn: Callable[[bytes, grpc.ServicerContext], bytes],
        ) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(fn)

        return grpc.method_handlers_generic_handler(
            SERVICE_NAME, {"GetInfo": unary(self.GetInfo), "GetCounters": unary(self.GetCounters)}
        )


def _decode_request(context: grpc.ServicerContext, message_type: type[Message], data: bytes) -> Any:
    try:
        return decode(message_type, data, limit=MAX_REQUEST_BYTES)
    except WireError as refused:
        _abort(context, refused)


def _abort(context: grpc.ServicerContext, refused: WireError) -> NoReturn:
    """End the call with the reason's status code, the reason in details and metadata."""
    context.set_trailing_metadata(((REASON_METADATA, refused.reason.value),))
    context.abort(STATUS[refused.reason], f"{refused.reason.value}: {refused.detail}")
    raise AssertionError("abort returned")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class InfoService:
    server: grpc.Server
    port: int


def start_info_service(
    landmark: LandmarkServer, host: str, port: int, tls: TlsIdentity | None = None
) -> InfoService:
    """Serve GetInfo and GetCounters on ``host:port`` (0: any free port): over mutual TLS
    with ``tls`` (a server certificate; callers need a certificate of its operator CA),
    else in plaintext on a loopback address only.

    Raises:
        PlaintextNotLoopbackError: plaintext on an address that is not loopback.
        ConfigError: the port could not be bound.
    """
    address = f"{host}:{port}"
    if tls is None:
        require_loopback(address, "--grpc-port")
    try:
        check_bindable(address)  # a clear error before gRPC logs its own
    except ConfigError as exc:
        raise ConfigError(f"gRPC: {exc.detail}") from exc
    server = grpc.server(
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="landmark-grpc"),
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers((LandmarkServicer(landmark).handler(),))
    try:
        bound = (
            server.add_secure_port(
                address,
                grpc.ssl_server_credentials(
                    [(tls.key_pem, tls.cert_pem)],
                    root_certificates=tls.ca_pem,
                    require_client_auth=True,
                ),
            )
            if tls is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError:
        bound = 0
    if bound == 0:
        server.stop(None)
        raise ConfigError(f"gRPC: cannot listen on {address}")
    server.start()
    return InfoService(server, bound)
