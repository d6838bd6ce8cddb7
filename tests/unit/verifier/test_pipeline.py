"""The appraisal pipeline against an attacker, python-tuf style.

Every attack asserts the exact reason code *and* that the verifier's trusted state did
not move: a rejected appraisal carries no new chain head, so committing it is a no-op.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field

import pytest
from conftest import UNIX_NS, issue_receipt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner, sha256
from geoattest.errors import ConfigError, Reason
from geoattest.geo import build_policy, circle_region, country_region
from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2, evidence_pb2, round_pb2
from geoattest.verdict import KM_PER_NS_OF_RTT, Verdict
from geoattest.verifier.pipeline import AlertKind, Appraisal, PipelineConfig, ProofAppraiser
from geoattest.verifier.state import ChainHead, DeviceRecord, InMemoryState
from geoattest.wire.envelope import PayloadType, seal

MS = 1_000_000
MEASUREMENT = sha256(b"agent firmware 1.0")
# Landmarks around Frankfurt am Main (50.11 N, 8.68 E), within about 40 km of it.
LANDMARK_SITES = {
    "lm-fra": (50.11, 8.68),
    "lm-wie": (50.08, 8.24),
    "lm-dar": (49.87, 8.65),
    "lm-han": (50.13, 8.92),
}


@dataclass
class World:
    """One verifier's trusted state and the parties that talk to it."""

    state: InMemoryState
    appraiser: ProofAppraiser
    device: KeySigner
    landmarks: dict[str, KeySigner]
    chain: ProofChain
    now_ns: int = UNIX_NS + 2 * 10**9
    revocations: RevocationList = field(
        default_factory=lambda: RevocationList(1, frozenset(), frozenset())
    )

    def receipts(
        self,
        rtt_ns: int = MS // 2,
        *,
        device: KeySigner | None = None,
        device_id: str = "dev-1",
        unix_ns: int = UNIX_NS,
        landmark_ids: list[str] | None = None,
    ) -> list[envelope_pb2.Envelope]:
        return [
            issue_receipt(
                device or self.device,
                self.landmarks[lid],
                device_id=device_id,
                landmark_id=lid,
                rtt_ns=rtt_ns,
                unix_ns=unix_ns,
            )
            for lid in (landmark_ids or list(self.landmarks))
        ]

    def proof(
        self,
        receipts=None,
        *,
        chain: ProofChain | None = None,
        signer=None,
        measurement: bytes = MEASUREMENT,
    ) -> envelope_pb2.Envelope:
        envelope, _ = (chain or self.chain).extend(
            receipts if receipts is not None else self.receipts(),
            measurement=measurement,
            signer=signer or self.device,
        )
        return envelope

    def appraise(self, proof, now_ns: int | None = None) -> Appraisal:
        appraisal = self.appraiser.appraise(proof, self.state, now_ns or self.now_ns)
        if appraisal.new_head is not None:  # what the service does, after storing
            self.state.advance(appraisal.device_id, appraisal.new_head)
        return appraisal

    def accept(self, proof) -> Appraisal:
        appraisal = self.appraise(proof)
        assert appraisal.verdict is not Verdict.REJECTED, appraisal
        self.chain = ProofChain("dev-1", appraisal.counter, appraisal.proof_digest)
        return appraisal


def make_appraiser(
    landmarks: dict[str, KeySigner], revocations: RevocationList, **config
) -> ProofAppraiser:
    records = [
        LandmarkRecord(lid, *LANDMARK_SITES[lid], signer.verifying_key)
        for lid, signer in landmarks.items()
    ]
    policy = build_policy(
        "test-frankfurt",
        1,
        [circle_region("FRA-300", 50.11, 8.68, 300), country_region("SG", ["SG"])],
    )
    return ProofAppraiser(
        PipelineConfig(quorum=3, allowed_measurements=frozenset({MEASUREMENT}), **config),
        records,
        revocations,
        policy.appraiser(),
    )


