"""Building a verifier from the operator's files, one small step per input.

Everything is loaded and checked once, before a server binds (and before ``serve
--workers N`` forks, so that the workers share the loaded geography copy-on-write); each
process then opens a store of its own and builds its service from what was loaded. The
licences file is applied to the store, where every worker reads the licence in force per
proof, unless it is the file applied last; :meth:`LoadedVerifier.reload_licences` applies
it again on the same rule (``serve`` does on SIGHUP).

Example::

    verifier = load_verifier(files, VerifierOptions("verifier-1", PipelineConfig()))
    with verifier.server() as server:
        ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from geoattest.crypto import KeySigner
from geoattest.errors import GeoattestError
from geoattest.geo import load_policy
from geoattest.pki import LandmarkRegistry, ResultKey, RevocationList, TrustAnchors
from geoattest.pki.tls import TlsIdentity
from geoattest.units import SECOND_NS
from geoattest.verdict import RegionAppraiser
from geoattest.verifier.access import ServerTls
from geoattest.verifier.admin import Admin
from geoattest.verifier.audit_log import AuditLog
from geoattest.verifier.grpc_server import VerifierServer
from geoattest.verifier.licences import ExportLicence, Licences
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser
from geoattest.verifier.pool import POOL_SIZE
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.service import VerifierConfig, VerifierService
from geoattest.verifier.store import SqlStore, Store, Synchronous

_log = logging.getLogger("geoattest.verifier")


@dataclass(frozen=True, slots=True)
class VerifierFiles:
    """The operator's files a verifier is built from."""

    db: str | Path
    """The database: a SQLite file (created if missing; its directory must exist) or a
    ``postgresql://`` URL (the schema is created in an empty database)."""
    trust_roots: Sequence[Path]
    """Manufacturer root certificates (PEM)."""
    landmarks: Path
    """Landmark registry (JSON)."""
    policy: Path
    """Region policy (JSON)."""
    licences: Path
    """Licences (JSON: device -> region, expiry)."""
    result_key: Path
    """Result key directory ('verifier keygen')."""
    revocations: Path | None = None
    """Revocation list (JSON); none: nothing is revoked."""
    tls: Path | None = None
    """The server's TLS directory ('tls issue --role server'); none: plaintext on loopback."""
    audit_log: Path | None = None
    """The tamper-evident audit log (checkpoints beside it); none: no audit log."""


@dataclass(frozen=True, slots=True)
class VerifierOptions:
    """The operator's settings that are not files."""

    verifier_id: str
    """Names this verifier in possession proofs and as the results' issuer."""
    pipeline: PipelineConfig
    cadence_s: int = 3600
    """Expected seconds between proofs; the stale sweep runs four times per cadence."""
    stale_after: int = 3
    """Missed cadences before a device is STALE."""
    synchronous: Synchronous = Synchronous.FULL
    pool_size: int = POOL_SIZE
    """Database connections each process holds at most (see :mod:`~geoattest.verifier.pool`)."""
    checkpoint_every_s: float = 60.0
    """Seconds between the audit log's signed checkpoints."""


@dataclass(frozen=True, slots=True)
class LoadedVerifier:
    """Everything a verifier process is built from, loaded and checked."""

    db: str | Path
    synchronous: Synchronous
    pool_size: int
    config: VerifierConfig
    anchors: TrustAnchors
    appraiser: ProofAppraiser
    licences: Path
    """The licences file, applied to the store at load and on every reload."""
    signer: ResultSigner
    sweep_every_s: float
    tls: ServerTls | None = None
    """Mutual TLS with roles; none: plaintext, loopback only."""
    audit_log: Path | None = None
    checkpoint_every_ns: int = 60 * SECOND_NS
    registry: Path | None = None
    """The landmark registry file (the store's registrations are added to it); none: no
    admin API."""
    revocations: Path | None = None
    """The revocation list file, if the verifier has one."""

    def service(self, store: Store) -> VerifierService:
        return VerifierService(
            self.config,
            anchors=self.anchors,
            appraiser=self.appraiser,
            licences=LiveLicences(store),
            signer=self.signer,
            store=store,
            audit=self._audit_log(),
            files=self._operator_files(),
        )

    def _operator_files(self) -> OperatorFiles | None:
        """The registry and revocation files as this process sees them change."""
        if self.registry is None:
            return None
        return OperatorFiles(self.registry, self.revocations)

    def _audit_log(self) -> AuditLog | None:
        """This process's writer of the shared audit log, signing with the result key."""
        if self.audit_log is None:
            return None
        return AuditLog(
            self.audit_log,
            KeySigner(self.signer.key.private_key),
            origin=f"geoattest-verifier/{self.config.verifier_id}",
            checkpoint_every_ns=self.checkpoint_every_ns,
        )

    def reload_licences(self) -> list[ExportLicence]:
        """Apply the licences file to the store again, if its terms are not those of the
        file applied last (at any replica): the next proof of every device is judged
        against it, on every worker, and an unchanged file undoes no admin API change.
        Returns the licences that changed.

        Raises:
            ConfigError: the file does not load; the licences in force are unchanged.
            StoreUnavailableError: the database failed; nothing was changed.
        """
        return apply_licences(
            self.db,
            self.licences,
            self.appraiser.region.has_region,
            self.synchronous,
            if_file_changed=True,
        )

    def reload_licences_logged(self) -> None:
        """:meth:`reload_licences`, its outcome in the log (a signal handler's form)."""
        try:
            changed = self.reload_licences()
        except GeoattestError as exc:
            _log.error("licence reload refused, the licences in force are unchanged: %s", exc)
            return
        _log.info(
            "licences reloaded from %s: %s",
            self.licences,
            ", ".join(f"{c.device_id} v{c.version}" for c in changed) or "no change",
        )

    @contextmanager
    def server(self) -> Iterator[VerifierServer]:
        """A server (not started) over a store of this process's own, closed after."""
        store = SqlStore.open(self.db, synchronous=self.synchronous, pool_size=self.pool_size)
        service = self.service(store)
        admin = (
            Admin(service, store, service.files, self.appraiser.region.has_region)
            if service.files is not None
            else None
        )
        try:
            yield VerifierServer(
                service, sweep_every_s=self.sweep_every_s, tls=self.tls, admin=admin
            )
        finally:
            if service.audit is not None:
                service.audit.checkpoint(time.time_ns())
                service.audit.close()
            store.close()


