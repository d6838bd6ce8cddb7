"""The verifier's durable store: SQLite in WAL mode through SQLAlchemy Core.

It holds enrolled devices, the export licences in force (each change a new version),
accepted proofs with their evidence (the exact envelope bytes), signed results, alerts,
each device's chain head and the ``(device, previous digest) -> digest`` index that
exposes forks, and the landmarks' peer measurements and the exclusions the audits made of
them. It implements the
pipeline's :class:`~geoattest.verifier.state.TrustedState`, so appraisals read exactly what is
durable.

A proof is acknowledged only after :meth:`SqlStore.commit` returns: one ``BEGIN
IMMEDIATE`` transaction per call, however many proofs it carries, and one WAL sync
per transaction (``synchronous=FULL``: durable across a power cut, not only a process
crash; ``NORMAL`` is offered for benchmarks, where a SIGKILL still loses nothing
because WAL frames written before the crash stay in the file).

Several processes may share one database. A commit is a compare-and-swap on the chain
head: if another writer advanced the device first, :class:`StoreConflictError` is raised,
nothing is written, and the caller appraises again against the new head. Any other
failure of the database is :class:`StoreUnavailableError`: the drivers' own exceptions
(sqlite3, SQLAlchemy) never leave this module.

The proof path (the pipeline's three reads per proof and :meth:`SqlStore.commit`) runs
fixed SQL on one sqlite3 connection the store keeps: profiled under the batch call,
SQLAlchemy's statement building, cache keys and connection checkout cost about 25 times
SQLite's own work. Schema, enrolment, sweeps and reports stay on SQLAlchemy Core.

Example: the store is the pipeline's trusted state; an appraisal that advances a chain
(here made by hand; :mod:`geoattest.verifier.pipeline` shows one made by appraising) is
committed with its evidence and its signed result, and the next proof is appraised
against the head it leaves.

>>> import tempfile
>>> from pathlib import Path
>>> from geoattest.crypto import KeySigner, sha256
>>> from geoattest.verifier.pipeline import Appraisal
>>> from geoattest.verifier.state import ChainHead, DeviceRecord
>>> folder = tempfile.TemporaryDirectory()
>>> store = SqlStore.open(Path(folder.name) / "verifier.db")
>>> key = KeySigner.generate().verifying_key
>>> device = DeviceRecord("chip-de-01", key, "FRA", 1, not_valid_after_ns=2**62, enrolled_at_ns=0)
>>> _ = store.enrol(EnrolledDevice(device, "H100", 2**62, DeviceState.ENROLLED))
>>> digest = sha256(b"the proof's signed payload")
>>> head = ChainHead(counter=1, digest=digest, previous_digest=b"", accepted_at_ns=10)
>>> appraisal = Appraisal(Verdict.ALLOWED, "chip-de-01", 1, proof_digest=digest, new_head=head)
>>> store.commit([CommitRecord(appraisal, b"<envelope>", digest, "<result JWT>", (), 10)])
>>> store.device_for_key(key.key_id).device_id, store.head("chip-de-01").counter
('chip-de-01', 1)
>>> store.close()
>>> folder.cleanup()
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError, GeoattestError, Reason
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.crosscheck import PeerMeasurement
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.pipeline import Appraisal
from geoattest.verifier.state import ChainHead, DeviceRecord


class DeviceState(StrEnum):
    """Where a device stands, as operators and relying parties see it."""

    ENROLLED = "ENROLLED"
    """Enrolled; no proof accepted yet."""
    ATTESTING = "ATTESTING"
    """Its newest accepted evidence is recent enough (see ``VerifierConfig.stale_after``)."""
    STALE = "STALE"
    """No accepted evidence for too long: unreachable, switched off, or hiding."""
    REVOKED = "REVOKED"
    """On the revocation list: nothing it sends is accepted."""


class StoreConflictError(GeoattestError):
    """Another writer advanced a device's chain first; appraise again and retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.STORE_CONFLICT, detail)


class StoreUnavailableError(GeoattestError):
    """The database failed (locked past the busy timeout, I/O error); nothing was written.

    The detail names only the driver's error class: the driver's message (paths, SQL)
    stays in the cause, for the verifier's log.
    """

    def __init__(self, driver_error: Exception) -> None:
        super().__init__(Reason.STORE_UNAVAILABLE, type(driver_error).__name__)