@pytest.fixture
def world() -> World:
    device = KeySigner.generate()
    landmarks = {lid: KeySigner.generate() for lid in LANDMARK_SITES}
    revocations = RevocationList(1, frozenset(), frozenset())
    state = InMemoryState()
    state.enrol(
        DeviceRecord("dev-1", device.verifying_key, "FRA-300", 1, UNIX_NS + 10**18, UNIX_NS)
    )
    return World(
        state,
        make_appraiser(landmarks, revocations),
        device,
        landmarks,
        ProofChain("dev-1"),
        revocations=revocations,
    )


def snapshot(state: InMemoryState) -> tuple:
    return (copy.deepcopy(state.heads), copy.deepcopy(state._successors))


def assert_rejected(world: World, proof, reason: Reason, **kw) -> Appraisal:
    before = snapshot(world.state)
    appraisal = world.appraise(proof, **kw)
    assert appraisal.verdict is Verdict.REJECTED
    assert appraisal.reason is reason, appraisal
    assert appraisal.new_head is None
    assert snapshot(world.state) == before, "trusted state moved on a rejection"
    return appraisal


# --- honest path -----------------------------------------------------------------


def test_honest_chip_near_its_landmarks_is_allowed(world):
    appraisal = world.accept(world.proof())
    assert appraisal.verdict is Verdict.ALLOWED
    assert appraisal.alerts == ()
    assert world.state.head("dev-1").counter == 1


def test_bounds_use_the_speed_of_light_in_vacuum(world):
    appraisal = world.accept(world.proof(world.receipts(rtt_ns=MS)))
    assert {round(b.bound_km, 3) for b in appraisal.bounds} == {149.896}
    assert pytest.approx(149.896229) == KM_PER_NS_OF_RTT * MS


def test_chain_of_proofs_advances(world):
    world.accept(world.proof())
    second = world.accept(world.proof(world.receipts(unix_ns=UNIX_NS + 10**9)))
    assert second.counter == 2
    assert world.state.head("dev-1").counter == 2


# --- proof-level attacks ------------------------------------------------------------


def test_garbage_bytes_rejected_as_malformed(world):
    assert_rejected(world, b"\xff\x00garbage", Reason.MALFORMED_MESSAGE)


def test_oversized_proof_rejected(world):
    assert_rejected(world, b"\x00" * (64 * 1024 + 1), Reason.OVERSIZED_MESSAGE)


def test_receipt_submitted_as_a_proof_is_the_wrong_payload_type(world):
    receipt = world.receipts()[0]
    assert_rejected(world, receipt, Reason.WRONG_PAYLOAD_TYPE)


def test_proof_from_an_unenrolled_key_is_unknown_device(world):
    forger = KeySigner.generate()
    assert_rejected(
        world, world.proof(world.receipts(device=forger), signer=forger), Reason.UNKNOWN_DEVICE
    )


def test_revoked_device_rejected(world):
    world.appraiser.revocations = world.revocations.with_device("dev-1")
    assert_rejected(world, world.proof(), Reason.REVOKED_DEVICE)


def test_expired_device_certificate_rejected(world):
    record = world.state.devices["dev-1"]
    world.state.enrol(
        DeviceRecord("dev-1", record.verifying_key, "FRA-300", 1, world.now_ns - 1, UNIX_NS)
    )
    assert_rejected(world, world.proof(), Reason.BAD_CHAIN)


def test_flipped_proof_signature_is_bad_signature_and_speaks_for_no_device(world):
    """Anyone can copy a device's key id: a signature that does not verify names nobody."""
    proof = world.proof()
    proof.signature = proof.signature[:-1] + bytes([proof.signature[-1] ^ 1])
    appraisal = assert_rejected(world, proof, Reason.BAD_SIGNATURE)
    assert (appraisal.device_id, appraisal.alerts, appraisal.licensed_region) == ("", (), "")


def test_chip_a_signing_a_proof_for_chip_b_is_a_device_mismatch(world):
    proof = world.proof()
    payload = evidence_pb2.LocationProof.FromString(proof.payload)
    payload.device_id = "dev-2"
    forged = seal(PayloadType.LOCATION_PROOF, payload.SerializeToString(), world.device)
    assert_rejected(world, forged, Reason.DEVICE_MISMATCH)


def test_unmeasured_agent_firmware_rejected(world):
    assert_rejected(world, world.proof(measurement=sha256(b"downgraded")), Reason.BAD_MEASUREMENT)


