"""A tamper-evident audit log: every appraisal, alert and admin action, hash-chained into
an RFC 6962 Merkle tree, with checkpoints signed as notes an outside party can keep.

The log is one append-only file of JSON lines (``audit.log``); entry ``n`` is the line's
exact bytes and carries ``seq`` (= n) and ``prev``, the leaf hash of entry n - 1. Two
structures over the same bytes answer two questions:

* the **hash chain** (``prev``) lets ``audit verify`` name the first entry that was altered
  (the next entry's ``prev`` no longer matches it), removed or reordered (``seq`` out of
  step) without any outside help;
* the **Merkle tree** (RFC 6962: leaf ``SHA-256(0x00 || entry)``, node ``SHA-256(0x01 ||
  left || right)``) lets a checkpoint commit to the whole log in one hash and gives an
  inclusion proof of ``log2(n)`` hashes for any entry, such as a result token's appraisal
  (``audit prove``), against a checkpoint the relying party already holds.

Checkpoints are signed notes (the transparency-log checkpoint form: origin, size, base64
root, then the signature line) in ``audit.log.checkpoints``, one JSON line each, signed
with the verifier's result key under their own signing context
(:attr:`~geoattest.wire.envelope.PayloadType.AUDIT_CHECKPOINT`), so a checkpoint signature
can never pass for a result or anything else, and the reverse.

Any worker process appends: under an exclusive ``fcntl.flock`` it folds in what other
workers appended since (the tree's right edge is kept in memory, so this costs only the new
entries), writes its entries, fsyncs once per call, and writes a checkpoint when the last
one is older than the interval.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from geoattest.crypto import Signer, VerifyingKey, sha256
from geoattest.errors import GeoattestError, Reason
from geoattest.wire.envelope import PayloadType, pae

CHECKPOINTS_SUFFIX = ".checkpoints"
EMPTY_ROOT = sha256(b"")
_SIGNATURE_PREFIX = "\u2014 "


class AuditLogError(GeoattestError):
    """The audit log or a checkpoint does not verify; the detail names the first spot."""

    def __init__(self, detail: str, reason: Reason = Reason.AUDIT_TAMPERED) -> None:
        super().__init__(reason, detail)


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00", entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


class Frontier:
    """The right edge of an RFC 6962 tree: one root per perfect subtree, largest first, so
    an append costs O(log n) and the root of the whole log is a fold of at most log n."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (subtree size, root)

    def append(self, leaf: bytes) -> None:
        size, digest = 1, leaf
        while self._peaks and self._peaks[-1][0] == size:
            left_size, left = self._peaks.pop()
            size, digest = left_size + size, node_hash(left, digest)
        self._peaks.append((size, digest))
        self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        digest = self._peaks[-1][1]
        for _, left in reversed(self._peaks[:-1]):
            digest = node_hash(left, digest)
        return digest


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes (RFC 6962 section 2.1)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 6962 section 2.1.1)."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(leaves[:k], index), tree_root(leaves[k:])]
    return [*inclusion_path(leaves[k:], index - k), tree_root(leaves[:k])]


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves leaf ``index`` of a ``size``-leaf tree under."""
    if size <= 1:
        if path:
            raise AuditLogError("inclusion proof is longer than the tree")
        return leaf
    if not path:
        raise AuditLogError("inclusion proof is shorter than the tree")
    k = _split(size)
    if index < k:
        return node_hash(root_from_path(leaf, index, k, path[:-1]), path[-1])
    return node_hash(path[-1], root_from_path(leaf, index - k, size - k, path[:-1]))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed commitment to the first ``size`` entries of the log."""

    origin: str
    size: int
    root: bytes
    time_ns: int
    note: str
    """The signed note itself, as an outside party keeps it."""

    def body(self) -> str:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\ntime {self.time_ns}\n"


def sign_checkpoint(
    origin: str, size: int, root: bytes, time_ns: int, signer: Signer
) -> Checkpoint:
    unsigned = Checkpoint(origin, size, root, time_ns, "")
    body = unsigned.body()
    key = signer.verifying_key
    signature = signer.sign(pae(PayloadType.AUDIT_CHECKPOINT, body.encode()))
    stamp = base64.b64encode(bytes.fromhex(key.key_id)[:4] + signature).decode()
    return Checkpoint(origin, size, root, time_ns, f"{body}\n{_SIGNATURE_PREFIX}{origin} {stamp}\n")


