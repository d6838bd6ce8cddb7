"""The agent's on-disk outbox: no proof is lost across verifier outages or restarts.

Layout of the outbox directory::

    chain.json                 the chain the next proof extends (counter, head digest)
    pending/<counter>.proof    signed proofs not yet acknowledged, as envelope bytes
    pending/<counter>.base     the chain each pending proof was built on

Every file is written atomically and durably (:func:`geoattest.files.write_atomic`), and
a proof is written *before* the chain that counts it, so a crash at any instant leaves
either the old state or the new one. A proof leaves the outbox only when the verifier has
acknowledged it (it is durable there) or rejected it; after a rejection the agent rebuilds
the later pending proofs on the rejected proof's base, so their receipts are not lost and
the chain the verifier sees never breaks. The rebuilt set is written to a staging folder
first and swapped in; an interrupted swap is finished when the outbox is next opened.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from geoattest.errors import ConfigError
from geoattest.files import write_atomic
from geoattest.protocol.proof import ChainedProof, ProofChain
from geoattest.v1 import envelope_pb2, evidence_pb2


@dataclass(frozen=True, slots=True)
class PendingProof:
    """A proof waiting for the verifier, with the chain it extends."""

    counter: int
    envelope: envelope_pb2.Envelope
    base: ProofChain


def _chain_json(chain: ProofChain) -> bytes:
    return json.dumps(
        {"device_id": chain.device_id, "counter": chain.counter, "head": chain.head_digest.hex()}
    ).encode()


def _chain_from_json(data: bytes, where: Path) -> ProofChain:
    try:
        raw = json.loads(data)
        return ProofChain(raw["device_id"], int(raw["counter"]), bytes.fromhex(raw["head"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where} is not a valid proof chain file") from exc


class Outbox:
    """Pending proofs and the proof chain, persisted in one directory."""

    def __init__(self, directory: Path, device_id: str) -> None:
        self.directory = directory
        self.device_id = device_id
        self._pending_dir = directory / "pending"
        self._staging_dir = directory / "pending.next"
        self._old_dir = directory / "pending.old"
        self._chain_path = directory / "chain.json"
        self._recover()
        self._pending_dir.mkdir(parents=True, exist_ok=True)

    def _recover(self) -> None:
        """Finish or undo a rebuild that a crash interrupted."""
        if self._staging_dir.exists():
            if (self._staging_dir / "COMPLETE").exists():
                self._swap_in_staging()
            else:
                shutil.rmtree(self._staging_dir)
        next_chain = self._pending_dir / "chain.next"
        if next_chain.exists():
            write_atomic(self._chain_path, next_chain.read_bytes())
            next_chain.unlink()
        if self._old_dir.exists():
            shutil.rmtree(self._old_dir)

    def _swap_in_staging(self) -> None:
        if self._pending_dir.exists():
            self._pending_dir.rename(self._old_dir)
        self._staging_dir.rename(self._pending_dir)
        (self._pending_dir / "COMPLETE").unlink()

    def chain(self) -> ProofChain:
        """The chain the next proof must extend."""
        if not self._chain_path.exists():
            return ProofChain(self.device_id)
        chain = _chain_from_json(self._chain_path.read_bytes(), self._chain_path)
        if chain.device_id != self.device_id:
            raise ConfigError(f"{self._chain_path} belongs to device {chain.device_id}")
        return chain

    def record(self, envelope: envelope_pb2.Envelope, base: ProofChain, after: ProofChain) -> None:
        """Persist a new proof, then advance the chain past it."""
        _write_proof(self._pending_dir, envelope, base, after.counter)
        write_atomic(self._chain_path, _chain_json(after))

    def pending(self) -> list[PendingProof]:
        """Unacknowledged proofs in chain order."""
        proofs = []
        for path in sorted(self._pending_dir.glob("*.proof")):
            base_path = path.with_suffix(".base")
            envelope = envelope_pb2.Envelope.FromString(path.read_bytes())
            base = _chain_from_json(base_path.read_bytes(), base_path)
            proofs.append(PendingProof(int(path.stem), envelope, base))
        return proofs

    def acknowledge(self, counter: int) -> None:
        """The verifier holds this proof durably: drop it."""
        name = f"{counter:020d}"
        (self._pending_dir / f"{name}.proof").unlink(missing_ok=True)
        (self._pending_dir / f"{name}.base").unlink(missing_ok=True)

    def reject(
        self,
        counter: int,
        rebuild: Callable[[ProofChain, Sequence[envelope_pb2.Envelope]], ChainedProof],
    ) -> None:
        """Drop a rejected proof; re-sign the later pending proofs on its base.

        ``rebuild(base, receipts)`` signs a proof over ``receipts`` extending ``base``.
        """
        pending = self.pending()
        rejected = next((p for p in pending if p.counter == counter), None)
        if rejected is None:
            return
        if self._staging_dir.exists():
            shutil.rmtree(self._staging_dir)
        self._staging_dir.mkdir()
        chain = rejected.base
        for proof in pending:
            if proof.counter < counter:
                _write_proof(self._staging_dir, proof.envelope, proof.base, proof.counter)
            elif proof.counter > counter:
                receipts = evidence_pb2.LocationProof.FromString(proof.envelope.payload).receipts
                envelope, after = rebuild(chain, list(receipts))
                _write_proof(self._staging_dir, envelope, chain, after.counter)
                chain = after
        write_atomic(self._staging_dir / "chain.next", _chain_json(chain))
        write_atomic(self._staging_dir / "COMPLETE", b"")
        self._recover()


def _write_proof(
    directory: Path, envelope: envelope_pb2.Envelope, base: ProofChain, counter: int
) -> None:
    name = f"{counter:020d}"
    write_atomic(directory / f"{name}.proof", envelope.SerializeToString())
    write_atomic(directory / f"{name}.base", _chain_json(base))
