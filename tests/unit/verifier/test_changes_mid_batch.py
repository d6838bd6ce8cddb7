"""An operator's change that returns at one replica while another replica appraises a batch.

The property: **once a change of what a verdict is judged by (a licence set or withdrawn, a
device or landmark revoked, a landmark excluded) has returned at any replica, no replica
answers or stores a verdict judged without it.** A batch appraised before the change and
committed after it would otherwise answer a signed ALLOWED for a device whose licence was
just withdrawn, or whose landmark was just excluded. Here the change runs through replica
A's admin exactly between replica B's appraisal and its commit (the interleaving two
replicas give when A's change lands while B is appraising), over one database: SQLite, and
a real PostgreSQL server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import jwt
import psycopg
import pytest
from verifier_world import (
    NOW_NS,
    UNIX_NS,
    Interleaving,
    ProvisionedChip,
    VerifierWorld,
    region_appraiser,
)

from geoattest.errors import Reason
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.verdict import Verdict
from geoattest.verifier.admin import Admin
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.results import submod_name
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.standing import Standing
from geoattest.verifier.store import _TRUST_LOCK, SqlStore

S = 10**9


@dataclass
class Replicas:
    """Replica A takes the operator's changes; replica B appraises the chip's proofs."""

    world: VerifierWorld
    admin: Admin
    b: VerifierService
    b_store: Interleaving
    chip: ProvisionedChip
    stores: tuple[SqlStore, SqlStore]
    step: int = 0

    @property
    def now_ns(self) -> int:
        return NOW_NS + self.step * S

    def prove(self, between: Callable[[], object] | None = None) -> ProofResult:
        self.step += 1
        proof = self.world.proof(self.chip, unix_ns=UNIX_NS + self.step * S)
        self.b_store.between = between
        answer = self.b.submit(proof, self.now_ns)
        assert self.b_store.between is None  # the change ran
        return answer


@pytest.fixture
def replicas(tmp_path, database) -> Iterator[Replicas]:
    world = VerifierWorld.create(tmp_path)
    registry, revoked = tmp_path / "landmarks.json", tmp_path / "revocations.json"
    LandmarkRegistry(world.landmark_records()).save(registry)
    RevocationList().save(revoked)
    a_store, b_store = SqlStore.open(database), Interleaving.open(database)
    a = world.service(a_store)
    admin = Admin(a, a_store, OperatorFiles(registry, revoked), region_appraiser().has_region)
    b = world.service(b_store)
    chip = world.chip("dev-1")
    b.enrol(chip.identity(), chip.possession(), NOW_NS)
    yield Replicas(world, admin, b, b_store, chip, (a_store, b_store))
    for store in (a_store, b_store):
        store.close()


CHANGES: dict[str, tuple[Callable[[Replicas], object], Verdict, Reason | None, Standing]] = {
    "licence withdrawn": (
        lambda r: r.admin.withdraw_licence("op", "dev-1", "export licence revoked", r.now_ns),
        Verdict.REJECTED,
        Reason.LICENCE_WITHDRAWN,
        Standing.LICENCE_WITHDRAWN,
    ),
    "licence moved to another region": (
        lambda r: r.admin.set_licence(
            "op",
            device_id="dev-1",
            region="SYD-300",
            valid_until_ns=r.now_ns + 24 * 3600 * S,
            name="EL-2",
            now_ns=r.now_ns,
        ),
        Verdict.OUTSIDE,
        None,
        Standing.STANDS,
    ),
    "device revoked": (
        lambda r: r.admin.revoke_device("op", "dev-1", "stolen", r.now_ns),
        Verdict.REJECTED,
        Reason.REVOKED_DEVICE,
        Standing.STANDS,
    ),
    "landmark excluded": (
        lambda r: r.admin.exclude_landmark("op", "lm-fra", "clock drift", r.now_ns),
        Verdict.REJECTED,
        Reason.REVOKED_LANDMARK,
        Standing.STANDS,
    ),
    "landmark revoked": (
        lambda r: r.admin.revoke_landmark("op", "lm-han", "key leaked", r.now_ns),
        Verdict.REJECTED,
        Reason.REVOKED_LANDMARK,
        Standing.STANDS,
    ),
}


@pytest.mark.parametrize("first_proof", [True, False], ids=["first proof", "later proof"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_that_returned_while_a_batch_was_appraised_holds_for_its_answer(
    replicas, change, first_proof
):
    act, verdict, reason, standing = CHANGES[change]
    if not first_proof:
        assert replicas.prove().verdict is Verdict.ALLOWED

    answer = replicas.prove(between=lambda: act(replicas))

    assert (answer.verdict, answer.reason) == (verdict, reason)
    if reason is Reason.REVOKED_DEVICE:  # a revoked key vouches for nothing: no result
        assert (answer.device_id, answer.token) == ("", "")
    else:
        key = jwt.PyJWK(replicas.b.jwks()["keys"][0]).key  # type: ignore[index]
        signed = jwt.decode(answer.token, key, algorithms=["ES256"], options={"verify_exp": False})
        assert signed["submods"][submod_name("dev-1")]["ear.x-geoattest.verdict"] == verdict.value
    status = replicas.b.device_status("dev-1", replicas.now_ns)
    assert not (status.last_verdict is Verdict.ALLOWED and status.verdict_current)
    if answer.verdict is not Verdict.REJECTED:
        assert (status.last_verdict, status.standing) == (verdict, standing)


def _waits_on_a_lock(
    watcher: psycopg.Connection[tuple[object, ...]], running: Future[object]
) -> None:
    """Return once a session of the test's database waits on a lock (the call ``running``
    is blocked), failing if the call ends first."""
    for _ in range(6000):
        assert not running.done(), "the call went on without waiting"
        if watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        ).fetchone() == (1,):
            return
        time.sleep(0.01)
    raise AssertionError("the call never waited on the lock")


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_on_postgresql_a_trust_change_waits_for_commits_under_way_and_they_for_it(
    replicas, database
):
    """The order behind the property: a revocation waits while a commit holds the trust
    lock shared; a commit waits while a trust change holds it, then finds the trust version
    moved and appraises its batch again under it."""
    assert replicas.prove().verdict is Verdict.ALLOWED
    a_store = replicas.stores[0]
    with (
        psycopg.connect(database) as holder,
        psycopg.connect(database, autocommit=True) as watcher,
        ThreadPoolExecutor(1) as thread,
    ):
        holder.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_TRUST_LOCK,))
        revoking = thread.submit(
            replicas.admin.revoke_device, "op", "dev-2", "stolen", replicas.now_ns
        )
        _waits_on_a_lock(watcher, revoking)
        assert a_store.trust_changes() == []
        holder.rollback()
        revoking.result()
        assert [change.subject for change in a_store.trust_changes()] == ["dev-2"]

        holder.execute("SELECT pg_advisory_xact_lock(%s)", (_TRUST_LOCK,))
        proving = thread.submit(replicas.prove)
        _waits_on_a_lock(watcher, proving)
        (moved,) = holder.execute(
            "UPDATE trust_version SET version = version + 1 RETURNING version"
        ).fetchone()  # type: ignore[misc]
        holder.commit()
        assert proving.result().verdict is Verdict.ALLOWED
        judged_by = watcher.execute(
            "SELECT trust_version FROM chain_heads WHERE device_id = 'dev-1'"
        ).fetchone()
    assert judged_by == (moved,)
