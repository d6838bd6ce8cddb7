"""The verifier's durable store: SQLite (embedded) or PostgreSQL (replicas), one schema
and one data-access layer over SQLAlchemy Core for both.

It holds enrolled devices, the export licences in force (each change a new version),
accepted proofs with their evidence (the exact envelope bytes), signed results, alerts,
each device's chain head and the ``(device, previous digest) -> digest`` index that
exposes forks, the landmarks' peer measurements and the exclusions the audits made of
them, and what operators revoked and registered through the admin API
(:class:`StoredTrust`, read whole only when its version moves). It implements the
pipeline's :class:`~geoattest.verifier.state.TrustedState`, so appraisals read exactly what is
durable.

A proof is acknowledged only after :meth:`SqlStore.commit` returns: one transaction per
call, however many proofs it carries, each table written by one statement for the whole
batch where order does not matter. SQLite runs in WAL mode, writers under ``BEGIN
IMMEDIATE`` (``synchronous=FULL``: durable across a power cut; ``NORMAL`` is offered for
benchmarks, where a SIGKILL still loses nothing); PostgreSQL at READ COMMITTED.

Any number of processes, on one machine (SQLite) or many (PostgreSQL), may share one
database. A commit is a compare-and-swap on the chain head: if another writer advanced
the device first, :class:`StoreConflictError` is raised, nothing is written, and the
caller appraises again against the new head. Any other failure of the database is
:class:`StoreUnavailableError`: the drivers' own exceptions (sqlite3, psycopg,
SQLAlchemy) never leave this module. Writes that must happen once across the fleet (the
stale sweep, licence changes, landmark exclusions, revocations and registrations, alert
ids in commit order) hold a PostgreSQL advisory lock for their transaction.

Each process holds at most ``pool_size`` connections, and one more for alert notifications
on PostgreSQL (:mod:`geoattest.verifier.alerts`): the default and the rule for N processes
over one server are :mod:`geoattest.verifier.pool`'s.

The schema carries its version (:data:`SCHEMA_VERSION`); :func:`migrate` brings an older
database forward, and :meth:`SqlStore.open` refuses any other version.

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
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    TableValuedAlias,
    Text,
    Update,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    make_url,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, SQLAlchemyError

from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError, GeoattestError, LandmarkKeyReusedError, Reason
from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.crosscheck import PeerMeasurement
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.pipeline import Appraisal
from geoattest.verifier.pool import POOL_SIZE
from geoattest.verifier.state import ChainHead, DeviceRecord
from geoattest.wire.decode import MAX_PROOF_BYTES, decode


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

    def __init__(self, driver_error: BaseException) -> None:
        super().__init__(Reason.STORE_UNAVAILABLE, type(driver_error).__name__)


class StoreNotAnsweringError(StoreUnavailableError):
    """The database did not answer the verifier's last health probe: a call refused at
    once, without waiting on it; nothing was written."""

    DETAIL = "the database did not answer the last health probe"

    def __init__(self) -> None:
        GeoattestError.__init__(self, Reason.STORE_UNAVAILABLE, self.DETAIL)


class SchemaMovedError(StoreUnavailableError):
    """The database's schema is no longer this verifier's: a newer verifier migrated it
    while this one served. This one judges and stores nothing more there, as if the
    database were gone (health NOT_SERVING, calls UNAVAILABLE), for it would judge without
    what the newer schema holds."""

    def __init__(self, found: Collection[int]) -> None:
        shown = ", ".join(map(str, sorted(found))) or "none"
        GeoattestError.__init__(
            self,
            Reason.STORE_UNAVAILABLE,
            f"the database's schema is version {shown}, this verifier's is {SCHEMA_VERSION}:"
            " a newer verifier migrated it; start verifiers of that release",
        )


class StoreValueError(GeoattestError):
    """A value in the request is one the database cannot hold or compare (PostgreSQL
    refuses a NUL in text): the request is malformed, the database is fine, and sending it
    again cannot succeed. Nothing was written. SQLite, which holds any string, never
    raises it."""

    def __init__(self, driver_error: BaseException) -> None:
        super().__init__(
            Reason.MALFORMED_MESSAGE,
            f"a value the database cannot hold ({type(driver_error).__name__})",
        )


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
    cursor: int = field(default=0, compare=False)
    """Its row id, once stored: ids increase in commit order across every process on the
    database, so "every alert after this cursor" misses none (0: not stored yet; where an
    alert is stored is not what it says, so equality leaves it out)."""


@dataclass(frozen=True, slots=True)
class StoredResult:
    """What the verifier answered for a stored proof; returned again on a resubmission."""

    device_id: str
    counter: int
    verdict: Verdict
    detail: str
    bounds: tuple[LandmarkBound, ...]
    token: str
    reason: Reason | None = None
    """Why it was rejected (None: accepted)."""


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
    trust_version: int = 0
    """The stored trust version the appraisal was judged under (kept with the chain head,
    so a later revocation or exclusion is known to postdate the verdict)."""


@dataclass(frozen=True, slots=True)
class VerdictLandmark:
    """A landmark a verdict rests on, as its receipt was judged: the id, the key that
    signed the receipt and the surveyed site its disk was drawn around. The verdict stands
    only while that very key is registered under the id at that site."""

    landmark_id: str
    key_id: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    device: EnrolledDevice
    head: ChainHead | None
    last_verdict: Verdict | None
    last_evidence_time_ns: int
    verdict_licence_version: int = 0
    """The licence version the last verdict was judged under (0: none recorded)."""
    verdict_landmarks: tuple[VerdictLandmark, ...] | None = ()
    """The landmarks whose receipts the last verdict rests on, in receipt order (None: its
    proof is no longer in the ``proofs`` table)."""
    contradicted_by: tuple[TrustRecord, ...] = ()
    """Changes stored after the verdict was judged that take it away (:data:`CONTRADICTING`
    of its device or of one of its landmarks)."""


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


class Revoked(StrEnum):
    """What a row of ``revocations`` revokes (the kinds of :class:`RevocationList`)."""

    DEVICE = "device"
    LANDMARK = "landmark"
    LANDMARK_KEY = "landmark_key"


@dataclass(frozen=True, slots=True)
class StoredTrust:
    """What the store adds to the operator's files: revocations and landmarks made
    through the admin API, and the exclusions in force, as of :attr:`version`."""

    version: int
    """Raised by one in the transaction of every change to any of these."""
    revocations: RevocationList
    landmarks: tuple[LandmarkRecord, ...]
    excluded: frozenset[str]
    lifted: Mapping[str, int] = field(default_factory=dict)
    """When each landmark's latest lifted exclusion was lifted: what it timed before then
    (while it was excluded, or before the audits caught it) vouches for nothing."""
    revocation_list: RevocationList = field(default_factory=RevocationList)
    """The newest revocation list file a replica followed (version 0: none yet)."""

    def revocations_with(self, files: RevocationList) -> RevocationList:
        """What is revoked beside a host's revocation list file ``files``: the newer of it
        and :attr:`revocation_list` (of one version, what either revokes), with the admin
        API's revocations. The exclusions are not revocations and are not in it."""
        return files.merged_with(self.revocation_list).including(self.revocations)


class TrustChange(StrEnum):
    """What one operator action or peer audit did to the stored trust."""

    DEVICE_REVOKED = "device_revoked"
    DEVICE_RESTORED = "device_restored"
    LANDMARK_REVOKED = "landmark_revoked"
    LANDMARK_RESTORED = "landmark_restored"
    """A newer revocation list file no longer revokes the landmark or key."""
    LANDMARK_REGISTERED = "landmark_registered"
    LANDMARK_EXCLUDED = "landmark_excluded"
    EXCLUSION_LIFTED = "exclusion_lifted"


CONTRADICTING = frozenset(
    {TrustChange.DEVICE_REVOKED, TrustChange.LANDMARK_REVOKED, TrustChange.LANDMARK_EXCLUDED}
)
"""The changes that take away a verdict judged before them: its device revoked, or a
landmark it rests on revoked or excluded (a later restoration or lift does not give it
back; the next proof does)."""


@dataclass(frozen=True, slots=True)
class TrustRecord:
    """One row of the trust journal: what changed, to whom, when, by whom and why."""

    change: TrustChange
    subject: str
    """The device id or the landmark id."""
    at_ns: int
    by: str
    why: str
    version: int = 0
    """The trust version the change made (0: not stored yet)."""


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
        self,
        records: Sequence[CommitRecord],
        *,
        heads_read: Mapping[str, bytes] | None = None,
        licences_read: Mapping[str, int] | None = None,
    ) -> None: ...

    def stored_result(
        self, device_id: str, digest: bytes, *, rejected_for: Reason | None = None
    ) -> StoredResult | None: ...

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
        file_digest: str = "",
        if_file_changed: bool = False,
    ) -> list[ExportLicence]: ...

    def alerts(self, device_id: str = "") -> list[Alert]: ...

    def alerts_after(self, cursor: int, device_id: str = "", limit: int = 500) -> list[Alert]: ...

    def last_alert_cursor(self) -> int: ...

    def alert_listener(self) -> AlertListener: ...

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

    def trust_version(self) -> int: ...

    def trust(self) -> StoredTrust: ...

    def follow_revocation_list(
        self, offered: RevocationList, now_ns: int, *, by: str
    ) -> RevocationList: ...

    def revoke_device(
        self, device_id: str, now_ns: int, *, by: str, why: str, alert: Alert | None = None
    ) -> None: ...

    def restore_device(self, device_id: str, now_ns: int, *, by: str, why: str) -> None: ...

    def revoke_landmark(
        self, landmark_id: str, key_id: str, now_ns: int, *, by: str, why: str
    ) -> None: ...

    def register_landmark(self, record: LandmarkRecord, now_ns: int, *, by: str) -> None: ...

    def trust_changes(self) -> list[TrustRecord]: ...

    def probe(self) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class AlertFactory(Protocol):
    def __call__(self, device_id: str, last_seen_ns: int) -> Alert: ...


LicenceAlertFactory = Callable[[ExportLicence], Alert]
"""Makes the alert for an enrolled device's licence that was withdrawn."""


ALERTS_CHANNEL = "geoattest_alerts"
"""The PostgreSQL notification channel a commit with alerts notifies."""

metadata = MetaData()

_ID = BigInteger().with_variant(Integer, "sqlite")
"""Row ids: 64-bit (a busy fleet passes 2**31 proofs within weeks); SQLite's INTEGER
primary key is its 64-bit rowid already."""

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

