"""The verifier's gRPC transport: thin ``grpc.aio`` handlers over :mod:`geoattest.verifier.service`.

Handlers receive raw request bytes and decode them here, so malformed input is a typed
``INVALID_ARGUMENT`` with a reason code rather than a framework error. Service calls run
on one worker thread (the pipeline is CPU-bound and SQLite has one writer), and a call
is answered only after the service returns, i.e. after its proofs are durable. To use
more cores, ``verifier serve --workers N`` runs N processes, each with its own server on
one shared port (``start(reuse_port=True)``) over one database.

Status codes. Every refusal carries its :class:`~geoattest.errors.Reason` in the status
details (``"<reason>: <detail>"``) and in the trailing metadata ``geoattest-reason``. The
status code is the reason's in :data:`STATUS`, the one place a reason becomes a status
(a test checks that every reason has one, and that this table says the same):

=====================  ===========================================================
INVALID_ARGUMENT       the request is not well formed: ``wire.malformed_message``,
                       ``wire.oversized_message`` (a batch of too many proofs too),
                       ``wire.missing_field``, ``wire.out_of_range``, ``envelope.malformed``,
                       ``envelope.unknown_payload_type``, ``envelope.wrong_payload_type``,
                       ``admin.invalid``
NOT_FOUND              ``device.unknown`` for GetDeviceStatus (:data:`LOOKUP_STATUS`),
                       ``admin.not_found``, ``audit.not_found``
ALREADY_EXISTS         ``device.already_enrolled``, ``admin.conflict``
FAILED_PRECONDITION    the evidence may be fine but cannot be accepted in this state:
                       ``device.unknown`` (enrol first), ``device.no_licence``,
                       ``device.licence_expired``, ``device.licence_withdrawn``,
                       ``proof.counter_not_increasing``,
                       ``proof.chain_broken``, ``receipt.stale``, ``receipt.future``,
                       ``receipt.replayed``, ``receipt.quorum_not_met``
PERMISSION_DENIED      the evidence does not authenticate or is not admissible, or the
                       caller may not ask (``access.*``): every other reason
                       (signatures, chain, revocation, fork, possession, role, ...)
ABORTED                ``store.conflict``: other writers kept advancing the chain;
                       nothing stored, retry
UNAVAILABLE            ``store.unavailable``: the store failed; nothing stored, retry
RESOURCE_EXHAUSTED     gRPC's answer to a message over its size limit (``alerts.overflow``
                       is no longer sent: a stream reads the alerts table at its own pace)
INTERNAL               ``transport.internal``: the verifier failed unexpectedly (a bug);
                       its log holds the traceback under the call's request id, the
                       caller sees only the reason and the request id
UNKNOWN                ``transport.unknown_reason``: the client's name for a refusal
                       with a reason it does not know; never sent
=====================  ===========================================================

``round.*``, ``transport.unreachable``, ``sealed.*`` (the agent's own state),
``config.invalid``, ``store.schema`` (a verifier refuses to start on it),
``study.unverified`` and ``http.*`` (the console's and the metrics endpoints' refusals) are never
raised by the service; they keep PERMISSION_DENIED, the code
every reason not listed above has always had.

SubmitPeerReceipts (a landmark's peer audit) refuses a call with any receipt that does not
check with that receipt's reason (``receipt.unknown_landmark``, ``receipt.bad_signature``,
``receipt.bad_transcript_signature``, ``receipt.transcript_mismatch``: PERMISSION_DENIED;
``receipt.stale``: FAILED_PRECONDITION) and stores nothing of it.

SubmitProof answers a REJECTED appraisal with its status code; OUTSIDE, INCONCLUSIVE
and INCONSISTENT are verdicts, answered OK with the signed result, and an exact
resubmission of an accepted proof is answered OK with the stored result. In
SubmitProofBatch each proof's verdict and reason are in its result; only a malformed or
oversized batch fails the call. A batch is counted on the wire before it is decoded: more
than ``max_batch`` proofs is ``wire.oversized_message`` before any proof is parsed, and no
request may exceed :data:`~geoattest.wire.decode.MAX_MESSAGE_BYTES` (gRPC refuses a larger
one with RESOURCE_EXHAUSTED before it reaches a handler).

A refusal before anything was authenticated (a malformed or oversized request, a proof
whose signature verifies under no enrolled device's key) is counted by reason and never
stored; GetRejections reports the counts.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, Final, NoReturn, TypeVar, cast

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from geoattest.address import require_loopback
from geoattest.errors import AccessError, ConfigError, GeoattestError, Reason, WireError
from geoattest.units import SECOND_NS
from geoattest.v1 import admin_service_pb2, evidence_pb2, verifier_service_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.access import (
    AccessInterceptor,
    ServerTls,
    check_own_device,
    current_caller,
    own_proof_key,
)
from geoattest.verifier.admin import Admin
from geoattest.verifier.alerts import AlertHub
from geoattest.verifier.logs import FIELDS
from geoattest.verifier.probe import PROBE_EVERY_S, PROBE_TIMEOUT_S, follow_the_store
from geoattest.verifier.service import ProofResult, VerifierService, check_signed_by
from geoattest.verifier.store import (
    StoreConflictError,
    StoreNotAnsweringError,
    StoreUnavailableError,
)
from geoattest.wire.client import REASON_METADATA
from geoattest.wire.decode import INT64_MAX, MAX_MESSAGE_BYTES, MAX_PROOF_BYTES, decode

log = logging.getLogger("geoattest.verifier")

SERVICE_NAME = verifier_service_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name
REQUEST_ID_METADATA = "x-request-id"
PLAINTEXT_CALLER = "loopback"
"""Who a caller is on a plaintext server, which serves loopback addresses only."""
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
refusal_cause: contextvars.ContextVar[str] = contextvars.ContextVar("refusal_cause", default="")
"""What the driver said when the store refused a call: for the call's log line only (the
client sees the reason, never the driver's words)."""

