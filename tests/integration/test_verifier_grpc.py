"""The verifier over real gRPC on 127.0.0.1: every method, status codes, and results a
relying party checks with PyJWT or joserfc and nothing of ours but the JWKS."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import grpc
import jwt
import pytest
from conftest import issue_receipt
from grpc_health.v1 import health_pb2, health_pb2_grpc
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from verifier_world import (
    LICENCE_UNTIL_S,
    NOW_NS,
    UNIX_NS,
    ServerThread,
    VerifierWorld,
)

from geoattest.crypto import KeySigner
from geoattest.errors import Reason, WireError
from geoattest.v1 import evidence_pb2, verifier_service_pb2
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.store import SqlStore, StoreConflictError, StoreUnavailableError
from geoattest.wire.client import VerifierClient, VerifierRefused

S = 10**9


@pytest.fixture
def world(tmp_path) -> VerifierWorld:
    return VerifierWorld.create(tmp_path)


@pytest.fixture
def store(world):
    store = SqlStore.open(world.db_path)
    yield store
    store.close()


@pytest.fixture
def server(world, store):
    server = ServerThread(world.service(store), clock=lambda: NOW_NS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def target(server) -> str:
    return server.address


@pytest.fixture
async def client(target):
    async with VerifierClient(target, timeout_s=20) as client:
        yield client


async def enrolled(world, client, device_id="dev-1"):
    chip = world.chip(device_id)
    response = await client.enroll(chip.enroll_request())
    assert response.device_id == device_id
    return chip


async def test_health_is_serving_and_reflection_lists_the_service(target):
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="geoattest.v1.VerifierService")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_enrol_submit_and_verify_the_result_with_pyjwt_and_the_jwks(world, client):
    chip = await enrolled(world, client)
    result = await client.submit(world.proof(chip))
    assert result.verdict == evidence_pb2.VERDICT_ALLOWED
    assert len(result.bounds) == 4

    jwks = await client.result_keys()
    kid = jwt.get_unverified_header(result.result_token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims = jwt.decode(
        result.result_token, key=key, algorithms=["ES256"], options={"verify_exp": False}
    )
    assert claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
    # Three cadences (an hour each) after the evidence: the device would be STALE then.
    assert claims["exp"] == UNIX_NS // 10**9 + 3 * 3600 < LICENCE_UNTIL_S
    submod = claims["submods"]["chip-dev-1"]
    assert submod["ear.status"] == "affirming"
    assert submod["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "hardware": 2,
        "sourced-data": 2,
    }
    assert submod["ear.appraisal-policy-id"].startswith("policy:region/")
    assert submod["ear.x-geoattest.verdict"] == "ALLOWED"
    assert {b["landmark_id"] for b in submod["ear.x-geoattest.bounds"]} == {
        "lm-fra",
        "lm-wie",
        "lm-dar",
        "lm-han",
    }
    assert submod["ear.x-geoattest.feasible-region"]["type"]


async def test_result_verifies_with_joserfc_too(world, client):
    chip = await enrolled(world, client)
    result = await client.submit(world.proof(chip))
    keys = KeySet.import_key_set(await client.result_keys())
    token = jose_jwt.decode(result.result_token, keys, algorithms=["ES256"])
    assert token.claims["submods"]["chip-dev-1"]["ear.status"] == "affirming"
    with pytest.raises(jws.BadSignatureError):
        jose_jwt.decode(result.result_token[:-4] + "AAAA", keys, algorithms=["ES256"])


async def test_resubmission_after_a_lost_answer_gets_the_same_result(world, client):
    chip = await enrolled(world, client)
    proof = world.proof(chip)
    first = await client.submit(proof)
    again = await client.submit(proof)
    assert again == first


async def test_rejection_has_a_status_code_and_the_reason_in_trailing_metadata(world, client):
    stranger = world.chip("dev-2")
    with pytest.raises(VerifierRefused) as refused:
        await client.submit(world.proof(stranger))
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.reason == "device.unknown"
    assert refused.value.detail.startswith("device.unknown")


async def test_tampered_proof_is_permission_denied(world, client):
    chip = await enrolled(world, client)
    proof = world.proof(chip)
    proof.signature = proof.signature[:-1] + bytes([proof.signature[-1] ^ 1])
    with pytest.raises(VerifierRefused) as refused:
        await client.submit(proof)
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "envelope.bad_signature"


async def test_enrolment_refusals(world, client):
    unlicensed = world.chip("dev-unlicensed")
    with pytest.raises(VerifierRefused) as refused:
        await client.enroll(unlicensed.enroll_request())
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "device.no_licence",
    )
    await enrolled(world, client, "dev-2")
    impostor = world.chip("dev-2")
    with pytest.raises(VerifierRefused) as refused:
        await client.enroll(impostor.enroll_request())
    assert refused.value.code is grpc.StatusCode.ALREADY_EXISTS
    elsewhere = world.chip("dev-3")
    request = elsewhere.enroll_request()
    request.possession.CopyFrom(elsewhere.possession("another-verifier"))
    with pytest.raises(VerifierRefused) as refused:
        await client.enroll(request)
    assert refused.value.reason == "device.bad_possession"


async def test_batch_answers_each_proof_in_order(world, client):
    chips = [await enrolled(world, client, f"dev-{i}") for i in (1, 2)]
    stranger = world.chip("dev-3")
    proofs = [world.proof(chips[0]), world.proof(chips[1]), world.proof(stranger)]
    proofs.append(world.proof(chips[0], unix_ns=UNIX_NS + S))
    results = await client.submit_batch(proofs)
    assert [r.verdict for r in results] == [
        evidence_pb2.VERDICT_ALLOWED,
        evidence_pb2.VERDICT_ALLOWED,
        evidence_pb2.VERDICT_REJECTED,
        evidence_pb2.VERDICT_ALLOWED,
    ]
    assert results[2].reason == "device.unknown"
    assert [r.counter for r in results] == [1, 1, 0, 2]


async def test_oversized_batch_is_invalid_argument(world, client):
    chip = await enrolled(world, client)
    proof = world.proof(chip)
    with pytest.raises(VerifierRefused) as refused:
        await client.submit_batch([proof] * 257)
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "wire.oversized_message",
    )


async def test_an_oversized_batch_is_refused_before_any_entry_is_decoded(client, target):
    """257 entries that are not proofs at all: counted on the wire and refused as too
    many, never parsed (parsing would have called them malformed)."""
    junk_entry = b"\x0a\x03\xff\xff\xff"  # field 1, three bytes no envelope decodes from
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/geoattest.v1.VerifierService/SubmitProofBatch")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(junk_entry * 257, timeout=20)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("wire.oversized_message: 257 proofs")
    assert await client.rejections() == {"wire.oversized_message": 1}


async def test_a_forged_proof_is_counted_and_speaks_for_no_device(world, client, store):
    chip = await enrolled(world, client)
    await client.submit(world.proof(chip))
    forged = world.proof(chip)
    forged.signature = bytes(64)
    with pytest.raises(VerifierRefused) as refused:
        await client.submit(forged)
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "envelope.bad_signature",
    )
    assert store.alerts("dev-1") == []
    assert (await client.device_status("dev-1")).last_counter == 1
    assert await client.rejections() == {"envelope.bad_signature": 1}


async def test_device_status(world, client):
    chip = await enrolled(world, client)
    status = await client.device_status("dev-1")
    assert (status.state, status.last_counter) == ("ENROLLED", 0)
    await client.submit(world.proof(chip))
    status = await client.device_status("dev-1")
    assert (status.state, status.last_counter, status.licensed_region) == (
        "ATTESTING",
        1,
        "FRA-300",
    )
    assert status.last_verdict == evidence_pb2.VERDICT_ALLOWED
    assert status.last_proof_time_ns == UNIX_NS
    assert (status.licence_id, status.licence_version, status.verdict_licence_version) == (
        "dev-1",
        1,
        1,
    )
    assert status.licence_state == verifier_service_pb2.LICENCE_STATE_IN_FORCE
    assert status.licence_valid_until_ns == LICENCE_UNTIL_S * S
    assert (status.verdict_current, status.standing) == (True, verifier_service_pb2.STANDING_STANDS)
    with pytest.raises(VerifierRefused) as refused:
        await client.device_status("dev-nobody")
    assert refused.value.code is grpc.StatusCode.NOT_FOUND


async def test_device_status_says_a_withdrawn_licence_took_the_last_allowed_away(
    world, client, store
):
    chip = await enrolled(world, client)
    await client.submit(world.proof(chip))
    LiveLicences(store).withdraw("dev-1", NOW_NS)
    status = await client.device_status("dev-1")
    assert (status.state, status.last_verdict) == ("ATTESTING", evidence_pb2.VERDICT_ALLOWED)
    assert (status.licence_version, status.verdict_licence_version) == (2, 1)
    assert status.licence_state == verifier_service_pb2.LICENCE_STATE_WITHDRAWN
    assert (status.verdict_current, status.standing) == (
        False,
        verifier_service_pb2.STANDING_LICENCE_WITHDRAWN,
    )


async def test_alert_stream_delivers_an_outside_alert(world, client, server):
    chip = await enrolled(world, client, "dev-syd")
    received: list[verifier_service_pb2.Alert] = []

    async def watch() -> None:
        async for alert in client.watch_alerts("dev-syd"):
            received.append(alert)
            return

    watcher = asyncio.create_task(watch())
    while server.server.alerts.subscribers == 0:
        await asyncio.sleep(0.01)
    result = await client.submit(world.proof(chip))
    assert result.verdict == evidence_pb2.VERDICT_OUTSIDE
    await watcher
    assert received[0].kind == "OUTSIDE_LICENSED_REGION"
    assert received[0].device_id == "dev-syd"


@pytest.mark.parametrize("after", [-1, 2**63, 2**64])
async def test_a_cursor_that_is_no_cursor_is_refused_by_the_client(client, after):
    with pytest.raises(WireError) as refused:
        async for _ in client.watch_alerts(after=after):
            pass
    assert refused.value.reason is Reason.OUT_OF_RANGE


async def test_a_cursor_past_the_newest_alert_is_refused_by_the_verifier(world, client, store):
    chip = await enrolled(world, client, "dev-syd")
    assert (await client.submit(world.proof(chip))).verdict == evidence_pb2.VERDICT_OUTSIDE
    newest = store.last_alert_cursor()
    assert newest > 0
    with pytest.raises(VerifierRefused) as refused:
        async for _ in client.watch_alerts(after=newest + 1):
            pass
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        Reason.OUT_OF_RANGE.value,
    )
    async for alert in client.watch_alerts(after=newest - 1):  # replays the newest
        assert alert.cursor == newest
        break


async def test_jwks_is_the_result_keys_public_half(world, client):
    jwks = await client.result_keys()
    assert json.dumps(jwks) == json.dumps(world.result_key.jwks())
    assert "d" not in jwks["keys"][0]


@pytest.mark.parametrize(
    ("failure", "code", "reason"),
    [
        (
            StoreConflictError("chain head of dev-1 moved"),
            grpc.StatusCode.ABORTED,
            Reason.STORE_CONFLICT,
        ),
        (
            StoreUnavailableError(sqlite3.OperationalError("database is locked")),
            grpc.StatusCode.UNAVAILABLE,
            Reason.STORE_UNAVAILABLE,
        ),
    ],
    ids=["conflict", "unavailable"],
)
async def test_a_store_failure_is_a_retryable_status_with_its_reason(
    world, store, client, monkeypatch, failure, code, reason
):
    chip = await enrolled(world, client)

    def fail(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(store, "commit", fail)
    with pytest.raises(VerifierRefused) as refused:
        await client.submit(world.proof(chip))
    assert (refused.value.code, refused.value.reason) == (code, reason)
    assert "database is locked" not in refused.value.detail
    monkeypatch.undo()
    status = await client.device_status("dev-1")
    assert status.last_counter == 0, "a refused proof was stored"


def peer_receipt(world: VerifierWorld, timer: str, peer: str, rtt_ns: int):
    """``timer``'s receipt for a round ``peer`` answered with its own landmark key."""
    return issue_receipt(
        world.landmarks[peer],
        world.landmarks[timer],
        device_id=peer,
        landmark_id=timer,
        rtt_ns=rtt_ns,
    )


