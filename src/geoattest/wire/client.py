"""An async client for the verifier's gRPC service.

It is the wire contract the agent, the CLI and the demo share with the verifier, so it
lives in the core: the agent depends on it and on nothing of the verifier.

Every call has a deadline. A refusal is raised as :class:`VerifierRefused`, a
:class:`~geoattest.errors.GeoattestError` whose reason is the one the server put in the
``geoattest-reason`` trailing metadata (``transport.unreachable`` when no verifier answered,
``transport.unknown_reason`` for a reason this client does not know).

A client speaks TLS when given channel credentials (:func:`tls_credentials` for a party
with a ``tls issue`` directory; a chip's come from its key store) and checks the verifier's
certificate against the operator CA; without, it speaks plaintext, to a loopback address
only.

Example::

    async with VerifierClient("127.0.0.1:50051") as client:
        request = enrolment_request(keystore, device_id, certificate_der, (), "verifier-1")
        await client.enroll(request)
        result = await client.submit(proof_envelope)
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import Message

from geoattest.address import require_loopback
from geoattest.crypto import PrivateKey, Signer, private_key_pem
from geoattest.errors import GeoattestError, Reason, WireError
from geoattest.pki.tls import TlsIdentity
from geoattest.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    envelope_pb2,
    evidence_pb2,
    identity_pb2,
    verifier_service_pb2,
    verifier_service_pb2_grpc,
)
from geoattest.wire.decode import INT64_MAX, MAX_MESSAGE_BYTES
from geoattest.wire.envelope import PayloadType, seal

REASON_METADATA = "geoattest-reason"
"""Trailing metadata key holding a refusal's reason code."""
_PROOF_FIELD_TAG = bytes([verifier_service_pb2.SubmitProofRequest.PROOF_FIELD_NUMBER << 3 | 2])
"""``SubmitProofRequest.proof``'s tag: field 1, length-delimited."""
_BATCH_FIELD_TAG = bytes(
    [verifier_service_pb2.SubmitProofBatchRequest.PROOFS_FIELD_NUMBER << 3 | 2]
)
"""``SubmitProofBatchRequest.proofs``'s tag: field 1, length-delimited."""
_SUBMIT_BATCH_METHOD = (
    f"/{verifier_service_pb2.DESCRIPTOR.services_by_name['VerifierService'].full_name}"
    "/SubmitProofBatch"
)


class VerifierRefused(GeoattestError):  # noqa: N818  (a refusal, not a malfunction)
    """The verifier refused a call, or none answered; ``code`` is the gRPC status and
    ``detail`` the status details (``"<reason>: <detail>"`` from a verifier)."""

    def __init__(self, code: grpc.StatusCode, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.detail}"


_NOT_ANSWERED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Codes that gRPC raises by itself, with no reason from a verifier, when none answered."""


def enrolment_request(
    signer: Signer,
    device_id: str,
    certificate_der: bytes,
    intermediates_der: Sequence[bytes],
    verifier_id: str,
) -> verifier_service_pb2.EnrollRequest:
    """An enrolment with a proof of possession naming ``verifier_id``."""
    claim = verifier_service_pb2.EnrolmentClaim(
        device_id=device_id, verifier_id=verifier_id, nonce=os.urandom(32)
    )
    return verifier_service_pb2.EnrollRequest(
        identity=identity_pb2.DeviceIdentity(
            device_id=device_id,
            certificate_der=certificate_der,
            intermediates_der=list(intermediates_der),
        ),
        possession=seal(PayloadType.ENROLMENT, claim.SerializeToString(), signer),
    )


def tls_credentials(identity: TlsIdentity) -> grpc.ChannelCredentials:
    """Channel credentials that present ``identity`` and check the server against its CA."""
    return grpc.ssl_channel_credentials(identity.ca_pem, identity.key_pem, identity.cert_pem)


def device_tls_credentials(
    key: PrivateKey, certificate: x509.Certificate, verifier_ca: x509.Certificate
) -> grpc.ChannelCredentials:
    """Channel credentials for a chip: its device certificate and key authenticate it, the
    operator's TLS CA ``verifier_ca`` authenticates the verifier."""
    pem = serialization.Encoding.PEM
    return grpc.ssl_channel_credentials(
        verifier_ca.public_bytes(pem), private_key_pem(key), certificate.public_bytes(pem)
    )


def refusal_reason(code: grpc.StatusCode, sent: str | None) -> Reason:
    """The reason of a refusal with status ``code`` and ``sent`` in its reason metadata
    (None: absent). A code the verifier sends but this client does not know (it is newer)
    is :attr:`~Reason.UNKNOWN_REASON`, never a crash."""
    if sent is None:
        return Reason.UNREACHABLE if code in _NOT_ANSWERED else Reason.UNKNOWN_REASON
    try:
        return Reason(sent)
    except ValueError:
        return Reason.UNKNOWN_REASON


def _refused(error: grpc.aio.AioRpcError) -> VerifierRefused:
    # grpc.aio yields (key, value) pairs here; the stubs describe the sync API's objects.
    pairs: Any = error.trailing_metadata() or ()
    sent = next((str(value) for key, value in pairs if key == REASON_METADATA), None)
    code = error.code()
    return VerifierRefused(code, refusal_reason(code, sent), error.details() or "")


def _length_delimited(tag: bytes, value: bytes) -> bytes:
    """One length-delimited protobuf field: its tag, the value's length as a varint, the
    value."""
    length = len(value)
    head = bytearray(tag)
    while length > 0x7F:
        head.append(length & 0x7F | 0x80)
        length >>= 7
    head.append(length)
    return bytes(head) + value