def test_replayed_proof_rejected(world):
    proof = world.proof()
    world.accept(proof)
    assert_rejected(world, proof, Reason.REPLAYED_PROOF)


def test_two_proofs_with_one_predecessor_are_a_fork_and_a_clone_alert(world):
    fork_base = world.chain
    world.accept(world.proof())
    clone_proof = world.proof(world.receipts(unix_ns=UNIX_NS + 10**9), chain=fork_base)
    appraisal = assert_rejected(world, clone_proof, Reason.FORK)
    assert AlertKind.CLONE in appraisal.alerts


def test_counter_that_does_not_increase_is_rejected(world):
    world.accept(world.proof())
    world.accept(world.proof(world.receipts(unix_ns=UNIX_NS + 10**9)))
    head = world.state.head("dev-1")
    rollback = ProofChain("dev-1", counter=0, head_digest=head.digest)
    assert_rejected(
        world,
        world.proof(world.receipts(unix_ns=UNIX_NS + 2 * 10**9), chain=rollback),
        Reason.COUNTER_NOT_INCREASING,
    )


def test_proof_not_extending_the_last_accepted_breaks_the_chain(world):
    world.accept(world.proof())
    stray = ProofChain("dev-1", counter=5, head_digest=os.urandom(32))
    assert_rejected(
        world,
        world.proof(world.receipts(unix_ns=UNIX_NS + 10**9), chain=stray),
        Reason.CHAIN_BROKEN,
    )


def test_first_proof_naming_a_predecessor_breaks_the_chain(world):
    stray = ProofChain("dev-1", counter=0, head_digest=os.urandom(32))
    assert_rejected(world, world.proof(chain=stray), Reason.CHAIN_BROKEN)


# --- receipt-level attacks ------------------------------------------------------------


def test_rogue_unregistered_landmark_receipt_rejected(world):
    rogue = KeySigner.generate()
    receipts = world.receipts(landmark_ids=["lm-fra", "lm-wie", "lm-dar"])
    receipts.append(
        issue_receipt(
            world.device, rogue, device_id="dev-1", landmark_id="lm-han", rtt_ns=MS // 100
        )
    )
    assert_rejected(world, world.proof(receipts), Reason.UNKNOWN_LANDMARK)


def test_revoked_landmark_receipt_rejected(world):
    world.appraiser.revocations = world.revocations.with_landmark("lm-han")
    assert_rejected(world, world.proof(), Reason.REVOKED_LANDMARK)


def test_receipt_with_lowered_rtt_fails_its_signature(world):
    receipts = world.receipts(rtt_ns=5 * MS)
    payload = round_pb2.TimingReceipt.FromString(receipts[0].payload)
    payload.rtt_min_ns = 1000
    receipts[0].payload = payload.SerializeToString()
    assert_rejected(world, world.proof(receipts), Reason.BAD_RECEIPT_SIGNATURE)


def test_receipt_issued_to_another_device_rejected(world):
    other = KeySigner.generate()
    receipts = world.receipts(landmark_ids=["lm-fra", "lm-wie", "lm-dar"])
    receipts += world.receipts(device=other, device_id="dev-2", landmark_ids=["lm-han"])
    assert_rejected(world, world.proof(receipts), Reason.RECEIPT_FOR_OTHER_DEVICE)


def test_round_answered_by_another_chip_fails_the_transcript_signature(world):
    """Chip A answers the landmark for chip B: the transcript is not signed by B's key."""
    chip_a = KeySigner.generate()
    receipts = world.receipts(landmark_ids=["lm-fra", "lm-wie", "lm-dar"])
    receipts += world.receipts(device=chip_a, device_id="dev-1", landmark_ids=["lm-han"])
    assert_rejected(world, world.proof(receipts), Reason.BAD_TRANSCRIPT_SIGNATURE)


def test_receipt_whose_transcript_does_not_match_is_rejected(world):
    receipts = world.receipts()
    landmark = world.landmarks["lm-han"]
    payload = round_pb2.TimingReceipt.FromString(receipts[3].payload)
    payload.transcript_digest = os.urandom(32)
    receipts[3] = seal(PayloadType.TIMING_RECEIPT, payload.SerializeToString(), landmark)
    assert_rejected(world, world.proof(receipts), Reason.TRANSCRIPT_MISMATCH)


