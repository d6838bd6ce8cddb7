"""The read side of the verifier's store, for the operator's console and the metrics.

Every query the console and the metrics endpoint run is here, small and read-only, over
the store's own tables (:mod:`geoattest.verifier.store`): they never take a write lock,
so a console full of operators costs the proof path nothing but the reads themselves
(SQLite in WAL mode lets readers and the writer run side by side).

The fleet's positions are read incrementally: :meth:`FleetView.positions_since` returns
only the devices whose chain advanced after a given proof row, so a console keeps the
whole fleet in memory and refreshes it with a few rows a second however large it is.

Example::

    view = FleetView.open(Path("verifier.db"))
    view.device_states()        # {"ATTESTING": 9, "ENROLLED": 0, "REVOKED": 0, "STALE": 1}
    view.alerts_after(0, limit=20)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, Select, and_, func, or_, select

from geoattest.errors import ConfigError, GeoattestError
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.store import (
    CONTRADICTING,
    SCHEMA_VERSION,
    ConnectionSockets,
    DeviceState,
    DeviceSummary,
    SchemaVersionError,
    StoredTrust,
    TrustRecord,
    _bounds_from_json,
    _schema_version,
    _trust_record,
    alerts,
    chain_heads,
    devices,
    export_licences,
    landmark_exclusions,
    peer_measurements,
    proofs,
    read_summary,
    read_transaction,
    read_trust,
    reader_engine,
    trust_changes,
)


@dataclass(frozen=True, slots=True)
class Position:
    """A device's newest accepted proof: its verdict and the disks it lay in."""

    device_id: str
    verdict: Verdict
    licensed_region: str
    state: str
    accepted_at_ns: int
    evidence_time_ns: int
    bounds: tuple[LandmarkBound, ...]
    proof_row: int = 0
    """The proof's row in the store: increases with every proof stored."""
    trust_version: int = 0
    """The stored trust version the verdict was judged under."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert row with its cursor (the row id: increasing, so a feed resumes after it)."""

    cursor: int
    alert_id: str
    device_id: str
    kind: str
    reason: str
    detail: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    """What the store holds about one device, for its page."""

    device_id: str
    model: str
    state: str
    licensed_region: str
    enrolled_at_ns: int
    certificate_serial: str
    certificate_not_after_ns: int
    licence_id: str
    licence_version: int
    licence_region: str
    licence_valid_until_ns: int
    licence_withdrawn: bool
    head_counter: int
    head_digest: str


@dataclass(frozen=True, slots=True)
class ProofRow:
    """One stored proof of a device: its verdict, bounds, counter, chain link and result."""

    proof_id: int
    counter: int
    accepted: bool
    verdict: str
    reason: str
    detail: str
    bounds: tuple[LandmarkBound, ...]
    evidence_time_ns: int
    received_at_ns: int
    digest: str
    previous_digest: str
    token: str


@dataclass(frozen=True, slots=True)
class PeerAudit:
    """One peer measurement a landmark's audit handed in."""

    timer: str
    peer: str
    rtt_min_ns: int
    received_at_ns: int


@dataclass(frozen=True, slots=True)
class ExclusionRow:
    landmark_id: str
    excluded_at_ns: int
    detail: str
    lifted_at_ns: int | None
    lifted_by: str


