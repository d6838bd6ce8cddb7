"""The store's schema version and forward migrations: migrating from every earlier version
gives exactly a fresh schema, with the rows kept; a verifier refuses any other version."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from command import assert_one_line_error, invoke, run_geoattest
from sqlalchemy import Engine, create_engine, inspect, text
from verifier_world import NOW_NS, UNIX_NS, VerifierWorld

from geoattest.errors import ConfigError, GeoattestError, Reason
from geoattest.verdict import Verdict
from geoattest.verifier.store import (
    CONNECT_TIMEOUT_S,
    SCHEMA_VERSION,
    SchemaMovedError,
    SchemaVersionError,
    SqlStore,
    migrate,
    reader_engine,
)

SQLITE_SCHEMA_OF = {6: 5}
"""Versions whose SQLite tables are an earlier version's (version 6 changed only
PostgreSQL's storage options)."""
EARLIER = {
    version: Path(__file__).parents[2]
    / "data"
    / f"schema_v{SQLITE_SCHEMA_OF.get(version, version)}_sqlite.sql"
    for version in range(1, SCHEMA_VERSION)
}
"""Each earlier version's SQLite schema, as that version created it."""


DEVICE_ROW = (
    "INSERT INTO devices VALUES ('dev-1', 'k1', :spki, 'H100', '7', 9, 'FRA', 9, 1, 'ENROLLED')"
)
SPKI = {"spki": b"\x00"}


def engine_for(db: str | Path) -> Engine:
    url = db if isinstance(db, str) and "://" in db else f"sqlite:///{db}"
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def schema(db: str | Path) -> dict[str, object]:
    """Every table's columns, keys and indexes, as the database itself reports them."""
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                table: (
                    [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
                    found.get_pk_constraint(table)["constrained_columns"],
                    sorted(
                        (f["constrained_columns"], f["referred_table"])
                        for f in found.get_foreign_keys(table)
                    ),
                    sorted(
                        (i["name"], i["column_names"], i["unique"])
                        for i in found.get_indexes(table)
                    ),
                    sorted(u["column_names"] for u in found.get_unique_constraints(table)),
                    found.get_table_options(table).get("postgresql_with", {}),
                )
                for table in sorted(found.get_table_names())
            }
    finally:
        engine.dispose()


def earlier(path: Path, version: int = 1) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(EARLIER[version].read_text())
    if version in SQLITE_SCHEMA_OF:
        connection.execute("UPDATE schema_version SET version = ?", (version,))
    connection.execute(DEVICE_ROW, SPKI)
    connection.commit()
    connection.close()
    return path


@pytest.mark.parametrize("version", sorted(EARLIER))
def test_migrating_from_every_earlier_version_equals_a_fresh_schema(tmp_path, version):
    fresh = tmp_path / "fresh.db"
    assert migrate(fresh) == (None, SCHEMA_VERSION)
    old = earlier(tmp_path / "old.db", version)
    assert migrate(old) == (version, SCHEMA_VERSION)
    assert schema(old) == schema(fresh)
    store = SqlStore.open(old)
    assert [row[0] for row in store.dump()["devices"]] == ["dev-1"]
    store.close()


def test_the_step_to_5_journals_the_trust_in_force_and_leaves_heads_judged_under_nothing(
    tmp_path,
):
    """A head stored before names no licence version (its verdict reads as not current
    until the next proof); the journal starts with what was revoked, registered and
    excluded, at the trust version then."""
    old = earlier(tmp_path / "old.db", 4)
    connection = sqlite3.connect(old)
    connection.executescript(
        """
        INSERT INTO chain_heads VALUES ('dev-1', 1, x'01', x'', 5, '{}', 'ALLOWED', 5);
        INSERT INTO revocations VALUES ('device', 'dev-2', 7, 'alice', 'stolen');
        INSERT INTO revocations VALUES ('landmark_key', 'k9', 7, 'alice', 'leaked');
        INSERT INTO landmark_exclusions VALUES (1, 'lm-fra', 8, 'drift', 9, 'bob', 'fixed');
        UPDATE trust_version SET version = 3;
        """
    )
    connection.commit()
    connection.close()
    assert migrate(old) == (4, SCHEMA_VERSION)
    store = SqlStore.open(old)
    assert [(r.change.value, r.subject, r.at_ns, r.version) for r in store.trust_changes()] == [
        ("device_revoked", "dev-2", 7, 3),
        ("landmark_excluded", "lm-fra", 8, 3),
        ("exclusion_lifted", "lm-fra", 9, 3),
    ]
    (head,) = store.dump()["chain_heads"]
    store.close()
    assert head[8:10] == (0, 0)  # judged under licence version 0 and trust version 0


