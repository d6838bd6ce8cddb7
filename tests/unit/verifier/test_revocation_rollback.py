"""A running verifier follows its host's revocation list file forward only: a file that
lifts a revocation without a newer version (an old copy served again, the file removed,
an edit that kept the version) is refused in the log, the list in force stays, and the
revoked device's next proof is REJECTED ``device.revoked`` with its chain where it was. A
newer version, lifting or adding, is followed at the next proof.

The store keeps the newest list any replica followed: a replica started, or restarted, on
an older file, or with another file of the same version, judges by the newer list (of one
version, by what either revokes), so no replica and no restart lifts a revocation that no
newer list lifted."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    steps: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    """The chip's rounds, one clock for every replica it proves to."""

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
        step = next(self.steps)
        receipts = self.world.receipts(self.chip, unix_ns=UNIX_NS + step * S)
        proof, chain = self.chip.chain.extend(
            receipts, measurement=MEASUREMENT, signer=self.chip.signer
        )
        result = self.service.submit(proof, NOW_NS + step * S)
        if result.verdict is not Verdict.REJECTED:
            self.chip.chain = chain
        return result


def replica(host: Host, revocations: RevocationList, name: str) -> Host:
    """Another replica (or the same host restarted) over ``host``'s database, built as
    ``verifier serve`` builds it: its appraiser from its own revocation list file."""
    own = host.revoked.with_name(f"{name}-revocations.json")
    revocations.save(own)
    host.world.revocations = RevocationList.load(own)
    store = SqlStore.open(host.world.db_path)
    service = host.world.service(store)
    service.files = OperatorFiles(host.revoked.with_name("landmarks.json"), own)
    return Host(host.world, service, store, own, host.chip, host.steps)


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


def test_a_restart_on_an_older_file_keeps_the_newer_list(host, caplog):
    host.write(REVOKED)
    assert host.prove().reason is Reason.REVOKED_DEVICE
    before = host.store.summary("dev-1")
    host.store.close()

    with caplog.at_level(logging.WARNING, logger="geoattest.verifier"):
        restarted = replica(host, RevocationList(), "restarted")
        result = restarted.prove()
    assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.REVOKED_DEVICE)
    assert restarted.store.summary("dev-1") == before
    assert restarted.service.device_revoked("dev-1")
    assert "holds version 0; version 1, followed before" in caplog.text
    restarted.store.close()


def test_every_replica_follows_the_newest_list_whatever_its_own_file(host):
    other = replica(host, RevocationList(), "other")
    assert other.prove().verdict is Verdict.ALLOWED
    host.write(REVOKED)
    assert host.prove().reason is Reason.REVOKED_DEVICE
    assert other.prove().reason is Reason.REVOKED_DEVICE  # its own file revokes nothing
    assert other.service.device_revoked("dev-1")

    other.write(REVOKED.without_device("dev-1"))  # version 2, at the other replica
    assert other.prove().verdict is Verdict.ALLOWED
    assert host.prove().verdict is Verdict.ALLOWED  # its own file is version 1
    other.store.close()


def test_two_files_of_one_version_revoke_what_either_revokes(host):
    host.write(REVOKED)
    assert host.prove().reason is Reason.REVOKED_DEVICE
    other = replica(host, RevocationList(version=1, landmarks=frozenset({"lm-fra"})), "other")
    assert other.prove().reason is Reason.REVOKED_DEVICE
    stored = host.store.trust().revocation_list
    assert (stored.version, stored.devices, stored.landmarks) == (
        1,
        frozenset({"dev-1"}),
        frozenset({"lm-fra"}),
    )
    assert host.service.in_force().revocations.landmark_revoked("lm-fra")
    other.store.close()


def test_the_stored_list_is_journalled_and_never_goes_back(host):
    """Whatever lists are offered, in whatever order, the stored one is their newest
    version, holding what every list of that version revokes."""
    store = host.store
    v1 = RevocationList(version=1, devices=frozenset({"a", "b"}))
    v1_other = RevocationList(version=1, landmarks=frozenset({"lm-x"}))
    v2 = RevocationList(version=2, devices=frozenset({"b"}))
    for offered in (v1, v2, v1_other, RevocationList(), v1):
        store.follow_revocation_list(offered, NOW_NS, by="test")
    assert store.trust().revocation_list == v2
    journal = [(r.change.value, r.subject) for r in store.trust_changes()]
    assert journal == [
        ("device_revoked", "a"),
        ("device_revoked", "b"),
        ("device_restored", "a"),
    ]


LISTS = st.builds(
    RevocationList,
    version=st.integers(0, 4),
    devices=st.frozensets(st.sampled_from(["a", "b", "c"])),
    landmarks=st.frozensets(st.sampled_from(["lm-x", "lm-y"])),
    landmark_keys=st.frozensets(st.sampled_from(["k" * 64, "f" * 64])),
)


@pytest.fixture
def stored_lists(database) -> Iterator[SqlStore]:
    store = SqlStore.open(database)
    yield store
    store.close()


@given(offers=st.lists(LISTS, max_size=5))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_stored_list_only_moves_forward_and_journals_each_move(stored_lists, offers):
    """On both backends, whatever is offered in whatever order: the stored list becomes
    the newer of it and the list held (of one version, both), so its version never falls
    and at one version it never loses a revocation; the journal gains exactly the
    subjects that were added or lifted."""
    store = stored_lists
    for offered in offers:
        held = store.trust().revocation_list
        journalled = len(store.trust_changes())
        returned = store.follow_revocation_list(offered, NOW_NS, by="test")
        now = store.trust().revocation_list
        assert returned == now == held.merged_with(offered)
        assert now.version >= held.version
        if now.version == held.version:
            assert now.devices >= held.devices
            assert now.landmarks >= held.landmarks
            assert now.landmark_keys >= held.landmark_keys
        moved = {(r.change.value, r.subject) for r in store.trust_changes()[journalled:]}
        assert moved == {
            *(("device_revoked", d) for d in now.devices - held.devices),
            *(("device_restored", d) for d in held.devices - now.devices),
            *(("landmark_revoked", x) for x in now.landmarks - held.landmarks),
            *(("landmark_revoked", k) for k in now.landmark_keys - held.landmark_keys),
            *(("landmark_restored", x) for x in held.landmarks - now.landmarks),
            *(("landmark_restored", k) for k in held.landmark_keys - now.landmark_keys),
        }
