"""Junk cannot speak for a device: the property, over the real service and its SQLite store.

Property: whatever bytes arrive as a proof (any byte mutation of a valid proof, any
claimed device id, signed by any key under any key id), a device's stored state (its
alerts, stored proofs and results, chain head) changes only if the proof's signature
verifies under that device's key, and a refusal names a device only then. Everything
else is counted by reason and nothing more.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_world import NOW_NS, UNIX_NS, ProvisionedChip, VerifierWorld

from geoattest.crypto import KeySigner
from geoattest.errors import EvidenceError, Reason
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.service import VerifierService
from geoattest.verifier.store import SqlStore
from geoattest.wire.envelope import PayloadType, open_envelope, seal

EXAMPLES = 150
"""Mutations and forgeries tried per property; every one is a real appraisal and commit."""


@dataclass
class Verifier:
    world: VerifierWorld
    store: SqlStore
    service: VerifierService
    victim: ProvisionedChip
    forger: ProvisionedChip
    """An enrolled chip of the adversary's own, whose key it may sign with."""
    next_proof: bytes
    """The victim's valid next proof, never submitted."""


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    world = VerifierWorld.create(tmp_path_factory.mktemp("junk"))
    store = SqlStore.open(world.db_path)
    service = world.service(store)
    victim, forger = world.chip("dev-1"), world.chip("dev-2")
    for chip in (victim, forger):
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
    next_proof = world.proof(victim, unix_ns=UNIX_NS + 10**9, advance=False).SerializeToString()
    yield Verifier(world, store, service, victim, forger, next_proof)
    store.close()


def device_state(verifier: Verifier, device_id: str) -> tuple[object, ...]:
    """Everything the store holds about one device."""
    with sqlite3.connect(verifier.world.db_path) as db:
        rows = tuple(
            db.execute(f"SELECT * FROM {table} WHERE device_id = ?", (device_id,)).fetchall()
            for table in ("devices", "proofs", "chain_heads", "alerts")
        )
    return rows, verifier.store.summary(device_id)


def signed_by(data: bytes, chip: ProvisionedChip) -> bool:
    """Whether ``data`` is an envelope whose signature verifies under ``chip``'s key."""
    try:
        open_envelope(
            envelope_pb2.Envelope.FromString(data),
            PayloadType.LOCATION_PROOF,
            chip.signer.verifying_key,
        )
    except (EvidenceError, DecodeError):
        return False
    return True


def assert_speaks_only_for_its_signer(verifier: Verifier, data: bytes) -> None:
    chips = (verifier.victim, verifier.forger)
    before = {chip.device_id: device_state(verifier, chip.device_id) for chip in chips}
    counted = dict(verifier.service.rejections.snapshot())
    result = verifier.service.submit(data, NOW_NS)
    for chip in chips:
        if not signed_by(data, chip):
            assert device_state(verifier, chip.device_id) == before[chip.device_id]
            assert result.device_id != chip.device_id
    if not result.device_id:
        assert result.verdict is Verdict.REJECTED
        assert result.reason is not None
        assert result.token == ""
        after = verifier.service.rejections.snapshot()
        assert after[result.reason] == counted.get(result.reason, 0) + 1


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.none() | st.integers(min_value=0),
)
def test_a_mutated_proof_speaks_for_no_device_whose_key_did_not_sign_it(verifier, edits, cut):
    data = bytearray(verifier.next_proof)
    for position, flip in edits:
        data[position % len(data)] ^= flip
    if cut is not None:
        del data[cut % len(data) :]
    assert_speaks_only_for_its_signer(verifier, bytes(data))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    claimed=st.sampled_from(["dev-1", "dev-2", "dev-9"]) | st.text(max_size=40),
    signer=st.sampled_from(["stranger", "forger", "victim-bytes"]),
    key_id=st.sampled_from(["own", "victim", "forger", "random"]),
    counter=st.integers(min_value=0, max_value=5),
)
def test_a_proof_claiming_any_device_speaks_only_for_the_key_that_signed_it(
    verifier, claimed, signer, key_id, counter
):
    """Forged proofs: any device id, signed by a stranger's key or the adversary's own
    enrolled chip, under any key id (so the verifier looks up whichever device it names)."""
    proof = evidence_pb2.LocationProof.FromString(
        envelope_pb2.Envelope.FromString(verifier.next_proof).payload
    )
    proof.device_id, proof.counter = claimed, counter
    payload = proof.SerializeToString()
    key = {
        "stranger": KeySigner.generate(),
        "forger": verifier.forger.signer,
        "victim-bytes": KeySigner.generate(),
    }[signer]
    envelope = seal(PayloadType.LOCATION_PROOF, payload, key)
    if signer == "victim-bytes":  # the victim's real signature over other bytes
        envelope.signature = envelope_pb2.Envelope.FromString(verifier.next_proof).signature
    envelope.key_id = {
        "own": envelope.key_id,
        "victim": verifier.victim.signer.verifying_key.key_id,
        "forger": verifier.forger.signer.verifying_key.key_id,
        "random": KeySigner.generate().verifying_key.key_id,
    }[key_id]
    assert_speaks_only_for_its_signer(verifier, envelope.SerializeToString())


def test_the_victim_s_own_proof_still_counts_after_all_that(verifier):
    """The control: the victim's untouched next proof is its own and is ALLOWED."""
    forged = envelope_pb2.Envelope.FromString(verifier.next_proof)
    forged.signature = bytes(64)
    assert_speaks_only_for_its_signer(verifier, forged.SerializeToString())
    result = verifier.service.submit(verifier.next_proof, NOW_NS)
    assert (result.device_id, result.verdict) == ("dev-1", Verdict.ALLOWED), result
    assert verifier.service.rejections.snapshot()[Reason.BAD_SIGNATURE] >= 1
