"""Revocations and landmark registrations made through the admin API are store rows: made
through one replica's admin, they hold for the next proof at another replica over the same
database (two services, each with a store of its own, as two ``verifier serve`` processes
on two hosts would have), on SQLite and on a real PostgreSQL server alike. Bad calls are
refused with a stable reason and leave every table as it was.
"""

from __future__ import annotations

import sqlite3
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from verifier_world import NOW_NS, UNIX_NS, ProvisionedChip, VerifierWorld, region_appraiser

from geoattest.crypto import KeySigner
from geoattest.errors import EvidenceError, GeoattestError, LandmarkKeyReusedError, Reason
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.verdict import Verdict
from geoattest.verifier.admin import Admin, AdminError
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import DeviceState, SqlStore, StoreUnavailableError

S = 10**9


@dataclass
class Replicas:
    """Two replicas over one database; changes go through ``a``'s admin, proofs to ``b``."""

    world: VerifierWorld
    a: VerifierService
    b: VerifierService
    admin: Admin
    stores: tuple[SqlStore, SqlStore]

    def prove(self, chip: ProvisionedChip, step: int, *, advance: bool = True) -> ProofResult:
        """``chip``'s next proof at ``b``, ``step`` seconds on."""
        unix_ns = UNIX_NS + step * S
        proof = self.world.proof(chip, unix_ns=unix_ns, advance=advance)
        return self.b.submit(proof, NOW_NS + step * S)


def operator_files(world: VerifierWorld) -> OperatorFiles:
    """The registry and a revocation list (revoking ``dev-5``) as files on ``a``'s host."""
    registry, revoked = world.root / "landmarks.json", world.root / "revocations.json"
    LandmarkRegistry(world.landmark_records()).save(registry)
    RevocationList().with_device("dev-5").save(revoked)
    return OperatorFiles(registry, revoked)


def replicas_over(world: VerifierWorld, database: str, busy_timeout_ms: int = 10_000) -> Replicas:
    stores = (
        SqlStore.open(database, busy_timeout_ms=busy_timeout_ms),
        SqlStore.open(database, busy_timeout_ms=busy_timeout_ms),
    )
    a, b = world.service(stores[0]), world.service(stores[1])
    admin = Admin(a, stores[0], operator_files(world), region_appraiser().has_region)
    return Replicas(world, a, b, admin, stores)


@pytest.fixture
def world(tmp_path) -> VerifierWorld:
    return VerifierWorld.create(tmp_path)


@pytest.fixture
def replicas(world, database):
    replicas = replicas_over(world, database)
    yield replicas
    for store in replicas.stores:
        store.close()


def enrolled(replicas: Replicas, device_id: str) -> ProvisionedChip:
    chip = replicas.world.chip(device_id)
    replicas.b.enrol(chip.identity(), chip.possession(), NOW_NS)
    return chip


def test_a_device_revoked_at_one_replica_is_refused_at_the_next_proof_at_another(replicas):
    chip = enrolled(replicas, "dev-1")
    assert replicas.prove(chip, 0).verdict is Verdict.ALLOWED  # b has read what is in force

    replicas.admin.revoke_device("operator-1", "dev-1", "stolen", NOW_NS)
    refused = replicas.prove(chip, 1, advance=False)
    assert (refused.verdict, refused.reason) == (Verdict.REJECTED, Reason.REVOKED_DEVICE)
    assert replicas.b.device_status("dev-1", NOW_NS).state is DeviceState.REVOKED
    assert replicas.b.device_revoked("dev-1")
    other = replicas.world.chip("dev-2")
    replicas.admin.revoke_device("operator-1", "dev-2", "never shipped", NOW_NS)
    with pytest.raises(EvidenceError) as enrolment:
        replicas.b.enrol(other.identity(), other.possession(), NOW_NS)
    assert enrolment.value.reason is Reason.REVOKED_DEVICE

    replicas.admin.restore_device("operator-1", "dev-1", "found", NOW_NS)
    assert replicas.prove(chip, 2).verdict is Verdict.ALLOWED
    assert not replicas.b.device_revoked("dev-1")