def open_checkpoint(note: str, key: VerifyingKey) -> Checkpoint:
    """Parse a signed note and check its signature under ``key``.

    Raises:
        AuditLogError: ``audit.bad_checkpoint``: malformed, or not signed by ``key``.
    """
    body, sep, signatures = note.partition("\n\n")
    lines = body.split("\n")
    try:
        origin, size, root, time_line = lines
        time_ns = int(time_line.removeprefix("time "))
        checkpoint = Checkpoint(origin, int(size), base64.b64decode(root), time_ns, note)
    except ValueError:
        raise AuditLogError(
            "a checkpoint is not a signed note", Reason.AUDIT_BAD_CHECKPOINT
        ) from None
    signed = f"{body}\n".encode()
    for line in signatures.splitlines():
        name, _, stamp = line.removeprefix(_SIGNATURE_PREFIX).rpartition(" ")
        try:
            raw = base64.b64decode(stamp, validate=True)
        except ValueError:
            continue
        if (
            sep
            and name == origin
            and raw[:4] == bytes.fromhex(key.key_id)[:4]
            and key.verify(raw[4:], pae(PayloadType.AUDIT_CHECKPOINT, signed))
        ):
            return checkpoint
    raise AuditLogError(
        f"checkpoint at size {checkpoint.size} is not signed by key {key.key_id[:16]}",
        Reason.AUDIT_BAD_CHECKPOINT,
    )


def encode_entry(seq: int, prev: bytes, time_ns: int, record: Mapping[str, Any]) -> bytes:
    """An entry's exact bytes: sorted keys, no spaces, so the same record hashes the same."""
    document = {**record, "seq": seq, "prev": prev.hex(), "time_ns": time_ns}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class AuditLog:
    """The writer: appends records and signs checkpoints; safe across worker processes."""

    def __init__(
        self,
        path: Path,
        signer: Signer,
        *,
        origin: str,
        checkpoint_every_ns: int,
    ) -> None:
        self.path = path
        self.checkpoints_path = path.with_name(path.name + CHECKPOINTS_SUFFIX)
        self._signer = signer
        self._origin = origin
        self._every_ns = checkpoint_every_ns
        self._frontier = Frontier()
        self._last_leaf = b""
        self._read_to = 0
        self._checkpointed_ns = -(2**63)
        """The newest checkpoint time this process knows of (its own, or read when due)."""
        self._handle = path.open("ab+")

    def _catch_up(self) -> None:
        """Fold in the entries other processes appended since this one last looked."""
        self._handle.seek(self._read_to)
        for line in self._handle:
            if not line.endswith(b"\n"):
                break  # a torn last line (a crash mid-write); the next append ends it
            self._last_leaf = leaf_hash(line[:-1])
            self._frontier.append(self._last_leaf)
            self._read_to += len(line)

    def append(self, records: Sequence[Mapping[str, Any]], now_ns: int) -> None:
        """Append ``records`` in order, durably once this returns; checkpoint if due."""
        if not records:
            return
        fd = self._handle.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
            end = self._handle.seek(0, os.SEEK_END)
            if end != self._read_to:  # drop a torn tail so no entry is glued to it
                self._handle.truncate(self._read_to)
            lines = []
            for record in records:
                entry = encode_entry(self._frontier.size, self._last_leaf, now_ns, record)
                self._last_leaf = leaf_hash(entry)
                self._frontier.append(self._last_leaf)
                lines.append(entry + b"\n")
            data = b"".join(lines)
            self._handle.write(data)
            self._handle.flush()
            os.fsync(fd)
            self._read_to += len(data)
            if now_ns - self._checkpointed_ns >= self._every_ns:
                self._checkpointed_ns = self._last_checkpoint_ns()  # another worker's?
                if now_ns - self._checkpointed_ns >= self._every_ns:
                    self._write_checkpoint(now_ns)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def checkpoint(self, now_ns: int) -> Checkpoint:
        """Sign a checkpoint of the whole log now (at shutdown, or for a test)."""
        fd = self._handle.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
            return self._write_checkpoint(now_ns)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _last_checkpoint_ns(self) -> int:
        """The time of the newest whole checkpoint line; a torn one (a crash mid-write) or
        one that does not read is none, so a checkpoint is written rather than the
        append failing."""
        try:
            with self.checkpoints_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 4096))
                whole = handle.read().split(b"\n")[:-1]
        except FileNotFoundError:
            return -(2**63)
        try:
            time_ns = json.loads(whole[-1])["time_ns"]
        except (IndexError, ValueError, KeyError, TypeError, RecursionError):
            return -(2**63)
        return time_ns if type(time_ns) is int else -(2**63)

    def _write_checkpoint(self, now_ns: int) -> Checkpoint:
        checkpoint = sign_checkpoint(
            self._origin, self._frontier.size, self._frontier.root(), now_ns, self._signer
        )
        line = json.dumps({"time_ns": now_ns, "note": checkpoint.note}, sort_keys=True) + "\n"
        with self.checkpoints_path.open("ab+") as handle:
            _drop_torn_line(handle)  # else the new line is glued to it, and neither reads
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())
        self._checkpointed_ns = now_ns
        return checkpoint

    def close(self) -> None:
        self._handle.close()