_INLINE_ROWS = {"toast_tuple_target": "8160"}
"""PostgreSQL keeps a proof's row (its envelope, about 3 KB, and its result token, about
4 KB) whole in the table's own page, uncompressed: with the default target of 2 KB the
server compressed both and wrote them to a TOAST table and its index at every commit,
about a third of its CPU per proof (BENCHMARKS.md). Rows above a page still go to TOAST."""

_HEADS_ROOM = {"fillfactor": "50"}
"""PostgreSQL fills a chain head's page only half at insert, so that moving the head (an
update per accepted proof) writes its new version in the same page, without an entry in
the key's index (a HOT update): with full pages about three moves in four wrote a new
index entry as well and left the old version to vacuum (BENCHMARKS.md)."""

proofs = Table(
    "proofs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
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
    Column("token", Text, nullable=False, server_default=""),
    Index("proofs_by_digest", "device_id", "digest"),
    postgresql_with=_INLINE_ROWS,
)
"""Every stored appraisal of a known device's proof, with its signed result (``token``;
empty only for a row stored without one), in one row: one insert per proof."""


def _archive_columns(table: Table, *, leaving: Collection[str] = ()) -> list[Column[Any]]:
    """``table``'s columns (less those named in ``leaving``) for an archive of its rows:
    the same names, types and keys, the ids kept as they were."""
    return [
        Column(
            c.name,
            c.type,
            primary_key=c.primary_key,
            nullable=c.nullable,
            autoincrement=False,
            server_default=getattr(c.server_default, "arg", None),
        )
        for c in table.c
        if c.name not in leaving
    ]


proofs_archive = Table("proofs_archive", metadata, *_archive_columns(proofs))
"""Proofs moved out of ``proofs`` by :meth:`SqlStore.retain`, rows unchanged."""

alerts = Table(
    "alerts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
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
    Column("licence_version", BigInteger, nullable=False, server_default=text("0")),
    Column("trust_version", BigInteger, nullable=False, server_default=text("0")),
    Column("fix", Text, nullable=False, server_default="[]"),
    Column("fix_time_ns", BigInteger, nullable=False, server_default=text("0")),
    postgresql_with=_HEADS_ROOM,
)
"""Each device's last accepted proof, with what its verdict was judged under: the licence
version and the stored trust version (:attr:`StoredTrust.version`; 0 in a head stored
before schema 5, which names neither); and its history fix (``ChainHead.fix``: the disks
its accepted history still places it in, see :mod:`geoattest.verifier.history`) for the
impossible-travel check, moved with the head in the same statement (``[]``: none yet). A
store written when the fix held only the last proof's disks opens as it is: those disks
are a sound, if looser, history fix."""

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
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("landmark_id", String(128), nullable=False, index=True),
    Column("excluded_at_ns", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
    Column("lifted_at_ns", BigInteger, nullable=True),
    Column("lifted_by", String(128), nullable=False),
    Column("lift_reason", Text, nullable=False),
)
"""Every exclusion the peer audit made, in force until ``lifted_at_ns`` is set."""

revocations = Table(
    "revocations",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("revoked_at_ns", BigInteger, nullable=False),
    Column("revoked_by", Text, nullable=False),
    Column("why", Text, nullable=False),
)
"""Devices, landmarks and landmark keys (:class:`Revoked`) revoked through the admin API:
in force while the row exists (a device restored loses its row; who and why are in the
audit log)."""