def test_a_revocation_raises_one_durable_alert_every_replica_streams(replicas):
    """Results signed before a revocation stay valid until they expire: relying parties
    learn of it from the alert, stored in the revocation's own transaction."""
    chip = enrolled(replicas, "dev-1")
    assert replicas.prove(chip, 0).verdict is Verdict.ALLOWED
    before = replicas.stores[1].alerts_after(0)
    replicas.admin.revoke_device("operator-1", "dev-1", "stolen", NOW_NS)
    with pytest.raises(AdminError):
        replicas.admin.revoke_device("operator-1", "dev-1", "again", NOW_NS)
    raised = replicas.stores[1].alerts_after(before[-1].cursor if before else 0)
    assert [(a.device_id, a.kind, a.reason) for a in raised] == [
        ("dev-1", AlertKind.DEVICE_REVOKED, Reason.REVOKED_DEVICE.value)
    ]
    assert raised[0].detail == "revoked by operator-1: stolen"
    assert raised[0].time_ns == NOW_NS
    replicas.admin.restore_device("operator-1", "dev-1", "found", NOW_NS)
    assert replicas.stores[1].alerts_after(raised[0].cursor) == []


def test_a_landmark_revoked_at_one_replica_no_longer_counts_at_another(replicas):
    chip = enrolled(replicas, "dev-1")
    assert replicas.prove(chip, 0).verdict is Verdict.ALLOWED

    replicas.admin.revoke_landmark("operator-1", "lm-han", "key leaked", NOW_NS)
    refused = replicas.prove(chip, 1, advance=False)
    assert (refused.verdict, refused.reason) == (Verdict.REJECTED, Reason.REVOKED_LANDMARK)
    revoked = replicas.stores[1].trust().revocations
    assert revoked.landmarks == {"lm-han"}
    assert revoked.landmark_keys == {replicas.world.landmarks["lm-han"].verifying_key.key_id}


@pytest.mark.parametrize(
    "held_s", [1.5, 3], ids=["timed before the exclusion", "timed while excluded"]
)
def test_a_lifted_exclusion_vouches_only_for_what_the_landmark_times_after_the_lift(
    replicas, held_s
):
    """An exclusion lifted at one replica lets the landmark's rounds count again at another
    only from the lift on: a proof held back with a round it timed before the lift (while
    excluded, or before the audits caught it) is REJECTED ``receipt.revoked_landmark`` and
    the chain does not move; a round timed after the lift counts."""
    chip = enrolled(replicas, "dev-1")
    assert replicas.prove(chip, 1).verdict is Verdict.ALLOWED
    held = replicas.world.proof(chip, unix_ns=UNIX_NS + int(held_s * S), advance=False)
    replicas.admin.exclude_landmark("operator-1", "lm-fra", "clock drift", NOW_NS + 2 * S)
    replicas.admin.lift_exclusion("operator-1", "lm-fra", "clock repaired", NOW_NS + 10 * S)
    before = replicas.stores[1].summary("dev-1")

    refused = replicas.b.submit(held, NOW_NS + 11 * S)
    assert (refused.verdict, refused.reason) == (Verdict.REJECTED, Reason.REVOKED_LANDMARK)
    assert refused.detail == "lm-fra: timed before its exclusion was lifted"
    assert replicas.stores[1].summary("dev-1") == before
    assert replicas.stores[1].trust().lifted == {"lm-fra": NOW_NS + 10 * S}
    # The landmark's clock may run ahead by the skew allowed: a round timed after that counts.
    assert replicas.prove(chip, 20).verdict is Verdict.ALLOWED


def test_a_landmark_registered_at_one_replica_counts_at_another(world, database):
    new = world.landmarks.pop("lm-han")  # neither replica's registry file holds it
    replicas = replicas_over(world, database)
    try:
        world.landmarks["lm-han"] = new  # the chip times it as well
        chip = enrolled(replicas, "dev-1")
        unknown = replicas.prove(chip, 0, advance=False)
        assert unknown.verdict is not Verdict.ALLOWED

        replicas.admin.register_landmark(
            "operator-1",
            landmark_id="lm-han",
            operator="op-han",
            latitude=50.13,
            longitude=8.92,
            public_key_der=new.verifying_key.der(),
            name="Hanau",
            now_ns=NOW_NS,
        )
        assert replicas.prove(chip, 1).verdict is Verdict.ALLOWED
        (stored,) = replicas.stores[1].trust().landmarks
        assert (stored.landmark_id, stored.operator, stored.name) == ("lm-han", "op-han", "Hanau")
        assert stored.verifying_key.key_id == new.verifying_key.key_id
    finally:
        for store in replicas.stores:
            store.close()