class FleetView:
    """Read-only queries over a verifier's database; safe to share between threads."""

    def __init__(self, engine: Engine, sockets: ConnectionSockets | None = None) -> None:
        self._engine = engine
        self._sockets = sockets

    @classmethod
    def open(cls, db: str | Path) -> FleetView:
        """Read the database ``db``: a SQLite file or a ``postgresql://`` URL.

        Raises:
            ConfigError: the file does not exist, or holds no verifier's schema.
            SchemaVersionError: its schema is not this verifier's version: the tables
                would not mean what the queries read them as (a device's standing most of
                all), so nothing is read from it until it is migrated.
            NotGeoattestDatabaseError: it holds another application's tables.
            StoreUnavailableError: it cannot be reached.
        """
        if "://" not in str(db) and not Path(db).is_file():
            raise ConfigError(f"database {db} does not exist")
        engine = reader_engine(db)
        # Followed from the first connection on: the schema check's connection stays in
        # the pool, and one whose socket is not followed cannot be cut when the server
        # stops answering (:meth:`interrupt`).
        sockets = ConnectionSockets(engine) if engine.dialect.name == "postgresql" else None
        try:
            with read_transaction(engine) as conn:
                found = _schema_version(conn)
            if found is None:
                raise ConfigError(f"database {db} holds no verifier's data (no schema)")
            if found != SCHEMA_VERSION:
                raise SchemaVersionError(found)
        except GeoattestError:
            engine.dispose()
            raise
        return cls(engine, sockets)

    def close(self) -> None:
        self._engine.dispose()

    def probe(self) -> None:
        """Reach the database once (the console's probe).

        Raises:
            StoreUnavailableError: it cannot be reached.
        """
        with read_transaction(self._engine) as conn:
            conn.execute(select(1))

    def interrupt(self) -> None:
        """End the reads waiting on a database that stopped answering (PostgreSQL), as
        :meth:`~geoattest.verifier.store.SqlStore.interrupt` does the verifier's."""
        if self._sockets is not None:
            self._sockets.shut_down()

    def device_states(self) -> dict[str, int]:
        """Enrolled devices by state (every state, zero where none)."""
        query = select(devices.c.state, func.count()).group_by(devices.c.state)
        with read_transaction(self._engine) as conn:
            counted: dict[str, int] = dict(conn.execute(query).all())
        return {state.value: counted.get(state.value, 0) for state in DeviceState}

    def positions_since(self, after_proof: int) -> list[Position]:
        """Devices whose chain head is a proof stored after row ``after_proof`` (0: every
        device with a head). Proof rows are numbered in commit order (one writer at a
        time), so a reader that remembers the largest it saw misses none; the read is a
        range of the proofs' primary key, however large the table."""
        query = (
            select(
                proofs.c.id,
                chain_heads.c.device_id,
                chain_heads.c.verdict,
                devices.c.licensed_region,
                devices.c.state,
                chain_heads.c.accepted_at_ns,
                chain_heads.c.evidence_time_ns,
                proofs.c.bounds,
                chain_heads.c.trust_version,
            )
            .join(
                chain_heads,
                and_(
                    chain_heads.c.device_id == proofs.c.device_id,
                    chain_heads.c.digest == proofs.c.digest,
                ),
            )
            .join(devices, devices.c.device_id == proofs.c.device_id)
            .where(proofs.c.id > after_proof)
        )
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            Position(
                r.device_id,
                Verdict(r.verdict),
                r.licensed_region,
                r.state,
                r.accepted_at_ns,
                r.evidence_time_ns,
                _bounds_from_json(r.bounds),
                r.id,
                r.trust_version,
            )
            for r in rows
        ]

    def allowed_lapsed_by_licence(self, now_ns: int) -> set[str]:
        """Devices whose last verdict is ALLOWED but whose licence no longer supports it
        (another version than the one judged, none, withdrawn, or expired at ``now_ns``),
        or that the stale sweep marked STALE: :func:`~geoattest.verifier.standing.standing`'s
        licence and staleness checks for the whole fleet in one read (the revocations and
        landmarks are the caller's to check, against the positions it holds)."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(_allowed_lapsed_by_licence(now_ns)).scalars()
            return {str(device_id) for device_id in rows}

    def count_allowed_lapsed_by_licence(self, now_ns: int) -> int:
        """How many :meth:`allowed_lapsed_by_licence` finds (the metrics' gauge)."""
        query = select(func.count()).select_from(_allowed_lapsed_by_licence(now_ns).subquery())
        with read_transaction(self._engine) as conn:
            return int(conn.execute(query).scalar_one())

    def contradicting_changes(self) -> list[TrustRecord]:
        """The journalled revocations and exclusions (:data:`CONTRADICTING`): each takes
        away the verdicts judged at an earlier trust version of its device or landmark."""
        query = (
            select(trust_changes)
            .where(trust_changes.c.change.in_([c.value for c in CONTRADICTING]))
            .order_by(trust_changes.c.id)
        )
        with read_transaction(self._engine) as conn:
            return [_trust_record(r) for r in conn.execute(query).all()]

    def device_states_by_id(self, device_ids: list[str]) -> dict[str, str]:
        """The stored state of each of ``device_ids``."""
        query = select(devices.c.device_id, devices.c.state).where(
            devices.c.device_id.in_(device_ids)
        )
        with read_transaction(self._engine) as conn:
            return {r.device_id: r.state for r in conn.execute(query).all()}

    def alerts_after(
        self, cursor: int, *, kind: str = "", device_id: str = "", limit: int = 100
    ) -> list[StoredAlert]:
        """Alerts stored after ``cursor`` (oldest first; 0: from the start), filtered."""
        query = select(alerts).where(alerts.c.id > cursor).order_by(alerts.c.id).limit(limit)
        if kind:
            query = query.where(alerts.c.kind == kind)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            StoredAlert(r.id, r.alert_id, r.device_id, r.kind, r.reason, r.detail, r.time_ns)
            for r in rows
        ]

    def recent_alerts(
        self, *, kind: str = "", device_id: str = "", limit: int = 50
    ) -> list[StoredAlert]:
        """The newest ``limit`` alerts, oldest first, filtered."""
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if kind:
            query = query.where(alerts.c.kind == kind)
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            StoredAlert(r.id, r.alert_id, r.device_id, r.kind, r.reason, r.detail, r.time_ns)
            for r in reversed(rows)
        ]

    def device(self, device_id: str) -> DeviceDetail | None:
        query = (
            select(
                devices,
                export_licences.c.licence_id,
                export_licences.c.version,
                export_licences.c.region.label("licence_region"),
                export_licences.c.valid_until_ns,
                export_licences.c.withdrawn,
                chain_heads.c.counter,
                chain_heads.c.digest,
            )
            .outerjoin(export_licences, export_licences.c.device_id == devices.c.device_id)
            .outerjoin(chain_heads, chain_heads.c.device_id == devices.c.device_id)
            .where(devices.c.device_id == device_id)
        )
        with read_transaction(self._engine) as conn:
            r = conn.execute(query).first()
        if r is None:
            return None
        return DeviceDetail(
            device_id=r.device_id,
            model=r.model,
            state=r.state,
            licensed_region=r.licensed_region,
            enrolled_at_ns=r.enrolled_at_ns,
            certificate_serial=r.cert_serial,
            certificate_not_after_ns=r.not_valid_after_ns,
            licence_id=r.licence_id or "",
            licence_version=r.version or 0,
            licence_region=r.licence_region or "",
            licence_valid_until_ns=r.valid_until_ns or 0,
            licence_withdrawn=bool(r.withdrawn),
            head_counter=r.counter or 0,
            head_digest=(r.digest or b"").hex(),
        )

    def summary(self, device_id: str) -> DeviceSummary | None:
        """The device as the verifier's status reads it: its licence in force, its last
        verdict and what that was judged under and contradicted by since."""
        with read_transaction(self._engine) as conn:
            return read_summary(conn, device_id)

    def proof_history(self, device_id: str, limit: int = 50) -> list[ProofRow]:
        """The device's newest ``limit`` stored proofs, newest first, with their results."""
        query = (
            select(proofs)
            .where(proofs.c.device_id == device_id)
            .order_by(proofs.c.id.desc())
            .limit(limit)
        )
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            ProofRow(
                proof_id=r.id,
                counter=r.counter,
                accepted=bool(r.accepted),
                verdict=r.verdict,
                reason=r.reason,
                detail=r.detail,
                bounds=_bounds_from_json(r.bounds),
                evidence_time_ns=r.evidence_time_ns,
                received_at_ns=r.received_at_ns,
                digest=r.digest.hex(),
                previous_digest=r.previous_digest.hex(),
                token=r.token,
            )
            for r in rows
        ]

    def peer_audits(self, landmark_id: str, limit: int = 50) -> list[PeerAudit]:
        """The newest peer measurements that timed ``landmark_id`` or that it timed."""
        query = (
            select(peer_measurements)
            .where(
                or_(
                    peer_measurements.c.timer == landmark_id,
                    peer_measurements.c.peer == landmark_id,
                )
            )
            .order_by(peer_measurements.c.received_at_ns.desc())
            .limit(limit)
        )
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [PeerAudit(r.timer, r.peer, r.rtt_min_ns, r.received_at_ns) for r in rows]

    def trust(self) -> StoredTrust:
        """What operators revoked and registered through the admin API, and the
        exclusions in force: added to the files' contents, as the verifier does."""
        with read_transaction(self._engine) as conn:
            return read_trust(conn)

    def exclusions(self) -> list[ExclusionRow]:
        query = select(landmark_exclusions).order_by(landmark_exclusions.c.id)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            ExclusionRow(r.landmark_id, r.excluded_at_ns, r.detail, r.lifted_at_ns, r.lifted_by)
            for r in rows
        ]


def _allowed_lapsed_by_licence(now_ns: int) -> Select[tuple[str]]:
    """The ids of :meth:`FleetView.allowed_lapsed_by_licence`."""
    licence = export_licences.c
    return (
        select(chain_heads.c.device_id)
        .select_from(
            chain_heads.join(devices, devices.c.device_id == chain_heads.c.device_id).outerjoin(
                export_licences, licence.device_id == chain_heads.c.device_id
            )
        )
        .where(
            chain_heads.c.verdict == Verdict.ALLOWED.value,
            or_(
                licence.version.is_(None),
                licence.version != chain_heads.c.licence_version,
                licence.withdrawn.is_(True),
                licence.valid_until_ns <= now_ns,
                devices.c.state == DeviceState.STALE.value,
            ),
        )
    )