registered_landmarks = Table(
    "landmarks",
    metadata,
    Column("landmark_id", String(128), primary_key=True),
    Column("key_id", String(64), nullable=False, unique=True),
    Column("spki", LargeBinary, nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("name", Text, nullable=False),
    Column("operator", String(128), nullable=False),
    Column("registered_at_ns", BigInteger, nullable=False),
    Column("registered_by", Text, nullable=False),
)
"""Landmarks registered through the admin API, beside the registry file's (one key, one
landmark, across both: the admin refuses a clash with the file)."""

trust_versions = Table(
    "trust_version",
    metadata,
    Column("version", BigInteger, nullable=False),
)
"""One row: :attr:`StoredTrust.version`. Every replica reads it before each batch and
reads the rest again only when it moved."""

trust_changes = Table(
    "trust_changes",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("version", BigInteger, nullable=False, index=True),
    Column("change", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("at_ns", BigInteger, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("why", Text, nullable=False),
)
"""Every change to the stored trust (:class:`TrustChange`), at the trust version it made:
kept for good, so a verdict judged before a revocation or an exclusion is known to be
contradicted even after the device is restored or the exclusion lifted."""


licence_file = Table(
    "licence_file",
    metadata,
    Column("digest", String(64), nullable=False),
    Column("applied_at_ns", BigInteger, nullable=False),
    Column("terms", Text, nullable=False),
)
"""At most one row: the digest of the licences file applied last
(:meth:`SqlStore.change_licences`), whichever replica or command applied it, and each
device's terms in it (a JSON object; empty where a version before 10 applied it)."""

revocation_list = Table(
    "revocation_list",
    metadata,
    Column("version", BigInteger, nullable=False),
    Column("devices", Text, nullable=False),
    Column("landmarks", Text, nullable=False),
    Column("landmark_keys", Text, nullable=False),
    Column("followed_at_ns", BigInteger, nullable=False),
)
"""At most one row: the newest revocation list file any replica followed
(:meth:`SqlStore.follow_revocation_list`); each set a JSON array. Every replica judges by
it, whatever its own host's file holds, and refuses a file older than it."""

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)
"""One row: the version of the schema the database holds (see :data:`SCHEMA_VERSION`)."""


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
        for lid, lat, lon, rtt, motion in orjson.loads(text)
    )


_log = logging.getLogger(__name__)


class AlertListener:
    """Waits until any process may have committed alerts: on PostgreSQL ``LISTEN`` on a
    connection of its own (the one beyond the pool); SQLite cannot notify another process,
    so there the wait is a plain timeout and the streams poll. A wake-up only means "read
    the table again": a notification lost with a dropped connection loses no alert."""

    def __init__(self, conninfo: str | None) -> None:
        self._conninfo = conninfo
        self._connection: psycopg.Connection[Any] | None = None
        self._closing = threading.Event()
        self._failing = False
        """Whether the last connection failed (logged once, until one succeeds)."""

    def wait(self, timeout_s: float) -> bool:
        """Return on a notification, after ``timeout_s``, at once after (re)connecting
        (what was committed before ``LISTEN`` was never notified), or at once when closed;
        whether a notification came. Only one thread waits; it also closes the listening
        connection once closed."""
        notified = False
        try:
            if self._conninfo is None or self._closing.is_set():
                self._closing.wait(timeout_s)
            elif self._connection is None:
                self._connection = psycopg.connect(self._conninfo, autocommit=True)
                self._connection.execute(f"LISTEN {ALERTS_CHANNEL}")
                self._failing = False
            else:
                for _ in self._connection.notifies(timeout=timeout_s, stop_after=1):
                    notified = True
        except psycopg.Error as exc:
            if not self._failing:
                _log.warning("alert notifications lost (%s): the streams poll until back", exc)
            self._failing = True
            self._disconnect()
            self._closing.wait(timeout_s)  # the database is down: try again after a while
        if self._closing.is_set():
            self._disconnect()
        return notified

    def close(self) -> None:
        """End the waiting, from any thread: a wait in progress returns at once on SQLite,
        and on PostgreSQL by its timeout (a read of notifications cannot be interrupted);
        the waiting thread then closes the listening connection."""
        self._closing.set()

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class SqlStore:
    """A :class:`Store` and :class:`~geoattest.verifier.state.TrustedState` over one
    database, SQLite or PostgreSQL, through one bounded connection pool.

    Safe to share between threads: each call checks a connection out of the pool.
    """

    def __init__(self, engine: Engine, sockets: ConnectionSockets | None = None) -> None:
        self._engine = engine
        self._sockets = sockets
        self._postgres = engine.dialect.name == "postgresql"
        self._upsert = postgresql_insert if self._postgres else sqlite_insert

    @classmethod
    def open(
        cls,
        db: str | Path,
        *,
        synchronous: Synchronous = Synchronous.FULL,
        busy_timeout_ms: int = 10_000,
        pool_size: int = POOL_SIZE,
    ) -> SqlStore:
        """Open the database ``db`` (a file path, or a ``postgresql://`` URL), creating the
        schema in an empty one.

        Raises:
            ConfigError: the database cannot be opened or is not a geoattest database.
            SchemaVersionError: its schema is of another version than this verifier's
                (older: run ``geoattest verifier migrate``).
        """
        engine = _engine(db, synchronous, busy_timeout_ms, pool_size)
        sockets = ConnectionSockets(engine) if engine.dialect.name == "postgresql" else None
        try:
            with _transaction(engine, _SCHEMA_LOCK) as conn:
                version = _schema_version(conn)
                if version is None:
                    _create_schema(conn)
                elif version != SCHEMA_VERSION:
                    raise SchemaVersionError(version)
        except DBAPIError as exc:
            engine.dispose()
            raise ConfigError(f"database {_shown(db)} cannot be opened: {exc.orig}") from exc
        except GeoattestError:
            engine.dispose()
            raise
        return cls(engine, sockets)

    def close(self) -> None:
        self._engine.dispose()

    def connections(self) -> int:
        """Connections to this database open now, this one included (PostgreSQL; 1 on
        SQLite, which has no server to ask)."""
        if not self._postgres:
            return 1
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(text("pg_stat_activity"))
                    .where(text("datname = current_database()"))
                ).scalar_one()
            )

    def probe(self) -> None:
        """Reach the database once (a health check).

        Raises:
            StoreUnavailableError: it cannot be reached.
        """
        with self._read() as conn:
            conn.execute(select(1))

    def interrupt(self) -> None:
        """End every statement waiting on the database now, for a server that stopped
        answering (frozen, or behind a network that drops packets), which the driver
        would otherwise wait on for ever: each PostgreSQL connection's socket is shut
        down, the calls waiting on them fail as :class:`StoreUnavailableError`, and the
        pool connects afresh afterwards. Nothing on SQLite, whose waits end at its busy
        timeout."""
        if self._sockets is not None:
            self._sockets.shut_down()

    @contextmanager
    def _write(self, lock: int | None = None) -> Iterator[Connection]:
        """A write transaction; ``lock`` serialises it with every other holder of that
        lock across processes (SQLite's ``BEGIN IMMEDIATE`` serialises all writers)."""
        with _store_errors(), _transaction(self._engine, lock) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with read_transaction(self._engine) as conn:
            yield conn

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
        # A proof naming such a key finds no device, as any unknown key.
        keys = [key for key in dict.fromkeys(key_ids) if not _unstorable(key)]
        with self._read() as conn:
            for start in range(0, len(keys), _KEYS_PER_READ):
                chunk = keys[start : start + _KEYS_PER_READ]
                found_rows = conn.execute(_DEVICES_WITH_HEADS[self._postgres], {"keys": chunk})
                for row in found_rows.mappings():
                    head = None if row["counter"] is None else _head_from_row(row)
                    found[row["key_id"]] = (_device_from_row(row), head)
        return found

    def head(self, device_id: str) -> ChainHead | None:
        with self._read() as conn:
            row = conn.execute(_HEAD, {"device_id": device_id}).mappings().first()
        return None if row is None else _head_from_row(row)

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        with self._read() as conn:
            digest = conn.execute(
                _SUCCESSOR, {"device_id": device_id, "previous_digest": previous_digest}
            ).scalar()
        return None if digest is None else bytes(digest)

    # --- writes -----------------------------------------------------------------------

    def enrol(self, device: EnrolledDevice) -> EnrolledDevice:
        """Store a new device; the same certificate again is the same enrolment.

        The row keeps the licence terms at enrolment; appraisals read the licence in force
        (the ``licences`` table) instead.

        Raises:
            AlreadyEnrolledError: the id or the key is enrolled with another certificate.
            StoreConflictError: another replica enrolled it at the same moment; enrol again.
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
        self,
        records: Sequence[CommitRecord],
        *,
        heads_read: Mapping[str, bytes] | None = None,
        licences_read: Mapping[str, int] | None = None,
    ) -> None:
        """Store appraised proofs in one transaction; chain heads advance by CAS.

        ``heads_read`` maps each device the records were appraised against to the head
        digest read for it (``b""``: no head), and ``licences_read`` to the version of the
        licence read for it (0: none): if any head has moved, or any licence changed, since,
        another writer got there first and the appraisals (a rejection as much as an
        acceptance) may be stale, so nothing is written. On PostgreSQL the heads read are
        locked until the commit (``FOR UPDATE``, in device order), and the licences by the
        licence changes' lock, taken shared, so neither moves between the check and the
        writes. Likewise the trust version each record was judged under
        (:func:`_check_trust`): a revocation, registration or exclusion that has returned at
        any replica holds for every answer committed after it. A rejection with alerts
        whose proof is stored already, rejected for the same reason, is a conflict too
        (:func:`_check_not_alerted`): the same proof sent to two replicas at once raises
        its alert once. Only appraisals with a new head, or with alerts, leave anything
        behind: garbage from unknown keys changes nothing.

        Raises:
            StoreConflictError: another writer advanced one of these chains, or changed
                one of these licences or the trust in force, first; nothing was written.
            StoreUnavailableError: the database failed; nothing was written.
        """
        kept = [r for r in records if r.appraisal.new_head is not None or r.alerts]
        if not kept and not heads_read:
            return
        with self._write() as conn:
            if licences_read:
                if self._postgres:
                    conn.execute(select(func.pg_advisory_xact_lock_shared(_LICENCES_LOCK)))
                _check_unmoved(conn, _LICENCE_VERSIONS, licences_read, 0, "licence")
            _check_trust(conn, records)
            _check_unmoved(conn, _HEAD_DIGESTS, heads_read or {}, b"", "chain head")
            _check_not_alerted(conn, kept)
            if kept:
                self._commit_records(conn, kept)

    def _commit_records(self, conn: Connection, records: Sequence[CommitRecord]) -> None:
        """The rows of appraisals that leave something behind, a statement per table: a
        proof with its result, the successors, the heads with their fixes, the alerts."""
        proved = [r for r in records if r.appraisal.device_id]
        bounds = {id(r): _bounds_json(r.appraisal.bounds) for r in proved}
        proof_ids: dict[int, int] = {}
        if proved:
            proof_ids = dict(zip(map(id, proved), self._proof_ids(conn, len(proved)), strict=True))
            self._insert_rows(
                conn,
                proofs,
                [{**_proof_values(r, bounds[id(r)]), "id": proof_ids[id(r)]} for r in proved],
            )
        advanced = [r for r in proved if r.appraisal.new_head is not None]
        if advanced:
            self._advance(conn, advanced, bounds)
        self._insert_alerts(
            conn,
            [
                {**_alert_values(alert), "proof_id": proof_ids.get(id(r))}
                for r in records
                for alert in r.alerts
            ],
        )

    def _proof_ids(self, conn: Connection, count: int) -> list[int]:
        """Ids for ``count`` new proofs, drawn before they are inserted, so that the
        batch's alerts can name their proofs without reading the rows back: from the
        table's sequence on PostgreSQL; past the largest id on SQLite, whose write
        transaction excludes every other writer, as SQLite itself would number them."""
        if self._postgres:
            drawn = conn.execute(
                select(func.nextval(_PROOF_IDS)).select_from(func.generate_series(1, count))
            )
            return sorted(drawn.scalars())
        largest = conn.execute(select(func.max(proofs.c.id))).scalar() or 0
        return list(range(largest + 1, largest + 1 + count))

    def _advance(
        self, conn: Connection, records: Sequence[CommitRecord], bounds: Mapping[int, str]
    ) -> None:
        """Move the chain heads of accepted proofs, in order: the successor index refuses a
        second extension of one predecessor, and each head moves only from the digest the
        proof extends (a moved head or a refused successor is a conflict)."""
        self._insert_rows(
            conn,
            successors,
            [
                {
                    "device_id": r.appraisal.device_id,
                    "previous_digest": _new_head(r).previous_digest,
                    "digest": _new_head(r).digest,
                }
                for r in records
            ],
        )
        attesting: set[str] = set()
        started: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        for r in records:
            appraisal, head = r.appraisal, _new_head(r)
            values = {
                "counter": head.counter,
                "digest": head.digest,
                "previous_digest": head.previous_digest,
                "accepted_at_ns": head.accepted_at_ns,
                "landmark_times": orjson.dumps(
                    dict(head.landmark_times), option=orjson.OPT_SORT_KEYS
                ).decode(),
                "verdict": appraisal.verdict.value,
                "evidence_time_ns": appraisal.evidence_time_ns,
                "licence_version": appraisal.licence.version if appraisal.licence else 0,
                "trust_version": r.trust_version,
                "fix": bounds[id(r)] if head.fix is appraisal.bounds else _bounds_json(head.fix),
                "fix_time_ns": head.fix_time_ns,
            }
            if not head.previous_digest:
                started.append({**values, "device_id": appraisal.device_id})
            else:
                moved.append(
                    {**values, "b_device_id": appraisal.device_id, "b_head": head.previous_digest}
                )
            if not r.stale:
                attesting.add(appraisal.device_id)
        # A chain's first head precedes its moves. A device's successive moves in one batch
        # are one move, from the head its first proof extends to its last proof's head: the
        # successors inserted above already chain them. Each move changes one row or none
        # (the device is the key), so the sum counts them all.
        if started:
            conn.execute(insert(chain_heads), started)
        if moved:
            net = _net_moves(moved)
            if self._move_heads(conn, net) != len(net):
                raise StoreConflictError(f"the chain head of one of {len(net)} devices moved")
        if attesting:
            conn.execute(_ATTESTING[self._postgres], {"devices": sorted(attesting)})

    def _insert_rows(
        self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert ``rows`` (each with every key of the first) in one statement: on
        PostgreSQL one ``INSERT ... SELECT FROM unnest(...)`` whose parameters are a column
        each, so the server runs one statement per batch, not one per row; on SQLite one
        prepared statement stepped per row (``executemany``), which costs no round trip."""
        if self._postgres:
            names = tuple(rows[0])
            sql = _unnest_insert(table, names, conn.dialect)
            conn.exec_driver_sql(sql, _columns(rows, names))
        else:
            conn.execute(insert(table), list(rows))

    def _move_heads(self, conn: Connection, moves: Sequence[Mapping[str, Any]]) -> int:
        """Move chain heads by compare-and-swap (at most one move per device); how many
        moved. One statement on PostgreSQL, as :meth:`_insert_rows`."""
        if self._postgres:
            sql = _binary_arrays(_PG_MOVE_HEADS, conn.dialect)
            return int(conn.exec_driver_sql(sql, _columns(moves, _MOVED)).rowcount)
        return int(conn.execute(_MOVE_HEAD, list(moves)).rowcount)

    def _insert_alerts(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store alerts with ids in commit order, and wake every replica's streams.

        On PostgreSQL ids come from a sequence, drawn when a row is inserted, not when its
        transaction commits: a transaction holds the alerts lock from its first alert to its
        commit, so an alert never commits after one with a higher id, and a cursor never
        skips one. The notification is delivered on commit (``LISTEN/NOTIFY``); the table
        stays the truth. SQLite's writers are serialised whole already.
        """
        if not rows:
            return
        if self._postgres:  # one round trip: the notification waits for the commit anyway
            conn.execute(
                select(func.pg_advisory_xact_lock(_ALERTS_LOCK), func.pg_notify(ALERTS_CHANNEL, ""))
            )
        conn.execute(insert(alerts), list(rows))

    def mark_stale(self, cutoff_ns: int, alert_for: AlertFactory) -> list[Alert]:
        """Mark STALE every live device with no accepted evidence since ``cutoff_ns``: by
        the landmark time of its newest accepted round (its enrolment before it has one),
        never by when a proof arrived, so a backlog delivered late keeps nothing alive.

        One sweep at a time across every process on the database: a sweep that finds
        another under way returns at once, with no alerts (that one raises them)."""
        last_seen = func.coalesce(chain_heads.c.evidence_time_ns, devices.c.enrolled_at_ns)
        with self._write() as conn:
            if (
                self._postgres
                and not conn.execute(select(func.pg_try_advisory_xact_lock(_SWEEP_LOCK))).scalar()
            ):
                return []
            rows = conn.execute(
                select(devices.c.device_id, last_seen)
                .select_from(devices.outerjoin(chain_heads))
                .where(
                    devices.c.state.in_([DeviceState.ENROLLED.value, DeviceState.ATTESTING.value]),
                    last_seen < cutoff_ns,
                )
                .order_by(devices.c.device_id)  # rows locked in the order commits lock them
            ).all()
            raised = [alert_for(str(device_id), int(seen)) for device_id, seen in rows]
            if raised:
                conn.execute(_MARK_STALE, [{"b_device_id": alert.device_id} for alert in raised])
                self._insert_alerts(
                    conn, [{**_alert_values(alert), "proof_id": None} for alert in raised]
                )
        return raised

    # --- licences -----------------------------------------------------------------------

    def licence(self, device_id: str) -> ExportLicence | None:
        if _unstorable(device_id):
            return None
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
        file_digest: str = "",
        if_file_changed: bool = False,
    ) -> list[ExportLicence]:
        """Make ``licences`` the ones in force, in one transaction: each whose terms differ
        from the stored licence's gets the next version (versions given are ignored); with
        ``withdraw_others``, every stored licence not given is withdrawn. A licence of an
        enrolled device that becomes withdrawn raises the alert ``alert_for`` makes.

        ``file_digest`` names the licences file they are (:meth:`Licences.digest`), stored
        with each device's terms in it. With ``if_file_changed`` (a replica's start or
        reload) the file applies only what it changed since the file applied last: nothing
        when it is that file, and otherwise only the devices whose entry it changed, added
        or (``withdraw_others``) dropped. What the admin API changed since, at any replica,
        stays for every device whose entry the edit left alone.

        Returns:
            The new versions, in the order given (withdrawals of others last).
        """
        with self._write(_LICENCES_LOCK) as conn:
            held = {
                row.device_id: _licence_from_row(row._mapping)
                for row in conn.execute(select(export_licences)).all()
            }
            wanted = {licence.device_id: licence for licence in licences}
            others = set(held) - set(wanted) if withdraw_others else set()
            if file_digest:
                applied = conn.execute(select(licence_file)).first()
                if applied is not None and if_file_changed:
                    if applied.digest == file_digest:
                        return []
                    if applied.terms:
                        before = orjson.loads(applied.terms)
                        wanted = {
                            device_id: licence
                            for device_id, licence in wanted.items()
                            if before.get(device_id) != _file_terms(licence)
                        }
                        others &= set(before)
                conn.execute(delete(licence_file))
                conn.execute(
                    insert(licence_file).values(
                        digest=file_digest,
                        applied_at_ns=now_ns,
                        terms=orjson.dumps(
                            {licence.device_id: _file_terms(licence) for licence in licences},
                            option=orjson.OPT_SORT_KEYS,
                        ).decode(),
                    )
                )
            for device_id in sorted(others):
                wanted[device_id] = replace(held[device_id], withdrawn=True)
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
            self._insert_alerts(
                conn,
                [
                    {**_alert_values(alert_for(licence)), "proof_id": None}
                    for licence in newly_withdrawn
                    if licence.device_id in enrolled
                ],
            )
        return changed

    # --- reads for the service ----------------------------------------------------------

    def stored_result(
        self, device_id: str, digest: bytes, *, rejected_for: Reason | None = None
    ) -> StoredResult | None:
        """The result stored for the device's proof ``digest``: the accepted one, or with
        ``rejected_for`` one rejected for that reason (a rejection is stored when it raised
        an alert)."""
        if _unstorable(device_id):
            return None
        judged = (
            proofs.c.accepted.is_(True)
            if rejected_for is None
            else proofs.c.accepted.is_(False) & (proofs.c.reason == rejected_for.value)
        )
        with self._read() as conn:
            row = conn.execute(
                select(proofs)
                .where(proofs.c.device_id == device_id, proofs.c.digest == digest, judged)
                .limit(1)
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
            token=m["token"],
            reason=rejected_for,
        )

    def summary(self, device_id: str) -> DeviceSummary | None:
        if _unstorable(device_id):
            return None
        with self._read() as conn:
            return read_summary(conn, device_id)

    def alerts(self, device_id: str = "") -> list[Alert]:
        if _unstorable(device_id):
            return []
        query = select(alerts).order_by(alerts.c.id)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        with self._read() as conn:
            return [_alert_from_row(r) for r in conn.execute(query).all()]

    def alerts_after(self, cursor: int, device_id: str = "", limit: int = 500) -> list[Alert]:
        """At most ``limit`` alerts stored after ``cursor``, for one device or (empty id)
        all, oldest first."""
        if _unstorable(device_id):
            return []
        query = select(alerts).where(alerts.c.id > cursor).order_by(alerts.c.id).limit(limit)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        with self._read() as conn:
            return [_alert_from_row(r) for r in conn.execute(query).all()]

    def last_alert_cursor(self) -> int:
        """The cursor of the newest alert stored (0: none yet)."""
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(alerts.c.id), 0))).scalar_one())

    def alert_listener(self) -> AlertListener:
        """A listener for alerts committed by any process on this database."""
        if not self._postgres:
            return AlertListener(None)
        # The driver's own connection parameters, as the pool connects: a URL rendered
        # back to text would carry the session options with '+' for their spaces, which
        # libpq does not decode, and every LISTEN connection would be refused.
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        params = {k: v for k, v in kwargs.items() if isinstance(v, str | int)}  # no adapters
        return AlertListener(psycopg.conninfo.make_conninfo(args[0] if args else "", **params))

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
        their alerts: one transaction at a time across every process on the database, so
        two workers auditing at once exclude a landmark once. Returns how many measurements
        were new, and each landmark excluded with its alert.
        """
        with self._write(_AUDIT_LOCK) as conn:
            conn.execute(
                delete(peer_measurements).where(peer_measurements.c.received_at_ns < since_ns)
            )
            stored = 0
            for digest, m in measured:
                stored += conn.execute(
                    self._upsert(peer_measurements)
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
            if raised:
                _trust_changed(
                    conn,
                    [
                        TrustRecord(
                            TrustChange.LANDMARK_EXCLUDED,
                            landmark_id,
                            alert.time_ns,
                            "peer audit",
                            alert.detail,
                        )
                        for landmark_id, alert in raised
                    ],
                )
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
            self._insert_alerts(
                conn, [{**_alert_values(alert), "proof_id": None} for _, alert in raised]
            )
        return stored, raised

    def excluded_landmarks(self) -> frozenset[str]:
        """Landmarks whose exclusion is in force (read at every batch: it is small)."""
        with self._read() as conn:
            rows = conn.execute(_EXCLUDED).scalars().all()
        return frozenset(str(landmark_id) for landmark_id in rows)

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
        with self._write(_AUDIT_LOCK) as conn:
            if any(e.landmark_id == landmark_id and e.in_force for e in _exclusions(conn)):
                raise ConfigError(f"landmark {landmark_id[:128]} is already excluded")
            _trust_changed(
                conn, [TrustRecord(TrustChange.LANDMARK_EXCLUDED, landmark_id, now_ns, by, why)]
            )
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
        with self._write(_AUDIT_LOCK) as conn:
            found = [e for e in _exclusions(conn) if e.landmark_id == landmark_id and e.in_force]
            if not found:
                raise ConfigError(f"landmark {landmark_id[:128]} is not excluded")
            _trust_changed(
                conn, [TrustRecord(TrustChange.EXCLUSION_LIFTED, landmark_id, now_ns, by, why)]
            )
            conn.execute(
                update(landmark_exclusions)
                .where(
                    landmark_exclusions.c.landmark_id == landmark_id,
                    landmark_exclusions.c.lifted_at_ns.is_(None),
                )
                .values(lifted_at_ns=now_ns, lifted_by=by, lift_reason=why)
            )
        return replace(found[-1], lifted_at_ns=now_ns, lifted_by=by, lift_reason=why)

    # --- revocations and registrations --------------------------------------------------

    def trust_version(self) -> int:
        """:attr:`StoredTrust.version` now: one row, read before every batch and at every
        health probe, with the schema's version.

        Raises:
            SchemaMovedError: the schema is no longer this verifier's (a newer one migrated
                it while this one served).
            StoreUnavailableError: the database failed.
        """
        with self._read() as conn:
            rows = conn.execute(_TRUST_AND_SCHEMA).all()
        schemas = {int(row.schema) for row in rows}
        if schemas != {SCHEMA_VERSION}:
            raise SchemaMovedError(schemas)
        return int(rows[0].version)

    def trust(self) -> StoredTrust:
        """The revocations, landmarks and exclusions in force (:func:`read_trust`)."""
        with self._read() as conn:
            return read_trust(conn)

    def follow_revocation_list(
        self, offered: RevocationList, now_ns: int, *, by: str
    ) -> RevocationList:
        """Make ``offered`` (a host's revocation list file) the list every replica judges
        by when it is newer than the stored one; of the same version, the stored list
        gains what ``offered`` adds; an older one changes nothing (a list loses a
        revocation only at a newer version, whichever replica or restart offers it).
        What the stored list revokes and lifts is journalled, by ``by``, and the trust
        version raised, so every replica follows it from its next batch.

        Returns:
            The stored list now: ``offered``, or a newer or larger one.
        """
        with self._write(_TRUST_LOCK) as conn:
            held = _read_revocation_list(conn)
            followed = held.merged_with(offered)
            if followed == held:
                return held
            conn.execute(delete(revocation_list))
            conn.execute(
                insert(revocation_list).values(
                    version=followed.version,
                    devices=_json_list(followed.devices),
                    landmarks=_json_list(followed.landmarks),
                    landmark_keys=_json_list(followed.landmark_keys),
                    followed_at_ns=now_ns,
                )
            )
            why = f"revocation list version {followed.version}"
            _trust_changed(
                conn,
                [
                    TrustRecord(change, subject, now_ns, by, why)
                    for change, subjects in (
                        (TrustChange.DEVICE_REVOKED, followed.devices - held.devices),
                        (TrustChange.DEVICE_RESTORED, held.devices - followed.devices),
                        (TrustChange.LANDMARK_REVOKED, followed.landmarks - held.landmarks),
                        (
                            TrustChange.LANDMARK_REVOKED,
                            followed.landmark_keys - held.landmark_keys,
                        ),
                        (TrustChange.LANDMARK_RESTORED, held.landmarks - followed.landmarks),
                        (
                            TrustChange.LANDMARK_RESTORED,
                            held.landmark_keys - followed.landmark_keys,
                        ),
                    )
                    for subject in sorted(subjects)
                ],
            )
            return followed

    def revoke_device(
        self, device_id: str, now_ns: int, *, by: str, why: str, alert: Alert | None = None
    ) -> None:
        """Revoke the device on every replica from its next proof, and store ``alert``
        with it (one transaction: both or neither).

        Raises:
            ConfigError: it is already revoked; nothing changed.
        """
        with self._write(_TRUST_LOCK) as conn:
            if _revoked(conn, Revoked.DEVICE, device_id):
                raise ConfigError(f"device {device_id[:128]} is already revoked")
            _revoke(conn, [(Revoked.DEVICE, device_id)], now_ns, by, why)
            if alert is not None:
                self._insert_alerts(conn, [{**_alert_values(alert), "proof_id": None}])
            _trust_changed(
                conn, [TrustRecord(TrustChange.DEVICE_REVOKED, device_id, now_ns, by, why)]
            )

    def restore_device(self, device_id: str, now_ns: int, *, by: str, why: str) -> None:
        """Lift the device's revocation made through the store (the verdicts judged before
        the revocation stay taken away: see :data:`CONTRADICTING`).

        Raises:
            ConfigError: the store holds no revocation of it; nothing changed.
        """
        with self._write(_TRUST_LOCK) as conn:
            gone = conn.execute(
                delete(revocations).where(
                    revocations.c.kind == Revoked.DEVICE.value, revocations.c.subject == device_id
                )
            ).rowcount
            if not gone:
                raise ConfigError(f"device {device_id[:128]} is not revoked")
            _trust_changed(
                conn, [TrustRecord(TrustChange.DEVICE_RESTORED, device_id, now_ns, by, why)]
            )

    def revoke_landmark(
        self, landmark_id: str, key_id: str, now_ns: int, *, by: str, why: str
    ) -> None:
        """Revoke the landmark and its key (untrusted under any id it is ever registered
        under), in one transaction.

        Raises:
            ConfigError: the landmark is already revoked; nothing changed.
        """
        with self._write(_TRUST_LOCK) as conn:
            if _revoked(conn, Revoked.LANDMARK, landmark_id):
                raise ConfigError(f"landmark {landmark_id[:128]} is already revoked")
            subjects = [(Revoked.LANDMARK, landmark_id)]
            if not _revoked(conn, Revoked.LANDMARK_KEY, key_id):
                subjects.append((Revoked.LANDMARK_KEY, key_id))
            _revoke(conn, subjects, now_ns, by, why)
            _trust_changed(
                conn, [TrustRecord(TrustChange.LANDMARK_REVOKED, landmark_id, now_ns, by, why)]
            )

    def register_landmark(self, record: LandmarkRecord, now_ns: int, *, by: str) -> None:
        """Register a landmark on every replica from its next proof.

        Raises:
            ConfigError: its id is registered already; nothing changed.
            LandmarkKeyReusedError: its key is registered under another id; nothing changed.
        """
        key_id = record.verifying_key.key_id
        with self._write(_TRUST_LOCK) as conn:
            held = conn.execute(
                select(registered_landmarks.c.landmark_id, registered_landmarks.c.key_id).where(
                    (registered_landmarks.c.landmark_id == record.landmark_id)
                    | (registered_landmarks.c.key_id == key_id)
                )
            ).first()
            if held is not None and held.landmark_id == record.landmark_id:
                raise ConfigError(f"landmark {record.landmark_id} is already registered")
            if held is not None:
                raise LandmarkKeyReusedError(
                    f"landmark {record.landmark_id}: public key {key_id[:16]} is already"
                    f" registered as landmark {held.landmark_id}"
                )
            conn.execute(
                insert(registered_landmarks).values(
                    landmark_id=record.landmark_id,
                    key_id=key_id,
                    spki=record.verifying_key.der(),
                    latitude=record.latitude,
                    longitude=record.longitude,
                    name=record.name,
                    operator=record.operator,
                    registered_at_ns=now_ns,
                    registered_by=by,
                )
            )
            _trust_changed(
                conn,
                [
                    TrustRecord(
                        TrustChange.LANDMARK_REGISTERED,
                        record.landmark_id,
                        now_ns,
                        by,
                        f"operator {record.operator}, key {key_id[:16]}",
                    )
                ],
            )

    def trust_changes(self) -> list[TrustRecord]:
        """The trust journal: every revocation, restoration, registration, exclusion and
        lift the store holds, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(trust_changes).order_by(trust_changes.c.id)).all()
        return [_trust_record(r) for r in rows]

    def retain(self, cutoff_ns: int, *, archive: bool, batch: int = 10_000) -> int:
        """Move proofs received before ``cutoff_ns``, each with its result, to the archive
        table (``archive``) or delete them; returns how many. Chain heads with their history
        fixes and the successor index are other tables and stay whole, so every chain goes on
        and a fork of an archived proof is still caught; a proof an alert names stays as
        the alert's evidence. The newest proof stays too: SQLite numbers a new row after
        the largest id left in its table, and would give the next proof the id of one just
        archived. One transaction per ``batch`` proofs, so serving goes on.
        """
        named = select(alerts.c.proof_id).where(alerts.c.proof_id.is_not(None))
        newest = select(func.max(proofs.c.id)).scalar_subquery()
        old = (
            select(proofs.c.id)
            .where(
                proofs.c.received_at_ns < cutoff_ns,
                proofs.c.id.not_in(named),
                proofs.c.id < newest,
            )
            .order_by(proofs.c.id)
            .limit(batch)
        )
        moved = 0
        while True:
            with self._write() as conn:
                ids = list(conn.execute(old).scalars())
                if not ids:
                    return moved
                chosen = proofs.c.id.in_(ids)
                if archive:
                    conn.execute(
                        proofs_archive.insert().from_select(
                            [c.name for c in proofs.c], select(proofs).where(chosen)
                        )
                    )
                conn.execute(delete(proofs).where(chosen))
            moved += len(ids)

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


def _alert_from_row(r: Any) -> Alert:
    return Alert(r.alert_id, r.device_id, r.kind, r.reason, r.detail, r.time_ns, r.id)


def _unstorable(name: str) -> bool:
    """Whether an id asked for holds a NUL, which no stored one does (key ids are hex
    digests, device ids certificates' printable serial numbers) and PostgreSQL refuses
    in a parameter: it names nothing here, on either backend, and is never sent."""
    return "\x00" in name


def _storable_text(text: str) -> str:
    """Free text as both backends hold it: a verdict's or an alert's detail may quote what
    a proof carried, and PostgreSQL refuses NUL in text, so each is written as U+FFFD
    (one such detail would otherwise fail its whole batch)."""
    return text.replace("\x00", "\ufffd")


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "device_id": alert.device_id,
        "kind": alert.kind,
        "reason": alert.reason,
        "detail": _storable_text(alert.detail),
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


def read_trust(conn: Connection) -> StoredTrust:
    """The revocations, landmarks and exclusions in force. The version is read first: rows
    newer than it only make the next batch read them again, never miss one."""
    version = int(conn.execute(_TRUST_VERSION).scalar_one())
    revoked: dict[str, set[str]] = {kind.value: set() for kind in Revoked}
    for kind, subject in conn.execute(select(revocations.c.kind, revocations.c.subject)):
        revoked[kind].add(subject)
    landmarks = tuple(
        LandmarkRecord(
            r.landmark_id,
            r.latitude,
            r.longitude,
            _verifying_key(bytes(r.spki)),
            r.name,
            r.operator,
        )
        for r in conn.execute(
            select(registered_landmarks).order_by(registered_landmarks.c.landmark_id)
        )
    )
    return StoredTrust(
        version,
        RevocationList(
            version,
            frozenset(revoked[Revoked.DEVICE]),
            frozenset(revoked[Revoked.LANDMARK]),
            frozenset(revoked[Revoked.LANDMARK_KEY]),
        ),
        landmarks,
        frozenset(str(landmark_id) for landmark_id in conn.execute(_EXCLUDED).scalars()),
        {str(landmark_id): int(at_ns) for landmark_id, at_ns in conn.execute(_LIFTED)},
        _read_revocation_list(conn),
    )


def _read_revocation_list(conn: Connection) -> RevocationList:
    """The stored revocation list (:data:`revocation_list`); version 0 when none is."""
    row = conn.execute(select(revocation_list)).first()
    if row is None:
        return RevocationList()
    return RevocationList(
        version=int(row.version),
        devices=frozenset(orjson.loads(row.devices)),
        landmarks=frozenset(orjson.loads(row.landmarks)),
        landmark_keys=frozenset(orjson.loads(row.landmark_keys)),
    )


def _json_list(subjects: frozenset[str]) -> str:
    return orjson.dumps(sorted(subjects)).decode()


def read_summary(conn: Connection, device_id: str) -> DeviceSummary | None:
    """The device with its licence in force, its chain head, and what its last verdict was
    judged under and contradicted by since (None: not enrolled)."""
    row = conn.execute(_DEVICE_BY_ID, {"device_id": device_id}).mappings().first()
    if row is None:
        return None
    head = conn.execute(_HEAD, {"device_id": device_id}).mappings().first()
    if head is None:
        return DeviceSummary(_device_from_row(row), None, None, 0)
    judged = conn.execute(
        select(proofs.c.bounds, proofs.c.envelope).where(
            proofs.c.device_id == device_id,
            proofs.c.digest == head["digest"],
            proofs.c.accepted.is_(True),
        )
    ).first()
    landmarks = None if judged is None else _verdict_landmarks(judged.bounds, judged.envelope)
    contradicted = conn.execute(
        select(trust_changes)
        .where(
            trust_changes.c.version > head["trust_version"],
            trust_changes.c.change.in_([c.value for c in CONTRADICTING]),
            trust_changes.c.subject.in_(
                [device_id, *sorted({landmark.landmark_id for landmark in landmarks or ()})]
            ),
        )
        .order_by(trust_changes.c.id)
    ).all()
    return DeviceSummary(
        device=_device_from_row(row),
        head=_head_from_row(head),
        last_verdict=Verdict(head["verdict"]),
        last_evidence_time_ns=head["evidence_time_ns"],
        verdict_licence_version=head["licence_version"],
        verdict_landmarks=landmarks,
        contradicted_by=tuple(_trust_record(r) for r in contradicted),
    )


def _verdict_landmarks(bounds: str, envelope: bytes) -> tuple[VerdictLandmark, ...] | None:
    """The landmarks an accepted proof's verdict rests on: each bound (drawn in receipt
    order) with the key id of the receipt it was drawn from. None where the stored proof
    no longer reads as one bound per receipt: nothing can then be said to still stand."""
    try:
        proof = decode(
            evidence_pb2.LocationProof,
            decode(envelope_pb2.Envelope, bytes(envelope), limit=MAX_PROOF_BYTES).payload,
            limit=MAX_PROOF_BYTES,
        )
    except GeoattestError:
        return None
    drawn = _bounds_from_json(bounds)
    if len(drawn) != len(proof.receipts):
        return None
    return tuple(
        VerdictLandmark(b.landmark_id, receipt.key_id, b.latitude, b.longitude)
        for b, receipt in zip(drawn, proof.receipts, strict=True)
    )


def _trust_changed(conn: Connection, records: Sequence[TrustRecord]) -> None:
    """Raise :attr:`StoredTrust.version` and journal ``records`` at the new version, in the
    transaction that changes what it covers. On PostgreSQL the transaction holds the trust
    lock from here (exclusions come under the audit lock), so commits of appraisals wait
    for it (:func:`_check_trust`); call it before storing alerts, which such a commit may
    hold while it waits."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_TRUST_LOCK)))
    version = conn.execute(
        update(trust_versions)
        .values(version=trust_versions.c.version + 1)
        .returning(trust_versions.c.version)
    ).scalar_one()
    if records:
        conn.execute(insert(trust_changes), [_trust_values(r, version) for r in records])


def _trust_values(record: TrustRecord, version: int) -> dict[str, Any]:
    return {
        "version": version,
        "change": record.change.value,
        "subject": record.subject,
        "at_ns": record.at_ns,
        "changed_by": record.by,
        "why": record.why,
    }


def _trust_record(r: Any) -> TrustRecord:
    return TrustRecord(TrustChange(r.change), r.subject, r.at_ns, r.changed_by, r.why, r.version)


def _revoked(conn: Connection, kind: Revoked, subject: str) -> bool:
    return (
        conn.execute(
            select(revocations.c.subject).where(
                revocations.c.kind == kind.value, revocations.c.subject == subject
            )
        ).first()
        is not None
    )


def _revoke(
    conn: Connection, subjects: Sequence[tuple[Revoked, str]], now_ns: int, by: str, why: str
) -> None:
    conn.execute(
        insert(revocations),
        [
            {
                "kind": kind.value,
                "subject": subject,
                "revoked_at_ns": now_ns,
                "revoked_by": by,
                "why": why,
            }
            for kind, subject in subjects
        ],
    )


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
        landmark_times={str(k): int(v) for k, v in orjson.loads(m["landmark_times"]).items()},
        fix=_bounds_from_json(m["fix"]),
        fix_time_ns=m["fix_time_ns"],
    )


