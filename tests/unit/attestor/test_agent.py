"""The agent's cycle against the real pipeline: nothing lost, nothing forked, licence kept."""

from __future__ import annotations

import pytest
from conftest import UNIX_NS, issue_receipt

from geoattest.attestor.agent import Attester, DeliveryError, DeliveryOutcome, agent_measurement
from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.attestor.outbox import Outbox
from geoattest.crypto import KeySigner
from geoattest.geo import build_policy, circle_region
from geoattest.pki import LandmarkRecord, ResultKey, RevocationList
from geoattest.protocol.proof import proof_digest
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.state import DeviceRecord, InMemoryState

SITES = {"lm-fra": (50.11, 8.68), "lm-wie": (50.08, 8.24), "lm-dar": (49.87, 8.65)}
NOW_S = UNIX_NS // 10**9 + 2
LICENCE_UNTIL_NS = (NOW_S + 86400) * 10**9


class InMemoryVerifier:
    """The real pipeline and result signer, storing into InMemoryState; can be 'down'."""

    def __init__(self, device: KeySigner, landmarks: dict[str, KeySigner], measurement: bytes):
        self.state = InMemoryState()
        self.state.enrol(
            DeviceRecord("dev-1", device.verifying_key, "FRA", 1, 2 * UNIX_NS, UNIX_NS)
        )
        policy = build_policy("agent-test", 1, [circle_region("FRA", 50.11, 8.68, 300)])
        records = [
            LandmarkRecord(lid, *SITES[lid], s.verifying_key) for lid, s in landmarks.items()
        ]
        self.allowed = {measurement}
        self.appraiser = ProofAppraiser(
            PipelineConfig(quorum=3, allowed_measurements=frozenset(self.allowed)),
            records,
            RevocationList(),
            policy.appraiser(),
        )
        self.key = ResultKey.generate()
        self.signer = ResultSigner(self.key, verifier_id="v", policy_id=policy.policy_id)
        self.up = True
        self.accepted: list[int] = []

    def __call__(self, proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult:
        if not self.up:
            raise DeliveryError("verifier down")
        appraisal = self.appraiser.appraise(proof, self.state, NOW_S * 10**9)
        if appraisal.new_head is not None:
            self.state.advance(appraisal.device_id, appraisal.new_head)
            self.accepted.append(appraisal.counter)
        token = self.signer.sign(appraisal, expires_ns=LICENCE_UNTIL_NS, now_ns=NOW_S * 10**9)
        return evidence_pb2.AttestationResult(
            device_id=appraisal.device_id,
            counter=appraisal.counter,
            verdict=getattr(evidence_pb2, f"VERDICT_{appraisal.verdict.value}"),
            reason=appraisal.reason.value if appraisal.reason else "",
            result_token=token,
        )


@pytest.fixture
def parties(tmp_path):
    device = KeySigner.generate()
    landmarks = {lid: KeySigner.generate() for lid in SITES}
    verifier = InMemoryVerifier(device, landmarks, agent_measurement())
    licence = AgentLicence("dev-1", verifier.signer.jwks(), grace_s=600, booted_at_s=NOW_S)
    attester = Attester(device, "dev-1", list(SITES), Outbox(tmp_path, "dev-1"), licence)
    tick = iter(range(1, 10_000))

    def run_round(landmark_id: str) -> envelope_pb2.Envelope:
        return issue_receipt(
            device,
            landmarks[landmark_id],
            device_id="dev-1",
            landmark_id=landmark_id,
            rtt_ns=200_000,
            unix_ns=UNIX_NS + next(tick) * 1000,
        )

    return attester, verifier, run_round


def test_attested_proof_is_accepted_and_licenses_the_chip(parties):
    attester, verifier, run_round = parties
    assert attester.status(NOW_S) is LicenceStatus.GRACE
    assert attester.attest(run_round) == 3
    delivered = attester.deliver(verifier, lambda: NOW_S)
    assert [d.outcome for d in delivered] == [DeliveryOutcome.ACCEPTED]
    assert delivered[0].result.verdict == evidence_pb2.VERDICT_ALLOWED
    assert attester.status(NOW_S) is LicenceStatus.LICENSED
    assert attester.outbox.pending() == []


def test_proofs_wait_out_an_outage_and_arrive_in_order(parties):
    attester, verifier, run_round = parties
    verifier.up = False
    for _ in range(3):
        attester.attest(run_round)
    assert attester.deliver(verifier, lambda: NOW_S) == []
    assert [p.counter for p in attester.outbox.pending()] == [1, 2, 3]
    verifier.up = True
    assert [d.counter for d in attester.deliver(verifier, lambda: NOW_S)] == [1, 2, 3]
    assert verifier.accepted == [1, 2, 3]


def test_each_answer_is_reported_before_the_next_proof_goes(parties):
    attester, verifier, run_round = parties
    for _ in range(2):
        attester.attest(run_round)
    seen: list[tuple[int, list[int], LicenceStatus]] = []

    def report(delivered):
        seen.append((delivered.counter, list(verifier.accepted), attester.status(NOW_S)))

    delivered = attester.deliver(verifier, lambda: NOW_S, report)
    assert [d.counter for d in delivered] == [1, 2]
    assert seen == [(1, [1], LicenceStatus.LICENSED), (2, [1, 2], LicenceStatus.LICENSED)]


def test_rejected_proof_is_rebuilt_so_later_proofs_still_chain(parties):
    attester, verifier, run_round = parties
    verifier.up = False
    attester.attest(run_round)
    attester.measurement = b"unmeasured build"  # the second proof will be refused
    attester.attest(run_round)
    attester.measurement = agent_measurement()
    attester.attest(run_round)
    verifier.up = True
    outcomes = [(d.counter, d.outcome) for d in attester.deliver(verifier, lambda: NOW_S)]
    assert outcomes == [
        (1, DeliveryOutcome.ACCEPTED),
        (2, DeliveryOutcome.REJECTED),
        (2, DeliveryOutcome.ACCEPTED),
    ]
    head = verifier.state.head("dev-1")
    assert head.counter == 2
    assert head.digest == attester.outbox.chain().head_digest


def test_proof_outside_the_licence_does_not_license(parties):
    attester, verifier, run_round = parties
    verifier.state.enrol(
        DeviceRecord("dev-1", attester.signer.verifying_key, "FRA", 1, 2 * UNIX_NS, UNIX_NS)
    )
    attester.attest(lambda lid: run_round(lid) if lid != "lm-fra" else None)
    delivered = attester.deliver(verifier, lambda: NOW_S)
    assert delivered[0].result.verdict == evidence_pb2.VERDICT_REJECTED  # quorum of 3 not met
    assert attester.status(NOW_S + 601) is LicenceStatus.DEGRADED


def test_measurement_is_stable_and_covers_the_agent(parties):
    assert agent_measurement() == agent_measurement()
    assert len(agent_measurement()) == 32


def test_digest_chain_is_what_the_verifier_holds(parties):
    attester, verifier, run_round = parties
    attester.attest(run_round)
    pending = attester.outbox.pending()[0]
    attester.deliver(verifier, lambda: NOW_S)
    assert verifier.state.head("dev-1").digest == proof_digest(pending.envelope)