def batch_request_bytes(proofs: Sequence[bytes]) -> bytes:
    """A ``SubmitProofBatchRequest`` of proof envelopes already serialised: each entry
    framed around the envelope's own bytes, without decoding or copying it into a message
    first. For envelopes serialised by protobuf, the same bytes as building the request
    from the envelopes and serialising it."""
    return b"".join(
        _length_delimited(_BATCH_FIELD_TAG, _length_delimited(_PROOF_FIELD_TAG, proof))
        for proof in proofs
    )


class VerifierClient:
    """One channel, and one connection of its own, to a verifier; use as an async context
    manager. Clients do not share connections, so several spread over the worker processes
    of a ``verifier serve --workers N`` (the kernel assigns each connection to one)."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """Raises: PlaintextNotLoopbackError: no credentials for a target off this host."""
        self.target = target
        self.timeout_s = timeout_s
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        if credentials is None:
            require_loopback(target, "verifier")
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = verifier_service_pb2_grpc.VerifierServiceStub(self._channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._submit_batch_bytes = self._channel.unary_unary(
            _SUBMIT_BATCH_METHOD,
            request_serializer=None,
            response_deserializer=verifier_service_pb2.SubmitProofBatchResponse.FromString,
        )

    async def __aenter__(self) -> VerifierClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def _unary(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise _refused(error) from error

    async def enroll(
        self, request: verifier_service_pb2.EnrollRequest
    ) -> verifier_service_pb2.EnrollResponse:
        response: verifier_service_pb2.EnrollResponse = await self._unary(
            self._stub.Enroll, request
        )
        return response

    async def submit(self, proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult:
        result: evidence_pb2.AttestationResult = await self._unary(
            self._stub.SubmitProof, verifier_service_pb2.SubmitProofRequest(proof=proof)
        )
        return result

    async def submit_batch(
        self, proofs: Sequence[envelope_pb2.Envelope]
    ) -> list[evidence_pb2.AttestationResult]:
        request = verifier_service_pb2.SubmitProofBatchRequest(
            proofs=[verifier_service_pb2.SubmitProofRequest(proof=p) for p in proofs]
        )
        response: verifier_service_pb2.SubmitProofBatchResponse = await self._unary(
            self._stub.SubmitProofBatch, request
        )
        return list(response.results)

    async def submit_batch_encoded(
        self, proofs: Sequence[bytes]
    ) -> list[evidence_pb2.AttestationResult]:
        """:meth:`submit_batch` for proofs held as their envelopes' serialised bytes (as a
        forwarder relaying chips' proofs holds them): the request is framed around those
        bytes (:func:`batch_request_bytes`)."""
        response: verifier_service_pb2.SubmitProofBatchResponse = await self._unary(
            self._submit_batch_bytes, batch_request_bytes(proofs)
        )
        return list(response.results)

    async def rejections(self) -> dict[str, int]:
        """Refusals the verifier counted before any device's key vouched for them, by
        reason code."""
        counts: verifier_service_pb2.Rejections = await self._unary(
            self._stub.GetRejections, verifier_service_pb2.GetRejectionsRequest()
        )
        return dict(counts.by_reason)

    async def device_status(self, device_id: str) -> verifier_service_pb2.DeviceStatus:
        status: verifier_service_pb2.DeviceStatus = await self._unary(
            self._stub.GetDeviceStatus,
            verifier_service_pb2.DeviceStatusRequest(device_id=device_id),
        )
        return status

    async def submit_peer_receipts(
        self, receipts: Sequence[envelope_pb2.Envelope]
    ) -> verifier_service_pb2.SubmitPeerReceiptsResponse:
        """A landmark's peer audit: the receipts its peers signed for rounds it ran."""
        response: verifier_service_pb2.SubmitPeerReceiptsResponse = await self._unary(
            self._stub.SubmitPeerReceipts,
            verifier_service_pb2.SubmitPeerReceiptsRequest(receipts=list(receipts)),
        )
        return response

    async def admin(self, method: str, request: Message) -> str:
        """Call the admin API's ``method`` (operator role); returns what changed."""
        response: admin_service_pb2.AdminResponse = await self._unary(
            getattr(self._admin, method), request
        )
        return response.summary

    async def result_keys(self) -> dict[str, Any]:
        """The verifier's JWKS, as a relying party would fetch it."""
        keys: verifier_service_pb2.ResultKeys = await self._unary(
            self._stub.GetResultKeys, verifier_service_pb2.GetResultKeysRequest()
        )
        document: dict[str, Any] = json.loads(keys.jwks_json)
        return document

    async def watch_alerts(
        self, device_id: str = "", after: int | None = None
    ) -> AsyncIterator[verifier_service_pb2.Alert]:
        """Alerts as they are raised (no deadline: the stream is long-lived): every one
        stored after the cursor ``after`` first (an alert's ``cursor``; None: from now).

        Raises:
            WireError: ``wire.out_of_range``, ``after`` is no cursor (negative, or past
                64 bits), before anything is sent.
            VerifierRefused: the verifier refused the stream (a cursor past its newest
                alert among the reasons).
        """
        if after is not None and not 0 <= after <= INT64_MAX:
            raise WireError(Reason.OUT_OF_RANGE, f"after {after} is no alert's cursor")
        call = self._stub.WatchAlerts(
            verifier_service_pb2.WatchAlertsRequest(device_id=device_id, after=after)
        )
        try:
            async for alert in call:
                yield alert
        except grpc.aio.AioRpcError as error:
            raise _refused(error) from error
