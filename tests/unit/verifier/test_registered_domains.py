"""The fault domains a verifier's registry makes, which ``verifier serve`` compares with its
quorum: one operator's landmarks and landmarks on one site count once, a revoked landmark
not at all."""

from __future__ import annotations

from geoattest.crypto import KeySigner
from geoattest.geo import build_policy, circle_region
from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser

REGION = build_policy("domains", 1, [circle_region("FRA", 50.11, 8.68, 300)]).appraiser()
KEYS = {lid: KeySigner.generate().verifying_key for lid in ("a", "b", "c", "d")}
RECORDS = [
    LandmarkRecord("a", 50.11, 8.68, KEYS["a"], operator="op-1"),
    LandmarkRecord("b", 49.87, 8.65, KEYS["b"], operator="op-1"),
    LandmarkRecord("c", 50.08, 8.24, KEYS["c"], operator="op-2"),
    LandmarkRecord("d", 50.0801, 8.2401, KEYS["d"], operator="op-3"),  # c's site
]


def domains(revoked: RevocationList) -> int:
    return ProofAppraiser(PipelineConfig(quorum=2), RECORDS, revoked, REGION).registered_domains()


def test_an_operator_and_a_site_count_once():
    assert domains(RevocationList()) == 2


def test_a_revoked_landmark_counts_not_at_all():
    assert domains(RevocationList(landmarks=frozenset({"c"}))) == 2
    assert domains(RevocationList(landmarks=frozenset({"c", "d"}))) == 1
    by_key = RevocationList(landmark_keys=frozenset({KEYS["a"].key_id, KEYS["b"].key_id}))
    assert domains(by_key) == 1
