"""A retry of a proof that was rejected with an alert (a fork: CLONE; tampered evidence:
TAMPERING), through the same replica or another one over the same database, in a later
batch or the same one. The property: **the same proof bytes rejected again for the same
reason are the same event**: the retry is answered with the stored result, raises no
second alert and stores no second row, while a different proof is still judged and
alerted on its own. SQLite, and a real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from verifier_world import NOW_NS, UNIX_NS, Interleaving, ProvisionedChip, VerifierWorld

from geoattest.crypto import sha256
from geoattest.errors import Reason
from geoattest.v1 import envelope_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import SqlStore

S = 10**9


@dataclass
class Replicas:
    world: VerifierWorld
    a: VerifierService
    b: VerifierService
    store: SqlStore
    chip: ProvisionedChip

    def rows(self, proof: envelope_pb2.Envelope) -> int:
        """How many rows of ``proofs`` hold these proof bytes."""
        envelope = proof.SerializeToString()
        return sum(1 for row in self.store.dump()["proofs"] if bytes(row[5]) == envelope)

    def alerts(self) -> list[str]:
        return [alert.kind for alert in self.store.alerts("dev-1")]


@pytest.fixture
def replicas(tmp_path, database) -> Iterator[Replicas]:
    world = VerifierWorld.create(tmp_path)
    stores = SqlStore.open(database), Interleaving.open(database)
    a, b = world.service(stores[0]), world.service(stores[1])
    chip = world.chip("dev-1")
    a.enrol(chip.identity(), chip.possession(), NOW_NS)
    yield Replicas(world, a, b, stores[0], chip)
    for store in stores:
        store.close()


def forked(r: Replicas) -> envelope_pb2.Envelope:
    """A second proof extending the head the accepted one extended: a fork."""
    winner = r.world.proof(r.chip, unix_ns=UNIX_NS + S, advance=False)
    fork = r.world.proof(r.chip, unix_ns=UNIX_NS + 2 * S, advance=False)
    assert r.a.submit(winner, NOW_NS + 3 * S).verdict is Verdict.ALLOWED
    return fork


def tampered(r: Replicas) -> envelope_pb2.Envelope:
    """A proof signed by the device's key over an agent measurement the verifier does not
    allow."""
    proof, _chain = r.chip.chain.extend(
        r.world.receipts(r.chip, unix_ns=UNIX_NS + S),
        measurement=sha256(b"agent firmware patched"),
        signer=r.chip.signer,
    )
    return proof


CASES: dict[str, tuple[Callable[[Replicas], envelope_pb2.Envelope], Reason, str]] = {
    "fork": (forked, Reason.FORK, "CLONE"),
    "tampered": (tampered, Reason.BAD_MEASUREMENT, "TAMPERING"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_retry_at_another_replica_is_the_stored_answer_and_raises_no_second_alert(replicas, case):
    make, reason, kind = CASES[case]
    proof = make(replicas)
    first = replicas.b.submit(proof, NOW_NS + 4 * S)
    assert (first.verdict, first.reason, first.resubmitted) == (Verdict.REJECTED, reason, False)
    assert replicas.alerts() == [kind]

    for retry_at, now_s in ((replicas.a, 5), (replicas.b, 6)):
        again = retry_at.submit(proof, NOW_NS + now_s * S)
        assert (again.verdict, again.reason, again.resubmitted) == (Verdict.REJECTED, reason, True)
        assert again.token == first.token
    assert replicas.alerts() == [kind]
    assert replicas.rows(proof) == 1


@pytest.mark.parametrize("case", list(CASES))
def test_a_proof_twice_in_one_batch_is_one_event(replicas, case):
    make, reason, kind = CASES[case]
    proof = make(replicas)
    first, second = replicas.b.submit_batch([proof, proof], NOW_NS + 4 * S)
    assert (first.reason, first.resubmitted, second.reason, second.resubmitted) == (
        reason,
        False,
        reason,
        True,
    )
    assert second.token == first.token
    assert replicas.alerts() == [kind]
    assert replicas.rows(proof) == 1


def test_another_fork_of_the_same_head_is_a_new_event(replicas):
    fork = forked(replicas)
    other = replicas.world.proof(replicas.chip, unix_ns=UNIX_NS + 3 * S, advance=False)
    answers = replicas.b.submit_batch([fork, other], NOW_NS + 4 * S)
    assert [(a.reason, a.resubmitted) for a in answers] == [(Reason.FORK, False)] * 2
    assert replicas.alerts() == ["CLONE", "CLONE"]


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_proof_at_two_replicas_at_once_raises_one_alert(replicas, case):
    """Replica B appraises the proof; replica A stores the same proof's rejection before
    B's commit: B's commit is a conflict, and its answer is A's stored one."""
    make, reason, kind = CASES[case]
    proof = make(replicas)
    at_a: list[ProofResult] = []
    b_store = replicas.b.store
    assert isinstance(b_store, Interleaving)
    b_store.between = lambda: at_a.append(replicas.a.submit(proof, NOW_NS + 4 * S))
    at_b = replicas.b.submit(proof, NOW_NS + 4 * S)
    assert b_store.between is None
    assert (at_a[0].reason, at_a[0].resubmitted) == (reason, False)
    assert (at_b.reason, at_b.resubmitted, at_b.token) == (reason, True, at_a[0].token)
    assert replicas.alerts() == [kind]
    assert replicas.rows(proof) == 1
