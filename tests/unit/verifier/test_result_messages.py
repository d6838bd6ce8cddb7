"""The transport's result messages: a batch's response carries every field of every result,
in order, as one proof's answer does."""

from __future__ import annotations

from geoattest.errors import Reason
from geoattest.v1 import evidence_pb2, verifier_service_pb2
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.grpc_server import batch_response, result_pb
from geoattest.verifier.service import ProofResult

RESULTS = [
    ProofResult(
        "dev-1",
        7,
        Verdict.ALLOWED,
        None,
        "",
        (
            LandmarkBound("lm-fra", 50.1, 8.7, 1_234_567, 2.5),
            LandmarkBound("lm-syd", -33.9, 151.2, 7_654_321),
        ),
        "header.claims.signature",
    ),
    ProofResult("", 0, Verdict.REJECTED, Reason.UNKNOWN_DEVICE, "no device has this key", (), ""),
    ProofResult(
        "dev-2", 3, Verdict.OUTSIDE, None, "", (LandmarkBound("lm-han", 21.0, 105.8, 9),), "t"
    ),
]


def fields(message: evidence_pb2.AttestationResult) -> tuple[object, ...]:
    return (
        message.device_id,
        message.counter,
        evidence_pb2.Verdict.Name(message.verdict),
        message.reason,
        message.detail,
        [
            (b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, b.bound_km)
            for b in message.bounds
        ],
        message.result_token,
    )


def expected(result: ProofResult) -> tuple[object, ...]:
    return (
        result.device_id,
        result.counter,
        f"VERDICT_{result.verdict.value}",
        result.reason.value if result.reason else "",
        result.detail,
        [(b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, b.bound_km) for b in result.bounds],
        result.token,
    )


def test_a_batch_response_carries_each_result_whole_and_in_order():
    response = verifier_service_pb2.SubmitProofBatchResponse.FromString(batch_response(RESULTS))
    assert [fields(m) for m in response.results] == [expected(r) for r in RESULTS]


def test_one_result_is_the_same_message_as_in_a_batch():
    response = verifier_service_pb2.SubmitProofBatchResponse.FromString(batch_response(RESULTS))
    assert [result_pb(r) for r in RESULTS] == list(response.results)


def test_every_verdict_goes_on_the_wire_under_its_own_name():
    for verdict in Verdict:
        result = ProofResult("dev-1", 1, verdict, None, "", (), "t")
        assert evidence_pb2.Verdict.Name(result_pb(result).verdict) == f"VERDICT_{verdict.value}"
