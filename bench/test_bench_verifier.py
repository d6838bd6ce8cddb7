"""The verifier's per-proof stages, one benchmark each (pytest-benchmark).

Run: ``python -m pytest bench --benchmark-only``. Proofs come from the bench fleet (the demo
scenario's sites and policy, k = 4, n = 8, real rounds in memory); each stage is timed on
its own, in the pipeline's order, so the medians add up to roughly ``test_appraise_whole``.
The store stages use the durable store (SQLite WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoattest.bench.fleet import Fleet
from geoattest.bench.verifier import make_appraiser
from geoattest.protocol.proof import proof_digest
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verifier.pipeline import ProofAppraiser
from geoattest.verifier.state import InMemoryState
from geoattest.verifier.store import (
    CommitRecord,
    DeviceState,
    EnrolledDevice,
    SqlStore,
    Synchronous,
)
from geoattest.wire.decode import MAX_PROOF_BYTES, decode
from geoattest.wire.envelope import PayloadType, check_shape, open_envelope, payload_type_of

YEAR_NS = 365 * 86_400 * 10**9
COMMITS = 60
BATCH = 50
BATCH_ROUNDS = 12


class World:
    """One chip's first proof, decoded as far as each stage needs, and both kinds of state."""

    def __init__(self) -> None:
        self.fleet = Fleet(1)
        self.chip = self.fleet.chips[0]
        self.appraiser: ProofAppraiser = make_appraiser(self.fleet)
        self.proof = self.fleet.proof(self.chip, advance=False).SerializeToString()
        self.envelope = envelope_pb2.Envelope.FromString(self.proof)
        self.device = self.fleet.device_record(self.chip)
        self.state = InMemoryState()
        self.state.enrol(self.device)
        self.location = evidence_pb2.LocationProof.FromString(self.envelope.payload)
        self.now_ns = time.time_ns()


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture
def store(tmp_path: Path, world: World) -> Iterator[SqlStore]:
    store = SqlStore.open(tmp_path / "bench.db", synchronous=Synchronous.NORMAL)
    store.enrol(
        EnrolledDevice(world.device, "H100", time.time_ns() + YEAR_NS, DeviceState.ENROLLED)
    )
    yield store
    store.close()


def test_appraise_whole(benchmark, world: World) -> None:
    appraisal = benchmark(world.appraiser.appraise, world.proof, world.state, world.now_ns)
    assert appraisal.reason is None


def test_stage_envelope_decode_and_check(benchmark, world: World) -> None:
    def stage() -> PayloadType:
        envelope = decode(envelope_pb2.Envelope, world.proof, limit=MAX_PROOF_BYTES)
        check_shape(envelope)
        return payload_type_of(envelope)

    assert benchmark(stage) is PayloadType.LOCATION_PROOF


def test_stage_device_lookup_in_memory(benchmark, world: World) -> None:
    assert benchmark(world.state.device_for_key, world.envelope.key_id) is not None


def test_stage_device_lookup_durable_store(benchmark, world: World, store: SqlStore) -> None:
    assert benchmark(store.device_for_key, world.envelope.key_id) is not None


def test_stage_proof_signature(benchmark, world: World) -> None:
    def stage() -> evidence_pb2.LocationProof:
        payload = open_envelope(
            world.envelope, PayloadType.LOCATION_PROOF, world.device.verifying_key
        )
        return decode(evidence_pb2.LocationProof, payload, limit=MAX_PROOF_BYTES)

    assert benchmark(stage).device_id == world.chip.device_id


def test_stage_chain_checks(benchmark, world: World, store: SqlStore) -> None:
    """Digest, head and successor reads from the durable store, and the chain rules."""

    def stage() -> None:
        digest = proof_digest(world.envelope)
        head = store.head(world.chip.device_id)
        ProofAppraiser._check_chain(world.location, digest, head, store)

    benchmark(stage)


def test_stage_receipt_checks(benchmark, world: World) -> None:
    """k receipts: landmark key, receipt signature, transcript signature and consistency."""

    def stage() -> object:
        return world.appraiser._check_receipts(world.location, world.device, {}, world.now_ns)

    bounds, _ = benchmark(stage)
    assert len(bounds) == world.fleet.k


def test_stage_geography(benchmark, world: World) -> None:
    bounds, _ = world.appraiser._check_receipts(world.location, world.device, {}, world.now_ns)
    region = benchmark(world.appraiser.region.appraise, bounds, world.device.licensed_region)
    benchmark.extra_info["verdict"] = region.verdict.value


def test_stage_store_commit(benchmark, world: World, store: SqlStore) -> None:
    """One accepted proof's transaction: evidence, successor entry, chain head, device state.
    Each round commits the next proof of the chip's chain (appraised, untimed, in setup)."""
    chip = world.fleet.chips[0]
    proofs = iter([world.fleet.proof(chip).SerializeToString() for _ in range(COMMITS + 1)])

    def setup() -> tuple[tuple[list[CommitRecord]], dict[str, object]]:
        proof = next(proofs)
        now = time.time_ns()
        appraisal = world.appraiser.appraise(proof, store, now)
        assert appraisal.reason is None, appraisal.detail
        return ([CommitRecord(appraisal, proof, appraisal.proof_digest, "", (), now)],), {}

    benchmark.pedantic(store.commit, setup=setup, rounds=COMMITS, iterations=1)


def test_stage_store_commit_batch(benchmark, tmp_path: Path) -> None:
    """A batch call's transaction: BATCH accepted proofs of as many chips, committed at
    once (``extra_info``: µs per proof). Each round commits every chip's next proof."""
    fleet = Fleet(BATCH)
    appraiser = make_appraiser(fleet)
    store = SqlStore.open(tmp_path / "batch.db", synchronous=Synchronous.NORMAL)
    for chip in fleet.chips:
        store.enrol(
            EnrolledDevice(
                fleet.device_record(chip), "H100", time.time_ns() + YEAR_NS, DeviceState.ENROLLED
            )
        )
    rounds = iter(
        [[fleet.proof(c).SerializeToString() for c in fleet.chips] for _ in range(BATCH_ROUNDS)]
    )

    def setup() -> tuple[tuple[list[CommitRecord]], dict[str, object]]:
        now = time.time_ns()
        records = []
        for proof in next(rounds):
            appraisal = appraiser.appraise(proof, store, now)
            assert appraisal.reason is None, appraisal.detail
            records.append(CommitRecord(appraisal, proof, appraisal.proof_digest, "", (), now))
        return (records,), {}

    benchmark.pedantic(store.commit, setup=setup, rounds=BATCH_ROUNDS, iterations=1)
    benchmark.extra_info["us_per_proof"] = round(benchmark.stats.stats.median / BATCH * 1e6, 1)
    store.close()