_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
_DENIED = grpc.StatusCode.PERMISSION_DENIED

STATUS: Final[Mapping[Reason, grpc.StatusCode]] = MappingProxyType(
    {
        Reason.MALFORMED_MESSAGE: _INVALID,
        Reason.OVERSIZED_MESSAGE: _INVALID,
        Reason.MISSING_FIELD: _INVALID,
        Reason.OUT_OF_RANGE: _INVALID,
        Reason.BAD_ENVELOPE: _INVALID,
        Reason.UNKNOWN_PAYLOAD_TYPE: _INVALID,
        Reason.WRONG_PAYLOAD_TYPE: _INVALID,
        Reason.UNKNOWN_KEY: _DENIED,
        Reason.BAD_SIGNATURE: _DENIED,
        Reason.UNKNOWN_DEVICE: _PRECONDITION,
        Reason.ALREADY_ENROLLED: grpc.StatusCode.ALREADY_EXISTS,
        Reason.BAD_CHAIN: _DENIED,
        Reason.REVOKED_DEVICE: _DENIED,
        Reason.DEVICE_MISMATCH: _DENIED,
        Reason.BAD_POSSESSION: _DENIED,
        Reason.NO_LICENCE: _PRECONDITION,
        Reason.LICENCE_EXPIRED: _PRECONDITION,
        Reason.LICENCE_WITHDRAWN: _PRECONDITION,
        Reason.COUNTER_NOT_INCREASING: _PRECONDITION,
        Reason.REPLAYED_PROOF: _DENIED,
        Reason.FORK: _DENIED,
        Reason.CHAIN_BROKEN: _PRECONDITION,
        Reason.BAD_MEASUREMENT: _DENIED,
        Reason.UNKNOWN_LANDMARK: _DENIED,
        Reason.REVOKED_LANDMARK: _DENIED,
        Reason.BAD_RECEIPT_SIGNATURE: _DENIED,
        Reason.RECEIPT_FOR_OTHER_DEVICE: _DENIED,
        Reason.BAD_TRANSCRIPT_SIGNATURE: _DENIED,
        Reason.TRANSCRIPT_MISMATCH: _DENIED,
        Reason.STALE_RECEIPT: _PRECONDITION,
        Reason.FUTURE_RECEIPT: _PRECONDITION,
        Reason.REPLAYED_RECEIPT: _PRECONDITION,
        Reason.DUPLICATE_LANDMARK: _DENIED,
        Reason.QUORUM_NOT_MET: _PRECONDITION,
        Reason.CHALLENGE_REUSED: _DENIED,
        Reason.ROUND_UNEXPECTED_MESSAGE: _DENIED,
        Reason.ROUND_UNKNOWN: _DENIED,
        Reason.ROUND_BAD_COMMIT: _DENIED,
        Reason.ROUND_BAD_RESPONSE: _DENIED,
        Reason.ROUND_UNKNOWN_CHALLENGE: _DENIED,
        Reason.ROUND_SECRET_REVEALED: _DENIED,
        Reason.ROUND_SECRET_REUSED: _DENIED,
        Reason.ROUND_TIMEOUT: _DENIED,
        Reason.ROUND_ABORTED: _DENIED,
        Reason.UNREACHABLE: _DENIED,
        Reason.UNKNOWN_REASON: grpc.StatusCode.UNKNOWN,
        Reason.INTERNAL: grpc.StatusCode.INTERNAL,
        Reason.WRONG_ROLE: _DENIED,
        Reason.NO_ROLE: _DENIED,
        Reason.OTHER_DEVICE: _DENIED,
        Reason.PLAINTEXT_NOT_LOOPBACK: _DENIED,
        Reason.ADMIN_INVALID: _INVALID,
        Reason.ADMIN_CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
        Reason.ADMIN_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Reason.AUDIT_TAMPERED: _DENIED,
        Reason.AUDIT_BAD_CHECKPOINT: _DENIED,
        Reason.AUDIT_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Reason.NO_SUCH_PAGE: _DENIED,
        Reason.WRONG_METHOD: _DENIED,
        Reason.STORE_CONFLICT: grpc.StatusCode.ABORTED,
        Reason.STORE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        Reason.STORE_SCHEMA: _DENIED,
        Reason.ALERTS_OVERFLOW: grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.SEALED_ROLLED_BACK: _DENIED,
        Reason.SEALED_EDITED: _DENIED,
        Reason.SEALED_MISSING: _DENIED,
        Reason.BAD_CONFIG: _DENIED,
        Reason.LANDMARK_KEY_REUSED: _DENIED,
        Reason.KEY_EXPOSED: _DENIED,
        Reason.STUDY_UNVERIFIED: _DENIED,
    }
)
"""The status code of a refusal, by its reason (the module table)."""
LOOKUP_STATUS: Final[Mapping[Reason, grpc.StatusCode]] = MappingProxyType(
    {**STATUS, Reason.UNKNOWN_DEVICE: grpc.StatusCode.NOT_FOUND}
)
""":data:`STATUS` for a call that looks a device up (GetDeviceStatus): a device that is not
enrolled is not found there, where a proof from it fails a precondition (enrol first)."""