def _new_head(record: CommitRecord) -> ChainHead:
    head = record.appraisal.new_head
    assert head is not None
    return head


def _proof_values(record: CommitRecord, bounds_json: str) -> dict[str, Any]:
    appraisal, head = record.appraisal, record.appraisal.new_head
    return {
        "device_id": appraisal.device_id,
        "counter": appraisal.counter,
        "digest": record.digest,
        "previous_digest": head.previous_digest if head else b"",
        "envelope": record.evidence,
        "accepted": head is not None,
        "verdict": appraisal.verdict.value,
        "reason": appraisal.reason.value if appraisal.reason else "",
        "detail": _storable_text(appraisal.detail),
        "bounds": bounds_json,
        "evidence_time_ns": appraisal.evidence_time_ns,
        "received_at_ns": record.received_at_ns,
        "token": record.token,
    }


def _check_trust(conn: Connection, records: Sequence[CommitRecord]) -> None:
    """Fail if the stored trust version (revocations, registrations, exclusions) is not the
    one the records of enrolled devices were judged under. On PostgreSQL the trust lock is
    held shared to the transaction's end: a trust change under way is waited for and then
    read here (each statement reads what had committed when it began), and none commits
    before this transaction does."""
    judged = {r.trust_version for r in records if r.appraisal.device_id}
    if not judged:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock_shared(_TRUST_LOCK)))
    if judged != {conn.execute(_TRUST_VERSION).scalar_one()}:
        raise StoreConflictError("the trust in force changed since the batch was appraised")


