"""The agent's outbox keeps every proof until the verifier has it, across restarts."""

from __future__ import annotations

import itertools

import pytest
from conftest import issue_receipt

from geoattest.attestor.outbox import Outbox
from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError
from geoattest.protocol.proof import ProofChain, proof_digest
from geoattest.v1 import evidence_pb2


@pytest.fixture
def parties():
    return KeySigner.generate(), KeySigner.generate()


def build(outbox: Outbox, device: KeySigner, landmark: KeySigner, n: int) -> None:
    for _ in range(n):
        base = outbox.chain()
        receipt = issue_receipt(
            device, landmark, device_id="dev-1", landmark_id="lm-1", rtt_ns=10**5
        )
        envelope, after = base.extend([receipt], measurement=b"m", signer=device)
        outbox.record(envelope, base, after)


def test_pending_proofs_survive_a_restart_in_order(tmp_path, parties):
    build(Outbox(tmp_path, "dev-1"), *parties, 3)
    reopened = Outbox(tmp_path, "dev-1")
    pending = reopened.pending()
    assert [p.counter for p in pending] == [1, 2, 3]
    assert reopened.chain().counter == 3
    assert reopened.chain().head_digest == proof_digest(pending[-1].envelope)
    for earlier, later in itertools.pairwise(pending):
        assert later.base.head_digest == proof_digest(earlier.envelope)


def test_acknowledged_proofs_leave_and_the_chain_stays(tmp_path, parties):
    outbox = Outbox(tmp_path, "dev-1")
    build(outbox, *parties, 2)
    outbox.acknowledge(1)
    assert [p.counter for p in Outbox(tmp_path, "dev-1").pending()] == [2]
    assert outbox.chain().counter == 2


def test_rejected_proof_is_dropped_and_later_ones_rebuilt_on_its_base(tmp_path, parties):
    device, landmark = parties
    outbox = Outbox(tmp_path, "dev-1")
    build(outbox, device, landmark, 3)
    before = outbox.pending()

    def rebuild(base: ProofChain, receipts):
        return base.extend(receipts, measurement=b"m", signer=device)

    outbox.reject(2, rebuild)
    after = Outbox(tmp_path, "dev-1").pending()
    assert [p.counter for p in after] == [1, 2]
    assert after[0].envelope == before[0].envelope
    rebuilt = evidence_pb2.LocationProof.FromString(after[1].envelope.payload)
    original_third = evidence_pb2.LocationProof.FromString(before[2].envelope.payload)
    assert list(rebuilt.receipts) == list(original_third.receipts)  # no receipt lost
    assert rebuilt.previous_proof_digest == proof_digest(after[0].envelope)
    assert outbox.chain().counter == 2
    assert outbox.chain().head_digest == proof_digest(after[1].envelope)


def test_interrupted_rebuild_is_finished_on_reopen(tmp_path, parties):
    device, landmark = parties
    outbox = Outbox(tmp_path, "dev-1")
    build(outbox, device, landmark, 2)
    staging = tmp_path / "pending.next"
    staging.mkdir()
    pending = outbox.pending()
    (staging / f"{1:020d}.proof").write_bytes(pending[0].envelope.SerializeToString())
    (staging / f"{1:020d}.base").write_bytes((tmp_path / "pending" / f"{1:020d}.base").read_bytes())
    (staging / "chain.next").write_bytes(
        b'{"device_id": "dev-1", "counter": 1, "head": "%s"}'
        % proof_digest(pending[0].envelope).hex().encode()
    )
    (staging / "COMPLETE").write_bytes(b"")
    reopened = Outbox(tmp_path, "dev-1")
    assert [p.counter for p in reopened.pending()] == [1]
    assert reopened.chain().counter == 1
    assert not staging.exists()


def test_incomplete_staging_is_discarded_on_reopen(tmp_path, parties):
    outbox = Outbox(tmp_path, "dev-1")
    build(outbox, *parties, 2)
    (tmp_path / "pending.next").mkdir()
    reopened = Outbox(tmp_path, "dev-1")
    assert [p.counter for p in reopened.pending()] == [1, 2]
    assert not (tmp_path / "pending.next").exists()


def test_outbox_of_another_device_is_refused(tmp_path, parties):
    build(Outbox(tmp_path, "dev-1"), *parties, 1)
    with pytest.raises(ConfigError):
        Outbox(tmp_path, "dev-2").chain()


def test_corrupt_chain_file_is_a_config_error(tmp_path):
    (tmp_path / "chain.json").write_text("{not json")
    with pytest.raises(ConfigError):
        Outbox(tmp_path, "dev-1").chain()
