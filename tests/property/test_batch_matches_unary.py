"""A batch is judged as its proofs one by one: for any sequence of proofs (honest ones,
vague ones, duplicates, forks of one chain, two devices, receipts older than the chain's and
mutated proofs mixed in), ``submit_batch`` (the whole sequence, or cut in two) gives the
same verdicts and reasons, the same alerts and the same final chain heads and history fixes
as ``submit`` called for each in turn; a REJECTED proof leaves trusted state where it was,
and each fork is one CLONE alert."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_world import MEASUREMENT, MS, NOW_NS, UNIX_NS, ProvisionedChip, VerifierWorld

from geoattest.errors import Reason
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import SqlStore

DEVICES = ("dev-1", "dev-2")
STEP_NS = 50 * MS
"""Landmark time between proofs built: every receipt stays within the verifier's skew."""

steps = st.lists(
    st.one_of(
        st.tuples(st.just("next"), st.sampled_from(DEVICES), st.sampled_from([MS // 2, 3 * MS])),
        st.tuples(st.just("fork"), st.sampled_from(DEVICES), st.integers(1, 3)),
        st.tuples(st.just("again"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("mutate"), st.integers(0, 30), st.integers(0, 200)),
        st.tuples(st.just("old_receipts"), st.sampled_from(DEVICES), st.just(0)),
    ),
    min_size=1,
    max_size=10,
)


@dataclass
class Builder:
    """Builds a sequence of proofs from real rounds; each chip's chain states are kept so
    that a fork extends an earlier one."""

    world: VerifierWorld
    chips: dict[str, ProvisionedChip]
    states: dict[str, list[ProofChain]]
    built: list[envelope_pb2.Envelope]
    time_ns: int = UNIX_NS

    def extend(self, device_id: str, chain: ProofChain, rtt_ns: int, unix_ns: int) -> ProofChain:
        chip = self.chips[device_id]
        envelope, after = chain.extend(
            self.world.receipts(chip, rtt_ns=rtt_ns, unix_ns=unix_ns),
            measurement=MEASUREMENT,
            signer=chip.signer,
        )
        self.built.append(envelope)
        return after

    def step(self, kind: str, a: object, b: int) -> None:
        self.time_ns += STEP_NS
        if kind == "next":
            device_id = str(a)
            chain = self.extend(device_id, self.states[device_id][-1], b, self.time_ns)
            self.states[device_id].append(chain)
        elif kind == "fork":
            device_id = str(a)
            history = self.states[device_id]
            self.extend(device_id, history[max(0, len(history) - 1 - b)], MS // 2, self.time_ns)
        elif kind == "again" and self.built:
            self.built.append(self.built[int(str(a)) % len(self.built)])
        elif kind == "mutate" and self.built:
            copy = envelope_pb2.Envelope()
            copy.CopyFrom(self.built[int(str(a)) % len(self.built)])
            payload = bytearray(copy.payload)
            payload[b % len(payload)] ^= 0x01
            copy.payload = bytes(payload)
            self.built.append(copy)
        elif kind == "old_receipts":
            device_id = str(a)
            chain = self.extend(device_id, self.states[device_id][-1], MS // 2, UNIX_NS - 10 * MS)
            self.states[device_id].append(chain)


def _service(
    world: VerifierWorld, path: Path, chips: dict[str, ProvisionedChip]
) -> tuple[SqlStore, VerifierService]:
    store = SqlStore.open(path)
    service = world.service(store)
    for chip in chips.values():
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
    return store, service


def _answer(result: ProofResult) -> tuple[object, ...]:
    return (result.device_id, result.counter, result.verdict, result.reason, result.resubmitted)


def _trusted(store: SqlStore) -> dict[str, object]:
    trusted: dict[str, object] = {}
    for device_id in DEVICES:
        summary = store.summary(device_id)
        assert summary is not None
        head = summary.head
        trusted[device_id] = (
            None
            if head is None
            else (head.counter, head.digest, dict(head.landmark_times), head.fix, head.fix_time_ns)
        )
    trusted["alerts"] = sorted((a.device_id, a.kind) for a in store.alerts())
    return trusted


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=steps, cut=st.integers(0, 10))
def test_a_batch_gets_the_answers_and_heads_of_its_proofs_one_by_one(
    plan: list[tuple[str, object, int]], cut: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        world = VerifierWorld.create(root, licensed=dict.fromkeys(DEVICES, "FRA-300"))
        chips = {device_id: world.chip(device_id) for device_id in DEVICES}
        builder = Builder(world, chips, {d: [ProofChain(d)] for d in DEVICES}, [])
        for kind, a, b in plan:
            builder.step(kind, a, b)
        proofs = builder.built
        one_store, one = _service(world, root / "one.db", chips)
        batch_store, batched = _service(world, root / "batch.db", chips)
        try:
            answers = []
            for proof in proofs:
                before = _trusted(one_store)
                result = one.submit(proof, NOW_NS)
                if result.verdict is Verdict.REJECTED:
                    after = _trusted(one_store)
                    assert {k: v for k, v in after.items() if k != "alerts"} == {
                        k: v for k, v in before.items() if k != "alerts"
                    }
                answers.append(result)
            at = min(cut, len(proofs))
            together = [
                result
                for part in (proofs[:at], proofs[at:])
                if part
                for result in batched.submit_batch(part, NOW_NS)
            ]
            assert [_answer(r) for r in together] == [_answer(r) for r in answers]
            assert _trusted(batch_store) == _trusted(one_store)
            # One CLONE per fork: a retry of one is answered from the store, raising none.
            forks = [r.device_id for r in answers if r.reason is Reason.FORK and not r.resubmitted]
            clones = [a.device_id for a in batch_store.alerts() if a.kind == AlertKind.CLONE]
            assert sorted(clones) == sorted(forks)
        finally:
            one_store.close()
            batch_store.close()
