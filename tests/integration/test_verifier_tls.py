"""Who may talk to the verifier: real mutual-TLS channels against one module-scoped server.

Every method is called in every role, and each call is either admitted (whatever the
method then answers to an empty request) or refused PERMISSION_DENIED with
``access.wrong_role``. Callers without a certificate, with a self-signed or an expired one,
fail the handshake; a revoked chip is refused; a chip may enrol and prove only for itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from verifier_world import NOW_NS, UNIX_NS, ServerThread, VerifierWorld, region_appraiser

from geoattest.crypto import KeySigner, private_key_pem
from geoattest.errors import PlaintextNotLoopbackError, Reason
from geoattest.pki import RevocationList
from geoattest.pki.tls import OperatorCA, Role, TlsIdentity
from geoattest.v1 import admin_service_pb2, evidence_pb2, verifier_service_pb2
from geoattest.verifier.access import ACCESS, ServerTls
from geoattest.verifier.admin import Admin
from geoattest.verifier.audit_log import (
    AuditLog,
    prove_token,
    read_checkpoints,
    read_entries,
    verify_log,
)
from geoattest.verifier.grpc_server import VerifierServer
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import REASON_METADATA, VerifierClient, VerifierRefused, tls_credentials

SERVICE = "/geoattest.v1.VerifierService/"
PARTY_ROLES = (Role.RELYING_PARTY, Role.OPERATOR, Role.AUDITOR, Role.LANDMARK, Role.MONITOR)
STREAMS = {f"{SERVICE}WatchAlerts", "/grpc.health.v1.Health/Watch"}


class Deployment:
    """One verifier over mutual TLS, an operator CA, and a certificate for each party."""

    def __init__(self, root) -> None:
        now = dt.datetime.now(dt.UTC)
        self.world = VerifierWorld.create(root)
        self.world.revocations = RevocationList().with_device("dev-revoked")
        self.world.serve_args()  # writes the landmark registry
        self.world.revocations.save(root / "revocations.json")
        self.ca = OperatorCA.create("Test Operator", now - dt.timedelta(days=400))
        key, cert = self.ca.issue(Role.SERVER, "verifier", now, hosts=["127.0.0.1"])
        self.server_identity = TlsIdentity.of(key, cert, self.ca.certificate)
        self.parties = {
            role: TlsIdentity.of(*self.ca.issue(role, f"{role}-1", now), self.ca.certificate)
            for role in PARTY_ROLES
        }
        self.chips = {d: self.world.chip(d) for d in ("dev-1", "dev-2", "dev-revoked")}
        self.store = SqlStore.open(self.world.db_path)
        tls = ServerTls(self.server_identity, (self.world.ca.certificate,))
        service = self.world.service(self.store)
        self.audit_signer = KeySigner(self.world.result_key.private_key)
        service.audit = AuditLog(
            root / "audit.log", self.audit_signer, origin="test", checkpoint_every_ns=10**9
        )
        self.audit = service.audit
        service.files = OperatorFiles(root / "landmarks.json", root / "revocations.json")
        admin = Admin(service, self.store, service.files, region_appraiser().has_region)
        self.server = ServerThread(service, clock=lambda: NOW_NS, tls=tls, admin=admin)
        self.address = self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.audit.close()
        self.store.close()

    def credentials(self, role: Role, device_id: str = "dev-1") -> grpc.ChannelCredentials:
        if role is Role.DEVICE:
            return self.chips[device_id].tls_credentials(self.ca.certificate)
        return tls_credentials(self.parties[role])

    def client(self, role: Role, device_id: str = "dev-1") -> VerifierClient:
        return VerifierClient(
            self.address, timeout_s=20, credentials=self.credentials(role, device_id)
        )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    deployment = Deployment(tmp_path_factory.mktemp("tls"))
    yield deployment
    deployment.close()


def call(channel: grpc.Channel, method: str) -> tuple[grpc.StatusCode, str]:
    """Call ``method`` with an empty request; its status code and reason metadata."""
    try:
        if method in STREAMS:
            stream = channel.unary_stream(method)(b"", timeout=0.5)
            next(iter(stream), None)
        else:
            channel.unary_unary(method)(b"", timeout=20)
    except grpc.RpcError as error:
        trailing = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
        return error.code(), str(trailing.get(REASON_METADATA, ""))  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("role", [Role.DEVICE, *PARTY_ROLES], ids=str)
def test_every_method_admits_exactly_the_roles_of_the_table(deployment, role):
    with grpc.secure_channel(deployment.address, deployment.credentials(role)) as channel:
        outcomes = {method: call(channel, method) for method in ACCESS}
    for method, (code, reason) in outcomes.items():
        if role in ACCESS[method]:
            assert reason != Reason.WRONG_ROLE.value, (method, code)
            assert code != grpc.StatusCode.UNAVAILABLE, method
        else:
            assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, Reason.WRONG_ROLE), method


def test_the_table_covers_every_verifier_method():
    methods = verifier_service_pb2.DESCRIPTOR.services_by_name["VerifierService"].methods
    assert {f"{SERVICE}{m.name}" for m in methods} <= set(ACCESS)
    assert all(Role.SERVER not in roles for roles in ACCESS.values())


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def _handshake_fails(deployment, credentials: grpc.ChannelCredentials) -> None:
    with grpc.secure_channel(deployment.address, credentials) as channel:
        code, _ = call(channel, f"{SERVICE}GetResultKeys")
    assert code == grpc.StatusCode.UNAVAILABLE


def test_no_certificate_fails_the_handshake(deployment):
    ca_pem = deployment.ca.certificate.public_bytes(serialization.Encoding.PEM)
    _handshake_fails(deployment, grpc.ssl_channel_credentials(ca_pem))


def test_a_self_signed_certificate_fails_the_handshake(deployment):
    ca_pem = deployment.ca.certificate.public_bytes(serialization.Encoding.PEM)
    _handshake_fails(deployment, grpc.ssl_channel_credentials(ca_pem, *_self_signed()))


def test_an_expired_certificate_fails_the_handshake(deployment):
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=300)
    key, cert = deployment.ca.issue(Role.OPERATOR, "old", long_ago, validity=dt.timedelta(days=30))
    expired = TlsIdentity.of(key, cert, deployment.ca.certificate)
    _handshake_fails(deployment, tls_credentials(expired))


def test_a_client_refuses_a_server_its_ca_did_not_sign(deployment):
    other = OperatorCA.create("Other", dt.datetime.now(dt.UTC))
    key, cert = other.issue(Role.OPERATOR, "op", dt.datetime.now(dt.UTC))
    _handshake_fails(deployment, tls_credentials(TlsIdentity.of(key, cert, other.certificate)))


def test_a_server_certificate_is_no_client(deployment):
    _handshake_fails(deployment, tls_credentials(deployment.server_identity))


async def test_a_revoked_chip_is_refused_at_every_call(deployment):
    async with deployment.client(Role.DEVICE, "dev-revoked") as client:
        with pytest.raises(VerifierRefused) as refused:
            await client.result_keys()
    assert refused.value.reason is Reason.REVOKED_DEVICE
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_chip_enrols_and_proves_only_for_itself(deployment):
    world, chips = deployment.world, deployment.chips
    async with deployment.client(Role.DEVICE, "dev-2") as own:
        await own.enroll(chips["dev-2"].enroll_request())
    async with deployment.client(Role.DEVICE, "dev-1") as client:
        with pytest.raises(VerifierRefused) as refused:
            await client.enroll(chips["dev-2"].enroll_request())
        assert refused.value.reason is Reason.OTHER_DEVICE
        await client.enroll(chips["dev-1"].enroll_request())

        others = world.proof(chips["dev-2"], advance=False)
        with pytest.raises(VerifierRefused) as refused:
            await client.submit(others)
        assert refused.value.reason is Reason.OTHER_DEVICE
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(VerifierRefused) as refused:
            await client.submit_batch([world.proof(chips["dev-1"], advance=False), others])
        assert refused.value.reason is Reason.OTHER_DEVICE

        result = await client.submit(world.proof(chips["dev-1"]))
        assert result.verdict == evidence_pb2.VERDICT_ALLOWED
        batch = await client.submit_batch([world.proof(chips["dev-1"], unix_ns=UNIX_NS + 10**9)])
        assert [(r.verdict, r.reason) for r in batch] == [(evidence_pb2.VERDICT_ALLOWED, "")]
    async with deployment.client(Role.RELYING_PARTY) as party:
        status = await party.device_status("dev-1")
        assert status.last_counter == 2

    # Every appraisal is in the audit log, and the result token has an inclusion proof.
    checkpoint = deployment.audit.checkpoint(NOW_NS)
    entries = read_entries(deployment.audit.path)
    appraised = [json.loads(e) for e in entries if json.loads(e)["kind"] == "appraisal"]
    assert [(a["device_id"], a["counter"], a["verdict"]) for a in appraised[-2:]] == [
        ("dev-1", 1, "ALLOWED"),
        ("dev-1", 2, "ALLOWED"),
    ]
    assert prove_token(entries, checkpoint, result.result_token).check()
    checkpoints = read_checkpoints(
        deployment.audit.checkpoints_path, deployment.audit_signer.verifying_key
    )
    assert verify_log(entries, checkpoints).entries == len(entries)


async def test_plaintext_is_refused_off_loopback(deployment):
    with pytest.raises(PlaintextNotLoopbackError) as refused:
        VerifierClient("192.0.2.1:50051")
    assert refused.value.reason is Reason.PLAINTEXT_NOT_LOOPBACK
    server = VerifierServer(deployment.world.service(deployment.store))
    with pytest.raises(PlaintextNotLoopbackError):
        await server.start("0.0.0.0:0")


async def test_the_admin_api_changes_what_the_next_proof_is_judged_by(deployment):
    world = deployment.world
    chip = deployment.chips["dev-3"] = world.chip("dev-3")
    operator = deployment.client(Role.OPERATOR)

    async def admin(method: str, **fields) -> str:
        message = getattr(admin_service_pb2, REQUESTS[method])(**fields)
        return await operator.admin(method, message)

    async def refused(method: str, **fields) -> VerifierRefused:
        with pytest.raises(VerifierRefused) as refusal:
            await admin(method, **fields)
        return refusal.value

    async with operator, deployment.client(Role.DEVICE, "dev-3") as device:
        await device.enroll(chip.enroll_request())
        first = await device.submit(world.proof(chip, unix_ns=UNIX_NS))
        assert first.verdict == evidence_pb2.VERDICT_ALLOWED

        # A licence for another region holds from the next proof: the chip is outside it.
        until = UNIX_NS // 10**9 + 10**7
        await admin("SetLicence", device_id="dev-3", region="SYD-300", valid_until_s=until)
        moved = await device.submit(world.proof(chip, unix_ns=UNIX_NS + 10**9))
        assert moved.verdict == evidence_pb2.VERDICT_OUTSIDE
        bad_region = await refused(
            "SetLicence", device_id="dev-3", region="XX", valid_until_s=until
        )
        assert (bad_region.reason, bad_region.code) == (
            Reason.ADMIN_INVALID,
            grpc.StatusCode.INVALID_ARGUMENT,
        )

        # A revoked chip is refused at its next call, and restored it is answered again.
        await admin("RevokeDevice", device_id="dev-3", why="stolen")
        with pytest.raises(VerifierRefused) as revoked:
            await device.result_keys()
        assert revoked.value.reason is Reason.REVOKED_DEVICE
        assert (await refused("RevokeDevice", device_id="dev-3")).reason is Reason.ADMIN_CONFLICT
        await admin("RestoreDevice", device_id="dev-3", why="found")
        assert (await device.result_keys())["keys"]

    operator = deployment.client(Role.OPERATOR)
    async with operator:
        # Landmarks: one id once, one key once.
        key = KeySigner.generate().verifying_key
        fields = {"operator": "op-x", "latitude": 50.0, "longitude": 8.0}
        fields["public_key_der"] = key.der()
        await admin("RegisterLandmark", landmark_id="lm-new", **fields)
        again = await refused("RegisterLandmark", landmark_id="lm-new", **fields)
        assert (again.reason, again.code) == (Reason.ADMIN_CONFLICT, grpc.StatusCode.ALREADY_EXISTS)
        reused = await refused("RegisterLandmark", landmark_id="lm-other", **fields)
        assert reused.reason is Reason.LANDMARK_KEY_REUSED
        await admin("ExcludeLandmark", landmark_id="lm-fra", why="clock drift")
        assert deployment.store.excluded_landmarks() == {"lm-fra"}
        await admin("LiftExclusion", landmark_id="lm-fra", why="repaired")
        assert deployment.store.excluded_landmarks() == frozenset()
        missing = await refused("LiftExclusion", landmark_id="lm-fra")
        assert (missing.reason, missing.code) == (Reason.ADMIN_NOT_FOUND, grpc.StatusCode.NOT_FOUND)
        await admin("RevokeLandmark", landmark_id="lm-new", why="retired")

    actions = [
        (e["action"], e["who"])
        for e in map(json.loads, read_entries(deployment.audit.path))
        if e["kind"] == "admin"
    ]
    assert actions == [
        ("set_licence", "operator-1"),
        ("revoke_device", "operator-1"),
        ("restore_device", "operator-1"),
        ("register_landmark", "operator-1"),
        ("exclude_landmark", "operator-1"),
        ("lift_exclusion", "operator-1"),
        ("revoke_landmark", "operator-1"),
    ]


REQUESTS = {
    "SetLicence": "SetLicenceRequest",
    "RevokeDevice": "DeviceRequest",
    "RestoreDevice": "DeviceRequest",
    "RegisterLandmark": "RegisterLandmarkRequest",
    "ExcludeLandmark": "LandmarkRequest",
    "LiftExclusion": "LandmarkRequest",
    "RevokeLandmark": "LandmarkRequest",
}


def test_the_request_log_names_the_caller_from_its_certificate_a_refused_one_too(
    deployment, caplog
):
    caplog.set_level(logging.INFO, logger="geoattest.verifier")
    rejections = f"{SERVICE}GetRejections"
    for role in (Role.OPERATOR, Role.RELYING_PARTY):
        with grpc.secure_channel(deployment.address, deployment.credentials(role)) as channel:
            call(channel, rejections)

    def lines() -> list[tuple[str, str, str]]:
        return [
            (r.fields["caller"], r.fields["outcome"], r.fields.get("reason", ""))
            for r in caplog.records
            if r.getMessage() == "rpc" and r.fields["method"] == "GetRejections"
        ]

    # The server's thread logs a call as its handler ends, which may be just after the
    # client has its answer (so the two lines may also come in either order).
    give_up = time.monotonic() + 30
    while len(lines()) < 2 and time.monotonic() < give_up:
        time.sleep(0.01)
    assert sorted(lines()) == [
        ("operator:operator-1", "OK", ""),
        ("relying-party:relying-party-1", "PERMISSION_DENIED", Reason.WRONG_ROLE.value),
    ]
    assert all(
        r.fields["peer"].startswith("ipv4:127.0.0.1:")
        for r in caplog.records
        if r.getMessage() == "rpc"
    )
