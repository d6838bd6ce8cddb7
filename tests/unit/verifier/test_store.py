"""The store under the real pipeline, on SQLite and on a real PostgreSQL server alike: it
must behave exactly like InMemoryState.

Attack cases assert the reason *and* that the trusted state (chain heads, fork index)
did not move; rejections that raise no alert leave every table unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from verifier_world import MEASUREMENT, MS, NOW_NS, UNIX_NS, ProvisionedChip, VerifierWorld

from geoattest.errors import ConfigError, EvidenceError, GeoattestError, Reason
from geoattest.protocol.proof import ProofChain
from geoattest.verdict import Verdict
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.service import VerifierService
from geoattest.verifier.state import InMemoryState
from geoattest.verifier.store import (
    IDLE_IN_TRANSACTION_S,
    AlreadyEnrolledError,
    CommitRecord,
    ConnectionSockets,
    DeviceState,
    SqlStore,
    StoreConflictError,
    StoreUnavailableError,
    reader_engine,
)
from geoattest.verifier.store import proofs as proofs_table

S = 10**9


@pytest.fixture
def world(tmp_path) -> VerifierWorld:
    return VerifierWorld.create(tmp_path)


@pytest.fixture
def store(database):
    store = SqlStore.open(database)
    yield store
    store.close()


@pytest.fixture
def service(world, store) -> VerifierService:
    return world.service(store)


@pytest.fixture
def chip(world, service) -> ProvisionedChip:
    chip = world.chip("dev-1")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    return chip


def trusted(store: SqlStore) -> tuple:
    tables = store.dump()
    return tables["chain_heads"], tables["successors"]


def assert_rejected(service, store, proof, reason: Reason, *, alerts_expected=False):
    before_all, before = store.dump(), trusted(store)
    result = service.submit(proof, NOW_NS)
    assert result.verdict is Verdict.REJECTED
    assert result.reason is reason, result
    assert trusted(store) == before, "trusted state moved on a rejection"
    if not alerts_expected:
        assert store.dump() == before_all
    return result


def test_database_is_in_wal_mode_with_full_sync(world):
    store = SqlStore.open(world.db_path)
    connection = sqlite3.connect(world.db_path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
    assert set(store.dump()) == {
        "devices",
        "proofs",
        "alerts",
        "chain_heads",
        "licences",
        "successors",
        "peer_measurements",
        "landmark_exclusions",
        "schema_version",
        "proofs_archive",
        "revocations",
        "landmarks",
        "trust_version",
        "trust_changes",
        "licence_file",
        "revocation_list",
    }
    store.close()


def test_accepted_proofs_advance_the_head_like_in_memory_state(world, store, service, chip):
    memory = InMemoryState()
    memory.enrol(store.device_for_key(chip.signer.verifying_key.key_id))
    appraiser = world.appraiser()
    for step in range(3):
        proof = world.proof(chip, unix_ns=UNIX_NS + step * S)
        expected = appraiser.appraise(proof, memory, NOW_NS + step * S)
        memory.advance(expected.device_id, expected.new_head)
        result = service.submit(proof, NOW_NS + step * S)
        assert result.verdict is Verdict.ALLOWED
        assert store.head("dev-1") == memory.head("dev-1")
        head = memory.head("dev-1")
        assert store.successor("dev-1", head.previous_digest) == head.digest
    assert store.accepted_counters("dev-1") == [1, 2, 3]


def test_state_survives_reopening(database, world, store, service, chip):
    service.submit(world.proof(chip), NOW_NS)
    head = store.head("dev-1")
    store.close()
    reopened = SqlStore.open(database)
    assert reopened.head("dev-1") == head
    assert reopened.device_for_key(chip.signer.verifying_key.key_id).licensed_region == "FRA-300"
    reopened.close()


def test_last_fix_survives_reopening_for_the_impossible_travel_check(
    database, world, store, service, chip
):
    service.submit(world.proof(chip), NOW_NS)
    head = store.head("dev-1")
    assert {b.landmark_id for b in head.fix} == set(world.landmarks)
    assert head.fix_time_ns == UNIX_NS
    store.close()
    reopened = SqlStore.open(database)
    assert reopened.head("dev-1").fix == head.fix
    reopened.close()


def test_a_vague_proof_does_not_erase_the_stored_history_fix(database, world, store, service, chip):
    """The history fix keeps the precise disks, grown by the travel since, through a
    vague proof and a restart: every worker reads the same window."""
    service.submit(world.proof(chip), NOW_NS)
    vague = service.submit(world.proof(chip, rtt_ns=100 * MS, unix_ns=UNIX_NS + S), NOW_NS + S)
    assert vague.verdict is Verdict.INCONCLUSIVE
    store.close()
    reopened = SqlStore.open(database)
    head = reopened.head("dev-1")
    reopened.close()
    assert head.counter == 2
    assert head.fix_time_ns == UNIX_NS + S
    assert sorted(round(b.bound_km, 3) for b in head.fix) == [75.948] * len(world.landmarks)


def test_same_certificate_enrols_idempotently_another_is_refused(world, service, chip):
    again = service.enrol(chip.identity(), chip.possession(), NOW_NS + S)
    assert again.licensed_region == "FRA-300"
    impostor = world.chip("dev-1")
    with pytest.raises(AlreadyEnrolledError):
        service.enrol(impostor.identity(), impostor.possession(), NOW_NS)


def test_device_without_licence_is_not_enrolled(world, service, store):
    chip = world.chip("dev-unlicensed")
    with pytest.raises(EvidenceError) as excinfo:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    assert excinfo.value.reason is Reason.NO_LICENCE
    assert store.dump()["devices"] == []


def test_possession_for_another_verifier_is_refused(world, service, store):
    chip = world.chip("dev-2")
    with pytest.raises(EvidenceError) as excinfo:
        service.enrol(chip.identity(), chip.possession("verifier-elsewhere"), NOW_NS)
    assert excinfo.value.reason is Reason.BAD_POSSESSION


def test_possession_signed_by_another_key_is_refused(world, service):
    chip, thief = world.chip("dev-2"), world.chip("dev-3")
    with pytest.raises(EvidenceError) as excinfo:
        service.enrol(chip.identity(), thief.possession(), NOW_NS)
    assert excinfo.value.reason is Reason.BAD_POSSESSION


def test_certificate_from_another_manufacturer_is_a_bad_chain(tmp_path, service):
    (tmp_path / "rogue").mkdir()
    rogue = VerifierWorld.create(tmp_path / "rogue")
    chip = rogue.chip("dev-2")
    with pytest.raises(EvidenceError) as excinfo:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    assert excinfo.value.reason is Reason.BAD_CHAIN


# --- the pipeline's attack cases against the SQL store ----------------------------


def test_resubmitted_proof_gets_the_stored_answer(world, store, service, chip):
    proof = world.proof(chip)
    first = service.submit(proof, NOW_NS)
    before = store.dump()
    again = service.submit(proof, NOW_NS + S)
    assert again.resubmitted
    assert (again.verdict, again.counter, again.token) == (first.verdict, 1, first.token)
    assert store.dump() == before


def test_fork_is_rejected_without_moving_the_chain(world, store, service, chip):
    base = chip.chain
    service.submit(world.proof(chip), NOW_NS)
    clone = replace(chip, chain=base)
    result = assert_rejected(
        service,
        store,
        world.proof(clone, unix_ns=UNIX_NS + S),
        Reason.FORK,
        alerts_expected=True,
    )
    assert result.token, "a known device's rejection still gets a (contraindicated) result"


def test_rollback_counter_is_rejected(world, store, service, chip):
    service.submit(world.proof(chip), NOW_NS)
    service.submit(world.proof(chip, unix_ns=UNIX_NS + S), NOW_NS)
    head = store.head("dev-1")
    chip.chain = ProofChain("dev-1", counter=0, head_digest=head.digest)
    assert_rejected(
        service, store, world.proof(chip, unix_ns=UNIX_NS + 2 * S), Reason.COUNTER_NOT_INCREASING
    )


def test_proof_not_extending_the_head_breaks_the_chain(world, store, service, chip):
    service.submit(world.proof(chip), NOW_NS)
    chip.chain = ProofChain("dev-1", counter=7, head_digest=b"\x01" * 32)
    assert_rejected(
        service,
        store,
        world.proof(chip, unix_ns=UNIX_NS + S),
        Reason.CHAIN_BROKEN,
        alerts_expected=True,
    )
    [alert] = store.alerts("dev-1")
    assert (alert.kind, alert.reason) == (AlertKind.TAMPERING.value, Reason.CHAIN_BROKEN.value)
    evidence = [row for row in store.dump()["proofs"] if not row[6]]
    assert len(evidence) == 1, "the tampered proof is kept as evidence"


def test_unknown_device_and_garbage_change_nothing(world, store, service, chip):
    stranger = world.chip("dev-2")  # never enrolled
    assert_rejected(service, store, world.proof(stranger), Reason.UNKNOWN_DEVICE)
    assert_rejected(service, store, b"\xff\x00garbage", Reason.MALFORMED_MESSAGE)


def test_stale_receipts_are_rejected_without_moving_state(world, store, service, chip):
    proof = world.proof(chip, unix_ns=UNIX_NS - 8 * 24 * 3600 * S)
    assert_rejected(service, store, proof, Reason.STALE_RECEIPT)


# --- batches, conflicts, staleness ----------------------------------------------


def test_batch_of_consecutive_proofs_of_one_device_commits_together(world, store, service, chip):
    proofs = [world.proof(chip, unix_ns=UNIX_NS + i * S) for i in range(4)]
    results = service.submit_batch([*proofs, proofs[1]], NOW_NS + 4 * S)
    assert [r.verdict for r in results[:4]] == [Verdict.ALLOWED] * 4
    assert results[4].resubmitted
    assert results[4].counter == 2
    assert store.accepted_counters("dev-1") == [1, 2, 3, 4]


@pytest.fixture
def second_database(database, request, tmp_path_factory) -> str:
    """Another new, empty database on the same backend as ``database``."""
    if database.startswith("postgresql"):
        return request.getfixturevalue("postgres").database()
    return str(tmp_path_factory.mktemp("sqlite") / "verifier.db")


@pytest.mark.parametrize("sizes", [(8,), (3, 5), (5, 1, 2)])
def test_chains_stored_in_batches_of_any_size_end_in_the_same_state(
    world, store, service, second_database, sizes
):
    """Two devices' interleaved chains, stored one proof per batch and in batches holding
    several steps of each chain, leave the same heads, fixes, successors and proof rows:
    a device's successive moves in one batch are one compare-and-swap from its first
    predecessor to its last head."""
    other = SqlStore.open(second_database)
    batched = world.service(other)
    chips = [world.chip("dev-1"), world.chip("dev-2")]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        batched.enrol(chip.identity(), chip.possession(), NOW_NS)
    proofs = [world.proof(chip, unix_ns=UNIX_NS + i * S) for i in range(4) for chip in chips]
    now = NOW_NS + 4 * S
    for proof in proofs:
        assert service.submit_batch([proof], now)[0].verdict is Verdict.ALLOWED
    start = 0
    for size in sizes:
        results = batched.submit_batch(proofs[start : start + size], now)
        assert [r.verdict for r in results] == [Verdict.ALLOWED] * size
        start += size
    one_by_one, in_batches = store.dump(), other.dump()
    other.close()
    for table in ("chain_heads", "successors", "devices"):  # as sets: row order is the heap's
        assert sorted(in_batches[table]) == sorted(one_by_one[table])
    # Each proof's row, less its id and its result token (ES256 signatures differ).
    columns = [c.name for c in proofs_table.c if c.name not in ("id", "token")]
    rows = [
        {name: row[i] for i, name in enumerate(c.name for c in proofs_table.c)}
        for row in in_batches["proofs"]
    ]
    reference = [
        {name: row[i] for i, name in enumerate(c.name for c in proofs_table.c)}
        for row in one_by_one["proofs"]
    ]
    assert sorted([r[n] for n in columns] for r in rows) == sorted(
        [r[n] for n in columns] for r in reference
    )
    assert store.accepted_counters("dev-2") == [1, 2, 3, 4]


def test_a_batch_commits_in_the_same_statements_whatever_its_size(world, store, service):
    """Each insert's text is fixed (on PostgreSQL the rows go in as arrays, on SQLite as
    executions of one prepared statement): one statement with a row per proof would have
    a new text for each batch size, for the driver and the server to parse and plan afresh
    on every commit."""
    chips = [world.chip(f"dev-{i}") for i in range(1, 6)]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    sent: list[set[str]] = []
    engine = store._engine

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT"):
            sent[-1].add(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for size in (2, 3):
            sent.append(set())
            proofs = [world.proof(chip, unix_ns=UNIX_NS + size * S) for chip in chips[:size]]
            results = service.submit_batch(proofs, NOW_NS + size * S)
            assert [r.verdict for r in results] == [Verdict.ALLOWED] * size
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent[0] == sent[1]
    assert store.accepted_counters("dev-1") == [1, 2]


def test_calls_that_succeed_end_their_transactions_without_a_rollback(world, store, service):
    """Reads end their transaction as writes do, by committing it: on PostgreSQL
    psycopg's rollback drops every statement it had prepared on the connection, so a read
    that ended in one would have each batch's statements parsed and planned again on
    every commit."""
    rollbacks: list[str] = []

    def rolled_back(conn) -> None:
        rollbacks.append(conn.dialect.name)

    event.listen(store._engine, "rollback", rolled_back)
    try:
        chips = [world.chip(f"dev-{i}") for i in range(1, 4)]
        for chip in chips:
            service.enrol(chip.identity(), chip.possession(), NOW_NS)
        for step in (1, 2):
            proofs = [world.proof(chip, unix_ns=UNIX_NS + step * S) for chip in chips]
            assert {r.verdict for r in service.submit_batch(proofs, NOW_NS + step * S)} == {
                Verdict.ALLOWED
            }
        assert store.accepted_counters("dev-1") == [1, 2]
        assert store.summary("dev-1") is not None
        assert store.alerts_after(0) == store.alerts()
        store.trust_version()
        store.probe()
    finally:
        event.remove(store._engine, "rollback", rolled_back)
    assert rollbacks == []


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_batch_s_statements_stay_prepared_on_postgresql(world, database):
    """After a few batches, the commit's statements run as prepared statements on the
    server: their text is fixed and no read rolls the connection back (which would make
    psycopg drop them)."""
    store = SqlStore.open(database, pool_size=1)
    try:
        service = world.service(store)
        chips = [world.chip(f"dev-{i}") for i in range(1, 4)]
        for chip in chips:
            service.enrol(chip.identity(), chip.possession(), NOW_NS)
        for step in range(1, 9):
            proofs = [world.proof(chip, unix_ns=UNIX_NS + step * S) for chip in chips]
            service.submit_batch(proofs, NOW_NS + step * S)
        with store._engine.connect() as conn:
            prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).all()
            conn.commit()
    finally:
        store.close()
    statements = " ".join(row.statement for row in prepared)
    assert "INSERT INTO proofs" in statements
    assert "UPDATE chain_heads" in statements
    assert "FROM devices" in statements  # the batch's trusted state


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=st.text(min_size=1, max_size=80))
def test_a_key_id_that_only_starts_like_a_stored_one_finds_no_device(store, chip, extra):
    """The batch's lookup by key id matches whole values only: on PostgreSQL the key ids
    travel as an array, whose elements must not be cut to the column's length (64, a
    stored key id's own) and so match the key they start with."""
    key_id = chip.signer.verifying_key.key_id
    assert store.enrolled_for_keys([key_id + extra]) == {}
    assert set(store.enrolled_for_keys([key_id + extra, key_id])) == {key_id}


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_proofs_and_results_keep_their_rows_inline_on_postgresql(world, store, service):
    """A proof's envelope and its result token stay in its row, uncompressed: nothing of
    a committed batch goes to a TOAST table (with the default 2 KB target the server
    compressed both and wrote them out at every commit, a third of its CPU per proof)."""
    chips = [world.chip(f"dev-{i}") for i in range(1, 6)]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    for step in (1, 2):
        proofs = [world.proof(chip, unix_ns=UNIX_NS + step * S) for chip in chips]
        results = service.submit_batch(proofs, NOW_NS + step * S)
        assert [r.verdict for r in results] == [Verdict.ALLOWED] * len(chips)
    with store._engine.connect() as conn:
        toasted, shortest_token, stored_whole = conn.execute(
            text(
                "SELECT (SELECT pg_relation_size(reltoastrelid) FROM pg_class"
                " WHERE relname = 'proofs'),"
                " (SELECT min(length(token)) FROM proofs),"
                " (SELECT bool_and(pg_column_size(token) > length(token)) FROM proofs)"
            )
        ).one()
    assert shortest_token > 2048  # past the default target: the default would toast it
    assert stored_whole  # not compressed
    assert toasted == 0