def _check_not_alerted(conn: Connection, kept: Sequence[CommitRecord]) -> None:
    """Fail if a rejection with alerts among ``kept`` is stored already (the same device,
    proof digest and reason): another writer stored it first, and the retry is answered
    with its result (``VerifierService``). On PostgreSQL the devices' rows are locked
    until the commit (after the heads, in device order, as the commit's own update of
    them), so two commits of one such rejection check one after the other."""
    alerted = [
        r for r in kept if r.appraisal.new_head is None and r.alerts and r.appraisal.device_id
    ]
    if not alerted:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(devices.c.device_id)
            .where(devices.c.device_id.in_(sorted({r.appraisal.device_id for r in alerted})))
            .order_by(devices.c.device_id)
            .with_for_update()
        )
    for r in alerted:
        reason = r.appraisal.reason.value if r.appraisal.reason else ""
        stored = conn.execute(
            select(proofs.c.id)
            .where(
                proofs.c.device_id == r.appraisal.device_id,
                proofs.c.digest == r.digest,
                proofs.c.accepted.is_(False),
                proofs.c.reason == reason,
            )
            .limit(1)
        ).first()
        if stored is not None:
            raise StoreConflictError(
                f"a proof of {r.appraisal.device_id} was stored rejected, with its alerts, first"
            )


