"""A landmark auditing its peers over real UDP: a round with each peer, answered with its
own key, and one hand-in of the peers' receipts, which check against the registry. (The
hand-in to a real verifier is tested end to end in tests/e2e/test_landmark_audit.py.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack

import pytest

from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRecord
from geoattest.v1 import envelope_pb2, verifier_service_pb2
from geoattest.verifier.crosscheck import measure_peer
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer
from geoattest.verifier.landmark.audit import PeerAuditor
from geoattest.wire.rounds import LandmarkEndpoint, RoundSettings

SITES = {"lm-a": (50.1100, 8.6800), "lm-b": (50.1102, 8.6802), "lm-c": (50.1098, 8.6798)}
"""Registered within metres of each other, as landmarks answering over one host's loopback
truly are: light's floor between sites a kilometre apart (about 8 us) is longer than a fast
loopback exchange, which would then rightly read as faster than light."""


@pytest.fixture
def landmarks() -> Iterator[dict[str, LandmarkServer]]:
    with ExitStack() as stack:
        yield {
            lid: stack.enter_context(
                LandmarkServer(LandmarkIdentity(lid, *site), KeySigner.generate())
            )
            for lid, site in SITES.items()
        }


def endpoint(server: LandmarkServer) -> LandmarkEndpoint:
    host, port = server.address[:2]
    return LandmarkEndpoint(server.identity.landmark_id, host, port, server.signer.verifying_key)


def test_an_audit_hands_in_one_checked_receipt_per_peer(landmarks):
    registry = [
        LandmarkRecord(lid, *SITES[lid], server.signer.verifying_key)
        for lid, server in landmarks.items()
    ]
    handed_in: list[Sequence[envelope_pb2.Envelope]] = []

    def submit(
        receipts: Sequence[envelope_pb2.Envelope],
    ) -> verifier_service_pb2.SubmitPeerReceiptsResponse:
        handed_in.append(receipts)
        return verifier_service_pb2.SubmitPeerReceiptsResponse(measured=len(receipts))

    auditor_server = landmarks["lm-a"]
    peers = [endpoint(landmarks["lm-b"]), endpoint(landmarks["lm-c"])]
    auditor = PeerAuditor("lm-a", auditor_server.signer, peers, submit, every_s=60.0)
    run = auditor.audit_once()
    assert (run.receipts, run.unanswered, run.measured) == (2, (), 2)
    (receipts,) = handed_in
    measured = [measure_peer(r, registry) for r in receipts]
    assert {(m.timer, m.peer) for m in measured} == {("lm-b", "lm-a"), ("lm-c", "lm-a")}
    assert not any(m.impossible or m.void for m in measured)


def test_a_peer_that_does_not_answer_is_left_out_and_named(landmarks):
    handed_in: list[Sequence[envelope_pb2.Envelope]] = []

    def submit(
        receipts: Sequence[envelope_pb2.Envelope],
    ) -> verifier_service_pb2.SubmitPeerReceiptsResponse:
        handed_in.append(receipts)
        return verifier_service_pb2.SubmitPeerReceiptsResponse(measured=len(receipts))

    silent = LandmarkEndpoint("lm-gone", "127.0.0.1", 9, KeySigner.generate().verifying_key)
    auditor = PeerAuditor(
        "lm-a",
        landmarks["lm-a"].signer,
        [endpoint(landmarks["lm-b"]), silent],
        submit,
        every_s=60.0,
        settings=RoundSettings(deadline_s=0.5, resend_s=0.1),
    )
    run = auditor.audit_once()
    assert (run.receipts, run.unanswered) == (1, ("lm-gone",))
    assert len(handed_in[0]) == 1
