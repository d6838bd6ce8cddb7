"""A verifier with real keys, certificates, landmarks and rounds, for the verifier tests.

Everything is real (manufacturer CA, device certificates, landmark receipts from real
rounds, SQLite under ``tmp_path``, the real geography over licensed circles).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from conftest import UNIX_NS, issue_receipt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from geoattest.crypto import KeySigner, PrivateKey, generate_private_key, sha256
from geoattest.geo import GeoAppraiser, build_policy, circle_region
from geoattest.pki import (
    LandmarkRecord,
    LandmarkRegistry,
    ManufacturerCA,
    ResultKey,
    RevocationList,
    TrustAnchors,
)
from geoattest.pki.tls import OperatorCA, Role
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2, identity_pb2, verifier_service_pb2
from geoattest.verifier.access import ServerTls
from geoattest.verifier.admin import Admin
from geoattest.verifier.grpc_server import VerifierServer
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.service import VerifierConfig, VerifierService
from geoattest.verifier.store import CommitRecord, SqlStore
from geoattest.wire.client import device_tls_credentials
from geoattest.wire.envelope import PayloadType, seal

MS = 1_000_000
NOW_NS = UNIX_NS + 2 * 10**9
"""The verifier's clock in tests: two seconds after the landmarks' rounds."""
MEASUREMENT = sha256(b"agent firmware 1.0")
VERIFIER_ID = "verifier-test"
LICENCE_UNTIL = "2027-01-01T00:00:00+00:00"
LICENCE_UNTIL_S = 1_798_761_600
LANDMARK_SITES = {
    "lm-fra": (50.11, 8.68),
    "lm-wie": (50.08, 8.24),
    "lm-dar": (49.87, 8.65),
    "lm-han": (50.13, 8.92),
}
REGIONS = {"FRA-300": (50.11, 8.68, 300.0), "SYD-300": (-33.87, 151.21, 300.0)}


@functools.cache
def region_appraiser() -> GeoAppraiser:
    """The real geography over the test's circular licensed regions (built once)."""
    return build_policy(
        "test-circles",
        1,
        [circle_region(name, lat, lon, radius) for name, (lat, lon, radius) in REGIONS.items()],
    ).appraiser()


@dataclass
class ProvisionedChip:
    """A provisioned chip: its key, certificate and proof chain."""

    device_id: str
    signer: KeySigner
    certificate_der: bytes
    chain: ProofChain
    private_key: PrivateKey

    def tls_credentials(self, verifier_ca: x509.Certificate) -> grpc.ChannelCredentials:
        """Mutual TLS as this chip: its device certificate and key, as its key store makes."""
        certificate = x509.load_der_x509_certificate(self.certificate_der)
        return device_tls_credentials(self.private_key, certificate, verifier_ca)

    def identity(self) -> identity_pb2.DeviceIdentity:
        return identity_pb2.DeviceIdentity(
            device_id=self.device_id, certificate_der=self.certificate_der
        )

    def possession(self, verifier_id: str = VERIFIER_ID) -> envelope_pb2.Envelope:
        claim = verifier_service_pb2.EnrolmentClaim(
            device_id=self.device_id, verifier_id=verifier_id, nonce=os.urandom(32)
        )
        return seal(PayloadType.ENROLMENT, claim.SerializeToString(), self.signer)

    def enroll_request(self) -> verifier_service_pb2.EnrollRequest:
        return verifier_service_pb2.EnrollRequest(
            identity=self.identity(), possession=self.possession()
        )