def _check_unmoved(
    conn: Connection,
    statements: Mapping[bool, Select[Any]],
    read: Mapping[str, T],
    missing: T,
    what: str,
) -> None:
    """Fail if any device's value (its head digest, its licence version) is no longer the
    one read (``missing``: no row); ``statements`` reads them by device, per dialect, as
    the type of ``missing``."""
    convert: Callable[[Any], T] = type(missing)
    devices_read = sorted(read)
    statement = statements[conn.dialect.name == "postgresql"]
    for start in range(0, len(devices_read), _KEYS_PER_READ):
        chunk = devices_read[start : start + _KEYS_PER_READ]
        now = dict.fromkeys(chunk, missing)
        now.update(
            (device_id, convert(value))
            for device_id, value in conn.execute(statement, {"devices": chunk})
        )
        for device_id in chunk:
            if now[device_id] != read[device_id]:
                raise StoreConflictError(f"{what} of {device_id} changed since it was read")


def _licence_columns() -> tuple[Any, ...]:
    return (
        export_licences.c.licence_id.label("l_id"),
        export_licences.c.version.label("l_version"),
        export_licences.c.region.label("l_region"),
        export_licences.c.valid_until_ns.label("l_valid_until_ns"),
        export_licences.c.withdrawn.label("l_withdrawn"),
    )


_WITH_LICENCE = devices.outerjoin(
    export_licences, export_licences.c.device_id == devices.c.device_id
)
_DEVICE_BY_ID = (
    select(devices, *_licence_columns())
    .select_from(_WITH_LICENCE)
    .where(devices.c.device_id == bindparam("device_id"))
)
"""A device with the licence in force (``l_version`` is NULL where none is held)."""
_HEAD = select(chain_heads).where(chain_heads.c.device_id == bindparam("device_id"))
"""A device's chain head with its history fix, if it has one."""


def _array_of(column: Column[Any]) -> ARRAY[Any]:
    """A PostgreSQL array of the column's values, of the unbounded type: an explicit cast
    to ``VARCHAR(n)`` would cut a longer value where the insert must refuse it."""
    kind = column.type
    return ARRAY(String() if isinstance(kind, String) and not isinstance(kind, Text) else kind)


T = TypeVar("T")
Among = Callable[[Column[Any], str], ColumnElement[bool]]
"""A column's value is one of those bound, as a list, to the named parameter."""


def _in_list(column: Column[Any], name: str) -> ColumnElement[bool]:
    """SQLite: ``column IN (?, ?, ...)``, a parameter per value."""
    return column.in_(bindparam(name, expanding=True))


def _in_array(column: Column[Any], name: str) -> ColumnElement[bool]:
    """PostgreSQL: ``column IN (SELECT unnest(%(name)s))``, the values as one array. The
    text is the same for any number of values, and the plan that psycopg's prepared
    statement settles on (a generic one) joins the array's elements to the table; with a
    parameter per value it settles on comparing every row with each value in turn, as
    ``= ANY`` of an array parameter does. The elements have the column's unbounded type,
    so no longer value is cut to match a stored one."""
    return column.in_(select(func.unnest(bindparam(name, type_=_array_of(column)))))


def _by_dialect(build: Callable[[Among], T]) -> dict[bool, T]:
    """A statement for each backend (key: is it PostgreSQL?), built once."""
    return {False: build(_in_list), True: build(_in_array)}


_DEVICES_WITH_HEADS = _by_dialect(
    lambda among: (
        select(
            devices,
            chain_heads.c.counter,
            chain_heads.c.digest,
            chain_heads.c.previous_digest,
            chain_heads.c.accepted_at_ns,
            chain_heads.c.landmark_times,
            chain_heads.c.fix,
            chain_heads.c.fix_time_ns,
            *_licence_columns(),
        )
        .select_from(_WITH_LICENCE.outerjoin(chain_heads))
        .where(among(devices.c.key_id, "keys"))
    )
)
"""Devices by key id with their heads, fixes and licences (``counter`` is NULL without a
head)."""
_HEAD_DIGESTS = _by_dialect(
    lambda among: (
        select(chain_heads.c.device_id, chain_heads.c.digest)
        .where(among(chain_heads.c.device_id, "devices"))
        .order_by(chain_heads.c.device_id)
        .with_for_update()
    )
)
"""Heads by device, locked for the commit's check (the heads stay as checked until it ends)."""
_LICENCE_VERSIONS = _by_dialect(
    lambda among: select(export_licences.c.device_id, export_licences.c.version).where(
        among(export_licences.c.device_id, "devices")
    )
)
"""Licence versions by device, for the commit's check."""
_TRUST_VERSION = select(trust_versions.c.version)
_TRUST_AND_SCHEMA = select(
    trust_versions.c.version, schema_version.c.version.label("schema")
).select_from(trust_versions.join(schema_version, true()))
"""The trust version beside the schema's, read before every batch and at every health
probe: a replica notices a migration past its own schema within a probe."""
_EXCLUDED = select(landmark_exclusions.c.landmark_id).where(
    landmark_exclusions.c.lifted_at_ns.is_(None)
)
_LIFTED = (
    select(landmark_exclusions.c.landmark_id, func.max(landmark_exclusions.c.lifted_at_ns))
    .where(landmark_exclusions.c.lifted_at_ns.is_not(None))
    .group_by(landmark_exclusions.c.landmark_id)
)
_KEYS_PER_READ = 500
"""Key ids per read, well under SQLite's limit on bound parameters."""
_SUCCESSOR = select(successors.c.digest).where(
    successors.c.device_id == bindparam("device_id"),
    successors.c.previous_digest == bindparam("previous_digest"),
)
_PROOF_IDS = "proofs_id_seq"
"""The sequence behind ``proofs.id`` on PostgreSQL (a ``BIGSERIAL``'s own name)."""
_MOVE_HEAD = update(chain_heads).where(
    chain_heads.c.device_id == bindparam("b_device_id"),
    chain_heads.c.digest == bindparam("b_head"),
)
"""The compare-and-swap: the head moves only if it is still the proof's predecessor."""