VERSION_4_ON_POSTGRESQL = """
    DROP TABLE revocation_list;
    DROP TABLE licence_file;
    DROP TABLE trust_changes;
    ALTER TABLE chain_heads DROP COLUMN licence_version, DROP COLUMN trust_version,
        DROP COLUMN fix, DROP COLUMN fix_time_ns;
    ALTER TABLE proofs RESET (toast_tuple_target);
    ALTER TABLE chain_heads RESET (fillfactor);
    ALTER TABLE proofs DROP COLUMN token;
    ALTER TABLE proofs_archive DROP COLUMN token;
    CREATE TABLE results (proof_id BIGINT NOT NULL REFERENCES proofs (id), token TEXT NOT NULL,
        PRIMARY KEY (proof_id));
    CREATE TABLE results_archive (proof_id BIGINT NOT NULL, token TEXT NOT NULL,
        PRIMARY KEY (proof_id));
    CREATE TABLE last_fixes (device_id VARCHAR(128) NOT NULL REFERENCES devices (device_id),
        fix TEXT NOT NULL, fix_time_ns BIGINT NOT NULL, PRIMARY KEY (device_id));
    UPDATE schema_version SET version = 4;
"""
"""This version's schema made back into version 4's: less what steps 5 to 10 add, with the
tables step 7 folds into others."""

OLD_ROWS = (
    "INSERT INTO chain_heads (device_id, counter, digest, previous_digest, accepted_at_ns,"
    " landmark_times, verdict, evidence_time_ns) VALUES ('dev-1', 2, :two, :one, 5, '{}',"
    " 'ALLOWED', 5)",
    "INSERT INTO last_fixes VALUES ('dev-1', '[[\"lm\", 1.0, 2.0, 3, 0.0]]', 4)",
    "INSERT INTO proofs VALUES (2, 'dev-1', 2, :two, :one, :two, :yes, 'ALLOWED', '', '',"
    " '[]', 7, 8)",
    "INSERT INTO results VALUES (2, 'token-2')",
    "INSERT INTO proofs_archive VALUES (1, 'dev-1', 1, :one, :none, :one, :yes, 'ALLOWED', '',"
    " '', '[]', 5, 6)",
    "INSERT INTO results_archive VALUES (1, 'token-1')",
)
"""A device's head with its fix, a proof with its result and an archived one with its, as
versions 3 to 6 stored them (beside :func:`earlier`'s device)."""


def insert_old_rows(db: str | Path) -> None:
    engine = engine_for(db)
    with engine.begin() as conn:
        for statement in OLD_ROWS:
            conn.execute(
                text(statement), {"one": b"\x01", "two": b"\x02", "none": b"", "yes": True}
            )
    engine.dispose()


def assert_old_rows_kept(db: str | Path) -> None:
    store = SqlStore.open(db)
    head = store.head("dev-1")
    assert (head.counter, head.fix_time_ns) == (2, 4)
    assert [(b.landmark_id, b.rtt_min_ns) for b in head.fix] == [("lm", 3)]
    stored = store.stored_result("dev-1", b"\x02")
    assert stored is not None
    assert stored.token == "token-2"
    assert [(row[0], row[-1]) for row in store.dump()["proofs_archive"]] == [(1, "token-1")]
    store.close()


def test_the_last_steps_on_postgresql_equal_a_fresh_schema_and_keep_the_rows(postgres):
    """The steps to this version on the production backend: a database at version 4
    migrates to exactly a fresh one, its tokens and fixes moved into their rows."""
    fresh, old = postgres.database(), postgres.database()
    migrate(fresh)
    migrate(old)
    engine = engine_for(old)
    with engine.begin() as conn:
        conn.exec_driver_sql(VERSION_4_ON_POSTGRESQL)
        conn.execute(text(DEVICE_ROW), SPKI)
    engine.dispose()
    insert_old_rows(old)
    assert schema(old) != schema(fresh)
    assert migrate(old) == (4, SCHEMA_VERSION)
    assert schema(old) == schema(fresh)
    store = SqlStore.open(old)
    assert store.trust_changes() == []
    store.close()
    assert_old_rows_kept(old)


def test_the_step_to_7_moves_tokens_and_fixes_into_their_rows(tmp_path):
    old = earlier(tmp_path / "old.db", 6)
    insert_old_rows(old)
    assert migrate(old) == (6, SCHEMA_VERSION)
    assert_old_rows_kept(old)


def test_a_migrated_database_migrates_to_itself(database):
    assert migrate(database) == (None, SCHEMA_VERSION)
    before = schema(database)
    assert migrate(database) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert schema(database) == before
    SqlStore.open(database).close()


def test_an_older_schema_is_refused_until_migrated(tmp_path):
    old = earlier(tmp_path / "v1.db")
    with pytest.raises(SchemaVersionError, match="verifier migrate") as refused:
        SqlStore.open(old)
    assert refused.value.reason is Reason.STORE_SCHEMA
    migrate(old)
    SqlStore.open(old).close()


def newer(database: str) -> None:
    engine = engine_for(database)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = version + 1"))
    engine.dispose()


def test_a_newer_schema_is_refused_and_left_alone(database):
    SqlStore.open(database).close()
    newer(database)
    before = schema(database)
    with pytest.raises(SchemaVersionError, match="newer verifier"):
        SqlStore.open(database)
    with pytest.raises(SchemaVersionError):
        migrate(database)
    assert schema(database) == before


