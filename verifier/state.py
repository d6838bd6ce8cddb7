"""What the verifier trusts between proofs, behind a small interface.

The pipeline only reads :class:`TrustedState`; the caller commits an appraisal's
new chain head after the evidence is durable. A rejected proof never produces a new
head, so nothing trusted moves on a rejection (the attack tests assert it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from geoattest.crypto import VerifyingKey
from geoattest.verdict import LandmarkBound
from geoattest.verifier.licences import ExportLicence


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """An enrolled device: its key was checked against a manufacturer root at enrolment."""

    device_id: str
    verifying_key: VerifyingKey
    licensed_region: str
    """The region the device is judged against: its licence's, where ``licence`` is set."""
    certificate_serial: int
    not_valid_after_ns: int
    """Device certificate expiry: proofs after it are refused (BAD_CHAIN)."""
    enrolled_at_ns: int
    licence: ExportLicence | None = None
    """The licence in force, read with the record at appraisal time (the verifier's store
    joins it in, so a change holds for the next proof): a proof is REJECTED unless it is
    in force. None only in worlds with no licence source (studies, the virtual network),
    which judge against ``licensed_region`` alone."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The device's last accepted proof."""

    counter: int
    digest: bytes
    previous_digest: bytes
    accepted_at_ns: int
    landmark_times: Mapping[str, int] = field(default_factory=dict)
    """Newest receipt time per landmark over the accepted chain: a receipt not newer
    than this for its landmark is a replay."""
    fix: tuple[LandmarkBound, ...] = ()
    """The history fix, valid at ``fix_time_ns``: disks the device lay in then, by every
    earlier consistent fix of the chain grown by the travel since (at most one per landmark
    site; see :mod:`geoattest.verifier.history`). Empty before the first consistent proof.
    The next proof's disks must be reachable from all of these at the fastest transport, or
    IMPOSSIBLE_TRAVEL is raised."""
    fix_time_ns: int = 0
    """Landmark time of the newest round of the last consistent proof."""


class TrustedState(Protocol):
    """Read-only view of the verifier's trusted state that the pipeline needs.

    Invariant: a device's head is no proof's predecessor (the head and the successor
    index move together), so the pipeline looks up successors only for a proof that does
    not extend the head. Where another writer may move the head after it was read, the
    commit must check that it has not (``SqlStore.commit``'s ``heads_read``).
    """

    def device_for_key(self, key_id: str) -> DeviceRecord | None: ...

    def head(self, device_id: str) -> ChainHead | None: ...

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        """Digest of the accepted proof that extended ``previous_digest``, if any."""
        ...


class InMemoryState:
    """A :class:`TrustedState` in memory: for tests, the virtual network and benchmarks."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceRecord] = {}
        self._by_key: dict[str, DeviceRecord] = {}
        self.heads: dict[str, ChainHead] = {}
        self._successors: dict[tuple[str, bytes], bytes] = {}

    def enrol(self, record: DeviceRecord) -> None:
        self.devices[record.device_id] = record
        self._by_key[record.verifying_key.key_id] = record

    def device_for_key(self, key_id: str) -> DeviceRecord | None:
        return self._by_key.get(key_id)

    def head(self, device_id: str) -> ChainHead | None:
        return self.heads.get(device_id)

    def successor(self, device_id: str, previous_digest: bytes) -> bytes | None:
        return self._successors.get((device_id, previous_digest))

    def advance(self, device_id: str, head: ChainHead) -> None:
        self.heads[device_id] = head
        self._successors[(device_id, head.previous_digest)] = head.digest
