"""A running verifier follows its host's revocation list file forward only: a file that
lifts a revocation without a newer version (an old copy served again, the file removed,
an edit that kept the version) is refused in the log, the list in force stays, and the
revoked device's next proof is REJECTED ``device.revoked`` with its chain where it was. A
newer version, lifting or adding, is followed at the next proof."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from verifier_world import MEASUREMENT, NOW_NS, UNIX_NS, ProvisionedChip, VerifierWorld

from geoattest.errors import Reason
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.verdict import Verdict
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import SqlStore

S = 10**9


@dataclass
class Host:
    """One verifier following the registry and revocation files on its host."""

    world: VerifierWorld
    service: VerifierService
    store: SqlStore
    revoked: Path
    chip: ProvisionedChip
    step: int = 0

    def write(self, revocations: RevocationList | dict[str, object]) -> None:
        """Replace the revocation file as an operator's deploy would (a new inode)."""
        fresh = self.revoked.with_name("revocations.new")
        if isinstance(revocations, RevocationList):
            revocations.save(fresh)
        else:
            fresh.write_text(json.dumps(revocations))
        fresh.replace(self.revoked)

    def prove(self) -> ProofResult:
        """The chip's next proof; its chain moves only if the verifier accepted it."""
        self.step += 1
        receipts = self.world.receipts(self.chip, unix_ns=UNIX_NS + self.step * S)
        proof, chain = self.chip.chain.extend(
            receipts, measurement=MEASUREMENT, signer=self.chip.signer
        )
        result = self.service.submit(proof, NOW_NS + self.step * S)
        if result.verdict is not Verdict.REJECTED:
            self.chip.chain = chain
        return result


@pytest.fixture
def host(tmp_path) -> Iterator[Host]:
    world = VerifierWorld.create(tmp_path)
    registry, revoked = tmp_path / "landmarks.json", tmp_path / "revocations.json"
    LandmarkRegistry(world.landmark_records()).save(registry)
    RevocationList().save(revoked)
    store = SqlStore.open(world.db_path)
    service = world.service(store)
    service.files = OperatorFiles(registry, revoked)
    chip = world.chip("dev-1")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    yield Host(world, service, store, revoked, chip)
    store.close()


REVOKED = RevocationList().with_device("dev-1")
"""Version 1: dev-1 revoked."""

ROLLBACKS: dict[str, Callable[[Host], None]] = {
    "an older version": lambda host: host.write(RevocationList()),
    "the file removed": lambda host: host.revoked.unlink(),
    "the same version lifting it": lambda host: host.write(
        {"version": REVOKED.version, "devices": [], "landmarks": []}
    ),
}


@pytest.mark.parametrize("rollback", sorted(ROLLBACKS))
def test_a_revocation_is_never_lifted_by_a_list_that_is_not_newer(host, rollback, caplog):
    assert host.prove().verdict is Verdict.ALLOWED
    host.write(REVOKED)
    refused = host.prove()
    assert (refused.verdict, refused.reason) == (Verdict.REJECTED, Reason.REVOKED_DEVICE)
    before = host.store.summary("dev-1")

    ROLLBACKS[rollback](host)
    with caplog.at_level(logging.ERROR, logger="geoattest.verifier"):
        result = host.prove()
    assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.REVOKED_DEVICE)
    assert host.store.summary("dev-1") == before
    assert host.service.device_revoked("dev-1")
    assert "the operator's files are refused" in caplog.text
    # Refused once, and still: the same file is not read again until it changes.
    assert host.prove().reason is Reason.REVOKED_DEVICE


def test_a_newer_version_is_followed_whether_it_lifts_or_adds(host):
    host.write(REVOKED)
    assert host.prove().reason is Reason.REVOKED_DEVICE
    host.write(REVOKED.without_device("dev-1"))  # version 2 restores dev-1
    assert host.prove().verdict is Verdict.ALLOWED
    host.write({"version": 2, "devices": ["dev-1"], "landmarks": []})  # same version, adds
    assert host.prove().reason is Reason.REVOKED_DEVICE
