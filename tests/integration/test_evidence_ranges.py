"""Every number a signed proof carries into the store is range-checked where the evidence
is decoded: any 64-bit unsigned value gets a typed outcome, and one the store cannot hold
is REJECTED ``wire.out_of_range`` with the chain's trusted state where it was. An
unexpected failure reaches a gRPC caller as INTERNAL ``transport.internal``, its
internals only in the verifier's log."""

from __future__ import annotations

import logging

import grpc
import pytest
from conftest import UNIX_NS, issue_receipt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_world import MEASUREMENT, NOW_NS, ServerThread, VerifierWorld

from geoattest.errors import Reason, WireError
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2, verifier_service_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.crosscheck import measure_peer
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import REASON_METADATA
from geoattest.wire.decode import INT64_MAX
from geoattest.wire.envelope import PayloadType, seal

U64 = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, INT64_MAX - 1, INT64_MAX, INT64_MAX + 1, 2**64 - 1]),
)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    world = VerifierWorld.create(tmp_path_factory.mktemp("ranges"))
    store = SqlStore.open(world.db_path)
    service, chip = world.enrolled(store)
    receipts = world.receipts(chip)
    yield world, store, service, chip, receipts
    store.close()


def resealed(
    world: VerifierWorld, receipt: envelope_pb2.Envelope, *, time_ns: int, rtt_ns: int
) -> envelope_pb2.Envelope:
    """``receipt`` with its landmark time and round trip set, signed by its landmark."""
    timing = round_pb2.TimingReceipt.FromString(receipt.payload)
    timing.landmark_time_ns, timing.rtt_min_ns = time_ns, rtt_ns
    signer = world.landmarks[timing.landmark_id]
    return seal(PayloadType.TIMING_RECEIPT, timing.SerializeToString(), signer)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(counter=U64, time_ns=U64, rtt_ns=U64, which=st.integers(0, 3))
def test_any_signed_64_bit_value_gets_a_typed_outcome(verifier, counter, time_ns, rtt_ns, which):
    world, store, service, chip, receipts = verifier
    receipts = list(receipts)
    receipts[which] = resealed(world, receipts[which], time_ns=time_ns, rtt_ns=rtt_ns)
    proof = evidence_pb2.LocationProof(
        device_id=chip.device_id,
        counter=counter,
        receipts=receipts,
        agent_measurement=MEASUREMENT,
        previous_proof_digest=chip.chain.head_digest,
    )
    before = store.summary(chip.device_id)
    result = service.submit(
        seal(PayloadType.LOCATION_PROOF, proof.SerializeToString(), chip.signer), NOW_NS
    )
    assert isinstance(result.verdict, Verdict)
    assert result.verdict is not Verdict.REJECTED or isinstance(result.reason, Reason)
    if counter > INT64_MAX:
        assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.OUT_OF_RANGE)
    if max(counter, time_ns, rtt_ns) > INT64_MAX:
        assert result.verdict is Verdict.REJECTED
        assert store.summary(chip.device_id) == before


def test_a_counter_past_the_store_is_rejected_and_the_chain_stays(verifier):
    world, store, service, _chip, _ = verifier
    fresh = world.chip("dev-2")
    service.enrol(fresh.identity(), fresh.possession(), NOW_NS)
    assert service.submit(world.proof(fresh), NOW_NS).verdict is Verdict.ALLOWED
    before = store.summary(fresh.device_id)
    fresh.chain = ProofChain(fresh.device_id, INT64_MAX, fresh.chain.head_digest)
    result = service.submit(world.proof(fresh, unix_ns=NOW_NS - 10**9), NOW_NS)
    assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.OUT_OF_RANGE)
    assert store.summary(fresh.device_id) == before


def test_an_unexpected_failure_is_internal_and_leaks_nothing(verifier, caplog, monkeypatch):
    _world, _store, service, chip, _ = verifier

    def broken(*args, **kwargs):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(service, "device_status", broken)
    server = ServerThread(service, clock=lambda: NOW_NS)
    server.start()
    try:
        with grpc.insecure_channel(server.address) as channel, caplog.at_level(logging.ERROR):
            call = channel.unary_unary("/geoattest.v1.VerifierService/GetDeviceStatus")
            request = verifier_service_pb2.DeviceStatusRequest(device_id=chip.device_id)
            with pytest.raises(grpc.RpcError) as refused:
                call(request.SerializeToString(), timeout=20)
    finally:
        server.stop()
    error = refused.value
    assert error.code() is grpc.StatusCode.INTERNAL
    assert dict(error.trailing_metadata())[REASON_METADATA] == Reason.INTERNAL.value
    assert "Overflow" not in error.details()
    assert "SQLite" not in error.details()
    assert error.details().startswith("transport.internal: request id ")
    assert any(r.exc_info and r.exc_info[0] is OverflowError for r in caplog.records)


@pytest.mark.parametrize(("time_ns", "rtt_ns"), [(INT64_MAX + 1, 1_000), (UNIX_NS, 2**64 - 1)])
def test_a_peer_receipt_past_the_store_is_refused_as_out_of_range(verifier, time_ns, rtt_ns):
    world = verifier[0]
    receipt = issue_receipt(
        world.landmarks["lm-wie"],
        world.landmarks["lm-fra"],
        device_id="lm-wie",
        landmark_id="lm-fra",
        rtt_ns=1_000,
    )
    receipt = resealed(world, receipt, time_ns=time_ns, rtt_ns=rtt_ns)
    with pytest.raises(WireError) as refused:
        measure_peer(receipt, world.landmark_records())
    assert refused.value.reason is Reason.OUT_OF_RANGE


def test_an_unexpected_failure_in_a_stream_is_internal_and_leaks_nothing(verifier):
    service = verifier[2]

    async def broken(*args):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")
        yield  # an async generator, as the alert hub's stream is

    server = ServerThread(service, clock=lambda: NOW_NS)
    server.start()
    try:
        server.server.alerts.stream = broken
        with grpc.insecure_channel(server.address) as channel:
            call = channel.unary_stream("/geoattest.v1.VerifierService/WatchAlerts")
            request = verifier_service_pb2.WatchAlertsRequest().SerializeToString()
            with pytest.raises(grpc.RpcError) as refused:
                list(call(request, timeout=20))
    finally:
        server.stop()
    error = refused.value
    assert error.code() is grpc.StatusCode.INTERNAL
    assert "Overflow" not in error.details()
    assert error.details().startswith("transport.internal: request id ")