def _unnested(table: Table, names: Sequence[str], params: Sequence[str]) -> TableValuedAlias:
    """The rows that arrays bound as ``params`` (one per column ``names`` of ``table``,
    element by element) make, as ``unnest(...) AS v(params)``."""
    arrays = [
        bindparam(param, type_=_array_of(table.c[name]))
        for name, param in zip(names, params, strict=True)
    ]
    return func.unnest(*arrays).table_valued(*params).render_derived(name="v")


@functools.cache
def _binary_arrays(statement: Insert | Update, dialect: Dialect) -> str:
    """The statement's text for psycopg, each array parameter sent in binary (``%(name)b``):
    in text form every ``bytea`` element would be hex-escaped by the client and parsed back
    by the server (several times the cost of the rows it carries). The values go to the
    driver as they are (ints, strings, bytes, booleans), which it adapts without
    SQLAlchemy's bind processing."""
    compiled = statement.compile(dialect=dialect)
    sql = str(compiled)
    for name in compiled.params:
        sql = sql.replace(f"%({name})s", f"%({name})b")
    return sql


@functools.cache
def _unnest_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    """``INSERT INTO table (names) SELECT * FROM unnest(...)``, built once per column set."""
    rows = _unnested(table, names, names)
    return _binary_arrays(insert(table).from_select(list(names), select(*rows.c)), dialect)


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as columns: each name's values, in the rows' order."""
    return {name: [row[name] for row in rows] for name in names}


_HEAD_FIELDS = (
    "counter",
    "digest",
    "previous_digest",
    "accepted_at_ns",
    "landmark_times",
    "verdict",
    "evidence_time_ns",
    "licence_version",
    "trust_version",
    "fix",
    "fix_time_ns",
)
"""What a move writes into a chain head."""
_MOVED = ("b_device_id", "b_head", *_HEAD_FIELDS)
_PG_MOVED = _unnested(chain_heads, ("device_id", "digest", *_HEAD_FIELDS), _MOVED)
_PG_MOVE_HEADS = (
    update(chain_heads)
    .values({name: _PG_MOVED.c[name] for name in _HEAD_FIELDS})
    .where(
        chain_heads.c.device_id == _PG_MOVED.c.b_device_id,
        chain_heads.c.digest == _PG_MOVED.c.b_head,
    )
)
""":data:`_MOVE_HEAD` for many devices in one statement (PostgreSQL): the moves as arrays."""


def _net_moves(moves: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One move per device, in the order of each device's first: from the head its first
    move starts at to the head its last one writes. Each of a device's later moves must
    start at the head the one before it writes, as its own compare-and-swap would require.

    Raises:
        StoreConflictError: a device's move starts elsewhere (nothing is written).
    """
    net: dict[str, Mapping[str, Any]] = {}
    for move in moves:
        device = move["b_device_id"]
        last = net.get(device)
        if last is None:
            net[device] = move
        elif move["b_head"] != last["digest"]:
            raise StoreConflictError(f"a move of {device}'s chain head starts at another head")
        else:
            net[device] = {**move, "b_head": last["b_head"]}
    return list(net.values())


_ATTESTING = _by_dialect(
    lambda among: (
        update(devices)
        .where(
            among(devices.c.device_id, "devices"), devices.c.state != DeviceState.ATTESTING.value
        )
        .values(state=DeviceState.ATTESTING.value)
    )
)
_MARK_STALE = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(state=DeviceState.STALE.value)
)

# Transaction-scoped PostgreSQL advisory locks: each serialises one kind of write across
# every process on the database (SQLite's BEGIN IMMEDIATE serialises every writer).
_SCHEMA_LOCK = 0x6765_6F00
_ALERTS_LOCK = 0x6765_6F01
_SWEEP_LOCK = 0x6765_6F02
_LICENCES_LOCK = 0x6765_6F03
_AUDIT_LOCK = 0x6765_6F04
_TRUST_LOCK = 0x6765_6F05

_CONFLICT_STATES = frozenset({"40001", "40P01"})
"""PostgreSQL's serialization failure and deadlock: another writer won, try again."""


def _shown(db: str | Path) -> str:
    """The database as an error may name it: a URL without its password, in its user
    part or its query (one that does not parse is not shown at all, since its password
    cannot be told apart)."""
    if not _is_url(db):
        return str(db)
    try:
        url = make_url(str(db))
    except (ArgumentError, ValueError):
        return "(the --db URL)"
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


def _is_url(db: str | Path) -> bool:
    return isinstance(db, str) and "://" in db


_POSTGRESQL_SCHEMES = ("postgresql://", "postgresql+psycopg://")
CONNECT_TIMEOUT_S = 10
"""How long a new PostgreSQL connection may take, unless the URL says
(``connect_timeout``): a server that accepts and never answers is refused, not waited on."""
IDLE_IN_TRANSACTION_S = 10
"""How long the server lets a verifier session sit idle inside a transaction before it
ends the session (``idle_in_transaction_session_timeout``): a replica frozen or cut off in
the middle of a commit lets go of the locks it holds (chain heads, the alerts' advisory
lock) within this, instead of holding every other replica up until the server's TCP
keepalive notices, hours later. Its own statements follow each other within
milliseconds; a URL's ``options`` may set another value."""


def _postgres_url(db: str | Path) -> URL | None:
    """``db`` parsed, if it names a PostgreSQL database (with :data:`CONNECT_TIMEOUT_S`
    unless it sets one, and :data:`IDLE_IN_TRANSACTION_S` before its own ``options``);
    None for a SQLite file's path.

    Raises:
        ConfigError: ``db`` is a URL of another kind, or one that does not parse (a port
            that is not a number, a bracket left open): refused before any connection.
    """
    if not _is_url(db):
        return None
    if not str(db).startswith(_POSTGRESQL_SCHEMES):
        raise ConfigError(
            f"database {_shown(db)}: --db is a SQLite file's path or a postgresql:// URL"
        )
    try:
        url = make_url(str(db)).set(drivername="postgresql+psycopg")
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
        idle = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S * 1000}"
        given = url.query.get("options", "")
        url = url.update_query_dict({"options": f"{idle} {given}".strip()})
        url.get_dialect()().create_connect_args(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"--db {_shown(db)} is not a valid postgresql:// URL: {exc}") from exc
    return url


def _engine(
    db: str | Path, synchronous: Synchronous, busy_timeout_ms: int, pool_size: int
) -> Engine:
    """An engine with a pool of at most ``pool_size`` connections, never more.

    Raises:
        ConfigError: ``db`` is a path whose directory does not exist, or not a usable
            ``postgresql://`` URL.
    """
    url = _postgres_url(db)
    if url is not None:
        return create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)
    path = Path(db)
    if not path.parent.is_dir():
        raise ConfigError(f"database {path}: directory {path.parent} does not exist")
    engine = create_engine(f"sqlite:///{path}", pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: sqlite3.Connection, _record: object) -> None:
        """WAL mode with the store's pragmas. ``isolation_level=None``: the driver never
        opens transactions on its own; writers open ``BEGIN IMMEDIATE`` themselves (no
        lock-upgrade deadlocks between processes)."""
        connection.isolation_level = None
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous.value}")
        connection.execute("PRAGMA foreign_keys = ON")

    return engine


class ConnectionSockets:
    """An engine's open PostgreSQL connections, each by a duplicate of its socket, so that
    :meth:`shut_down` can end the statements waiting on them from any thread. A duplicate,
    not the driver's own descriptor: a connection closed meanwhile can never let its
    number, reused by another socket, be shut down. Each duplicate is closed as its
    connection is (the pool's ``close`` events), so no server connection outlives it.
    Connections the pool held before are closed, so that every pooled connection is one
    it follows, whenever it was made."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        event.listen(engine, "connect", self._opened)
        event.listen(engine, "close", self._closed)
        event.listen(engine, "close_detached", self._closed)
        engine.pool.dispose()

    def _opened(self, connection: psycopg.Connection[Any], _record: object) -> None:
        duplicate = socket.socket(fileno=os.dup(connection.fileno()))
        with self._lock:
            self._sockets[id(connection)] = duplicate

    def _closed(self, connection: psycopg.Connection[Any], _record: object = None) -> None:
        with self._lock:
            duplicate = self._sockets.pop(id(connection), None)
        if duplicate is not None:
            duplicate.close()

    def shut_down(self) -> None:
        """Shut every connection's socket down: a driver waiting on one wakes to a
        closed connection."""
        with self._lock:
            for duplicate in self._sockets.values():
                with suppress(OSError):
                    duplicate.shutdown(socket.SHUT_RDWR)


def reader_engine(db: str | Path) -> Engine:
    """An engine for readers beside the verifier (the console, the metrics), with the
    store's driver, pragmas and a pool of two.

    Raises:
        ConfigError: ``db`` is a path whose directory does not exist.
    """
    return _engine(db, Synchronous.FULL, 10_000, 2)


@contextmanager
def _transaction(engine: Engine, lock: int | None = None) -> Iterator[Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL (READ
    COMMITTED) holding the advisory ``lock``, if given, to its end."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif lock is not None:
            conn.execute(select(func.pg_advisory_xact_lock(lock)))
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read, ended by a commit: a rollback (what closing a connection in a transaction
    sends) would make psycopg drop the statements it has prepared on that connection, and
    the next commit's would be parsed and planned afresh.

    Raises:
        StoreUnavailableError: the database failed.
    """
    with _store_errors(), engine.connect() as conn:
        yield conn
        conn.commit()