def test_serve_on_a_newer_schema_is_a_one_line_error_and_migrate_says_what_it_did(tmp_path):
    world = VerifierWorld.create(tmp_path)
    db = str(world.db_path)
    created = invoke("verifier", "migrate", "--db", db)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"schema created at version {SCHEMA_VERSION}"
    newer(db)
    assert_one_line_error(run_geoattest(*world.serve_args()), "store.schema", "newer verifier")


def damage(database: str, *statements: str) -> None:
    engine = engine_for(database)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


COMMANDS_ON_A_DATABASE = (
    ("verifier", "migrate"),
    ("verifier", "exclusions"),
    ("verifier", "trust", "list"),
    ("verifier", "retain", "--older-than-days", "30"),
)


@pytest.mark.parametrize(
    "tables",
    [
        ("CREATE TABLE widgets (id INTEGER)",),
        ("CREATE TABLE devices (id INTEGER)",),
        ("CREATE TABLE schema_version (version INTEGER)",),
        ("CREATE TABLE schema_version (version INTEGER)", "INSERT INTO schema_version VALUES (0)"),
        ("CREATE TABLE schema_version (version INTEGER)", "INSERT INTO schema_version VALUES (-3)"),
        (
            "CREATE TABLE schema_version (version INTEGER)",
            f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION}), ({SCHEMA_VERSION})",
        ),
        ("CREATE TABLE schema_version (version TEXT)", "INSERT INTO schema_version VALUES ('x')"),
    ],
    ids=["other", "devices-only", "no-version", "zero", "negative", "two", "text"],
)
def test_a_database_that_is_not_a_geoattest_one_is_refused_and_left_alone(database, tables):
    """Tables but no geoattest schema (another application's database, or a version table
    that names no version): every command that opens it says so in one line and neither
    creates the schema beside those tables nor alters them."""
    if database.startswith("postgresql://"):
        engine_for(database).dispose()
    else:
        sqlite3.connect(database).close()
    damage(database, *tables)
    before = schema(database)
    for command in COMMANDS_ON_A_DATABASE:
        assert_one_line_error(invoke(*command, "--db", database), "store.schema", "not a geoattest")
    with pytest.raises(GeoattestError) as refused:
        SqlStore.open(database)
    assert refused.value.reason is Reason.STORE_SCHEMA
    assert schema(database) == before


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://verifier:s3cret@/geoattest?host=/tmp&port=notaport",
        "postgresql://verifier:s3cret@db.example:x/geoattest",
        "postgresql://verifier:s3cret@[::1/geoattest",
        "postgresql://verifier@/geoattest?host=/a&host=/b&port=1&port=x",
        "postgres://verifier:s3cret@db.example/geoattest",
        "mysql://verifier:s3cret@db.example/geoattest",
        "postgresql+asyncpg://verifier:s3cret@db.example/geoattest",
    ],
)
def test_a_malformed_or_foreign_db_url_is_one_line_without_its_password(url):
    for command in COMMANDS_ON_A_DATABASE:
        result = invoke(*command, "--db", url)
        assert_one_line_error(result, "--db")
        assert "s3cret" not in result.stderr
    with pytest.raises(ConfigError):
        SqlStore.open(url)


def test_a_password_in_the_url_query_is_not_shown():
    result = invoke("verifier", "migrate", "--db", "postgresql://v@127.0.0.1:1/g?password=s3cret")
    assert_one_line_error(result, "cannot be migrated")
    assert "s3cret" not in result.stderr


def test_a_server_that_accepts_and_never_answers_is_one_line_not_a_hang():
    """A listening socket that never answers (a frozen database host): the connection
    times out and the command says so, in one line. A URL that names no timeout gets
    the store's."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgresql://verifier@127.0.0.1:{port}/geoattest?connect_timeout=1"
        assert_one_line_error(run_geoattest("verifier", "migrate", "--db", url), "timeout")
    engine = reader_engine(url.replace("?connect_timeout=1", ""))
    assert engine.url.query["connect_timeout"] == str(CONNECT_TIMEOUT_S)
    engine.dispose()


def test_a_store_whose_schema_a_newer_verifier_migrated_judges_nothing_more(tmp_path, database):
    """Every batch and every health probe reads the schema's version with the trust
    version: past this verifier's, nothing is judged or stored, as if the database were
    gone."""
    world = VerifierWorld.create(tmp_path)
    store = SqlStore.open(database)
    try:
        service, chip = world.enrolled(store)
        assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
        engine = engine_for(database)
        with engine.begin() as conn:
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
        engine.dispose()
        with pytest.raises(SchemaMovedError) as moved:
            service.submit(world.proof(chip, unix_ns=UNIX_NS + 10**9), NOW_NS + 10**9)
        assert moved.value.reason is Reason.STORE_UNAVAILABLE
        assert f"version {SCHEMA_VERSION + 1}, this verifier's is {SCHEMA_VERSION}" in (
            moved.value.detail
        )
        with pytest.raises(SchemaMovedError):
            service.probe()
        assert store.accepted_counters("dev-1") == [1]
    finally:
        store.close()
