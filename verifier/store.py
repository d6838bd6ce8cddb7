"""The verifier's durable store: SQLite in WAL mode through SQLAlchemy Core.

It holds enrolled devices, accepted proofs with their evidence (the exact envelope
bytes), signed results, alerts, each device's chain head and the
``(device, previous digest) -> digest`` index that exposes forks. It implements the
pipeline's :class:`~verifier.state.TrustedState`, so appraisals read exactly what is
durable.

A proof is acknowledged only after :meth:`SqlStore.commit` returns: one ``BEGIN
IMMEDIATE`` transaction per call, however many proofs it carries, and one WAL sync
per transaction (``synchronous=FULL``: durable across a power cut, not only a process
crash; ``NORMAL`` is offered for benchmarks, where a SIGKILL still loses nothing
because WAL frames written before the crash stay in the file).

Several processes may share one database. A commit is a compare-and-swap on the chain
head: if another writer advanced the device first, :class:`StoreConflictError` is raised,
nothing is written, and the caller appraises again against the new head.

Example::

    store = SqlStore.open(Path("verifier.db"))
    appraisal = appraiser.appraise(envelope, store, now_ns)
    store.commit([CommitRecord(appraisal, envelope_bytes, token, alerts, now_ns)])
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

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
    Select,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError, GeoattestError, Reason
from geoattest.verdict import LandmarkBound, Verdict
from verifier.pipeline import Appraisal
from verifier.state import ChainHead, DeviceRecord


class DeviceState(StrEnum):
    """Where a device stands, as operators and relying parties see it."""

    ENROLLED = "ENROLLED"
    """Enrolled; no proof accepted yet."""
    ATTESTING = "ATTESTING"
    """Its last accepted proof is recent enough (see ``VerifierConfig.stale_after``)."""
    STALE = "STALE"
    """No accepted proof for too long: unreachable, switched off, or hiding."""
    REVOKED = "REVOKED"
    """On the revocation list: nothing it sends is accepted."""


class StoreConflictError(Exception):
    """Another writer advanced a device's chain first; appraise again and retry."""


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


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    device: EnrolledDevice
    head: ChainHead | None
    last_verdict: Verdict | None
    last_evidence_time_ns: int


class Store(Protocol):
    """What the service needs from storage; :class:`SqlStore` is the implementation."""

    def enrolled_for_key(self, key_id: str) -> EnrolledDevice | None: ...

    def head(self, device_id: str) -> ChainHead | None: ...

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None: ...

    def enrol(self, device: EnrolledDevice) -> EnrolledDevice: ...

    def commit(self, records: Sequence[CommitRecord]) -> None: ...

    def stored_result(self, device_id: str, digest: bytes) -> StoredResult | None: ...

    def summary(self, device_id: str) -> DeviceSummary | None: ...

    def mark_stale(self, cutoff_ns: int, alert_for: AlertFactory) -> list[Alert]: ...

    def alerts(self, device_id: str = "") -> list[Alert]: ...

    def close(self) -> None: ...


class AlertFactory(Protocol):
    def __call__(self, device_id: str, last_seen_ns: int) -> Alert: ...


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
"""Each device's last consistent fix (its accepted proof's disks), kept beside its chain
head for the impossible-travel check; a device with no row has no fix yet."""

successors = Table(
    "successors",
    metadata,
    Column("device_id", ForeignKey("devices.device_id"), primary_key=True),
    Column("previous_digest", LargeBinary, primary_key=True),
    Column("digest", LargeBinary, nullable=False),
)


class Synchronous(StrEnum):
    """SQLite ``synchronous`` level for the WAL."""

    FULL = "FULL"
    """Sync the WAL on every commit: an acknowledged proof survives a power cut."""
    NORMAL = "NORMAL"
    """Sync at checkpoints only: survives a process crash (SIGKILL), not a power cut."""


def _bounds_json(bounds: Sequence[LandmarkBound]) -> str:
    return json.dumps(
        [[b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, b.motion_km] for b in bounds]
    )


def _bounds_from_json(text: str) -> tuple[LandmarkBound, ...]:
    return tuple(
        LandmarkBound(str(lid), float(lat), float(lon), int(rtt), float(motion))
        for lid, lat, lon, rtt, motion in json.loads(text)
    )