def test_batches_from_threads_at_once_accept_one_proof_per_chain_step_and_answer_all(
    world, store, service
):
    """Three threads submit at once through one service (as a worker's service threads
    do, one appraising while another commits): two rival proofs per device in two batches,
    and the first batch again in a third. Each device accepts exactly one of its rivals,
    the other is a fork with its clone alert, the repeat gets the stored answer, and every
    proof is answered."""
    chips = [world.chip(f"dev-{i}") for i in range(1, 6)]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    rivals = [[world.proof(chip, advance=False) for chip in chips] for _ in range(2)]
    batches = [rivals[0], rivals[1], rivals[0][::-1]]
    start = threading.Barrier(len(batches))

    def submit(proofs):
        start.wait()
        return service.submit_batch(proofs, NOW_NS)

    with ThreadPoolExecutor(len(batches)) as pool:
        answers = list(pool.map(submit, batches))
    assert [len(a) for a in answers] == [len(b) for b in batches]
    by_device: dict[str, list] = {}
    for batch, results in zip(batches, answers, strict=True):
        for proof, result in zip(batch, results, strict=True):
            by_device.setdefault(result.device_id, []).append((proof.payload, result))
    for chip in chips:
        seen = by_device[chip.device_id]
        fresh = [p for p, r in seen if r.verdict is Verdict.ALLOWED and not r.resubmitted]
        assert len(fresh) == 1, seen
        for payload, result in seen:
            if payload == fresh[0]:
                assert result.verdict is Verdict.ALLOWED
            else:
                assert result.reason is Reason.FORK
        assert store.accepted_counters(chip.device_id) == [1]
    assert sorted(a.kind for a in store.alerts()) == [AlertKind.CLONE] * len(chips)


