"""The agent's proof chain: a monotonic counter and a hash chain of signed proofs.

Each proof names the SHA-256 of the previous proof's signed payload, so two
different proofs naming the same predecessor prove that the device key signed in two
places at once: a clone. The chain state is a small value the agent persists (its
outbox, in ``attestor``); building a proof never reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from geoattest.crypto import Signer, sha256
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.wire.envelope import PayloadType, seal


def proof_digest(envelope: envelope_pb2.Envelope) -> bytes:
    """A proof's identity in the chain: the hash of its exact signed payload."""
    return sha256(envelope.payload)


class ChainedProof(NamedTuple):
    """A newly signed proof and the chain it makes (the one the next proof extends)."""

    envelope: envelope_pb2.Envelope
    chain: ProofChain


@dataclass(frozen=True, slots=True)
class ProofChain:
    """The last proof the agent built: what the next one must extend."""

    device_id: str
    counter: int = 0
    """Counter of the last proof built (0: none yet)."""
    head_digest: bytes = b""
    """Digest of the last proof built (empty: none yet)."""

    def extend(
        self,
        receipts: Sequence[envelope_pb2.Envelope],
        *,
        measurement: bytes,
        signer: Signer,
    ) -> ChainedProof:
        """Sign the next proof over ``receipts``; return it and the chain it makes."""
        proof = evidence_pb2.LocationProof(
            device_id=self.device_id,
            counter=self.counter + 1,
            receipts=list(receipts),
            agent_measurement=measurement,
            previous_proof_digest=self.head_digest,
        )
        envelope = seal(PayloadType.LOCATION_PROOF, proof.SerializeToString(), signer)
        return ChainedProof(
            envelope, ProofChain(self.device_id, self.counter + 1, proof_digest(envelope))
        )