def test_receipt_with_a_wrong_revealed_secret_is_rejected(world):
    receipts = world.receipts()
    payload = round_pb2.TimingReceipt.FromString(receipts[0].payload)
    payload.secret = os.urandom(32)
    receipts[0] = seal(
        PayloadType.TIMING_RECEIPT, payload.SerializeToString(), world.landmarks["lm-fra"]
    )
    assert_rejected(world, world.proof(receipts), Reason.TRANSCRIPT_MISMATCH)


def test_stale_receipt_rejected(world):
    assert_rejected(world, world.proof(), Reason.STALE_RECEIPT, now_ns=UNIX_NS + 8 * 86400 * 10**9)


def test_receipt_from_the_future_rejected(world):
    assert_rejected(world, world.proof(), Reason.FUTURE_RECEIPT, now_ns=UNIX_NS - 60 * 10**9)


def test_old_receipt_reused_in_a_new_proof_is_a_replay(world):
    receipts = world.receipts()
    world.accept(world.proof(receipts))
    fresh = world.receipts(unix_ns=UNIX_NS + 10**9, landmark_ids=["lm-fra", "lm-wie", "lm-dar"])
    assert_rejected(world, world.proof([*fresh, receipts[3]]), Reason.REPLAYED_RECEIPT)


def test_two_receipts_from_one_landmark_rejected(world):
    receipts = world.receipts()
    receipts[1] = world.receipts(landmark_ids=["lm-fra"])[0]
    assert_rejected(world, world.proof(receipts), Reason.DUPLICATE_LANDMARK)


def test_too_few_receipts_do_not_meet_quorum(world):
    assert_rejected(
        world, world.proof(world.receipts(landmark_ids=["lm-fra", "lm-wie"])), Reason.QUORUM_NOT_MET
    )


def test_more_receipts_than_allowed_rejected(world):
    receipts = world.receipts()
    assert_rejected(world, world.proof(receipts * 5), Reason.OVERSIZED_MESSAGE)


# --- geography through the pipeline --------------------------------------------------


def test_large_bounds_are_never_allowed(world):
    appraisal = world.accept(world.proof(world.receipts(rtt_ns=20 * MS)))
    assert appraisal.verdict is Verdict.INCONCLUSIVE


def test_chip_provably_elsewhere_is_outside_with_an_alert(world):
    world.state.enrol(
        DeviceRecord("dev-1", world.device.verifying_key, "SG", 1, UNIX_NS + 10**18, UNIX_NS)
    )
    appraisal = world.accept(world.proof())
    assert appraisal.verdict is Verdict.OUTSIDE
    assert AlertKind.OUTSIDE_LICENSED_REGION in appraisal.alerts


# --- fuzzing ----------------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_garbage_is_always_a_typed_rejection(world, data):
    before = snapshot(world.state)
    appraisal = world.appraise(data)
    assert appraisal.verdict is Verdict.REJECTED
    assert isinstance(appraisal.reason, Reason)
    assert snapshot(world.state) == before


@pytest.fixture
def valid_proof_bytes(world) -> bytes:
    return world.proof().SerializeToString()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0),
    position=st.integers(min_value=0),
    flip=st.integers(1, 255),
    mode=st.sampled_from(["truncate", "flip", "extend"]),
)
def test_mutated_proofs_never_crash_and_never_pass_changed(
    world, valid_proof_bytes, cut, position, flip, mode
):
    data = bytearray(valid_proof_bytes)
    if mode == "truncate":
        data = data[: cut % len(data)]
    elif mode == "flip":
        data[position % len(data)] ^= flip
    else:
        data += os.urandom(1 + cut % 64)
    appraisal = world.appraiser.appraise(bytes(data), world.state, world.now_ns)
    if appraisal.verdict is not Verdict.REJECTED:
        # Only a change outside the signed bytes can pass: the proof is the same proof.
        original = envelope_pb2.Envelope.FromString(valid_proof_bytes)
        assert appraisal.proof_digest == sha256(original.payload)
    else:
        assert isinstance(appraisal.reason, Reason)