async def test_peer_receipts_exclude_a_landmark_and_its_receipts_are_then_refused(
    world, client, store
):
    chip = await enrolled(world, client)
    # lm-wie answers lm-fra and lm-han in 1 µs: faster than light from 30 and 50 km away.
    receipts = [peer_receipt(world, timer, "lm-wie", 1_000) for timer in ("lm-fra", "lm-han")]
    reply = await client.submit_peer_receipts(receipts)
    assert (reply.measured, list(reply.excluded)) == (2, ["lm-wie"])
    (alert,) = store.alerts()
    assert (alert.kind, alert.reason) == ("INCONSISTENT_LANDMARKS", "receipt.revoked_landmark")
    with pytest.raises(VerifierRefused) as refused:
        await client.submit(world.proof(chip))
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "receipt.revoked_landmark"


async def test_peer_receipts_that_do_not_check_are_refused_with_their_reason(world, client, store):
    stranger = KeySigner.generate()
    forged = issue_receipt(
        world.landmarks["lm-wie"], stranger, device_id="lm-wie", landmark_id="lm-fra", rtt_ns=1
    )
    with pytest.raises(VerifierRefused) as refused:
        await client.submit_peer_receipts([forged])
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "receipt.unknown_landmark"
    with pytest.raises(VerifierRefused) as empty:
        await client.submit_peer_receipts([])
    assert empty.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert empty.value.reason == "wire.missing_field"
    assert store.dump()["peer_measurements"] == []