def _drop_torn_line(handle: BinaryIO) -> None:
    """Cut a file of lines back to its last whole line (the writer holds the log's lock)."""
    end = handle.seek(0, os.SEEK_END)
    position = end
    while position > 0:
        start = max(0, position - 4096)
        handle.seek(start)
        block = handle.read(position - start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            if keep != end:
                handle.truncate(keep)
            return
        position = start
    if end:
        handle.truncate(0)


def read_entries(path: Path) -> list[bytes]:
    """The log's entries, exact bytes, in file order (a torn last line is one too)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditLogError(f"cannot read audit log {path}: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def read_checkpoints(path: Path, key: VerifyingKey) -> list[Checkpoint]:
    """Every checkpoint in a checkpoints file, each signature checked.

    Raises:
        AuditLogError: unreadable, a line that is not a note, or a bad signature.
    """
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AuditLogError(f"cannot read checkpoints {path}: {exc.strerror or exc}") from exc
    checkpoints = []
    for number, line in enumerate(lines, 1):
        try:
            note = str(json.loads(line)["note"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise AuditLogError(
                f"{path} line {number} is not a checkpoint", Reason.AUDIT_BAD_CHECKPOINT
            ) from None
        checkpoints.append(open_checkpoint(note, key))
    return checkpoints


@dataclass(frozen=True, slots=True)
class Verified:
    entries: int
    checkpoints: int
    signed: int
    """The entries the newest checkpoint signs; those after it are vouched for by none."""


def _entry_fields(entry: bytes) -> tuple[int, str] | None:
    """An entry's ``seq`` and ``prev``; None when the bytes are no longer an entry: not
    JSON (bytes, not UTF-8, nested past the parser), not an object, or a ``seq`` that is
    not an integer or a ``prev`` that is not a string, as the writer never writes them."""
    try:
        document = json.loads(entry)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    seq, prev = document.get("seq"), document.get("prev")
    if type(seq) is not int or not isinstance(prev, str):
        return None
    return seq, prev


def verify_log(entries: Sequence[bytes], checkpoints: Sequence[Checkpoint]) -> Verified:
    """Check the chain, then every checkpoint's root; the first failure names its spot.

    Raises:
        AuditLogError: naming the first entry altered, removed or reordered, or the first
            checkpoint the log no longer matches.
    """
    fields = [_entry_fields(entry) for entry in entries]
    leaves: list[bytes] = []
    for index, (entry, parsed) in enumerate(zip(entries, fields, strict=True)):
        if parsed is None:
            raise AuditLogError(f"entry {index} was altered (it is no longer an entry)")
        seq, prev = parsed
        chained = prev == (leaves[-1].hex() if leaves else "")
        if seq != index:
            later = any(f is not None and f[0] == index for f in fields[index + 1 :])
            what = "reordered" if later else "altered" if chained else "removed"
            raise AuditLogError(f"entry {index} was {what} (found entry {seq} in its place)")
        if not chained and index == 0:
            raise AuditLogError("entry 0 was altered (it chains to an entry before the first)")
        if not chained:
            raise AuditLogError(
                f"entry {index - 1} was altered (entry {index} chains to another entry)"
            )
        leaves.append(leaf_hash(entry))
    frontier = Frontier()
    roots: dict[int, bytes] = {0: frontier.root()}
    for leaf in leaves:
        frontier.append(leaf)
        roots[frontier.size] = frontier.root()
    signed = max((c.size for c in checkpoints), default=0)
    if leaves and not checkpoints:
        # The writer signs a checkpoint with its first entries: none at all means they
        # were removed, and then nothing vouches for any entry.
        raise AuditLogError(
            f"no signed checkpoint vouches for the log's {len(leaves)} entries (the "
            "checkpoints were removed, or the verifier stopped before signing its first)"
        )
    if signed > len(leaves):
        raise AuditLogError(
            f"entries {len(leaves)} to {signed - 1} were removed (a checkpoint signed at "
            f"size {signed}; the log has {len(leaves)})"
        )
    for checkpoint in checkpoints:
        if roots[checkpoint.size] != checkpoint.root:
            raise AuditLogError(
                f"entry {checkpoint.size - 1} or an earlier one was altered (the checkpoint at "
                f"size {checkpoint.size} signs another root)"
            )
    return Verified(len(leaves), len(checkpoints), signed)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """That entry ``index`` is in the log whose first ``size`` entries ``root`` commits to."""

    index: int
    size: int
    entry: bytes
    path: tuple[bytes, ...]
    root: bytes

    def check(self) -> bool:
        root = root_from_path(leaf_hash(self.entry), self.index, self.size, self.path)
        return root == self.root

    def document(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.size,
            "entry": self.entry.decode(),
            "path": [p.hex() for p in self.path],
            "root": base64.b64encode(self.root).decode(),
        }


def prove_token(entries: Sequence[bytes], checkpoint: Checkpoint, token: str) -> InclusionProof:
    """An inclusion proof, at ``checkpoint``, of the appraisal that issued ``token``.

    Raises:
        AuditLogError: no appraisal within the checkpoint issued the token, or the log
            does not match the checkpoint.
    """
    digest = sha256(token.encode()).hex()
    covered = entries[: checkpoint.size]
    leaves = [leaf_hash(e) for e in covered]
    if len(covered) < checkpoint.size or tree_root(leaves) != checkpoint.root:
        raise AuditLogError(f"the log does not match the checkpoint at size {checkpoint.size}")
    for index, entry in enumerate(covered):
        if json.loads(entry).get("token_digest") == digest:
            proof = InclusionProof(
                index, checkpoint.size, entry, tuple(inclusion_path(leaves, index)), checkpoint.root
            )
            assert proof.check()
            return proof
    raise AuditLogError(
        f"no appraisal in the first {checkpoint.size} entries issued this token",
        Reason.AUDIT_NOT_FOUND,
    )


def appraisal_record(
    *, device_id: str, counter: int, proof_digest: bytes, verdict: str, reason: str, token: str
) -> dict[str, Any]:
    return {
        "kind": "appraisal",
        "device_id": device_id,
        "counter": counter,
        "proof_digest": proof_digest.hex(),
        "verdict": verdict,
        "reason": reason,
        "token_digest": sha256(token.encode()).hex() if token else "",
    }


def alert_record(
    *, alert_id: str, device_id: str, kind: str, reason: str, detail: str
) -> dict[str, Any]:
    return {
        "kind": "alert",
        "alert_id": alert_id,
        "device_id": device_id,
        "alert": kind,
        "reason": reason,
        "detail": detail,
    }


def admin_record(*, who: str, action: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "admin", "who": who, "action": action, "detail": dict(detail)}


def iter_records(entries: Sequence[bytes]) -> Iterator[dict[str, Any]]:
    for entry in entries:
        yield json.loads(entry)
