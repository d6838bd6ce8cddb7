"""Garbage and oversized bytes to every gRPC method leave the verifier healthy, answering
and with its database unchanged."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_world import NOW_NS, ServerThread, VerifierWorld

from geoattest.errors import Reason
from geoattest.pki import ManufacturerCA
from geoattest.pki.anchors import MAX_INTERMEDIATES
from geoattest.v1 import admin_service_pb2, identity_pb2, verifier_service_pb2
from geoattest.verifier.grpc_server import STATUS
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import REASON_METADATA
from geoattest.wire.decode import INT64_MAX, MAX_MESSAGE_BYTES

SERVICE = "/geoattest.v1.VerifierService/"
UNARY = [
    "Enroll",
    "SubmitProof",
    "SubmitProofBatch",
    "GetDeviceStatus",
    "GetResultKeys",
    "GetRejections",
]
EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    world = VerifierWorld.create(tmp_path_factory.mktemp("fuzz"))
    store = SqlStore.open(world.db_path)
    service, chip = world.enrolled(store)
    service.submit(world.proof(chip), NOW_NS)
    server = ServerThread(service, clock=lambda: NOW_NS)
    server.start()
    channel = grpc.insecure_channel(
        server.address, options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)]
    )
    yield channel, store
    channel.close()
    server.stop()
    store.close()


def call_raw(
    channel: grpc.Channel, method: str, data: bytes, *, stream_s: float = 0.2
) -> grpc.StatusCode:
    """The call's status; an alert stream that opens is cut after ``stream_s``."""
    try:
        if method == "WatchAlerts":
            stream = channel.unary_stream(SERVICE + method)(data, timeout=stream_s)
            for _ in stream:
                pass
        else:
            channel.unary_unary(SERVICE + method)(data, timeout=10)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def assert_healthy(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert call_raw(channel, "GetResultKeys", b"") is grpc.StatusCode.OK


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(UNARY), data=st.binary(max_size=4096))
def test_garbage_to_every_unary_method_is_a_typed_answer(verifier, method, data):
    channel, store = verifier
    before = store.dump()
    assert call_raw(channel, method, data) in EXPECTED
    assert store.dump() == before


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=512))
def test_garbage_to_the_alert_stream(verifier, data):
    channel, _store = verifier
    code = call_raw(channel, "WatchAlerts", data)
    assert code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert_healthy(channel)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    after=st.one_of(
        st.sampled_from([0, 1, 2, INT64_MAX, INT64_MAX + 1, 2**64 - 1]),
        st.integers(0, 2**64 - 1),
    ),
    device_id=st.sampled_from(["", "dev-1", "x" * 300]),
)
def test_any_alert_cursor_opens_the_stream_or_is_refused_as_malformed(verifier, after, device_id):
    """A cursor up to the newest alert's opens the stream; any past it is refused (a
    stream waiting past it would skip the alerts stored below it)."""
    channel, store = verifier
    request = verifier_service_pb2.WatchAlertsRequest(device_id=device_id, after=after)
    code = call_raw(channel, "WatchAlerts", request.SerializeToString())
    if after <= store.last_alert_cursor():
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED  # open until the test cut it
    else:
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert_healthy(channel)


@pytest.mark.parametrize("method", [*UNARY, "WatchAlerts"])
def test_oversized_message_is_refused_and_the_verifier_stays_healthy(verifier, method):
    channel, store = verifier
    before = store.dump()
    # The stream's deadline too must outlast sending 8 MiB on a busy machine.
    oversized = b"\x0a" * (MAX_MESSAGE_BYTES + 1)
    assert call_raw(channel, method, oversized, stream_s=10) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_healthy(channel)
    assert store.dump() == before


def test_an_enrolment_offering_thousands_of_intermediates_is_refused_at_once(verifier):
    """Nearly 8 MiB of one real CA certificate repeated as intermediates: each was once
    tried as a path step, about a millisecond apiece while the enrolment held the
    service's lock (some fifteen seconds a call). Refused unread, typed, nothing stored."""
    channel, store = verifier
    before = store.dump()
    root = ManufacturerCA.create("Flood", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    certificate = root.certificate.public_bytes(serialization.Encoding.DER)
    copies = (MAX_MESSAGE_BYTES - 4096) // (len(certificate) + 3)
    request = verifier_service_pb2.EnrollRequest(
        identity=identity_pb2.DeviceIdentity(
            device_id="dev-flood",
            certificate_der=certificate,
            intermediates_der=[certificate] * copies,
        )
    )
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(SERVICE + "Enroll")(request.SerializeToString(), timeout=60)
    reasons = [v for k, v in refused.value.trailing_metadata() or () if k == REASON_METADATA]
    assert reasons == [Reason.BAD_CHAIN.value]
    assert refused.value.code() is STATUS[Reason.BAD_CHAIN]
    assert f"{copies} intermediates offered, at most {MAX_INTERMEDIATES}" in refused.value.details()
    assert store.dump() == before


@pytest.fixture(scope="module")
def admin_channel(tmp_path_factory):
    """A verifier serving the admin API too, over plaintext on loopback."""
    world = VerifierWorld.create(tmp_path_factory.mktemp("admin-fuzz"))
    store = SqlStore.open(world.db_path)
    service = world.service(store)
    server = ServerThread(service, clock=lambda: NOW_NS, admin=world.admin(service, store))
    server.start()
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()
    server.stop()
    store.close()


ADMIN_REQUESTS = {
    "SetLicence": lambda text: admin_service_pb2.SetLicenceRequest(
        device_id=text, region=text, valid_until_s=2**40, licence_id=text
    ),
    "RevokeDevice": lambda text: admin_service_pb2.DeviceRequest(device_id=text, why=text),
    "WithdrawLicence": lambda text: admin_service_pb2.DeviceRequest(device_id=text, why=text),
    "ExcludeLandmark": lambda text: admin_service_pb2.LandmarkRequest(landmark_id=text, why=text),
    "RegisterLandmark": lambda text: admin_service_pb2.RegisterLandmarkRequest(
        landmark_id=text, operator=text, name=text
    ),
}


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(sorted(ADMIN_REQUESTS)),
    text=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001f600"]), st.integers(0, 60_000)
        ),
    ),
)
def test_any_admin_input_is_refused_with_its_status_and_reason(admin_channel, method, text):
    """However long the input a refusal quotes, it arrives as its mapped status with the
    reason in metadata (never as RESOURCE_EXHAUSTED from oversized status details)."""
    request = ADMIN_REQUESTS[method](text).SerializeToString()
    try:
        admin_channel.unary_unary(f"/geoattest.v1.AdminService/{method}")(request, timeout=10)
    except grpc.RpcError as refused:
        reasons = [v for k, v in refused.trailing_metadata() or () if k == REASON_METADATA]
        assert len(reasons) == 1, (refused.code(), refused.details())
        assert refused.code() is STATUS[Reason(reasons[0])]
        assert refused.details().startswith(f"{reasons[0]}: ")