class AlreadyEnrolledError(GeoattestError):
    """The device id or its key is already enrolled with another certificate."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.ALREADY_ENROLLED, detail)


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    """A device row: the pipeline's record plus what the service reports about it."""

    record: DeviceRecord
    model: str
    licence_expires_ns: int
    """When the licence in force ends (as read; the devices row keeps the one at enrolment)."""
    state: DeviceState


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    device_id: str
    kind: str
    reason: str
    detail: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class StoredResult:
    """What the verifier answered for an accepted proof; returned again on a resubmission."""

    device_id: str
    counter: int
    verdict: Verdict
    detail: str
    bounds: tuple[LandmarkBound, ...]
    token: str


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """One appraised proof to store: its evidence, its signed result and its alerts."""

    appraisal: Appraisal
    evidence: bytes
    """The proof envelope exactly as received."""
    digest: bytes
    """SHA-256 of the envelope's signed payload (set for rejected proofs too)."""
    token: str
    alerts: tuple[Alert, ...]
    received_at_ns: int
    stale: bool = False
    """The proof's evidence was already older than the stale window when it arrived: it
    extends the chain but does not make the device ATTESTING (a drip-fed backlog)."""


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    device: EnrolledDevice
    head: ChainHead | None
    last_verdict: Verdict | None
    last_evidence_time_ns: int


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A landmark the peer audit excluded: its receipts count for nothing until an operator
    lifts the exclusion (who, when and why are kept)."""

    landmark_id: str
    excluded_at_ns: int
    detail: str
    lifted_at_ns: int | None = None
    lifted_by: str = ""
    lift_reason: str = ""

    @property
    def in_force(self) -> bool:
        return self.lifted_at_ns is None


@dataclass(frozen=True, slots=True)
class AuditedPeers:
    """What the store holds for a peer audit when it decides on exclusions."""

    measurements: tuple[tuple[PeerMeasurement, int], ...]
    """Every stored peer measurement in the window, with the verifier time it arrived."""
    excluded: frozenset[str]
    """Landmarks whose exclusion is in force."""
    last_lifted_ns: Mapping[str, int]
    """When each landmark's last exclusion was lifted."""


class AuditDecision(Protocol):
    def __call__(self, audited: AuditedPeers) -> Sequence[tuple[str, Alert]]:
        """The landmarks to exclude now, each with its alert."""
        ...


class Store(Protocol):
    """What the service needs from storage; :class:`SqlStore` is the implementation."""

    def enrolled_for_keys(
        self, key_ids: Collection[str]
    ) -> dict[str, tuple[EnrolledDevice, ChainHead | None]]: ...

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None: ...

    def enrol(self, device: EnrolledDevice) -> EnrolledDevice: ...

    def commit(
        self, records: Sequence[CommitRecord], *, heads_read: Mapping[str, bytes] | None = None
    ) -> None: ...

    def stored_result(self, device_id: str, digest: bytes) -> StoredResult | None: ...

    def summary(self, device_id: str) -> DeviceSummary | None: ...

    def mark_stale(self, cutoff_ns: int, alert_for: AlertFactory) -> list[Alert]: ...

    def licence(self, device_id: str) -> ExportLicence | None: ...

    def change_licences(
        self,
        licences: Sequence[ExportLicence],
        now_ns: int,
        *,
        withdraw_others: bool,
        alert_for: LicenceAlertFactory,
    ) -> list[ExportLicence]: ...

    def alerts(self, device_id: str = "") -> list[Alert]: ...

    def record_peer_audit(
        self,
        measured: Sequence[tuple[bytes, PeerMeasurement]],
        now_ns: int,
        since_ns: int,
        decide: AuditDecision,
    ) -> tuple[int, list[tuple[str, Alert]]]: ...

    def excluded_landmarks(self) -> frozenset[str]: ...

    def exclude_landmark(
        self, landmark_id: str, now_ns: int, *, by: str, why: str
    ) -> Exclusion: ...

    def lift_exclusion(self, landmark_id: str, now_ns: int, *, by: str, why: str) -> Exclusion: ...

    def close(self) -> None: ...


class AlertFactory(Protocol):
    def __call__(self, device_id: str, last_seen_ns: int) -> Alert: ...


LicenceAlertFactory = Callable[[ExportLicence], Alert]
"""Makes the alert for an enrolled device's licence that was withdrawn."""


metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("key_id", String(64), nullable=False, unique=True),
    Column("spki", LargeBinary, nullable=False),
    Column("model", String(128), nullable=False),
    Column("cert_serial", String(64), nullable=False),
    Column("not_valid_after_ns", BigInteger, nullable=False),
    Column("licensed_region", String(128), nullable=False),
    Column("licence_expires_ns", BigInteger, nullable=False),
    Column("enrolled_at_ns", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
)