def refusal(call) -> GeoattestError:
    with pytest.raises(GeoattestError) as refused:
        call()
    return refused.value


def test_bad_admin_calls_are_refused_with_their_reason_and_write_nothing(replicas):
    admin, store = replicas.admin, replicas.stores[0]
    admin.revoke_device("operator-1", "dev-1", "stolen", NOW_NS)
    admin.revoke_landmark("operator-1", "lm-han", "retired", NOW_NS)
    taken = KeySigner.generate().verifying_key
    register = {"operator": "op-x", "latitude": 50.0, "longitude": 8.0, "name": "", "now_ns": 1}
    admin.register_landmark(
        "operator-1", landmark_id="lm-new", public_key_der=taken.der(), **register
    )
    before = store.dump()

    def register_as(landmark_id: str, key: bytes, **changed: object) -> GeoattestError:
        fields = {**register, **changed}
        return refusal(
            lambda: admin.register_landmark(
                "operator-1", landmark_id=landmark_id, public_key_der=key, **fields
            )
        )

    fresh = KeySigner.generate().verifying_key.der()
    file_key = replicas.world.landmarks["lm-fra"].verifying_key.der()
    refused = {
        "bad device id": refusal(lambda: admin.revoke_device("op", "", "", NOW_NS)),
        "revoked twice": refusal(lambda: admin.revoke_device("op", "dev-1", "", NOW_NS)),
        "revoked by the file": refusal(lambda: admin.revoke_device("op", "dev-5", "", NOW_NS)),
        "restore unknown": refusal(lambda: admin.restore_device("op", "dev-9", "", NOW_NS)),
        "restore the file's": refusal(lambda: admin.restore_device("op", "dev-5", "", NOW_NS)),
        "unknown landmark": refusal(lambda: admin.revoke_landmark("op", "lm-nowhere", "", 1)),
        "landmark twice": refusal(lambda: admin.revoke_landmark("op", "lm-han", "", 1)),
        "id in the file": register_as("lm-fra", fresh),
        "id in the store": register_as("lm-new", fresh),
        "key in the file": register_as("lm-other", file_key),
        "key in the store": register_as("lm-other", taken.der()),
        "no place": register_as("lm-other", fresh, latitude=91.0),
        "bad operator": register_as("lm-other", fresh, operator="op x/.."),
        "not a key": register_as("lm-other", b"\x30\x00"),
    }
    assert {name: exc.reason for name, exc in refused.items()} == {
        "bad device id": Reason.ADMIN_INVALID,
        "revoked twice": Reason.ADMIN_CONFLICT,
        "revoked by the file": Reason.ADMIN_CONFLICT,
        "restore unknown": Reason.ADMIN_NOT_FOUND,
        "restore the file's": Reason.ADMIN_CONFLICT,
        "unknown landmark": Reason.ADMIN_NOT_FOUND,
        "landmark twice": Reason.ADMIN_CONFLICT,
        "id in the file": Reason.ADMIN_CONFLICT,
        "id in the store": Reason.ADMIN_CONFLICT,
        "key in the file": Reason.LANDMARK_KEY_REUSED,
        "key in the store": Reason.LANDMARK_KEY_REUSED,
        "no place": Reason.ADMIN_INVALID,
        "bad operator": Reason.ADMIN_INVALID,
        "not a key": Reason.ADMIN_INVALID,
    }
    assert all(isinstance(exc, AdminError | LandmarkKeyReusedError) for exc in refused.values())
    assert store.dump() == before


