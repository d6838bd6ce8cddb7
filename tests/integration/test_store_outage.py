"""A verifier whose PostgreSQL server goes away: health turns NOT_SERVING and proofs are
answered UNAVAILABLE, storing nothing; nothing acknowledged before is lost; when the server
returns the verifier serves again by itself, and the refused proof, sent again, is stored."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from postgres import PostgresServer, postgres_server, server_processes, signal_all
from sqlalchemy import create_engine, text
from verifier_world import NOW_NS, UNIX_NS, ServerThread, VerifierWorld

from geoattest.errors import Reason
from geoattest.v1 import evidence_pb2
from geoattest.verifier.store import SCHEMA_VERSION, SqlStore, StoreNotAnsweringError
from geoattest.wire.client import VerifierClient, VerifierRefused

pytestmark = pytest.mark.slow
S = 10**9
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped and started again."""
    with postgres_server() as server:
        yield server


async def health_becomes(target: str, wanted: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
            if reply.status == wanted:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {wanted}")


def run_until_both_stored(
    scenario: Coroutine[Any, Any, None], server: ServerThread, store: SqlStore
) -> None:
    """Run the outage ``scenario``; then dev-1's two proofs, and only they, are stored."""
    try:
        asyncio.run(scenario)
    finally:
        server.stop()
    assert store.accepted_counters("dev-1") == [1, 2]
    store.close()


def served_through(
    tmp_path: Path, database: str, lose: Callable[[], object], regain: Callable[[], object]
) -> None:
    """A proof ALLOWED; ``lose`` takes the database away: health NOT_SERVING, the next
    proof UNAVAILABLE, nothing stored; after ``regain``, SERVING again by itself and that
    proof, sent again, is stored."""
    world = VerifierWorld.create(tmp_path)
    store = SqlStore.open(database)
    now = [NOW_NS]
    server = ServerThread(world.service(store), clock=lambda: now[0])
    server.start()
    chip = world.chip("dev-1")
    first = world.proof(chip)
    second = world.proof(chip, unix_ns=UNIX_NS + S)

    async def scenario() -> None:
        async with VerifierClient(server.address, timeout_s=60) as client:
            await client.enroll(chip.enroll_request())
            accepted = await client.submit(first)
            assert accepted.verdict == evidence_pb2.VERDICT_ALLOWED
            lose()
            await health_becomes(server.address, NOT_SERVING)
            now[0] += S
            with pytest.raises(VerifierRefused) as refused:
                await client.submit(second)
            assert refused.value.code is grpc.StatusCode.UNAVAILABLE
            assert refused.value.reason == Reason.STORE_UNAVAILABLE.value
            regain()
            await health_becomes(server.address, SERVING)
            again = await client.submit(second)
            assert again.verdict == evidence_pb2.VERDICT_ALLOWED

    run_until_both_stored(scenario(), server, store)


def test_a_lost_database_is_unavailable_and_recovers_by_itself(tmp_path, own_server):
    served_through(
        tmp_path, own_server.database(), lambda: own_server.stop("immediate"), own_server.start
    )


def test_a_database_that_stops_answering_turns_health_not_serving(tmp_path, own_server):
    """The server's processes are frozen (SIGSTOP: connections stay open, nothing answers,
    as behind a network that drops packets): health turns NOT_SERVING although no probe
    fails; the proof sent as it froze, which waited on the server, is answered
    UNAVAILABLE, and one sent (or an alert stream opened) while NOT_SERVING is refused
    without waiting on it; once the server answers, SERVING again by itself and the proof
    is accepted."""
    world = VerifierWorld.create(tmp_path)
    store = SqlStore.open(own_server.database())
    server = ServerThread(world.service(store), clock=lambda: NOW_NS)
    server.start()
    chip = world.chip("dev-1")
    first = world.proof(chip)
    second = world.proof(chip, unix_ns=UNIX_NS + S)
    frozen = server_processes(own_server)

    async def scenario() -> None:
        await health_becomes(server.address, SERVING)
        async with VerifierClient(server.address, timeout_s=600) as client:
            await client.enroll(chip.enroll_request())
            await client.submit(first)
            signal_all(frozen, signal.SIGSTOP)
            try:
                with pytest.raises(VerifierRefused) as waited:
                    await client.submit(second)
                await health_becomes(server.address, NOT_SERVING)
                with pytest.raises(VerifierRefused) as refused:
                    await client.submit(second)
                with pytest.raises(VerifierRefused) as stream_refused:
                    async for _ in client.watch_alerts(after=0):
                        pass
            finally:
                signal_all(frozen, signal.SIGCONT)
            for refusal in (waited.value, refused.value, stream_refused.value):
                assert refusal.code is grpc.StatusCode.UNAVAILABLE
                assert refusal.reason == Reason.STORE_UNAVAILABLE.value
            for refusal in (refused.value, stream_refused.value):
                assert StoreNotAnsweringError.DETAIL in refusal.detail  # not waited on
            await health_becomes(server.address, SERVING)
            again = await client.submit(second)
            assert again.verdict == evidence_pb2.VERDICT_ALLOWED

    run_until_both_stored(scenario(), server, store)


def set_schema_version(database: str, version: int) -> None:
    """What a newer verifier's ``migrate`` leaves behind, as far as this one can tell."""
    url = database if "://" in database else f"sqlite:///{database}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version})
    finally:
        engine.dispose()


def test_a_replica_whose_database_a_newer_verifier_migrated_stops_serving(tmp_path, database):
    """Migrated past its schema while it serves, a replica judges and stores nothing more:
    health NOT_SERVING within a probe, proofs UNAVAILABLE; at its own schema it serves
    again by itself."""
    served_through(
        tmp_path,
        database,
        lambda: set_schema_version(database, SCHEMA_VERSION + 1),
        lambda: set_schema_version(database, SCHEMA_VERSION),
    )