proofs = Table(
    "proofs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", ForeignKey("devices.device_id"), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("previous_digest", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("bounds", Text, nullable=False),
    Column("evidence_time_ns", BigInteger, nullable=False),
    Column("received_at_ns", BigInteger, nullable=False),
    Index("proofs_by_digest", "device_id", "digest"),
)

results = Table(
    "results",
    metadata,
    Column("proof_id", ForeignKey("proofs.id"), primary_key=True),
    Column("token", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(32), nullable=False, unique=True),
    Column("device_id", String(128), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("proof_id", ForeignKey("proofs.id"), nullable=True),
)

chain_heads = Table(
    "chain_heads",
    metadata,
    Column("device_id", ForeignKey("devices.device_id"), primary_key=True),
    Column("counter", BigInteger, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("previous_digest", LargeBinary, nullable=False),
    Column("accepted_at_ns", BigInteger, nullable=False),
    Column("landmark_times", Text, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("evidence_time_ns", BigInteger, nullable=False),
)

last_fixes = Table(
    "last_fixes",
    metadata,
    Column("device_id", ForeignKey("devices.device_id"), primary_key=True),
    Column("fix", Text, nullable=False),
    Column("fix_time_ns", BigInteger, nullable=False),
)
"""Each device's history fix (``ChainHead.fix``: the disks its accepted history still
places it in, see :mod:`geoattest.verifier.history`), kept beside its chain head for the
impossible-travel check and moved in the same transaction; a device with no row has no
fix yet. A store written when this row held only the last proof's disks opens as it is:
those disks are a sound, if looser, history fix."""

export_licences = Table(
    "licences",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("licence_id", String(128), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("region", String(128), nullable=False),
    Column("valid_until_ns", BigInteger, nullable=False),
    Column("withdrawn", Boolean, nullable=False),
    Column("changed_at_ns", BigInteger, nullable=False),
)
"""The export licence in force for each device (enrolled or not yet): every change of its
terms raises ``version`` by one. Read with the device on every appraisal."""

successors = Table(
    "successors",
    metadata,
    Column("device_id", ForeignKey("devices.device_id"), primary_key=True),
    Column("previous_digest", LargeBinary, primary_key=True),
    Column("digest", LargeBinary, nullable=False),
)


peer_measurements = Table(
    "peer_measurements",
    metadata,
    Column("digest", LargeBinary, primary_key=True),
    Column("timer", String(128), nullable=False),
    Column("peer", String(128), nullable=False),
    Column("rtt_min_ns", BigInteger, nullable=False),
    Column("challenges", Text, nullable=False),
    Column("landmark_time_ns", BigInteger, nullable=False),
    Column("received_at_ns", BigInteger, nullable=False, index=True),
)
"""Landmarks timing each other, by the digest of the receipt's signed payload (a receipt
handed in twice counts once); kept for the audit window."""

landmark_exclusions = Table(
    "landmark_exclusions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("landmark_id", String(128), nullable=False, index=True),
    Column("excluded_at_ns", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
    Column("lifted_at_ns", BigInteger, nullable=True),
    Column("lifted_by", String(128), nullable=False),
    Column("lift_reason", Text, nullable=False),
)
"""Every exclusion the peer audit made, in force until ``lifted_at_ns`` is set."""


class Synchronous(StrEnum):
    """SQLite ``synchronous`` level for the WAL."""

    FULL = "FULL"
    """Sync the WAL on every commit: an acknowledged proof survives a power cut."""
    NORMAL = "NORMAL"
    """Sync at checkpoints only: survives a process crash (SIGKILL), not a power cut."""


def _bounds_json(bounds: Sequence[LandmarkBound]) -> str:
    return orjson.dumps(
        [[b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, b.motion_km] for b in bounds]
    ).decode()


def _bounds_from_json(text: str) -> tuple[LandmarkBound, ...]:
    return tuple(
        LandmarkBound(str(lid), float(lat), float(lon), int(rtt), float(motion))
        for lid, lat, lon, rtt, motion in json.loads(text)
    )


class SqlStore:
    """A :class:`Store` and :class:`~geoattest.verifier.state.TrustedState` over one SQLite file.

    Safe to share between threads: the proof path's own connection is used under a lock.
    """

    def __init__(self, engine: Engine, db: sqlite3.Connection) -> None:
        self._engine = engine
        self._db = db
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        synchronous: Synchronous = Synchronous.FULL,
        busy_timeout_ms: int = 10_000,
    ) -> SqlStore:
        """Open (creating if needed) the database at ``path``.

        Raises:
            ConfigError: the file cannot be opened or is not a geoattest database.
        """
        if not path.parent.is_dir():
            raise ConfigError(f"database {path}: directory {path.parent} does not exist")
        connect = functools.partial(_connect, path, synchronous, busy_timeout_ms)
        engine = create_engine(f"sqlite:///{path}", creator=connect)
        try:
            with _transaction(engine) as conn:
                metadata.create_all(conn)
        except DBAPIError as exc:
            engine.dispose()
            raise ConfigError(f"database {path} cannot be opened: {exc.orig}") from exc
        return cls(engine, connect())

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with _sqlalchemy_errors(), _transaction(self._engine) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _sqlalchemy_errors(), self._engine.connect() as conn:
            yield conn

    def _one(self, sql: str, *params: object) -> sqlite3.Row | None:
        with self._lock, _sqlite_errors():
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
        return row

    # --- TrustedState -------------------------------------------------------------------

    def device_for_key(self, key_id: str) -> DeviceRecord | None:
        found = self.enrolled_for_keys([key_id]).get(key_id)
        return None if found is None else found[0].record

    def enrolled_for_keys(
        self, key_ids: Collection[str]
    ) -> dict[str, tuple[EnrolledDevice, ChainHead | None]]:
        """The devices enrolled under these keys (by key id), each with its chain head and
        history fix, read in one statement per 500 keys: a batch's whole trusted state at
        once, and each device's row and head from one snapshot."""
        found: dict[str, tuple[EnrolledDevice, ChainHead | None]] = {}
        keys = list(dict.fromkeys(key_ids))
        for start in range(0, len(keys), _KEYS_PER_READ):
            chunk = keys[start : start + _KEYS_PER_READ]
            sql = _DEVICES_WITH_HEADS.format(", ".join("?" * len(chunk)))
            with self._lock, _sqlite_errors():
                rows = self._db.execute(sql, chunk).fetchall()
            for row in rows:
                head = None if row["counter"] is None else _head_from_row(row)
                found[row["key_id"]] = (_device_from_row(row), head)
        return found

    def head(self, device_id: str) -> ChainHead | None:
        row = self._one(_HEAD, device_id)
        return None if row is None else _head_from_row(row)

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        row = self._one(_SUCCESSOR, device_id, previous_digest)
        return None if row is None else bytes(row[0])

    # --- writes -----------------------------------------------------------------------

    def enrol(self, device: EnrolledDevice) -> EnrolledDevice:
        """Store a new device; the same certificate again is the same enrolment.

        The row keeps the licence terms at enrolment; appraisals read the licence in force
        (the ``licences`` table) instead.

        Raises:
            AlreadyEnrolledError: the id or the key is enrolled with another certificate.
        """
        record = device.record
        with self._write() as conn:
            row = conn.execute(
                select(devices.c.device_id, devices.c.key_id, devices.c.cert_serial).where(
                    (devices.c.device_id == record.device_id)
                    | (devices.c.key_id == record.verifying_key.key_id)
                )
            ).first()
            if row is not None:
                if tuple(row) != (
                    record.device_id,
                    record.verifying_key.key_id,
                    str(record.certificate_serial),
                ):
                    raise AlreadyEnrolledError(record.device_id)
                conn.execute(
                    update(devices)
                    .where(devices.c.device_id == record.device_id)
                    .values(
                        licensed_region=record.licensed_region,
                        licence_expires_ns=device.licence_expires_ns,
                    )
                )
                return device
            conn.execute(
                insert(devices).values(
                    device_id=record.device_id,
                    key_id=record.verifying_key.key_id,
                    spki=record.verifying_key.der(),
                    model=device.model,
                    cert_serial=str(record.certificate_serial),
                    not_valid_after_ns=record.not_valid_after_ns,
                    licensed_region=record.licensed_region,
                    licence_expires_ns=device.licence_expires_ns,
                    enrolled_at_ns=record.enrolled_at_ns,
                    state=device.state.value,
                )
            )
        return device

    def commit(
        self, records: Sequence[CommitRecord], *, heads_read: Mapping[str, bytes] | None = None
    ) -> None:
        """Store appraised proofs in one transaction; chain heads advance by CAS.

        ``heads_read`` maps each device the records were appraised against to the head
        digest read for it (``b""``: no head): if any head has moved since, another writer
        got there first and the appraisals (a rejection as much as an acceptance) may be
        stale, so nothing is written. Only appraisals with a new head, or with alerts,
        leave anything behind: garbage from unknown keys changes nothing.

        Raises:
            StoreConflictError: another writer advanced one of these chains first; nothing
                was written.
            StoreUnavailableError: SQLite failed; nothing was written.
        """
        writes = any(r.appraisal.new_head is not None or r.alerts for r in records)
        if not writes and not heads_read:
            return
        with self._lock, _sqlite_errors():
            db = self._db
            db.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            try:
                _check_heads(db, heads_read or {})
                for record in records:
                    _commit_one(db, record)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def mark_stale(self, cutoff_ns: int, alert_for: AlertFactory) -> list[Alert]:
        """Mark STALE every live device with no accepted evidence since ``cutoff_ns``: by
        the landmark time of its newest accepted round (its enrolment before it has one),
        never by when a proof arrived, so a backlog delivered late keeps nothing alive."""
        last_seen = func.coalesce(chain_heads.c.evidence_time_ns, devices.c.enrolled_at_ns)
        with self._write() as conn:
            rows = conn.execute(
                select(devices.c.device_id, last_seen)
                .select_from(devices.outerjoin(chain_heads))
                .where(
                    devices.c.state.in_([DeviceState.ENROLLED.value, DeviceState.ATTESTING.value]),
                    last_seen < cutoff_ns,
                )
            ).all()
            raised = [alert_for(str(device_id), int(seen)) for device_id, seen in rows]
            for alert in raised:
                conn.execute(
                    update(devices)
                    .where(devices.c.device_id == alert.device_id)
                    .values(state=DeviceState.STALE.value)
                )
                conn.execute(insert(alerts).values(**_alert_values(alert), proof_id=None))
        return raised

    # --- licences -----------------------------------------------------------------------

    def licence(self, device_id: str) -> ExportLicence | None:
        """The device's licence as it stands (withdrawn or not), if one was ever stored."""
        with self._read() as conn:
            row = conn.execute(
                select(export_licences).where(export_licences.c.device_id == device_id)
            ).first()
        return None if row is None else _licence_from_row(row._mapping)

    def change_licences(
        self,
        licences: Sequence[ExportLicence],
        now_ns: int,
        *,
        withdraw_others: bool,
        alert_for: LicenceAlertFactory,
    ) -> list[ExportLicence]:
        """Make ``licences`` the ones in force, in one transaction: each whose terms differ
        from the stored licence's gets the next version (versions given are ignored); with
        ``withdraw_others``, every stored licence not given is withdrawn. A licence of an
        enrolled device that becomes withdrawn raises the alert ``alert_for`` makes.

        Returns:
            The new versions, in the order given (withdrawals of others last).
        """
        with self._write() as conn:
            held = {
                row.device_id: _licence_from_row(row._mapping)
                for row in conn.execute(select(export_licences)).all()
            }
            wanted = {licence.device_id: licence for licence in licences}
            if withdraw_others:
                for device_id, licence in held.items():
                    if device_id not in wanted:
                        wanted[device_id] = replace(licence, withdrawn=True)
            changed: list[ExportLicence] = []
            for device_id, licence in wanted.items():
                before = held.get(device_id)
                if before is not None and before.same_terms(licence):
                    continue
                new = replace(
                    licence,
                    licence_id=licence.name,
                    version=(before.version if before else 0) + 1,
                )
                values = {
                    "licence_id": new.licence_id,
                    "version": new.version,
                    "region": new.region,
                    "valid_until_ns": new.valid_until_ns,
                    "withdrawn": new.withdrawn,
                    "changed_at_ns": now_ns,
                }
                if before is None:
                    conn.execute(insert(export_licences).values(device_id=device_id, **values))
                else:
                    conn.execute(
                        update(export_licences)
                        .where(export_licences.c.device_id == device_id)
                        .values(**values)
                    )
                changed.append(new)
            newly_withdrawn = [
                licence
                for licence in changed
                if licence.withdrawn
                and not (licence.device_id in held and held[licence.device_id].withdrawn)
            ]
            enrolled = set(
                conn.execute(
                    select(devices.c.device_id).where(
                        devices.c.device_id.in_([licence.device_id for licence in newly_withdrawn])
                    )
                ).scalars()
            )
            for licence in newly_withdrawn:
                if licence.device_id in enrolled:
                    conn.execute(insert(alerts).values(**_alert_values(alert_for(licence))))
        return changed

    # --- reads for the service ----------------------------------------------------------

    def stored_result(self, device_id: str, digest: bytes) -> StoredResult | None:
        with self._read() as conn:
            row = conn.execute(
                select(proofs, results.c.token)
                .select_from(proofs.outerjoin(results))
                .where(
                    proofs.c.device_id == device_id,
                    proofs.c.digest == digest,
                    proofs.c.accepted.is_(True),
                )
            ).first()
        if row is None:
            return None
        m = row._mapping
        return StoredResult(
            device_id=m["device_id"],
            counter=m["counter"],
            verdict=Verdict(m["verdict"]),
            detail=m["detail"],
            bounds=_bounds_from_json(m["bounds"]),
            token=m["token"] or "",
        )

    def summary(self, device_id: str) -> DeviceSummary | None:
        row = self._one(_DEVICE_BY_ID, device_id)
        if row is None:
            return None
        head = self._one(_HEAD, device_id)
        if head is None:
            return DeviceSummary(_device_from_row(row), None, None, 0)
        return DeviceSummary(
            device=_device_from_row(row),
            head=_head_from_row(head),
            last_verdict=Verdict(head["verdict"]),
            last_evidence_time_ns=head["evidence_time_ns"],
        )

    def alerts(self, device_id: str = "") -> list[Alert]:
        query = select(alerts).order_by(alerts.c.id)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [Alert(r.alert_id, r.device_id, r.kind, r.reason, r.detail, r.time_ns) for r in rows]

    # --- landmark audits ----------------------------------------------------------------

    def record_peer_audit(
        self,
        measured: Sequence[tuple[bytes, PeerMeasurement]],
        now_ns: int,
        since_ns: int,
        decide: AuditDecision,
    ) -> tuple[int, list[tuple[str, Alert]]]:
        """Store peer measurements (by receipt digest), forget those that arrived before
        ``since_ns``, and exclude the landmarks ``decide`` names over what is left, with
        their alerts: one transaction, so two workers auditing at once exclude a landmark
        once. Returns how many measurements were new, and each landmark excluded with its
        alert.
        """
        with self._write() as conn:
            conn.execute(
                delete(peer_measurements).where(peer_measurements.c.received_at_ns < since_ns)
            )
            stored = 0
            for digest, m in measured:
                stored += conn.execute(
                    sqlite_insert(peer_measurements)
                    .values(
                        digest=digest,
                        timer=m.timer,
                        peer=m.peer,
                        rtt_min_ns=m.rtt_min_ns,
                        challenges=orjson.dumps([c.hex() for c in m.challenges]).decode(),
                        landmark_time_ns=m.time_ns,
                        received_at_ns=now_ns,
                    )
                    .on_conflict_do_nothing()
                ).rowcount
            rows = conn.execute(
                select(peer_measurements).order_by(peer_measurements.c.received_at_ns)
            ).all()
            exclusions = _exclusions(conn)
            audited = AuditedPeers(
                measurements=tuple(
                    (
                        PeerMeasurement(
                            r.timer,
                            r.peer,
                            r.rtt_min_ns,
                            0,
                            tuple(bytes.fromhex(c) for c in json.loads(r.challenges)),
                            r.landmark_time_ns,
                        ),
                        r.received_at_ns,
                    )
                    for r in rows
                ),
                excluded=frozenset(e.landmark_id for e in exclusions if e.in_force),
                last_lifted_ns={
                    e.landmark_id: e.lifted_at_ns for e in exclusions if e.lifted_at_ns is not None
                },
            )
            raised = list(decide(audited))
            for landmark_id, alert in raised:
                conn.execute(
                    insert(landmark_exclusions).values(
                        landmark_id=landmark_id,
                        excluded_at_ns=alert.time_ns,
                        detail=alert.detail,
                        lifted_at_ns=None,
                        lifted_by="",
                        lift_reason="",
                    )
                )
                conn.execute(insert(alerts).values(**_alert_values(alert), proof_id=None))
        return stored, raised

    def excluded_landmarks(self) -> frozenset[str]:
        """Landmarks whose exclusion is in force (read at every batch: it is small)."""
        with self._lock, _sqlite_errors():
            rows = self._db.execute(_EXCLUDED).fetchall()
        return frozenset(str(row[0]) for row in rows)

    def exclusions(self) -> list[Exclusion]:
        """Every exclusion, in force or lifted, oldest first."""
        with self._read() as conn:
            return _exclusions(conn)

    def exclude_landmark(self, landmark_id: str, now_ns: int, *, by: str, why: str) -> Exclusion:
        """Exclude ``landmark_id`` by an operator's decision, as a peer audit would: its
        receipts count for nothing, on every worker, until the exclusion is lifted.

        Raises:
            ConfigError: an exclusion of ``landmark_id`` is already in force.
        """
        excluded = Exclusion(landmark_id, now_ns, f"excluded by {by}: {why}")
        with self._write() as conn:
            if any(e.landmark_id == landmark_id and e.in_force for e in _exclusions(conn)):
                raise ConfigError(f"landmark {landmark_id[:128]} is already excluded")
            conn.execute(
                insert(landmark_exclusions).values(
                    landmark_id=landmark_id,
                    excluded_at_ns=now_ns,
                    detail=excluded.detail,
                    lifted_at_ns=None,
                    lifted_by="",
                    lift_reason="",
                )
            )
        return excluded

    def lift_exclusion(self, landmark_id: str, now_ns: int, *, by: str, why: str) -> Exclusion:
        """Lift the exclusion of ``landmark_id``, recording who, when and why. Measurements
        that arrived before now no longer count against it; new ones do.

        Raises:
            ConfigError: no exclusion of ``landmark_id`` is in force.
        """
        with self._write() as conn:
            found = [e for e in _exclusions(conn) if e.landmark_id == landmark_id and e.in_force]
            if not found:
                raise ConfigError(f"landmark {landmark_id[:128]} is not excluded")
            conn.execute(
                update(landmark_exclusions)
                .where(
                    landmark_exclusions.c.landmark_id == landmark_id,
                    landmark_exclusions.c.lifted_at_ns.is_(None),
                )
                .values(lifted_at_ns=now_ns, lifted_by=by, lift_reason=why)
            )
        return replace(found[-1], lifted_at_ns=now_ns, lifted_by=by, lift_reason=why)

    def accepted_counters(self, device_id: str) -> list[int]:
        """Counters of the device's accepted proofs, in order (audits and tests)."""
        with self._read() as conn:
            return [
                int(c)
                for c in conn.execute(
                    select(proofs.c.counter)
                    .where(proofs.c.device_id == device_id, proofs.c.accepted.is_(True))
                    .order_by(proofs.c.counter)
                ).scalars()
            ]

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for comparing the whole state before and after."""
        with self._read() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(select(table)).all()]
                for table in metadata.sorted_tables
            }


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "device_id": alert.device_id,
        "kind": alert.kind,
        "reason": alert.reason,
        "detail": alert.detail,
        "time_ns": alert.time_ns,
    }


def _exclusions(conn: Connection) -> list[Exclusion]:
    rows = conn.execute(select(landmark_exclusions).order_by(landmark_exclusions.c.id)).all()
    return [
        Exclusion(
            r.landmark_id, r.excluded_at_ns, r.detail, r.lifted_at_ns, r.lifted_by, r.lift_reason
        )
        for r in rows
    ]


@functools.lru_cache(maxsize=65536)
def _verifying_key(spki: bytes) -> VerifyingKey:
    """Parsing a key costs more than the row read; keys of a device never change."""
    return VerifyingKey.from_der(spki)


def _device_from_row(m: Any) -> EnrolledDevice:
    """A device row joined with its licence (``_LICENCE_COLUMNS``): judged by the licence
    in force, never by the one it was enrolled under."""
    licence = _licence_in_force(m)
    return EnrolledDevice(
        record=DeviceRecord(
            device_id=m["device_id"],
            verifying_key=_verifying_key(bytes(m["spki"])),
            licensed_region=licence.region,
            certificate_serial=int(m["cert_serial"]),
            not_valid_after_ns=m["not_valid_after_ns"],
            enrolled_at_ns=m["enrolled_at_ns"],
            licence=licence,
        ),
        model=m["model"],
        licence_expires_ns=licence.valid_until_ns,
        state=DeviceState(m["state"]),
    )


def _licence_in_force(m: Any) -> ExportLicence:
    if m["l_version"] is None:  # none held: version 0, which licenses nothing
        return ExportLicence(m["device_id"], m["licensed_region"], 0)
    return ExportLicence(
        device_id=m["device_id"],
        region=m["l_region"],
        valid_until_ns=m["l_valid_until_ns"],
        licence_id=m["l_id"],
        version=m["l_version"],
        withdrawn=bool(m["l_withdrawn"]),
    )


def _licence_from_row(m: Any) -> ExportLicence:
    return ExportLicence(
        device_id=m["device_id"],
        region=m["region"],
        valid_until_ns=m["valid_until_ns"],
        licence_id=m["licence_id"],
        version=m["version"],
        withdrawn=bool(m["withdrawn"]),
    )


def _head_from_row(m: Any) -> ChainHead:
    return ChainHead(
        counter=m["counter"],
        digest=bytes(m["digest"]),
        previous_digest=bytes(m["previous_digest"]),
        accepted_at_ns=m["accepted_at_ns"],
        landmark_times={str(k): int(v) for k, v in json.loads(m["landmark_times"]).items()},
        fix=_bounds_from_json(m["fix"] or "[]"),
        fix_time_ns=m["fix_time_ns"] or 0,
    )


def _connect(path: Path, synchronous: Synchronous, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in WAL mode with the store's pragmas.

    ``isolation_level=None``: the driver never opens transactions on its own; writers open
    ``BEGIN IMMEDIATE`` themselves (no lock-upgrade deadlocks between processes).
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous.value}")
    db.execute("PRAGMA foreign_keys = ON")
    return db


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    """The proof path's SQLite failures as the store's own errors."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise StoreConflictError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StoreUnavailableError(exc) from exc


@contextmanager
def _sqlalchemy_errors() -> Iterator[None]:
    """SQLAlchemy's failures (enrolment, sweeps, reads) as the store's own error.

    Its writes hold the write lock from ``BEGIN IMMEDIATE`` on, so none loses a race to
    another writer: whatever fails there, the database failed.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(exc) from exc


_DEVICE_BY_ID = (
    "SELECT d.*, l.licence_id AS l_id, l.version AS l_version, l.region AS l_region,"
    " l.valid_until_ns AS l_valid_until_ns, l.withdrawn AS l_withdrawn FROM devices AS d"
    " LEFT JOIN licences AS l ON l.device_id = d.device_id WHERE d.device_id = ?"
)
"""A device with the licence in force (``l_version`` is NULL where none is held)."""
_HEAD = (
    "SELECT h.*, f.fix, f.fix_time_ns FROM chain_heads AS h"
    " LEFT JOIN last_fixes AS f ON f.device_id = h.device_id WHERE h.device_id = ?"
)
"""A device's chain head with its history fix, if it has one."""
_DEVICES_WITH_HEADS = (
    "SELECT d.*, h.counter, h.digest, h.previous_digest, h.accepted_at_ns, h.landmark_times,"
    " f.fix, f.fix_time_ns, l.licence_id AS l_id, l.version AS l_version,"
    " l.region AS l_region, l.valid_until_ns AS l_valid_until_ns, l.withdrawn AS l_withdrawn"
    " FROM devices AS d"
    " LEFT JOIN chain_heads AS h ON h.device_id = d.device_id"
    " LEFT JOIN last_fixes AS f ON f.device_id = d.device_id"
    " LEFT JOIN licences AS l ON l.device_id = d.device_id WHERE d.key_id IN ({})"
)
"""Devices by key id with their heads, fixes and licences (``counter`` is NULL without a
head)."""

_HEAD_DIGESTS = "SELECT device_id, digest FROM chain_heads WHERE device_id IN ({})"
_EXCLUDED = "SELECT landmark_id FROM landmark_exclusions WHERE lifted_at_ns IS NULL"
_KEYS_PER_READ = 500
"""Key ids per read, well under SQLite's limit on bound parameters."""
_SUCCESSOR = "SELECT digest FROM successors WHERE device_id = ? AND previous_digest = ?"
_INSERT_PROOF = (
    "INSERT INTO proofs (device_id, counter, digest, previous_digest, envelope, accepted,"
    " verdict, reason, detail, bounds, evidence_time_ns, received_at_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RESULT = "INSERT INTO results (proof_id, token) VALUES (?, ?)"
_INSERT_ALERT = (
    "INSERT INTO alerts (alert_id, device_id, kind, reason, detail, time_ns, proof_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SUCCESSOR = "INSERT INTO successors (device_id, previous_digest, digest) VALUES (?, ?, ?)"
"""The successor index's primary key refuses a second extension of one predecessor."""
_MOVE_HEAD = (
    "UPDATE chain_heads SET (counter, digest, previous_digest, accepted_at_ns, landmark_times,"
    " verdict, evidence_time_ns) = (?, ?, ?, ?, ?, ?, ?) WHERE device_id = ? AND digest = ?"
)
"""The compare-and-swap: the head moves only if it is still the proof's predecessor."""
_FIRST_HEAD = (
    "INSERT INTO chain_heads (counter, digest, previous_digest, accepted_at_ns, landmark_times,"
    " verdict, evidence_time_ns, device_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_FIX = (
    "INSERT INTO last_fixes (device_id, fix, fix_time_ns) VALUES (?, ?, ?)"
    " ON CONFLICT (device_id) DO UPDATE SET fix = excluded.fix, fix_time_ns = excluded.fix_time_ns"
)
_ATTESTING = "UPDATE devices SET state = ? WHERE device_id = ? AND state <> ?"


def _check_heads(db: sqlite3.Connection, heads_read: Mapping[str, bytes]) -> None:
    """Fail if any device's head is no longer the one read (``b""``: none)."""
    devices_read = list(heads_read)
    for start in range(0, len(devices_read), _KEYS_PER_READ):
        chunk = devices_read[start : start + _KEYS_PER_READ]
        now = dict.fromkeys(chunk, b"")
        sql = _HEAD_DIGESTS.format(", ".join("?" * len(chunk)))
        now.update((device_id, bytes(digest)) for device_id, digest in db.execute(sql, chunk))
        for device_id in chunk:
            if now[device_id] != heads_read[device_id]:
                raise StoreConflictError(f"chain head of {device_id} moved since it was read")


def _commit_one(db: sqlite3.Connection, record: CommitRecord) -> None:
    appraisal = record.appraisal
    head = appraisal.new_head
    if head is None and not record.alerts:
        return
    proof_id = None
    bounds_json = _bounds_json(appraisal.bounds)
    if appraisal.device_id:
        proof_id = db.execute(
            _INSERT_PROOF,
            (
                appraisal.device_id,
                appraisal.counter,
                record.digest,
                head.previous_digest if head else b"",
                record.evidence,
                head is not None,
                appraisal.verdict.value,
                appraisal.reason.value if appraisal.reason else "",
                appraisal.detail,
                bounds_json,
                appraisal.evidence_time_ns,
                record.received_at_ns,
            ),
        ).lastrowid
        if record.token:
            db.execute(_INSERT_RESULT, (proof_id, record.token))
    if head is not None:
        _advance(db, appraisal, head, bounds_json, record.stale)
    for alert in record.alerts:
        db.execute(_INSERT_ALERT, (*_alert_values(alert).values(), proof_id))


def _advance(
    db: sqlite3.Connection, appraisal: Appraisal, head: ChainHead, bounds_json: str, stale: bool
) -> None:
    device_id = appraisal.device_id
    db.execute(_INSERT_SUCCESSOR, (device_id, head.previous_digest, head.digest))
    values = (
        head.counter,
        head.digest,
        head.previous_digest,
        head.accepted_at_ns,
        orjson.dumps(dict(head.landmark_times), option=orjson.OPT_SORT_KEYS).decode(),
        appraisal.verdict.value,
        appraisal.evidence_time_ns,
    )
    if head.previous_digest:
        if db.execute(_MOVE_HEAD, (*values, device_id, head.previous_digest)).rowcount != 1:
            raise StoreConflictError(f"chain head of {device_id} moved")
    else:
        db.execute(_FIRST_HEAD, (*values, device_id))
    fix = bounds_json if head.fix is appraisal.bounds else _bounds_json(head.fix)
    db.execute(_UPSERT_FIX, (device_id, fix, head.fix_time_ns))
    if not stale:
        attesting = DeviceState.ATTESTING.value
        db.execute(_ATTESTING, (attesting, device_id, attesting))