def load_verifier(files: VerifierFiles, options: VerifierOptions) -> LoadedVerifier:
    """Load every input and check that the database opens.

    Raises:
        ConfigError: naming the first input that is missing or unusable.
    """
    anchors = TrustAnchors.from_pem_files(files.trust_roots)
    appraiser = _appraiser(files, options.pipeline)
    signer = _result_signer(files.result_key, options.verifier_id, appraiser.region)
    _check_database(files.db, options.synchronous)
    apply_licences(
        files.db,
        files.licences,
        appraiser.region.has_region,
        options.synchronous,
        if_file_changed=True,
    )
    return LoadedVerifier(
        db=files.db,
        synchronous=options.synchronous,
        pool_size=options.pool_size,
        config=VerifierConfig(
            options.verifier_id,
            cadence_ns=options.cadence_s * 1_000_000_000,
            stale_after_cadences=options.stale_after,
        ),
        anchors=anchors,
        appraiser=appraiser,
        licences=files.licences,
        signer=signer,
        sweep_every_s=options.cadence_s / 4,
        tls=ServerTls(TlsIdentity.load(files.tls), tuple(anchors.roots)) if files.tls else None,
        audit_log=files.audit_log,
        checkpoint_every_ns=round(options.checkpoint_every_s * SECOND_NS),
        registry=files.landmarks,
        revocations=files.revocations,
    )


def _appraiser(files: VerifierFiles, config: PipelineConfig) -> ProofAppraiser:
    """The proof pipeline over the registered landmarks, the revocations and the policy."""
    registry = LandmarkRegistry.load(files.landmarks)
    revoked = RevocationList.load(files.revocations) if files.revocations else RevocationList()
    region = load_policy(files.policy).appraiser()
    region.prepare((r.latitude, r.longitude) for r in registry)
    return ProofAppraiser(config, registry, revoked, region)


def _result_signer(key_directory: Path, verifier_id: str, region: RegionAppraiser) -> ResultSigner:
    return ResultSigner(
        ResultKey.load(key_directory), verifier_id=verifier_id, policy_id=region.policy_id
    )


def apply_licences(
    db: str | Path,
    licences: Path,
    has_region: Callable[[str], bool],
    synchronous: Synchronous = Synchronous.FULL,
    *,
    if_file_changed: bool = False,
) -> list[ExportLicence]:
    """Apply a licences file to the store at ``db`` (each region checked with
    ``has_region``, the policy's); returns the licences that changed. With
    ``if_file_changed``, only if its terms are not the file applied last.

    Raises:
        ConfigError: the file does not load, or the database does not open; nothing changed.
        StoreUnavailableError: the database failed; nothing was changed.
    """
    loaded = Licences.load(licences, has_region)
    store = SqlStore.open(db, synchronous=synchronous)
    try:
        return LiveLicences(store).apply(loaded, time.time_ns(), if_file_changed=if_file_changed)
    finally:
        store.close()


def _check_database(db: str | Path, synchronous: Synchronous) -> None:
    """Open and close the database once, so that a bad file fails here, not in N workers."""
    SqlStore.open(db, synchronous=synchronous).close()