MAX_DETAIL_CHARS = 512
"""A refusal's detail is cut to this many characters: it may quote the caller's input, and
a status whose details (percent-encoded, up to 12 bytes a character) pass gRPC's 16 KiB
metadata limit reaches the caller as RESOURCE_EXHAUSTED, its code and reason lost."""


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any],
    reason: Reason,
    detail: str,
    statuses: Mapping[Reason, grpc.StatusCode] = STATUS,
) -> NoReturn:
    """End the call with ``reason``'s status code, the reason in details and metadata."""
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    await context.abort(
        statuses[reason], f"{reason.value}: {detail}", ((REASON_METADATA, reason.value),)
    )
    raise AssertionError("abort returned")  # pragma: no cover


async def _admit(context: grpc.aio.ServicerContext[Any, Any], check: Callable[[], None]) -> None:
    """Run an access check for this call's caller; a refusal ends the call."""
    try:
        check()
    except AccessError as refused:
        await _abort(context, refused.reason, refused.detail)


async def _refuse_access(context: grpc.aio.ServicerContext[Any, Any], refused: AccessError) -> None:
    await _abort(context, refused.reason, refused.detail)


_VERDICT_PB: dict[Verdict | None, evidence_pb2.Verdict.ValueType] = {
    None: evidence_pb2.VERDICT_UNSPECIFIED,
    **{verdict: evidence_pb2.Verdict.Value(f"VERDICT_{verdict.value}") for verdict in Verdict},
}
"""Each verdict's wire value, looked up once: a batch's response names one per result."""