def test_a_proof_naming_a_key_id_with_a_nul_is_an_unknown_key_and_its_batch_goes_on(
    world, store, service, chip
):
    """PostgreSQL refuses NUL in text: a junk envelope whose key id holds one must be
    answered as any unknown key is, on both backends, not fail the batch it came in."""
    junk = world.proof(chip, advance=False)
    junk.key_id = "ab\x00cd"
    good = world.proof(chip)
    results = service.submit_batch([junk, good], NOW_NS)
    assert [r.verdict for r in results] == [Verdict.REJECTED, Verdict.ALLOWED]
    assert results[0].reason is Reason.UNKNOWN_DEVICE
    assert store.accepted_counters("dev-1") == [1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(min_size=1, max_size=40).map(
        lambda t: t[: len(t) // 2] + "\x00" + t[len(t) // 2 :]
    )
)
def test_lookups_by_an_id_holding_a_nul_find_nothing(store, chip, name):
    """What a caller asks for by id (a device's status, its alerts, its licence, a stored
    result) holding a NUL names nothing, on both backends: never a store failure, which
    callers would read as the database being down and retry."""
    assert store.summary(name) is None
    assert store.licence(name) is None
    assert store.stored_result(name, b"d" * 32) is None
    assert store.alerts(name) == []
    assert store.alerts_after(0, name) == []
    assert store.enrolled_for_keys([name]) == {}


def test_a_detail_quoting_a_nul_is_stored_with_its_batch(world, store, chip):
    """A verdict's detail may quote what a proof carried: one holding a NUL is stored
    (as U+FFFD) with the rest of its batch on both backends."""
    appraisal = world.appraiser().appraise(world.proof(chip), store, NOW_NS)
    quoting = replace(appraisal, detail="receipt for dev-1\x00x")
    store.commit([CommitRecord(quoting, b"e", quoting.proof_digest, "", (), NOW_NS)])
    detail = [c.name for c in proofs_table.columns].index("detail")
    assert [row[detail] for row in store.dump()["proofs"]] == ["receipt for dev-1\ufffdx"]


def test_second_writer_extending_the_same_head_conflicts_and_writes_nothing(
    database, world, store, service, chip
):
    other = SqlStore.open(database)
    appraiser = world.appraiser()
    proof_a = world.proof(chip, advance=False)
    proof_b = world.proof(chip, advance=False)
    appraisal_a = appraiser.appraise(proof_a, store, NOW_NS)
    appraisal_b = appraiser.appraise(proof_b, other, NOW_NS)
    store.commit([CommitRecord(appraisal_a, b"a", appraisal_a.proof_digest, "", (), NOW_NS)])
    before = store.dump()
    with pytest.raises(StoreConflictError) as conflict:
        other.commit([CommitRecord(appraisal_b, b"b", appraisal_b.proof_digest, "", (), NOW_NS)])
    assert conflict.value.reason is Reason.STORE_CONFLICT
    assert store.dump() == before
    other.close()


def test_a_device_s_moves_in_one_commit_that_do_not_chain_conflict_and_write_nothing(
    world, store, service, chip
):
    """Two accepted proofs of one device in one commit, the second extending not the head
    the first writes but a later one: as two compare-and-swaps in turn, the second finds
    the head elsewhere, so the commit is a conflict and nothing is written."""
    service.submit(world.proof(chip), NOW_NS)
    now = NOW_NS + 3 * S
    ahead = InMemoryState()
    ahead.enrol(store.device_for_key(chip.signer.verifying_key.key_id))
    ahead.heads["dev-1"] = store.head("dev-1")
    appraiser = world.appraiser()
    appraisals = []
    for step in (1, 2, 3):
        appraisal = appraiser.appraise(world.proof(chip, unix_ns=UNIX_NS + step * S), ahead, now)
        assert appraisal.new_head is not None
        ahead.advance(appraisal.device_id, appraisal.new_head)
        appraisals.append(appraisal)
    first, _, third = appraisals
    before = store.dump()
    with pytest.raises(StoreConflictError):
        store.commit([CommitRecord(a, b"e", a.proof_digest, "", (), now) for a in (first, third)])
    assert store.dump() == before


def test_a_batch_read_overtaken_by_another_writer_is_appraised_again(
    database, world, store, service, chip
):
    """A batch reads every head once and takes the newest head to have no successor. If
    another worker extends that head before the batch commits, the compare-and-swap
    fails, nothing of the batch is written, and the proof is appraised again against the
    new head: a fork with a clone alert, never a second acceptance."""
    service.submit(world.proof(chip), NOW_NS)
    other_store = SqlStore.open(database)
    other = world.service(other_store)
    mine = world.proof(chip, unix_ns=UNIX_NS + S, advance=False)
    theirs = world.proof(chip, unix_ns=UNIX_NS + 2 * S, advance=False)
    commit = store.commit
    overtaken = []

    def commit_after_the_other_worker(records, **checks):
        if not overtaken:
            overtaken.append(other.submit(theirs, NOW_NS + 2 * S))
        commit(records, **checks)

    store.commit = commit_after_the_other_worker
    result = service.submit(mine, NOW_NS + 2 * S)
    assert overtaken[0].verdict is Verdict.ALLOWED
    assert result.reason is Reason.FORK
    assert store.accepted_counters("dev-1") == [1, 2]
    assert store.head("dev-1").digest == other_store.head("dev-1").digest
    assert AlertKind.CLONE.value in {alert.kind for alert in store.alerts("dev-1")}
    other_store.close()


def overtake_after_the_read(store, action):
    """Run ``action`` (another worker's call) just after ``store``'s batch read, once."""
    read = store.enrolled_for_keys
    done = []

    def read_then_act(key_ids):
        found = read(key_ids)
        if not done:
            done.append(action())
        return found

    store.enrolled_for_keys = read_then_act
    return done


def test_a_rejection_judged_on_a_head_that_then_moved_is_judged_again(
    database, world, store, service, chip
):
    """A fork with too few receipts, judged on the head read before another worker
    accepted the proof it forks from, would fail only its quorum and lose the clone alert:
    the commit finds the head moved and the batch is judged again."""
    service.submit(world.proof(chip), NOW_NS)
    other = world.service(SqlStore.open(database))
    honest = world.proof(chip, unix_ns=UNIX_NS + S, advance=False)
    fork, _ = chip.chain.extend(
        world.receipts(chip, unix_ns=UNIX_NS + 2 * S)[:2],
        measurement=MEASUREMENT,
        signer=chip.signer,
    )
    done = overtake_after_the_read(store, lambda: other.submit(honest, NOW_NS + 2 * S))
    result = service.submit(fork, NOW_NS + 2 * S)
    assert done[0].verdict is Verdict.ALLOWED
    assert result.reason is Reason.FORK
    assert AlertKind.CLONE.value in {alert.kind for alert in store.alerts("dev-1")}


def test_a_proof_whose_predecessor_another_worker_stores_meanwhile_is_accepted(
    database, world, store, service, chip
):
    """Judged on the old head, the next-but-one proof looks like a broken chain (and a
    tampering alert); judged again after the other worker's commit, it is accepted."""
    service.submit(world.proof(chip), NOW_NS)
    other = world.service(SqlStore.open(database))
    second = world.proof(chip, unix_ns=UNIX_NS + S)
    third = world.proof(chip, unix_ns=UNIX_NS + 2 * S)
    overtake_after_the_read(store, lambda: other.submit(second, NOW_NS + 2 * S))
    result = service.submit(third, NOW_NS + 2 * S)
    assert result.verdict is Verdict.ALLOWED
    assert store.accepted_counters("dev-1") == [1, 2, 3]
    assert store.alerts("dev-1") == []


@pytest.mark.parametrize(
    ("terms", "verdict", "reason"),
    [
        ({"withdrawn": True}, Verdict.REJECTED, Reason.LICENCE_WITHDRAWN),
        ({"region": "SYD-300"}, Verdict.OUTSIDE, None),
        ({"valid_until_ns": NOW_NS}, Verdict.REJECTED, Reason.LICENCE_EXPIRED),
    ],
)
def test_a_proof_whose_licence_another_worker_changes_meanwhile_is_judged_under_the_change(
    database, world, store, service, chip, terms, verdict, reason
):
    """Judged on the licence read before another replica's admin call withdrew, narrowed
    or ended it, the proof would be ALLOWED under a version no longer in force: the commit
    finds the licence changed and the batch is judged again under the new version."""
    service.submit(world.proof(chip), NOW_NS)
    other = LiveLicences(SqlStore.open(database))
    changed = overtake_after_the_read(
        store,
        lambda: other.change(replace(other.current("dev-1"), **terms), NOW_NS + S),
    )
    result = service.submit(world.proof(chip, unix_ns=UNIX_NS + S), NOW_NS + 2 * S)
    assert (result.verdict, result.reason) == (verdict, reason)
    assert changed[0].version == 2
    assert store.summary("dev-1").verdict_licence_version == (2 if reason is None else 1)
    assert store.accepted_counters("dev-1") == ([1, 2] if reason is None else [1])


def test_devices_and_heads_of_many_keys_are_read_together(world, store, service, monkeypatch):
    monkeypatch.setattr("geoattest.verifier.store._KEYS_PER_READ", 2)
    chips = [world.chip(f"dev-{i}") for i in range(1, 6)]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    service.submit(world.proof(chips[0]), NOW_NS)
    keys = [chip.signer.verifying_key.key_id for chip in chips]
    found = store.enrolled_for_keys([*keys, "0" * 64, keys[0]])
    assert set(found) == set(keys)
    for chip, key in zip(chips, keys, strict=True):
        device, head = found[key]
        assert device.record == store.device_for_key(key)
        assert head == store.head(chip.device_id)
    assert found[keys[0]][1].counter == 1
    assert all(found[key][1] is None for key in keys[1:])


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database " * 100)
    with pytest.raises(ConfigError, match=r"notes\.db"):
        SqlStore.open(path)


def test_a_locked_database_is_unavailable_and_the_proof_is_not_stored(world):
    store = SqlStore.open(world.db_path, busy_timeout_ms=50)
    service = world.service(store)
    chip = world.chip("dev-1")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    holder = sqlite3.connect(world.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the timeout
    with pytest.raises(StoreUnavailableError) as unavailable:
        service.submit(world.proof(chip, advance=False), NOW_NS)
    holder.execute("ROLLBACK")
    holder.close()
    assert unavailable.value.reason is Reason.STORE_UNAVAILABLE
    assert unavailable.value.detail == "OperationalError"  # the driver's message stays inside
    assert store.accepted_counters("dev-1") == []
    assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
    store.close()


def test_interrupt_ends_a_statement_the_server_never_answers_and_the_store_serves_on(
    world, postgres
):
    """A statement waiting on PostgreSQL for ever (here on a lock another session never
    lets go of; a frozen server or a dropped network looks the same to the driver) ends at
    ``interrupt()`` as StoreUnavailableError, nothing stored, and the next call is served
    on a new connection."""
    database = postgres.database()
    store = SqlStore.open(database)
    try:
        service = world.service(store)
        chip = world.chip("dev-1")
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        with (
            psycopg.connect(database) as holder,
            psycopg.connect(database, autocommit=True) as watcher,
        ):
            holder.execute("LOCK TABLE chain_heads IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as thread:
                waiting = thread.submit(service.submit, world.proof(chip, advance=False), NOW_NS)
                for _ in range(6000):
                    if watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    ).fetchone() == (1,):
                        break
                    time.sleep(0.01)
                else:
                    raise AssertionError("the call never waited on the lock")
                store.interrupt()
                holder.rollback()  # uninterrupted, the call would now go on and be stored
                with pytest.raises(StoreUnavailableError) as unavailable:
                    waiting.result()
        assert unavailable.value.reason is Reason.STORE_UNAVAILABLE
        assert store.accepted_counters("dev-1") == []
        assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
    finally:
        store.close()


def test_connection_sockets_follow_every_pooled_connection_whenever_it_was_made(postgres):
    """A connection the pool made before its sockets were followed (a start-up check's,
    say) is not handed out again unfollowed: a statement on any connection the engine
    gives out afterwards ends at ``shut_down``."""
    engine = reader_engine(postgres.database())
    try:
        with engine.connect() as conn:  # made before: it goes back to the pool
            conn.execute(text("SELECT 1"))
        sockets = ConnectionSockets(engine)
        with ThreadPoolExecutor(1) as thread:
            started = threading.Event()

            def sleep_on_the_server() -> None:
                with engine.connect() as conn:
                    started.set()
                    conn.execute(text("SELECT pg_sleep(60)"))

            sleeping = thread.submit(sleep_on_the_server)
            started.wait()
            time.sleep(0.2)  # the statement is on its way to the server
            sockets.shut_down()
            with pytest.raises(DBAPIError):
                sleeping.result(timeout=30)
    finally:
        engine.dispose()


def test_postgresql_ends_a_verifier_session_idle_inside_a_transaction(postgres):
    """Every verifier session carries the server-side limit, and a URL's own ``options``
    still apply beside it."""
    store = SqlStore.open(postgres.database() + "&options=-c%20statement_timeout%3D7s")
    try:
        with store._engine.connect() as conn:
            idle = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()
            statement = conn.execute(text("SHOW statement_timeout")).scalar_one()
            conn.commit()
    finally:
        store.close()
    assert idle == f"{IDLE_IN_TRANSACTION_S}s"
    assert statement == "7s"


@pytest.mark.slow
def test_a_replica_frozen_inside_its_commit_holds_the_others_up_only_for_a_while(world, postgres):
    """A replica frozen in the middle of a commit, holding a chain head's row lock: the
    server ends its session after IDLE_IN_TRANSACTION_S, and another replica's proof for
    that device, waiting on the lock, is then stored; the frozen one stored nothing."""
    database = postgres.database()
    frozen_replica, replica = SqlStore.open(database), SqlStore.open(database)
    try:
        service = world.service(replica)
        chip = world.chip("dev-1")
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
        frozen = frozen_replica._engine.connect()
        with psycopg.connect(database, autocommit=True) as watcher, ThreadPoolExecutor(1) as thread:
            pid = frozen.execute(text("SELECT pg_backend_pid()")).scalar_one()
            frozen.execute(text("SELECT 1 FROM chain_heads WHERE device_id = 'dev-1' FOR UPDATE"))
            second = world.proof(chip, unix_ns=UNIX_NS + S)
            waiting = thread.submit(service.submit, second, NOW_NS + S)
            for _ in range(6000):  # the server ends the frozen session after its limit
                if watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone() == (0,):
                    break
                time.sleep(0.01)
            else:
                frozen.invalidate()  # lets the waiting call finish before failing
                raise AssertionError("the frozen session was never ended")
            assert waiting.result().verdict is Verdict.ALLOWED
        with pytest.raises(DBAPIError):  # the frozen replica, thawed, finds its session gone
            frozen.execute(text("SELECT 1"))
        frozen.invalidate()
        frozen.close()
        assert replica.accepted_counters("dev-1") == [1, 2]
    finally:
        frozen_replica.close()
        replica.close()


def test_no_postgresql_connection_outlives_its_store_after_interrupts(world, postgres):
    """The sockets kept to interrupt statements never keep a connection open: after
    interrupts and reconnections, closing the store leaves no session on the server and
    no descriptor in this process beyond those it had before."""
    database = postgres.database()
    fds = len(list(Path("/proc/self/fd").iterdir()))
    store = SqlStore.open(database)
    service = world.service(store)
    chip = world.chip("dev-1")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    for step in range(3):
        store.interrupt()
        proof = world.proof(chip, unix_ns=UNIX_NS + step * S)
        assert service.submit(proof, NOW_NS + step * S).verdict is Verdict.ALLOWED
    store.close()
    with psycopg.connect(database, autocommit=True) as watcher:
        sessions = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    assert sessions == (0,)
    assert len(list(Path("/proc/self/fd").iterdir())) == fds


def test_interrupt_leaves_sqlite_and_an_idle_postgresql_store_serving(world, store, service, chip):
    """With nothing waiting, ``interrupt()`` loses nothing on either backend: the pool's
    idle connections are replaced and the next proof is accepted."""
    store.interrupt()
    assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
    assert store.accepted_counters("dev-1") == [1]


def test_a_locked_database_refuses_an_enrolment_and_a_sweep_as_unavailable(world):
    """Enrolment and the stale sweep go through SQLAlchemy, not the proof path's own
    connection: its failures come out as the store's error too, never the library's."""
    store = SqlStore.open(world.db_path, busy_timeout_ms=50)
    service = world.service(store)
    chip = world.chip("dev-1")
    holder = sqlite3.connect(world.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailableError) as enrolment:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    with pytest.raises(StoreUnavailableError) as sweep:
        service.sweep_stale(NOW_NS)
    holder.execute("ROLLBACK")
    holder.close()
    assert enrolment.value.reason is sweep.value.reason is Reason.STORE_UNAVAILABLE
    assert store.dump()["devices"] == []
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    store.close()


def test_device_without_proofs_for_k_cadences_goes_stale_once(world, store, chip):
    service = world.service(store, cadence_ns=60 * S, stale_after_cadences=3)
    service.submit(world.proof(chip), NOW_NS)
    assert service.device_status("dev-1", NOW_NS + 60 * S).state is DeviceState.ATTESTING
    assert service.sweep_stale(NOW_NS + 100 * S) == []
    raised = service.sweep_stale(NOW_NS + 200 * S)
    assert [(a.device_id, a.kind) for a in raised] == [("dev-1", AlertKind.STALE_DEVICE)]
    assert service.sweep_stale(NOW_NS + 300 * S) == []
    assert service.device_status("dev-1", NOW_NS + 300 * S).state is DeviceState.STALE
    service.submit(world.proof(chip, unix_ns=NOW_NS + 299 * S), NOW_NS + 300 * S)
    assert service.device_status("dev-1", NOW_NS + 300 * S).state is DeviceState.ATTESTING


def test_revoked_device_reports_revoked(world, store, chip):
    world.revocations = world.revocations.with_device("dev-1")
    service = world.service(store)
    assert service.device_status("dev-1", NOW_NS).state is DeviceState.REVOKED
    assert service.submit(world.proof(chip), NOW_NS).reason is Reason.REVOKED_DEVICE


def test_proof_far_from_the_licence_is_outside_with_an_alert(world, store, service):
    chip = world.chip("dev-syd")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    result = service.submit(world.proof(chip), NOW_NS)
    assert result.verdict is Verdict.OUTSIDE
    assert [a.kind for a in store.alerts("dev-syd")] == [AlertKind.OUTSIDE_LICENSED_REGION.value]


@pytest.mark.parametrize("archive", [True, False])
def test_retention_moves_old_proofs_but_never_heads_fixes_or_alert_evidence(
    world, store, service, chip, archive
):
    base = chip.chain
    service.submit(world.proof(chip), NOW_NS)
    clone = replace(chip, chain=base)
    assert service.submit(world.proof(clone, unix_ns=UNIX_NS + S), NOW_NS + S).reason is Reason.FORK
    service.submit(world.proof(chip, unix_ns=UNIX_NS + 2 * S), NOW_NS + 2 * S)
    before = store.dump()
    assert store.retain(NOW_NS + 2 * S, archive=archive, batch=1) == 1
    after = store.dump()
    for kept in ("chain_heads", "successors", "alerts", "devices"):
        assert after[kept] == before[kept], kept
    (clone_alert,) = [a for a in after["alerts"] if a[3] == AlertKind.CLONE.value]
    assert {row[0] for row in after["proofs"]} == {clone_alert[7], before["proofs"][-1][0]}
    moved = [row for row in before["proofs"] if row not in after["proofs"]]
    assert after["proofs_archive"] == (moved if archive else [])
    assert all(row[-1] for row in after["proofs_archive"])  # each with its result token
    # the chain goes on, and a fork of the retired proof is still caught
    assert service.submit(world.proof(chip, unix_ns=UNIX_NS + 3 * S), NOW_NS + 3 * S).verdict is (
        Verdict.ALLOWED
    )
    second_clone = replace(chip, chain=base)
    again = world.proof(second_clone, unix_ns=UNIX_NS + 4 * S)
    assert service.submit(again, NOW_NS + 4 * S).reason is Reason.FORK
    assert store.retain(NOW_NS + 2 * S, archive=archive) == 0


def test_archived_proofs_ids_are_never_given_to_new_proofs(world, store, service, chip):
    """Archiving every proof received so far, again and again as new ones come: each proof
    keeps an id of its own across the live and the archive tables (SQLite without
    AUTOINCREMENT would give a new proof the id of one just archived, and the next
    archiving would then collide)."""
    for n in range(4):
        unix_ns = UNIX_NS + n * S
        assert service.submit(world.proof(chip, unix_ns=unix_ns), NOW_NS + n * S).verdict is (
            Verdict.ALLOWED
        )
        store.retain(NOW_NS + (n + 1) * S, archive=True)
    after = store.dump()
    ids = [row[0] for row in after["proofs"] + after["proofs_archive"]]
    assert len(ids) == len(set(ids)) == 4


def test_sweeps_of_two_replicas_at_once_mark_each_device_stale_once(database, world, store):
    other = SqlStore.open(database)
    services = [world.service(s, cadence_ns=60 * S, stale_after_cadences=3) for s in (store, other)]
    for i in range(1, 6):
        chip = world.chip(f"dev-{i}")
        services[0].enrol(chip.identity(), chip.possession(), NOW_NS)
    with ThreadPoolExecutor(2) as pool:
        raised = list(pool.map(lambda s: s.sweep_stale(NOW_NS + 200 * S), services))
    other.close()
    assert sorted(a.device_id for sweep in raised for a in sweep) == sorted(
        f"dev-{i}" for i in range(1, 6)
    )
    assert len(store.alerts()) == 5


def counted(metric) -> dict[tuple[str, ...], float]:
    """A labelled counter's totals by label values."""
    return {
        tuple(sample.labels.values()): sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_a_batch_counts_every_verdict_and_alert_it_answers(world, store, service):
    chips = [world.chip(f"dev-{i}") for i in (1, 2)] + [world.chip("dev-syd")]
    for chip in chips:
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    proofs = [world.proof(chip) for chip in chips] + [world.proof(world.chip("dev-3"))]
    results = service.submit_batch(proofs, NOW_NS)
    assert [r.verdict for r in results] == [
        Verdict.ALLOWED,
        Verdict.ALLOWED,
        Verdict.OUTSIDE,
        Verdict.REJECTED,
    ]
    assert counted(service.metrics.proofs) == {
        ("ALLOWED", "none"): 2,
        ("OUTSIDE", "none"): 1,
        ("REJECTED", Reason.UNKNOWN_DEVICE.value): 1,
    }
    assert counted(service.metrics.alerts) == {(AlertKind.OUTSIDE_LICENSED_REGION.value,): 1}


JUNK_TEXT = ("dev\x00-1", "\x00")
"""Text PostgreSQL cannot hold (a NUL); SQLite holds any string."""


@pytest.mark.parametrize("junk", JUNK_TEXT)
def test_a_value_the_database_cannot_hold_is_the_request_s_fault_not_an_outage(
    store, service, chip, junk
):
    """Every lookup and write a caller's string reaches either answers as for any unknown
    value or refuses the request as malformed: never ``store.unavailable``, which tells a
    client to send the same thing again and an operator that the database is down."""
    before = store.dump()
    calls = {
        "status": lambda: service.device_status(junk, NOW_NS),
        "alerts": lambda: store.alerts_after(0, junk),
        "licence": lambda: store.licence(junk),
        "head": lambda: store.head(junk),
        "keys": lambda: store.enrolled_for_keys([junk]),
        "revoke": lambda: store.revoke_device(junk, NOW_NS, by="op", why="x"),
    }
    for name, call in calls.items():
        try:
            call()
        except GeoattestError as exc:
            assert exc.reason in {Reason.MALFORMED_MESSAGE, Reason.UNKNOWN_DEVICE}, (name, exc)
    assert store.dump()["chain_heads"] == before["chain_heads"]