def test_chain_head_records_landmark_times(world):
    world.accept(world.proof())
    head = world.state.head("dev-1")
    assert isinstance(head, ChainHead)
    assert set(head.landmark_times) == set(LANDMARK_SITES)


def test_rounds_run_apart_in_time_widen_the_earlier_bounds(world):
    """A chip carried between rounds must not shrink the region: earlier disks grow."""
    early = world.receipts(landmark_ids=["lm-fra", "lm-wie"], unix_ns=UNIX_NS)
    late = world.receipts(landmark_ids=["lm-dar", "lm-han"], unix_ns=UNIX_NS + 4 * 10**9)
    appraisal = world.accept(world.proof(early + late))
    base = 0.5 * KM_PER_NS_OF_RTT * MS
    widths = {b.landmark_id: b.bound_km - base for b in appraisal.bounds}
    assert widths["lm-fra"] == pytest.approx(4.0)  # 1000 m/s for 4 s
    assert widths["lm-dar"] == 0.0
    assert appraisal.evidence_time_ns == UNIX_NS + 4 * 10**9


def test_rounds_too_far_apart_are_not_one_proof(world):
    early = world.receipts(landmark_ids=["lm-fra", "lm-wie"], unix_ns=UNIX_NS - 400 * 10**9)
    late = world.receipts(landmark_ids=["lm-dar", "lm-han"])
    assert_rejected(world, world.proof(early + late), Reason.STALE_RECEIPT)


def test_proof_delayed_in_an_outbox_still_counts_for_its_own_time(world):
    appraisal = world.appraise(world.proof(), now_ns=UNIX_NS + 6 * 3600 * 10**9)
    assert appraisal.verdict is Verdict.ALLOWED
    assert appraisal.evidence_time_ns == UNIX_NS


@pytest.mark.parametrize("faults", [-1, 3])
def test_landmark_faults_must_leave_a_quorum_to_judge(faults):
    with pytest.raises(ConfigError, match="landmark_faults"):
        make_appraiser({}, RevocationList(1, frozenset(), frozenset()), landmark_faults=faults)


def test_tolerating_one_liar_never_turns_a_verdict_more_permissive(world):
    """Same receipts, two policies: the tolerant one is ALLOWED only where the other is."""
    strict = world.appraiser
    tolerant = make_appraiser(world.landmarks, world.revocations, landmark_faults=1)
    proof = world.proof()
    assert strict.appraise(proof, world.state, world.now_ns).verdict is Verdict.ALLOWED
    assert tolerant.appraise(proof, world.state, world.now_ns).verdict is Verdict.ALLOWED
    far = world.proof(world.receipts(rtt_ns=40 * MS), chain=ProofChain("dev-1"))
    assert strict.appraise(far, world.state, world.now_ns).verdict is Verdict.INCONCLUSIVE
    assert tolerant.appraise(far, world.state, world.now_ns).verdict is Verdict.INCONCLUSIVE


def test_inconsistent_proof_keeps_the_last_consistent_fix(world):
    first = world.accept(world.proof())
    contradictory = world.receipts(rtt_ns=1_000, unix_ns=UNIX_NS + 10**9)  # 0.15 km disks
    second = world.accept(world.proof(contradictory))
    assert second.verdict is Verdict.INCONSISTENT
    head = world.state.head("dev-1")
    assert head.counter == 2
    assert head.fix == first.bounds
    assert head.fix_time_ns == first.evidence_time_ns