class SqlStore:
    """A :class:`Store` and :class:`~verifier.state.TrustedState` over one SQLite file."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
        engine = create_engine(
            f"sqlite:///{path}",
            connect_args={"check_same_thread": False, "isolation_level": None},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            # isolation_level=None: the driver never opens transactions on its own;
            # writers open BEGIN IMMEDIATE themselves (no lock-upgrade deadlocks).
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous.value}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        store = cls(engine)
        try:
            with store._write() as conn:
                metadata.create_all(conn)
        except (OperationalError, IntegrityError) as exc:
            engine.dispose()
            raise ConfigError(f"database {path} cannot be opened: {exc.orig}") from exc
        return store

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    # --- TrustedState -------------------------------------------------------------------

    def device_for_key(self, key_id: str) -> DeviceRecord | None:
        device = self.enrolled_for_key(key_id)
        return None if device is None else device.record

    def enrolled_for_key(self, key_id: str) -> EnrolledDevice | None:
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.key_id == key_id)).first()
        return None if row is None else _device_from_row(row._mapping)

    def head(self, device_id: str) -> ChainHead | None:
        with self._read() as conn:
            row = conn.execute(_select_head(device_id)).first()
        return None if row is None else _head_from_row(row._mapping)

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        with self._read() as conn:
            digest = conn.execute(
                select(successors.c.digest).where(
                    successors.c.device_id == device_id,
                    successors.c.previous_digest == previous_digest,
                )
            ).scalar()
        return None if digest is None else bytes(digest)

    # --- writes -----------------------------------------------------------------------

    def enrol(self, device: EnrolledDevice) -> EnrolledDevice:
        """Store a new device; the same certificate again refreshes its licence.

        Raises:
            AlreadyEnrolledError: the id or the key is enrolled with another certificate.
        """
        record = device.record
        with self._write() as conn:
            row = conn.execute(
                select(devices).where(
                    (devices.c.device_id == record.device_id)
                    | (devices.c.key_id == record.verifying_key.key_id)
                )
            ).first()
            if row is not None:
                existing = _device_from_row(row._mapping)
                if (
                    existing.record.device_id != record.device_id
                    or existing.record.verifying_key.key_id != record.verifying_key.key_id
                    or existing.record.certificate_serial != record.certificate_serial
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
                return replace(
                    existing,
                    record=replace(existing.record, licensed_region=record.licensed_region),
                    licence_expires_ns=device.licence_expires_ns,
                )
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

    def commit(self, records: Sequence[CommitRecord]) -> None:
        """Store appraised proofs in one transaction; chain heads advance by CAS.

        Only appraisals with a new head, or with alerts, leave anything behind: garbage
        from unknown keys changes nothing.

        Raises:
            StoreConflictError: another writer advanced one of these chains first; nothing
                was written.
        """
        if not any(r.appraisal.new_head is not None or r.alerts for r in records):
            return
        try:
            with self._write() as conn:
                for record in records:
                    self._commit_one(conn, record)
        except IntegrityError as exc:
            raise StoreConflictError(str(exc.orig)) from exc

    def _commit_one(self, conn: Connection, record: CommitRecord) -> None:
        appraisal = record.appraisal
        head = appraisal.new_head
        if head is None and not record.alerts:
            return
        proof_id = None
        if appraisal.device_id:
            proof_id = conn.execute(
                insert(proofs).values(
                    device_id=appraisal.device_id,
                    counter=appraisal.counter,
                    digest=record.digest,
                    previous_digest=head.previous_digest if head else b"",
                    envelope=record.evidence,
                    accepted=head is not None,
                    verdict=appraisal.verdict.value,
                    reason=appraisal.reason.value if appraisal.reason else "",
                    detail=appraisal.detail,
                    bounds=_bounds_json(appraisal.bounds),
                    evidence_time_ns=appraisal.evidence_time_ns,
                    received_at_ns=record.received_at_ns,
                )
            ).inserted_primary_key
            proof_id = None if proof_id is None else proof_id[0]
            if record.token:
                conn.execute(insert(results).values(proof_id=proof_id, token=record.token))
        if head is not None:
            self._advance(conn, appraisal, head)
        for alert in record.alerts:
            conn.execute(insert(alerts).values(**_alert_values(alert), proof_id=proof_id))

    @staticmethod
    def _advance(conn: Connection, appraisal: Appraisal, head: ChainHead) -> None:
        device_id = appraisal.device_id
        # The successor index's primary key refuses a second extension of one predecessor.
        conn.execute(
            insert(successors).values(
                device_id=device_id, previous_digest=head.previous_digest, digest=head.digest
            )
        )
        values: dict[str, Any] = {
            "counter": head.counter,
            "digest": head.digest,
            "previous_digest": head.previous_digest,
            "accepted_at_ns": head.accepted_at_ns,
            "landmark_times": json.dumps(dict(head.landmark_times), sort_keys=True),
            "verdict": appraisal.verdict.value,
            "evidence_time_ns": appraisal.evidence_time_ns,
        }
        if head.previous_digest:
            moved = conn.execute(
                update(chain_heads)
                .where(
                    chain_heads.c.device_id == device_id,
                    chain_heads.c.digest == head.previous_digest,
                )
                .values(**values)
            ).rowcount
            if moved != 1:
                raise StoreConflictError(f"chain head of {device_id} moved")
        else:
            conn.execute(insert(chain_heads).values(device_id=device_id, **values))
        if head.fix:
            fix = json.dumps(
                [
                    [b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, b.motion_km]
                    for b in head.fix
                ]
            )
            conn.execute(
                sqlite_insert(last_fixes)
                .values(device_id=device_id, fix=fix, fix_time_ns=head.fix_time_ns)
                .on_conflict_do_update(
                    index_elements=[last_fixes.c.device_id],
                    set_={"fix": fix, "fix_time_ns": head.fix_time_ns},
                )
            )
        conn.execute(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(state=DeviceState.ATTESTING.value)
        )

    def mark_stale(self, cutoff_ns: int, alert_for: AlertFactory) -> list[Alert]:
        """Mark STALE every live device with no accepted proof since ``cutoff_ns``."""
        last_seen = func.coalesce(chain_heads.c.accepted_at_ns, devices.c.enrolled_at_ns)
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
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
            head_row = conn.execute(_select_head(device_id)).first()
        if row is None:
            return None
        if head_row is None:
            return DeviceSummary(_device_from_row(row._mapping), None, None, 0)
        head = head_row._mapping
        return DeviceSummary(
            device=_device_from_row(row._mapping),
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


@functools.lru_cache(maxsize=65536)
def _verifying_key(spki: bytes) -> VerifyingKey:
    """Parsing a key costs more than the row read; keys of a device never change."""
    return VerifyingKey.from_der(spki)


def _device_from_row(m: Any) -> EnrolledDevice:
    return EnrolledDevice(
        record=DeviceRecord(
            device_id=m["device_id"],
            verifying_key=_verifying_key(bytes(m["spki"])),
            licensed_region=m["licensed_region"],
            certificate_serial=int(m["cert_serial"]),
            not_valid_after_ns=m["not_valid_after_ns"],
            enrolled_at_ns=m["enrolled_at_ns"],
        ),
        model=m["model"],
        licence_expires_ns=m["licence_expires_ns"],
        state=DeviceState(m["state"]),
    )


def _select_head(device_id: str) -> Select[Any]:
    """A device's chain head row with its last fix, if it has one."""
    return (
        select(chain_heads, last_fixes.c.fix, last_fixes.c.fix_time_ns)
        .outerjoin(last_fixes, last_fixes.c.device_id == chain_heads.c.device_id)
        .where(chain_heads.c.device_id == device_id)
    )


def _head_from_row(m: Any) -> ChainHead:
    return ChainHead(
        counter=m["counter"],
        digest=bytes(m["digest"]),
        previous_digest=bytes(m["previous_digest"]),
        accepted_at_ns=m["accepted_at_ns"],
        landmark_times={str(k): int(v) for k, v in json.loads(m["landmark_times"]).items()},
        fix=tuple(
            LandmarkBound(str(lid), float(lat), float(lon), int(rtt), float(motion))
            for lid, lat, lon, rtt, motion in json.loads(m["fix"] or "[]")
        ),
        fix_time_ns=m["fix_time_ns"] or 0,
    )