UNPRINTABLE = st.characters(
    codec="utf-8", categories=("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
).filter(lambda c: not c.isprintable())
NOTES = st.one_of(
    st.tuples(st.text(max_size=20), UNPRINTABLE, st.text(max_size=20)).map("".join),
    st.integers(501, 5000).map(lambda n: "x" * n),
)
"""What no reason or name may be: a line break, a terminal's escape or any other
unprintable character, or more than 500 characters."""


@settings(max_examples=25, deadline=None)
@given(note=NOTES)
def test_a_reason_or_name_that_could_forge_a_listed_line_is_refused_and_writes_nothing(
    tmp_path_factory, note
):
    """Reasons and names are listed a line each ('verifier trust list', the console): one
    holding a line break could forge the next line, an escape could drive the operator's
    terminal. Every admin call refuses them ``admin.invalid`` before it changes anything."""
    world = VerifierWorld.create(tmp_path_factory.mktemp("notes"))
    replicas = replicas_over(world, str(world.root / "verifier.db"))
    admin, store = replicas.admin, replicas.stores[0]
    try:
        admin.revoke_device("operator-1", "dev-2", "stolen", NOW_NS)
        admin.exclude_landmark("operator-1", "lm-han", "clock drift", NOW_NS)
        admin.set_licence(
            "operator-1",
            device_id="dev-3",
            region="FRA-300",
            valid_until_ns=NOW_NS * 2,
            name="",
            now_ns=NOW_NS,
        )
        before = store.dump()
        key = KeySigner.generate().verifying_key.der()
        site = {"operator": "op-x", "latitude": 50.0, "longitude": 8.0, "now_ns": NOW_NS}
        calls = {
            "withdraw": lambda: admin.withdraw_licence("op", "dev-3", note, NOW_NS),
            "revoke": lambda: admin.revoke_device("op", "dev-1", note, NOW_NS),
            "restore": lambda: admin.restore_device("op", "dev-2", note, NOW_NS),
            "revoke landmark": lambda: admin.revoke_landmark("op", "lm-fra", note, NOW_NS),
            "exclude": lambda: admin.exclude_landmark("op", "lm-fra", note, NOW_NS),
            "lift": lambda: admin.lift_exclusion("op", "lm-han", note, NOW_NS),
            "licence name": lambda: admin.set_licence(
                "op",
                device_id="dev-1",
                region="FRA-300",
                valid_until_ns=NOW_NS * 2,
                name=note,
                now_ns=NOW_NS,
            ),
            "landmark name": lambda: admin.register_landmark(
                "op", landmark_id="lm-new", public_key_der=key, name=note, **site
            ),
        }
        refused = {name: refusal(call).reason for name, call in calls.items()}
        assert refused == dict.fromkeys(calls, Reason.ADMIN_INVALID)
        assert store.dump() == before
    finally:
        for replica_store in replicas.stores:
            replica_store.close()


def test_the_same_change_at_two_replicas_at_once_is_made_once_and_refused_once(replicas):
    """Each change checks what is in force and writes in one transaction, serialised
    across replicas: of two at once, one is made and the other is ``admin.conflict``
    (never a driver's error, never two rows)."""
    root = replicas.world.root
    files = OperatorFiles(root / "landmarks.json", root / "revocations.json")
    other = Admin(replicas.b, replicas.stores[1], files, region_appraiser().has_region)
    keys = [KeySigner.generate().verifying_key.der() for _ in range(2)]

    def register(admin: Admin, key: bytes, landmark_id: str) -> Reason | None:
        try:
            admin.register_landmark(
                "op", landmark_id=landmark_id, operator="op-x", latitude=50.0, longitude=8.0,
                public_key_der=key, name="", now_ns=1,
            )  # fmt: skip
        except GeoattestError as refused:
            return refused.reason
        return None

    def revoke(admin: Admin, device_id: str) -> Reason | None:
        try:
            admin.revoke_device("op", device_id, "", NOW_NS)
        except GeoattestError as refused:
            return refused.reason
        return None

    with ThreadPoolExecutor(2) as pool:
        for round_ in range(5):
            revoked = list(pool.map(revoke, (replicas.admin, other), [f"dev-{round_}"] * 2))
            assert set(revoked) == {None, Reason.ADMIN_CONFLICT}, revoked
            landmark_id = f"lm-new-{round_}"
            made = list(pool.map(register, (replicas.admin, other), keys, [landmark_id] * 2))
            assert set(made) == {None, Reason.ADMIN_CONFLICT}, made
            keys = [KeySigner.generate().verifying_key.der() for _ in range(2)]
    trust = replicas.stores[1].trust()
    assert trust.revocations.devices == {f"dev-{i}" for i in range(5)}
    assert [r.landmark_id for r in trust.landmarks] == [f"lm-new-{i}" for i in range(5)]


def test_an_unreachable_store_refuses_admin_calls_and_writes_nothing(world):
    replicas = replicas_over(world, str(world.db_path), busy_timeout_ms=50)
    store = replicas.stores[0]
    before = store.dump()
    holder = sqlite3.connect(world.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the timeout
    key = KeySigner.generate().verifying_key.der()
    calls = {
        "revoke": lambda: replicas.admin.revoke_device("op", "dev-1", "", NOW_NS),
        "revoke landmark": lambda: replicas.admin.revoke_landmark("op", "lm-han", "", 1),
        "register": lambda: replicas.admin.register_landmark(
            "op",
            landmark_id="lm-new",
            operator="op-x",
            latitude=50.0,
            longitude=8.0,
            public_key_der=key,
            name="",
            now_ns=1,
        ),
    }
    refused = {name: refusal(call) for name, call in calls.items()}
    holder.execute("ROLLBACK")
    holder.close()
    assert all(isinstance(exc, StoreUnavailableError) for exc in refused.values()), refused
    assert {exc.reason for exc in refused.values()} == {Reason.STORE_UNAVAILABLE}
    assert store.dump() == before
    replicas.admin.revoke_device("op", "dev-1", "", NOW_NS)  # and it recovers by itself
    assert replicas.a.device_revoked("dev-1")
    for opened in replicas.stores:
        opened.close()


DEVICES = st.sampled_from(["dev-1", "dev-2", "dev-3"])
LANDMARKS = st.sampled_from(["lm-fra", "lm-wie", "lm-nowhere"])


class RevocationChanges(RuleBasedStateMachine):
    """An operator revokes and restores devices and revokes landmarks through one replica,
    in any order; the other replica holds exactly what the model says, and each refused call
    has the reason the model expects."""

    def __init__(self) -> None:
        super().__init__()
        self._folder = tempfile.TemporaryDirectory()
        world = VerifierWorld.create(Path(self._folder.name))
        self.replicas = replicas_over(world, str(world.db_path))
        self.devices: set[str] = set()
        self.landmarks: set[str] = set()

    @rule(device_id=DEVICES)
    def revoke(self, device_id: str) -> None:
        self._expect(
            lambda: self.replicas.admin.revoke_device("op", device_id, "", NOW_NS),
            None if device_id not in self.devices else Reason.ADMIN_CONFLICT,
        )
        self.devices.add(device_id)

    @rule(device_id=DEVICES)
    def restore(self, device_id: str) -> None:
        self._expect(
            lambda: self.replicas.admin.restore_device("op", device_id, "", NOW_NS),
            None if device_id in self.devices else Reason.ADMIN_NOT_FOUND,
        )
        self.devices.discard(device_id)

    @rule(landmark_id=LANDMARKS)
    def revoke_landmark(self, landmark_id: str) -> None:
        expected = None
        if landmark_id == "lm-nowhere":
            expected = Reason.ADMIN_NOT_FOUND
        elif landmark_id in self.landmarks:
            expected = Reason.ADMIN_CONFLICT
        self._expect(
            lambda: self.replicas.admin.revoke_landmark("op", landmark_id, "", NOW_NS), expected
        )
        if expected is None:
            self.landmarks.add(landmark_id)

    def _expect(self, call, reason: Reason | None) -> None:
        if reason is None:
            call()
        else:
            assert refusal(call).reason is reason

    @invariant()
    def the_other_replica_holds_what_the_model_does(self) -> None:
        self.replicas.b.probe()  # as its transport does every second, between batches
        for device_id in ("dev-1", "dev-2", "dev-3"):
            assert self.replicas.b.device_revoked(device_id) is (device_id in self.devices)
        assert self.replicas.stores[1].trust().revocations.landmarks == self.landmarks

    def teardown(self) -> None:
        for store in self.replicas.stores:
            store.close()
        self._folder.cleanup()


RevocationChanges.TestCase.settings = settings(
    max_examples=20, stateful_step_count=10, deadline=None
)
test_revocation_changes = RevocationChanges.TestCase