def test_a_batch_is_appraised_as_its_proofs_one_by_one(world):
    """Proofs of one device in one batch (a chain, a contradiction, a replay, a fork,
    garbage) get the appraisals, heads and fixes they get one at a time."""
    fresh = InMemoryState()
    fresh.enrol(world.state.devices["dev-1"])

    def extend(chain, receipts):
        return chain.extend(receipts, measurement=MEASUREMENT, signer=world.device)

    first, after_first = extend(world.chain, world.receipts())
    contradictory, after_second = extend(
        after_first, world.receipts(rtt_ns=1_000, unix_ns=UNIX_NS + 10**9)
    )
    third, _ = extend(after_second, world.receipts(unix_ns=UNIX_NS + 2 * 10**9))
    fork, _ = extend(after_first, world.receipts(unix_ns=UNIX_NS + 3 * 10**9))
    batch = [first, contradictory, third, first, fork, b"\xff garbage"]

    one_by_one = [world.appraise(proof) for proof in batch]
    together = world.appraiser.appraise_batch(batch, fresh, world.now_ns)

    assert together == one_by_one
    assert [a.verdict for a in together] == [
        Verdict.ALLOWED,
        Verdict.INCONSISTENT,
        Verdict.ALLOWED,
        Verdict.REJECTED,
        Verdict.REJECTED,
        Verdict.REJECTED,
    ]
    assert [a.reason for a in together[3:]] == [
        Reason.REPLAYED_PROOF,
        Reason.FORK,
        Reason.MALFORMED_MESSAGE,
    ]
    assert together[1].new_head.fix == together[0].bounds  # the contradiction locates nothing
    assert together[2].new_head.fix == together[2].bounds
    assert fresh.heads == {}, "the pipeline itself never moves trusted state"


def test_a_batch_of_two_devices_with_travel_is_appraised_as_one_by_one(world):
    """Two devices' proofs interleaved in one batch, one device with an accepted head
    already: the fix carried through the batch raises impossible travel where one-by-one
    appraisal does, and each device's chain moves on its own."""
    world.accept(world.proof())
    other = KeySigner.generate()
    record = DeviceRecord("dev-2", other.verifying_key, "FRA-300", 2, UNIX_NS + 10**18, UNIX_NS)
    world.state.enrol(record)
    fresh = InMemoryState()
    for device in world.state.devices.values():
        fresh.enrol(device)
    fresh.advance("dev-1", world.state.head("dev-1"))

    def pinned(at: str, unix_ns: int, **who) -> list[envelope_pb2.Envelope]:
        """A 0.15 km disk around landmark ``at``, 150 km disks around two others."""
        return [
            *world.receipts(rtt_ns=1_000, unix_ns=unix_ns, landmark_ids=[at], **who),
            *world.receipts(rtt_ns=MS, unix_ns=unix_ns, landmark_ids=["lm-fra", "lm-dar"], **who),
        ]

    def extend(chain, signer, receipts):
        return chain.extend(receipts, measurement=MEASUREMENT, signer=signer)

    near_wiesbaden, chain_1 = extend(world.chain, world.device, pinned("lm-wie", UNIX_NS + 10**9))
    near_hanau, _ = extend(chain_1, world.device, pinned("lm-han", UNIX_NS + 2 * 10**9))
    as_dev2 = {"device": other, "device_id": "dev-2"}
    first_2, chain_2 = extend(
        ProofChain("dev-2"), other, pinned("lm-wie", UNIX_NS + 10**9, **as_dev2)
    )
    second_2, _ = extend(chain_2, other, pinned("lm-wie", UNIX_NS + 2 * 10**9, **as_dev2))
    batch = [near_wiesbaden, first_2, near_hanau, second_2]

    one_by_one = [world.appraise(proof) for proof in batch]
    together = world.appraiser.appraise_batch(batch, fresh, world.now_ns)

    assert together == one_by_one
    assert [a.device_id for a in together] == ["dev-1", "dev-2", "dev-1", "dev-2"]
    assert [a.counter for a in together] == [2, 1, 3, 2]
    assert AlertKind.IMPOSSIBLE_TRAVEL in together[2].alerts
    assert together[2].verdict is Verdict.INCONCLUSIVE
    assert AlertKind.IMPOSSIBLE_TRAVEL not in together[3].alerts


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_chip_speed_m_s", -1.0),
        ("max_chip_speed_m_s", math.nan),
        ("max_chip_speed_m_s", math.inf),
        ("quorum", 0),
        ("max_receipt_age_ns", 0),
        ("max_round_spread_ns", -1),
        ("clock_skew_ns", -1),
        ("landmark_faults", -1),
    ],
)
def test_settings_that_would_loosen_a_check_are_refused(setting: str, value: float) -> None:
    """A negative chip speed would shrink every earlier round's disk below the light-speed
    bound; the others would accept what the policy means to refuse."""
    with pytest.raises(ConfigError, match=setting):
        PipelineConfig(**{setting: value})