def _verdict_pb(verdict: Verdict | None) -> evidence_pb2.Verdict.ValueType:
    return _VERDICT_PB[verdict]


def fill_result(message: evidence_pb2.AttestationResult, result: ProofResult) -> None:
    """Write ``result`` into an empty message in place: a batch's results are added to its
    response and filled there, as a message built apart would be copied in whole (its
    token and bounds too), which cost as much again per result."""
    message.device_id = result.device_id
    message.counter = result.counter
    message.verdict = _verdict_pb(result.verdict)
    message.reason = result.reason.value if result.reason else ""
    message.detail = result.detail
    add_bound = message.bounds.add
    for b in result.bounds:
        add_bound(
            landmark_id=b.landmark_id,
            latitude=b.latitude,
            longitude=b.longitude,
            rtt_min_ns=b.rtt_min_ns,
            bound_km=b.bound_km,
        )
    message.result_token = result.token


def result_pb(result: ProofResult) -> evidence_pb2.AttestationResult:
    message = evidence_pb2.AttestationResult()
    fill_result(message, result)
    return message


def batch_response(results: Sequence[ProofResult]) -> bytes:
    """A ``SubmitProofBatchResponse`` of the results, in order, serialised."""
    response = verifier_service_pb2.SubmitProofBatchResponse()
    add_result = response.results.add
    for result in results:
        fill_result(add_result(), result)
    return response.SerializeToString()


SERVICE_THREADS = 2
"""Service threads per process: while one batch's transaction commits (waiting on the
database), the other appraises the next batch."""

M = TypeVar("M", bound=Message)
T = TypeVar("T")