@contextmanager
def _store_errors() -> Iterator[None]:
    """Both drivers' failures as the store's own errors: a refused unique key, a
    serialization failure or a deadlock means another writer won (a conflict); a value
    the database cannot hold (the drivers' DataError: PostgreSQL's NUL in text, a number
    out of range) that the request is malformed; anything else, that the database
    failed."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreConflictError(type(exc.orig).__name__) from exc
    except DataError as exc:
        raise StoreValueError(exc.orig or exc) from exc
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _CONFLICT_STATES:
            raise StoreConflictError(type(exc.orig).__name__) from exc
        raise StoreUnavailableError(exc.orig or exc) from exc
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(exc) from exc


SCHEMA_VERSION = 10
"""The schema this verifier reads and writes. Version 1 is the SQLite schema kept before
versions were (no ``schema_version`` table); each later version is one step in
:data:`_MIGRATIONS`."""


class SchemaVersionError(GeoattestError):
    """The database's schema is not the one this verifier knows: older (migrate it first)
    or newer (a newer verifier wrote it; this one must not touch it)."""

    def __init__(self, found: int) -> None:
        advice = (
            "run 'geoattest verifier migrate' first"
            if found < SCHEMA_VERSION
            else "a newer verifier wrote it"
        )
        super().__init__(
            Reason.STORE_SCHEMA,
            f"database schema version {found}, this verifier's is {SCHEMA_VERSION}: {advice}",
        )
        self.found = found


_VERSION_1_TABLES = frozenset(
    {
        "devices",
        "licences",
        "peer_measurements",
        "landmark_exclusions",
        "proofs",
        "chain_heads",
        "last_fixes",
        "successors",
        "results",
        "alerts",
    }
)
"""The tables of version 1, which kept no version: a database holding them all is one."""


class NotGeoattestDatabaseError(GeoattestError):
    """The database holds tables but no geoattest schema of any version (or a version
    table that names none): another application's, or one damaged by hand. The verifier
    neither adds its schema beside those tables nor alters them."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.STORE_SCHEMA, f"not a geoattest database: {detail}")


def _schema_version(conn: Connection) -> int | None:
    """The database's schema version; None when it holds no table at all.

    Raises:
        NotGeoattestDatabaseError: it holds tables, but no geoattest schema's version.
    """
    tables = set(inspect(conn).get_table_names())
    if schema_version.name in tables:
        rows = conn.execute(select(schema_version.c.version)).all()
        found = [row[0] for row in rows]
        if len(found) != 1 or type(found[0]) is not int or found[0] < 1:
            raise NotGeoattestDatabaseError(
                f"its {schema_version.name} table holds {found[:3]!r}, not one version"
            )
        return found[0]
    if tables >= _VERSION_1_TABLES:
        return 1
    if tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise NotGeoattestDatabaseError(
            f"it holds tables ({shown}) but no {schema_version.name}: give the verifier"
            " a database of its own (an empty one gets the schema)"
        )
    return None


def _set_version(conn: Connection) -> None:
    conn.execute(delete(schema_version))
    conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))


def _create_schema(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(insert(trust_versions).values(version=0))
    _set_version(conn)


def _add_schema_version(conn: Connection) -> None:
    """Version 2: the schema's version is kept in the database."""
    schema_version.create(conn)


def _add_archives(conn: Connection) -> None:
    """Version 3: old proofs and results can move to archive tables (as version 3 made
    them: the proofs' without the result token, which version 7 brings into the row)."""
    then = MetaData()
    Table("proofs_archive", then, *_archive_columns(proofs, leaving={"token"}))
    Table(
        "results_archive",
        then,
        Column("proof_id", _ID, primary_key=True, autoincrement=False),
        Column("token", Text, nullable=False),
    )
    then.create_all(conn)


def _add_stored_trust(conn: Connection) -> None:
    """Version 4: revocations and landmarks made through the admin API are rows, so every
    replica holds them."""
    metadata.create_all(conn, tables=[revocations, registered_landmarks, trust_versions])
    conn.execute(insert(trust_versions).values(version=0))


def _add_trust_journal(conn: Connection) -> None:
    """Version 5: chain heads name the licence and trust versions their verdict was judged
    under, and every trust change is journalled. A head kept from before names neither
    (0: its verdict is reported as no longer current until the next proof); the journal
    starts with what is in force, at the trust version now."""
    for column in ("licence_version", "trust_version"):
        conn.execute(text(f"ALTER TABLE chain_heads ADD COLUMN {column} BIGINT DEFAULT 0 NOT NULL"))
    metadata.create_all(conn, tables=[trust_changes])
    version = int(conn.execute(_TRUST_VERSION).scalar_one())
    change_of = {
        Revoked.DEVICE.value: TrustChange.DEVICE_REVOKED,
        Revoked.LANDMARK.value: TrustChange.LANDMARK_REVOKED,
    }
    held = [
        TrustRecord(change_of[r.kind], r.subject, r.revoked_at_ns, r.revoked_by, r.why)
        for r in conn.execute(select(revocations).order_by(revocations.c.revoked_at_ns))
        if r.kind in change_of
    ]
    held += [
        TrustRecord(
            TrustChange.LANDMARK_REGISTERED,
            r.landmark_id,
            r.registered_at_ns,
            r.registered_by,
            f"operator {r.operator}, key {r.key_id[:16]}",
        )
        for r in conn.execute(select(registered_landmarks))
    ]
    for e in _exclusions(conn):
        held.append(
            TrustRecord(
                TrustChange.LANDMARK_EXCLUDED, e.landmark_id, e.excluded_at_ns, "", e.detail
            )
        )
        if e.lifted_at_ns is not None:
            held.append(
                TrustRecord(
                    TrustChange.EXCLUSION_LIFTED,
                    e.landmark_id,
                    e.lifted_at_ns,
                    e.lifted_by,
                    e.lift_reason,
                )
            )
    if held:
        conn.execute(insert(trust_changes), [_trust_values(r, version) for r in held])


def _keep_rows_inline(conn: Connection) -> None:
    """Version 6: on PostgreSQL, proofs and results keep their rows inline (see
    :data:`_INLINE_ROWS`); rows stored before stay where they are. SQLite: nothing to do."""
    for table in ("proofs", "results"):
        _set_storage(conn, table, _INLINE_ROWS)


def _set_storage(conn: Connection, table: str, options: Mapping[str, str]) -> None:
    """Set a table's storage options on PostgreSQL (SQLite has none)."""
    if conn.dialect.name == "postgresql":
        listed = ", ".join(f"{name} = {value}" for name, value in options.items())
        conn.execute(text(f"ALTER TABLE {table} SET ({listed})"))


def _one_row_per_proof(conn: Connection) -> None:
    """Version 7: a proof's result token is kept in the proof's row (live and archived),
    and a device's history fix in its chain head's row, so a commit writes one row per
    proof and one per moved head; the tokens and fixes stored before move into those rows
    (each row of ``proofs`` and ``chain_heads`` rewritten once). On PostgreSQL the heads'
    pages keep room for their moves (:data:`_HEADS_ROOM`, on pages written from now on)."""
    for table in ("proofs", "proofs_archive"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN token TEXT DEFAULT '' NOT NULL"))
    conn.execute(text("ALTER TABLE chain_heads ADD COLUMN fix TEXT DEFAULT '[]' NOT NULL"))
    conn.execute(text("ALTER TABLE chain_heads ADD COLUMN fix_time_ns BIGINT DEFAULT 0 NOT NULL"))
    for table, results_table in (("proofs", "results"), ("proofs_archive", "results_archive")):
        conn.execute(
            text(
                f"UPDATE {table} SET token = (SELECT r.token FROM {results_table} AS r"  # noqa: S608  (our own table names)
                f" WHERE r.proof_id = {table}.id)"
                f" WHERE id IN (SELECT proof_id FROM {results_table})"
            )
        )
    conn.execute(
        text(
            "UPDATE chain_heads SET"
            " fix = (SELECT f.fix FROM last_fixes AS f WHERE f.device_id = chain_heads.device_id),"
            " fix_time_ns = (SELECT f.fix_time_ns FROM last_fixes AS f"
            " WHERE f.device_id = chain_heads.device_id)"
            " WHERE device_id IN (SELECT device_id FROM last_fixes)"
        )
    )
    for table in ("results", "results_archive", "last_fixes"):
        conn.execute(text(f"DROP TABLE {table}"))
    _set_storage(conn, "chain_heads", _HEADS_ROOM)


def _add_licence_file(conn: Connection) -> None:
    """Version 8: the licences file applied last is known, so that applying it again at a
    replica's start or reload undoes no change the admin API made since (its columns as
    this version made them: version 10 adds one)."""
    Table(
        licence_file.name,
        MetaData(),
        Column("digest", String(64), nullable=False),
        Column("applied_at_ns", BigInteger, nullable=False),
    ).create(conn)


def _file_terms(licence: ExportLicence) -> list[object]:
    """What a licences file says of one device, as :data:`licence_file` keeps it."""
    return [licence.name, licence.region, licence.valid_until_ns, licence.withdrawn]


def _add_licence_file_terms(conn: Connection) -> None:
    """Version 10: the licences file applied last is kept by device, so that an edit of
    one device's entry, applied at a replica's start or reload, leaves every other
    device's licence as the admin API left it."""
    conn.execute(text("ALTER TABLE licence_file ADD COLUMN terms TEXT DEFAULT '' NOT NULL"))


def _add_revocation_list(conn: Connection) -> None:
    """Version 9: the newest revocation list file a replica followed is stored, so that no
    replica, nor a restart, judges by an older one."""
    revocation_list.create(conn)


_MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {
    2: _add_schema_version,
    3: _add_archives,
    4: _add_stored_trust,
    5: _add_trust_journal,
    6: _keep_rows_inline,
    7: _one_row_per_proof,
    8: _add_licence_file,
    9: _add_revocation_list,
    10: _add_licence_file_terms,
}
"""Each version's step from the one before it."""


def migrate(db: str | Path) -> tuple[int | None, int]:
    """Bring the database ``db`` to :data:`SCHEMA_VERSION`, one version at a time, in one
    transaction (an empty database gets the whole schema). Returns the version found
    (None: empty) and the version now.

    Raises:
        ConfigError: the database cannot be opened.
        SchemaVersionError: its schema is newer than this verifier's; nothing changed.
        StoreUnavailableError: the database failed; nothing changed.
    """
    engine = _engine(db, Synchronous.FULL, 10_000, 1)
    try:
        with _transaction(engine, _SCHEMA_LOCK) as conn:
            found = _schema_version(conn)
            if found is None:
                _create_schema(conn)
            elif found > SCHEMA_VERSION:
                raise SchemaVersionError(found)
            elif found < SCHEMA_VERSION:
                for version in range(found + 1, SCHEMA_VERSION + 1):
                    _MIGRATIONS[version](conn)
                _set_version(conn)
    except DBAPIError as exc:
        raise ConfigError(f"database {_shown(db)} cannot be migrated: {exc.orig}") from exc
    finally:
        engine.dispose()
    return found, SCHEMA_VERSION