@dataclass
class VerifierWorld:
    """One verifier's configuration on disk plus the parties that talk to it."""

    root: Path
    ca: ManufacturerCA
    landmarks: dict[str, KeySigner]
    result_key: ResultKey
    licensed: dict[str, str]
    valid_until: str = LICENCE_UNTIL
    revocations: RevocationList = field(default_factory=RevocationList)

    @classmethod
    def create(
        cls,
        root: Path,
        licensed: dict[str, str] | None = None,
        valid_until: str = LICENCE_UNTIL,
    ) -> VerifierWorld:
        ca = ManufacturerCA.create("Test Accelerators", _at(UNIX_NS) - dt.timedelta(days=1))
        world = cls(
            root,
            ca,
            {lid: KeySigner.generate() for lid in LANDMARK_SITES},
            ResultKey.generate(),
            licensed or {f"dev-{i}": "FRA-300" for i in range(1, 6)} | {"dev-syd": "SYD-300"},
            valid_until,
        )
        world.write_files()
        return world

    # --- files, as an operator would write them -------------------------------------

    @property
    def licences_path(self) -> Path:
        return self.root / "licences.json"

    @property
    def db_path(self) -> Path:
        return self.root / "verifier.db"

    def write_files(self) -> None:
        (self.root / "ca.crt").write_bytes(
            self.ca.certificate.public_bytes(serialization.Encoding.PEM)
        )
        self.licences_path.write_text(
            json.dumps(
                {
                    "licences": {
                        device_id: {"region": region, "valid_until": self.valid_until}
                        for device_id, region in self.licensed.items()
                    }
                }
            )
        )

    def server_tls(self) -> Path:
        """An operator TLS CA and the verifier's server directory under it (made once)."""
        directory = self.root / "tls" / "server"
        if not directory.exists():
            now = dt.datetime.now(dt.UTC)
            ca = OperatorCA.create("Test Operator", now - dt.timedelta(hours=1))
            ca.save(self.root / "tls" / "ca")
            ca.issue_to(directory, Role.SERVER, "verifier", now, hosts=["127.0.0.1"])
        return directory

    def serve_args(self, listen: str = "127.0.0.1:0", tls: Path | None = None) -> list[str]:
        """``verifier serve`` over this world's files: mutual TLS with the server directory
        ``tls``, plaintext on loopback without."""
        """Operator files for ``geoattest verifier serve`` (real policy), and its flags."""
        registry, policy, key_dir = (
            self.root / "landmarks.json",
            self.root / "policy.json",
            self.root / "result-key",
        )
        if not registry.exists():
            LandmarkRegistry(self.landmark_records()).save(registry)
            regions = {
                name: {"circle": {"lat": lat, "lon": lon, "radius_km": radius}}
                for name, (lat, lon, radius) in REGIONS.items()
            }
            policy.write_text(json.dumps({"id": "test", "version": 1, "regions": regions}))
            self.result_key.save(key_dir)
        return [
            "verifier", "serve", "--listen", listen, "--db", str(self.db_path),
            "--trust-root", str(self.root / "ca.crt"), "--landmarks", str(registry),
            "--policy", str(policy), "--licences", str(self.licences_path),
            "--result-key", str(key_dir), "--verifier-id", VERIFIER_ID,
            "--measurement", MEASUREMENT.hex(),
            *(["--tls", str(tls)] if tls else ["--plaintext"]),
        ]  # fmt: skip

    # --- parts of the verifier ------------------------------------------------------

    def landmark_records(self) -> list[LandmarkRecord]:
        return [
            LandmarkRecord(lid, *LANDMARK_SITES[lid], signer.verifying_key)
            for lid, signer in self.landmarks.items()
        ]

    def appraiser(self) -> ProofAppraiser:
        return ProofAppraiser(
            PipelineConfig(quorum=3, allowed_measurements=frozenset({MEASUREMENT})),
            self.landmark_records(),
            self.revocations,
            region_appraiser(),
        )

    def service(self, store: SqlStore, **config: int) -> VerifierService:
        region = region_appraiser()
        return VerifierService(
            VerifierConfig(VERIFIER_ID, **config),
            anchors=TrustAnchors([self.ca.certificate]),
            appraiser=self.appraiser(),
            licences=LiveLicences.load(store, self.licences_path, region.has_region, NOW_NS),
            signer=ResultSigner(
                self.result_key, verifier_id=VERIFIER_ID, policy_id=region.policy_id
            ),
            store=store,
        )

    def enrolled(
        self, store: SqlStore, device_id: str = "dev-1"
    ) -> tuple[VerifierService, ProvisionedChip]:
        """A service over ``store`` with one chip enrolled in it."""
        service = self.service(store)
        chip = self.chip(device_id)
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        return service, chip

    def admin(self, service: VerifierService, store: SqlStore) -> Admin:
        """The admin API's operations over ``service``, with the registry and an empty
        revocation list written as an operator would."""
        registry, revoked = self.root / "landmarks.json", self.root / "revocations.json"
        LandmarkRegistry(self.landmark_records()).save(registry)
        RevocationList().save(revoked)
        return Admin(
            service, store, OperatorFiles(registry, revoked), region_appraiser().has_region
        )

    # --- chips and their evidence ---------------------------------------------------

    def chip(self, device_id: str = "dev-1") -> ProvisionedChip:
        key = generate_private_key()
        signer = KeySigner(key)
        certificate = self.ca.issue_device_certificate(
            signer.verifying_key.public_key, device_id, "H100", _at(UNIX_NS) - dt.timedelta(hours=1)
        )
        return ProvisionedChip(
            device_id,
            signer,
            certificate.public_bytes(serialization.Encoding.DER),
            ProofChain(device_id),
            key,
        )

    def receipts(
        self, chip: ProvisionedChip, *, rtt_ns: int = MS // 2, unix_ns: int = UNIX_NS
    ) -> list[envelope_pb2.Envelope]:
        return [
            issue_receipt(
                chip.signer,
                signer,
                device_id=chip.device_id,
                landmark_id=lid,
                rtt_ns=rtt_ns,
                unix_ns=unix_ns,
            )
            for lid, signer in self.landmarks.items()
        ]

    def proof(
        self,
        chip: ProvisionedChip,
        *,
        rtt_ns: int = MS // 2,
        unix_ns: int = UNIX_NS,
        advance: bool = True,
    ) -> envelope_pb2.Envelope:
        """The chip's next proof; ``advance`` moves its chain as an agent that sent it would."""
        envelope, chain = chip.chain.extend(
            self.receipts(chip, rtt_ns=rtt_ns, unix_ns=unix_ns),
            measurement=MEASUREMENT,
            signer=chip.signer,
        )
        if advance:
            chip.chain = chain
        return envelope


def _at(unix_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_ns / 1e9, dt.UTC)


class ServerThread:
    """A VerifierServer on its own event loop in a thread, so sync and async clients and
    hypothesis (which drives sync tests) can all call it."""

    def __init__(
        self,
        service: VerifierService,
        *,
        clock: Callable[[], int],
        tls: ServerTls | None = None,
        admin: Admin | None = None,
    ) -> None:
        self.server = VerifierServer(service, clock=clock, tls=tls, admin=admin)
        self.address = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self.server.start("127.0.0.1:0"), self.loop).result(
            timeout=30
        )
        self.address = f"127.0.0.1:{port}"
        return self.address

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(1.0), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Interleaving(SqlStore):
    """A real store that runs ``between`` once, after a batch was appraised and before its
    commit begins: the interleaving another replica's call gives when it lands while this
    one appraises."""

    between: Callable[[], object] | None = None

    def commit(
        self,
        records: Sequence[CommitRecord],
        *,
        heads_read: Mapping[str, bytes] | None = None,
        licences_read: Mapping[str, int] | None = None,
    ) -> None:
        act, self.between = self.between, None
        if act is not None:
            act()
        super().commit(records, heads_read=heads_read, licences_read=licences_read)