class VerifierServicer:
    """The eight VerifierService methods; each decodes, calls the service, encodes."""

    def __init__(
        self,
        service: VerifierService,
        alerts: AlertHub,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._service = service
        self._alerts = alerts
        self._clock = clock
        self.store_answers = True
        """Whether the store answered the last health probe: while it does not, calls
        and new alert streams are answered UNAVAILABLE at once instead of waiting on it."""
        self._worker = ThreadPoolExecutor(
            max_workers=SERVICE_THREADS, thread_name_prefix="verifier"
        )

    def _exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        with self._service.exclusive():
            return fn(*args)

    async def call(self, fn: Callable[..., T], *args: Any, submission: bool = False) -> T:
        """Run a service call on a service thread: a ``submission`` (proofs) takes the
        service's lock itself and lets go of it while it commits; any other call holds
        it throughout."""
        loop = asyncio.get_running_loop()
        if submission:
            return await loop.run_in_executor(self._worker, fn, *args)
        return await loop.run_in_executor(self._worker, self._exclusive, fn, *args)

    async def run_call(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        call: Callable[[], T],
        statuses: Mapping[Reason, grpc.StatusCode] = STATUS,
        *,
        submission: bool = False,
    ) -> T:
        """Run a service call (:meth:`call`); a failure ends the call with its reason's
        status code (for the admin calls too). While the store does not answer its probe
        the call is refused at once, UNAVAILABLE, nothing stored."""
        try:
            if not self.store_answers:
                raise StoreNotAnsweringError()
            return await self.call(call, submission=submission)
        except GeoattestError as exc:
            if isinstance(exc, StoreUnavailableError):
                self._service.metrics.store_errors.labels(reason=exc.reason.value).inc()
                refusal_cause.set(str(exc.__cause__ or exc.detail))
            await _abort(context, exc.reason, exc.detail, statuses)

    async def _refuse(
        self, context: grpc.aio.ServicerContext[Any, Any], refusal: GeoattestError
    ) -> NoReturn:
        """End a call whose request was refused before anything in it was authenticated:
        the refusal is counted by reason, never stored."""
        self._service.rejections.count(refusal.reason, self._clock())
        await _abort(context, refusal.reason, refusal.detail)

    async def decode_request(
        self, context: grpc.aio.ServicerContext[Any, Any], message_type: type[M], data: bytes
    ) -> M:
        """Decode a request's bytes; undecodable bytes end the call as a counted refusal.
        Shared with :class:`AdminServicer`, whose calls end the same way."""
        try:
            return decode(message_type, data, limit=MAX_MESSAGE_BYTES)
        except GeoattestError as exc:
            await self._refuse(context, exc)

    async def Enroll(  # noqa: N802  (gRPC method names)
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        request = await self.decode_request(context, verifier_service_pb2.EnrollRequest, data)
        await _admit(context, lambda: check_own_device(request.identity.device_id))
        now = self._clock()
        enrolment = await self.run_call(
            context, lambda: self._service.enrol(request.identity, request.possession, now)
        )
        return verifier_service_pb2.EnrollResponse(
            device_id=enrolment.device_id, licensed_region=enrolment.licensed_region
        ).SerializeToString()

    async def SubmitProof(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        request = await self.decode_request(context, verifier_service_pb2.SubmitProofRequest, data)
        if request.proof.ByteSize() > MAX_PROOF_BYTES:
            await self._refuse(context, WireError(Reason.OVERSIZED_MESSAGE, "proof"))
        own_key = own_proof_key()
        if own_key is not None:
            await _admit(context, lambda: check_signed_by(own_key, [request.proof]))
        now = self._clock()
        result = await self.run_call(
            context, lambda: self._service.submit(request.proof, now), submission=True
        )
        if result.verdict is Verdict.REJECTED and result.reason is not None:
            await _abort(context, result.reason, result.detail)
        return result_pb(result).SerializeToString()

    async def SubmitProofBatch(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        now = self._clock()
        own_key = own_proof_key()
        results = await self.run_call(
            context,
            lambda: self._service.submit_batch_request(data, now, signer_key_id=own_key),
            submission=True,
        )
        return batch_response(results)

    async def GetDeviceStatus(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        request = await self.decode_request(context, verifier_service_pb2.DeviceStatusRequest, data)
        now = self._clock()
        status = await self.run_call(
            context, lambda: self._service.device_status(request.device_id, now), LOOKUP_STATUS
        )
        licence = status.licence
        return verifier_service_pb2.DeviceStatus(
            device_id=status.device_id,
            state=status.state.value,
            last_counter=status.last_counter,
            last_verdict=_verdict_pb(status.last_verdict),
            last_proof_time_ns=status.last_proof_time_ns,
            licensed_region=status.licensed_region,
            licence_id=licence.name if licence and licence.version else "",
            licence_version=licence.version if licence else 0,
            licence_state=verifier_service_pb2.LicenceState.Value(
                f"LICENCE_STATE_{status.licence_state.value}"
            ),
            licence_valid_until_ns=licence.valid_until_ns if licence and licence.version else 0,
            verdict_licence_version=status.verdict_licence_version,
            verdict_current=status.verdict_current,
            standing=verifier_service_pb2.VerdictStanding.Value(
                f"STANDING_{status.standing.value}"
            ),
        ).SerializeToString()

    async def WatchAlerts(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        request = await self.decode_request(context, verifier_service_pb2.WatchAlertsRequest, data)
        after = request.after if request.HasField("after") else None
        if after is not None and after > INT64_MAX:
            await self._refuse(
                context,
                WireError(Reason.MALFORMED_MESSAGE, f"after {after} is past any alert's cursor"),
            )
        try:
            if not self.store_answers:
                raise StoreNotAnsweringError()  # its replay would wait on the database
            async for alert in self._alerts.stream(request.device_id, after):
                yield verifier_service_pb2.Alert(
                    alert_id=alert.alert_id,
                    device_id=alert.device_id,
                    kind=alert.kind,
                    reason=alert.reason,
                    detail=alert.detail,
                    time_ns=alert.time_ns,
                    cursor=alert.cursor,
                ).SerializeToString()
        except GeoattestError as exc:
            await _abort(context, exc.reason, exc.detail)

    async def SubmitPeerReceipts(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        request = await self.decode_request(
            context, verifier_service_pb2.SubmitPeerReceiptsRequest, data
        )
        receipts = list(request.receipts)
        now = self._clock()
        outcome = await self.run_call(
            context, lambda: self._service.submit_peer_receipts(receipts, now)
        )
        return verifier_service_pb2.SubmitPeerReceiptsResponse(
            measured=outcome.measured, excluded=list(outcome.excluded)
        ).SerializeToString()

    async def GetResultKeys(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        await self.decode_request(context, verifier_service_pb2.GetResultKeysRequest, data)
        return verifier_service_pb2.ResultKeys(
            jwks_json=json.dumps(self._service.jwks())
        ).SerializeToString()

    async def GetRejections(  # noqa: N802
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        await self.decode_request(context, verifier_service_pb2.GetRejectionsRequest, data)
        counts = self._service.rejections.snapshot()
        return verifier_service_pb2.Rejections(
            by_reason={reason.value: count for reason, count in counts.items()}
        ).SerializeToString()

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """Handlers that take raw bytes, so decoding failures are ours to report."""

        def unary(fn: Callable[[bytes, Any], Awaitable[bytes]]) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(fn)

        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Enroll": unary(self.Enroll),
                "SubmitProof": unary(self.SubmitProof),
                "SubmitProofBatch": unary(self.SubmitProofBatch),
                "GetDeviceStatus": unary(self.GetDeviceStatus),
                "WatchAlerts": grpc.unary_stream_rpc_method_handler(self.WatchAlerts),
                "GetResultKeys": unary(self.GetResultKeys),
                "SubmitPeerReceipts": unary(self.SubmitPeerReceipts),
                "GetRejections": unary(self.GetRejections),
            },
        )

    def close(self) -> None:
        """Wait for the worker's last call to finish (its proofs are then durable)."""
        self._worker.shutdown(wait=True)


ADMIN_SERVICE_NAME = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class AdminServicer:
    """The AdminService methods (operator role, checked by the access table): each decodes,
    calls :class:`~geoattest.verifier.admin.Admin` on the worker thread, and answers with
    what changed."""

    def __init__(self, admin: Admin, servicer: VerifierServicer, clock: Callable[[], int]) -> None:
        self._admin = admin
        self._servicer = servicer
        self._clock = clock

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        admin = self._admin
        calls: dict[str, tuple[type[Message], Callable[[Any, str, int], str]]] = {
            "SetLicence": (
                admin_service_pb2.SetLicenceRequest,
                lambda r, who, now: admin.set_licence(
                    who,
                    device_id=r.device_id,
                    region=r.region,
                    valid_until_ns=r.valid_until_s * SECOND_NS,
                    name=r.licence_id,
                    now_ns=now,
                ),
            ),
            "WithdrawLicence": (
                admin_service_pb2.DeviceRequest,
                lambda r, who, now: admin.withdraw_licence(who, r.device_id, r.why, now),
            ),
            "RevokeDevice": (
                admin_service_pb2.DeviceRequest,
                lambda r, who, now: admin.revoke_device(who, r.device_id, r.why, now),
            ),
            "RestoreDevice": (
                admin_service_pb2.DeviceRequest,
                lambda r, who, now: admin.restore_device(who, r.device_id, r.why, now),
            ),
            "RegisterLandmark": (
                admin_service_pb2.RegisterLandmarkRequest,
                lambda r, who, now: admin.register_landmark(
                    who,
                    landmark_id=r.landmark_id,
                    operator=r.operator,
                    latitude=r.latitude,
                    longitude=r.longitude,
                    public_key_der=r.public_key_der,
                    name=r.name,
                    now_ns=now,
                ),
            ),
            "RevokeLandmark": (
                admin_service_pb2.LandmarkRequest,
                lambda r, who, now: admin.revoke_landmark(who, r.landmark_id, r.why, now),
            ),
            "ExcludeLandmark": (
                admin_service_pb2.LandmarkRequest,
                lambda r, who, now: admin.exclude_landmark(who, r.landmark_id, r.why, now),
            ),
            "LiftExclusion": (
                admin_service_pb2.LandmarkRequest,
                lambda r, who, now: admin.lift_exclusion(who, r.landmark_id, r.why, now),
            ),
        }

        def method(
            message_type: type[Message], act: Callable[[Any, str, int], str]
        ) -> grpc.RpcMethodHandler[Any, Any]:
            async def handle(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
                request = await self._servicer.decode_request(context, message_type, data)
                caller = current_caller.get()
                who = caller.name if caller is not None else PLAINTEXT_CALLER
                now = self._clock()
                summary = await self._servicer.run_call(context, lambda: act(request, who, now))
                return admin_service_pb2.AdminResponse(summary=summary).SerializeToString()

            return grpc.unary_unary_rpc_method_handler(handle)

        return grpc.method_handlers_generic_handler(
            ADMIN_SERVICE_NAME, {name: method(*call) for name, call in calls.items()}
        )


def _call_fields(
    method: str, rid: str, context: grpc.aio.ServicerContext[Any, Any], started: float
) -> dict[str, object]:
    """A call's log line: what was asked, by whom, how it ended and how long it took."""
    code = cast("grpc.StatusCode | None", context.code()) or grpc.StatusCode.OK
    caller = current_caller.get()
    fields: dict[str, object] = {
        "method": method.rpartition("/")[2],
        "caller": f"{caller.role}:{caller.name}" if caller else PLAINTEXT_CALLER,
        "peer": context.peer(),
        "request_id": rid,
        "outcome": code.name,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    if code is not grpc.StatusCode.OK:
        fields["reason"] = dict(context.trailing_metadata() or ()).get(REASON_METADATA, "")
        fields["detail"] = context.details() or ""
    if cause := refusal_cause.get():
        fields["cause"] = cause
    return fields


class RequestLogInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Gives every call a request id (from ``x-request-id`` or fresh) and logs one JSON
    line of its outcome (:mod:`geoattest.verifier.logs`): method, caller (``role:name``
    from its certificate; ``loopback`` on a plaintext server), peer address, outcome,
    reason, duration; never a traceback for a refusal. A call that fails unexpectedly (a
    bug), a stream too, is logged with its traceback and answered INTERNAL
    ``transport.internal`` with its request id, never with the exception's class or
    message."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        metadata = dict(handler_call_details.invocation_metadata or ())
        rid = str(metadata.get(REQUEST_ID_METADATA) or uuid.uuid4().hex[:16])
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is not None and handler.unary_stream is not None:
            return _guarded_stream(handler, rid)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Any = handler.unary_unary

        async def logged(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id.set(rid)
            refusal_cause.set("")
            started = time.perf_counter()
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception:
                await _answer_internal(context, rid)
            finally:
                log.info("rpc", extra={FIELDS: _call_fields(method, rid, context, started)})

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _answer_internal(context: grpc.aio.ServicerContext[Any, Any], rid: str) -> NoReturn:
    """End a call that failed unexpectedly (a bug, called while its exception is handled):
    the traceback goes to the log, the caller learns only the reason and the request id."""
    log.exception("rpc failed unexpectedly", extra={FIELDS: {"request_id": rid}})
    await _abort(context, Reason.INTERNAL, f"request id {rid}")


def _guarded_stream(
    handler: grpc.RpcMethodHandler[Any, Any], rid: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A streaming method whose unexpected failure ends the stream INTERNAL, as a unary
    call's does (:class:`RequestLogInterceptor`)."""
    inner: Any = handler.unary_stream

    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request_id.set(rid)
        try:
            async for item in inner(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _answer_internal(context, rid)

    return grpc.unary_stream_rpc_method_handler(
        guarded,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def check_bindable(address: str) -> None:
    """Bind ``address`` once with a plain socket, so that a port in use or an address of
    another host is a clear error before gRPC logs its own.

    Raises:
        ConfigError: naming the address.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except (OSError, ValueError, IndexError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot listen on {address}: {reason}") from exc


class VerifierServer:
    """A started gRPC server with health and reflection; ``stop`` drains it."""

    def __init__(
        self,
        service: VerifierService,
        *,
        clock: Callable[[], int] = time.time_ns,
        sweep_every_s: float = 60.0,
        probe_every_s: float = PROBE_EVERY_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        tls: ServerTls | None = None,
        admin: Admin | None = None,
    ) -> None:
        self.service = service
        self.tls = tls
        self.admin = admin
        self.health = health_aio.HealthServicer()
        self._clock = clock
        self._sweep_every_s = sweep_every_s
        self._probe_every_s = probe_every_s
        self._probe_timeout_s = probe_timeout_s
        self._server: grpc.aio.Server | None = None
        self._servicer: VerifierServicer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, address: str, *, reuse_port: bool = False) -> int:
        """Bind ``address`` (``host:port``; port 0 picks one) and serve; returns the port.

        ``reuse_port``: share the port with the other worker processes of one verifier
        (``SO_REUSEPORT``; the kernel spreads connections over them). The caller checked
        the address and holds the port.

        Without :attr:`tls` the server speaks plaintext and answers anyone, so it may only
        listen on a loopback address; with it, every caller presents a certificate and
        each method admits the roles :data:`~geoattest.verifier.access.ACCESS` names.

        Raises:
            PlaintextNotLoopbackError: plaintext on an address that is not loopback.
            ConfigError: the address cannot be bound (in use, not local, malformed).
        """
        if self.tls is None:
            require_loopback(address, "--listen")
        if not reuse_port:
            check_bindable(address)
        store = self.service.store
        self.alerts = AlertHub(asyncio.get_running_loop(), store, store.alert_listener())
        self.service.subscribe(self.alerts.publish)
        self._servicer = VerifierServicer(self.service, self.alerts, clock=self._clock)
        interceptors: list[grpc.aio.ServerInterceptor] = [RequestLogInterceptor()]  # type: ignore[type-arg]
        if self.tls is not None:
            names = self.tls.caller_names(self.service.device_revoked)
            interceptors.append(AccessInterceptor(names, _refuse_access))
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", int(reuse_port)),
            ],
        )
        server.add_generic_rpc_handlers((self._servicer.handler(),))
        if self.admin is not None:
            admin = AdminServicer(self.admin, self._servicer, self._clock)
            server.add_generic_rpc_handlers((admin.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, ADMIN_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            port = (
                server.add_secure_port(address, self.tls.credentials())
                if self.tls is not None
                else server.add_insecure_port(address)
            )
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise ConfigError(f"cannot listen on {address}")
        await server.start()
        self._server, self.port = server, port
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._sweeper = asyncio.create_task(self._sweep_stale())
        self._prober = asyncio.create_task(self._follow_the_store())
        return port

    async def _follow_the_store(self) -> None:
        """Health follows the store (:func:`~geoattest.verifier.probe.follow_the_store`):
        NOT_SERVING while it does not answer (calls and new alert streams meanwhile are
        answered UNAVAILABLE at once, storing nothing; those that were waiting on it are
        ended), SERVING again once it does, by itself. Each probe also follows what the
        store holds in force (a device revoked through another replica is refused at its
        calls here from then on)."""
        serving = True

        async def answered(why: str | None) -> None:
            nonlocal serving
            if self._servicer is not None:
                self._servicer.store_answers = why is None
            if (why is None) == serving:
                return
            serving = why is None
            if serving:
                log.warning("store reachable again: SERVING")
            else:
                log.warning("store %s: NOT_SERVING", why)
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", SERVICE_NAME):
                await self.health.set(name, status)

        await follow_the_store(
            self.service.probe,
            self.service.store.interrupt,
            answered,
            every_s=self._probe_every_s,
            timeout_s=self._probe_timeout_s,
        )

    async def _sweep_stale(self) -> None:
        """Mark devices that stopped proving STALE (alerting once each), periodically."""
        assert self._servicer is not None
        while True:
            await asyncio.sleep(self._sweep_every_s)
            try:
                await self._servicer.call(self.service.sweep_stale, self._clock())
            except (StoreUnavailableError, StoreConflictError) as exc:
                # a conflict: a commit on another replica locked a device the sweep marks
                self.service.metrics.store_errors.labels(reason=exc.reason.value).inc()
                log.error(
                    "stale sweep failed; retrying at the next interval",
                    extra={FIELDS: {"reason": exc.reason.value, "cause": str(exc.__cause__)}},
                )

    async def stop(self, grace: float) -> None:
        """Stop taking calls, let calls in flight finish (up to ``grace`` s), then close."""
        await self.health.enter_graceful_shutdown()
        for task in (self._sweeper, self._prober):
            if task is not None:
                task.cancel()
        self.alerts.close()
        if self._server is not None:
            await self._server.stop(grace)
        if self._servicer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._servicer.close)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
