"""The on-chip agent's cycle: measure rounds, build a proof, keep it, deliver it.

One cycle (:meth:`Attester.attest`) runs a timed round with each configured landmark,
signs a location proof over the receipts it got, and records the proof in the outbox
*before* anything is sent. Delivery (:meth:`Attester.deliver`) submits pending proofs in
chain order until the verifier is unreachable; an acknowledged proof leaves the outbox,
a rejected one is dropped and the later ones are re-signed on its predecessor, and every
affirming result is offered to the licence. I/O is behind two small interfaces, so the
same agent runs over real sockets, the virtual network and in tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.attestor.outbox import Outbox, PendingProof
from geoattest.crypto import Signer
from geoattest.errors import GeoattestError, Reason
from geoattest.protocol.proof import ChainedProof, ProofChain
from geoattest.v1 import envelope_pb2, evidence_pb2


def agent_measurement() -> bytes:
    """The emulated firmware measurement: SHA-256 over the agent's own source files.

    A changed (downgraded, patched) agent measures differently, and the verifier's policy
    lists the measurements it accepts.
    """
    digest = hashlib.sha256(b"geoattest-agent-measurement-v1\x00")
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\x00" + path.read_bytes())
    return digest.digest()


class DeliveryError(GeoattestError):
    """The verifier could not be reached; the proof stays in the outbox."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.UNREACHABLE, detail)


RoundRunner = Callable[[str], envelope_pb2.Envelope | None]
"""Runs one timed round with one landmark; returns its receipt, or None if it failed."""


class Submitter(Protocol):
    """Delivers a proof; raises DeliveryError when the verifier is unreachable."""

    def __call__(self, proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult: ...


class DeliveryOutcome(Enum):
    """What became of a pending proof."""

    ACCEPTED = "accepted"
    """The verifier appraised and stored it (any verdict but REJECTED)."""
    REJECTED = "rejected"
    """The verifier refused it; it was dropped and later proofs re-signed."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """One pending proof's fate: its counter, what became of it and the verifier's answer."""

    counter: int
    outcome: DeliveryOutcome
    result: evidence_pb2.AttestationResult


class Attester:
    """The agent: key store, landmarks, outbox and licence of one chip."""

    def __init__(
        self,
        signer: Signer,
        device_id: str,
        landmark_ids: Sequence[str],
        outbox: Outbox,
        licence: AgentLicence,
        *,
        measurement: bytes | None = None,
    ) -> None:
        self.signer = signer
        self.device_id = device_id
        self.landmark_ids = list(landmark_ids)
        self.outbox = outbox
        self.licence = licence
        self.measurement = measurement if measurement is not None else agent_measurement()

    def _sign(self, base: ProofChain, receipts: Sequence[envelope_pb2.Envelope]) -> ChainedProof:
        return base.extend(receipts, measurement=self.measurement, signer=self.signer)

    def attest(self, run_round: RoundRunner) -> int:
        """Run rounds with every landmark and keep the proof; returns the receipts used."""
        receipts = [r for r in (run_round(lid) for lid in self.landmark_ids) if r is not None]
        if not receipts:
            return 0
        base = self.outbox.chain()
        envelope, after = self._sign(base, receipts)
        self.outbox.record(envelope, base, after)
        return len(receipts)

    def deliver(
        self,
        submit: Submitter,
        now_s: Callable[[], int],
        on_settled: Callable[[Delivered], None] | None = None,
    ) -> list[Delivered]:
        """Submit pending proofs in chain order; stop at the first unreachable verifier.

        Each answer is acted on at ``now_s()`` (Unix seconds) as it arrives and handed to
        ``on_settled`` before the next proof goes, so a report of it sees the licence as
        that answer left it.
        """
        delivered: list[Delivered] = []
        while pending := self.outbox.pending():
            try:
                result = submit(pending[0].envelope)
            except DeliveryError:
                break
            settled = self._settle(pending[0], result, now_s())
            delivered.append(settled)
            if on_settled is not None:
                on_settled(settled)
        return delivered

    def _settle(
        self, proof: PendingProof, result: evidence_pb2.AttestationResult, now_s: int
    ) -> Delivered:
        """Act on the verifier's answer to ``proof`` (the oldest pending one)."""
        if result.verdict != evidence_pb2.VERDICT_REJECTED or (
            result.reason == Reason.REPLAYED_PROOF.value
        ):
            self.outbox.acknowledge(proof.counter)
            if result.result_token:
                self.licence.offer(result.result_token, now_s)
            return Delivered(proof.counter, DeliveryOutcome.ACCEPTED, result)
        self.outbox.reject(proof.counter, self._sign)
        return Delivered(proof.counter, DeliveryOutcome.REJECTED, result)

    def status(self, now_s: int) -> LicenceStatus:
        return self.licence.status(now_s)
