"""A landmark auditing its registered peers: timed rounds with each, receipts to the verifier.

Every ``every_s`` the landmark runs one timed round with each peer, answering with its own
key as a chip answers with its device key (the same driver,
:func:`geoattest.wire.rounds.run_rounds`), and hands the peers' signed receipts to the
verifier (``SubmitPeerReceipts``). The verifier judges the landmarks over every landmark's
hand-ins (:mod:`geoattest.verifier.audits`). A peer that does not answer, or a verifier
that refuses or cannot be reached, is logged and tried again at the next audit: an audit
never stops the landmark's timing service.

Example::

    submit = verifier_submitter("127.0.0.1:50051")
    with PeerAuditor("lm-fra", signer, peers, submit, every_s=600.0) as auditor:
        ...
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from geoattest.crypto import Signer
from geoattest.errors import GeoattestError
from geoattest.lifecycle import Running
from geoattest.protocol.round import RoundSecrets
from geoattest.v1 import envelope_pb2, verifier_service_pb2
from geoattest.wire.client import VerifierClient
from geoattest.wire.rounds import LandmarkEndpoint, RoundSettings, run_rounds

log = logging.getLogger("geoattest.landmark.audit")

Submit = Callable[
    [Sequence[envelope_pb2.Envelope]], verifier_service_pb2.SubmitPeerReceiptsResponse
]
"""Hands peer receipts to the verifier; raises a :class:`GeoattestError` on refusal."""


def verifier_submitter(
    target: str, *, timeout_s: float = 10.0, credentials: grpc.ChannelCredentials | None = None
) -> Submit:
    """A :data:`Submit` over gRPC to the verifier at ``target`` (one connection a call), over
    TLS with ``credentials`` (the landmark role's), else plaintext to a loopback verifier."""

    async def submit_async(
        receipts: Sequence[envelope_pb2.Envelope],
    ) -> verifier_service_pb2.SubmitPeerReceiptsResponse:
        async with VerifierClient(target, timeout_s=timeout_s, credentials=credentials) as client:
            return await client.submit_peer_receipts(receipts)

    def submit(
        receipts: Sequence[envelope_pb2.Envelope],
    ) -> verifier_service_pb2.SubmitPeerReceiptsResponse:
        return asyncio.run(submit_async(receipts))

    return submit


@dataclass(frozen=True, slots=True)
class AuditRun:
    """One audit: receipts handed in, peers that did not answer, what the verifier did."""

    receipts: int
    unanswered: tuple[str, ...]
    measured: int
    excluded: tuple[str, ...]


class PeerAuditor(Running):
    """Audits ``peers`` every ``every_s`` seconds from a thread of its own until stopped."""

    def __init__(
        self,
        landmark_id: str,
        signer: Signer,
        peers: Sequence[LandmarkEndpoint],
        submit: Submit,
        *,
        every_s: float,
        settings: RoundSettings | None = None,
    ) -> None:
        self.landmark_id = landmark_id
        self._signer = signer
        self._peers = tuple(peers)
        self._submit = submit
        self._every_s = every_s
        self._settings = settings or RoundSettings()
        self._secrets = RoundSecrets(os.urandom)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"audit-{landmark_id}", daemon=True)

    def audit_once(self) -> AuditRun:
        """One round with each peer, then one hand-in of the receipts.

        Raises:
            GeoattestError: the verifier refused the receipts or could not be reached.
        """
        outcomes = run_rounds(
            self._peers, self.landmark_id, self._signer, self._secrets, self._settings
        )
        receipts = [o.receipt for o in outcomes if o.receipt is not None]
        unanswered = tuple(o.landmark_id for o in outcomes if o.receipt is None)
        for outcome in outcomes:
            if outcome.failure is not None:
                log.warning("audit round failed: %s", outcome.failure)
        if not receipts:
            return AuditRun(0, unanswered, 0, ())
        reply = self._submit(receipts)
        return AuditRun(len(receipts), unanswered, reply.measured, tuple(reply.excluded))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the audit in progress, if any."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                run = self.audit_once()
            except GeoattestError as exc:
                log.warning("audit not handed in: %s", exc)
            else:
                log.info(
                    "audit: %d receipts, %d measured, excluded %s, unanswered %s",
                    run.receipts,
                    run.measured,
                    list(run.excluded),
                    list(run.unanswered),
                )
            self._stopping.wait(self._every_s)
