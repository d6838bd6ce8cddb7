"""What DeviceStatus says of a device's last verdict after an operator's action: a licence
withdrawn, expired, narrowed or renewed, the device revoked and restored, a landmark it
rests on excluded (and lifted) or revoked. The property: **status never reports a current
ALLOWED unless the licence in force covers the region it was judged against and nothing in
force since contradicts it**; the next accepted proof makes it current again. Changes go
through one replica's admin, proofs and status through another over the same database
(SQLite, and a real PostgreSQL server)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import verifier_world
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from verifier_world import (
    NOW_NS,
    UNIX_NS,
    Interleaving,
    ProvisionedChip,
    VerifierWorld,
    region_appraiser,
)

from geoattest.crypto import KeySigner
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.verdict import Verdict
from geoattest.verifier.admin import Admin
from geoattest.verifier.fleet_view import FleetView
from geoattest.verifier.licences import Licences
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.service import DeviceStatus, ProofResult, VerifierService
from geoattest.verifier.standing import LicenceState, Standing
from geoattest.verifier.store import Alert, SqlStore, TrustChange

S = 10**9
HOUR_S = 3600
STALE_S = 3 * HOUR_S
"""The services' stale window: three cadences of an hour."""


@dataclass
class Operated:
    """Two replicas over one database: ``admin`` acts through ``a``, the chip proves and
    the relying party reads its status at ``b``; ``step`` is seconds since the start."""

    world: VerifierWorld
    a: VerifierService
    b: VerifierService
    admin: Admin
    stores: tuple[SqlStore, SqlStore]
    chip: ProvisionedChip
    step: int = 0

    @property
    def now_ns(self) -> int:
        return NOW_NS + self.step * S

    def prove(self, between: Callable[[], object] | None = None) -> ProofResult:
        """The chip's next proof at ``b``; ``between`` runs after its appraisal, before its
        commit (another replica's call landing meanwhile)."""
        store = self.stores[1]
        assert isinstance(store, Interleaving)
        store.between = between
        self.step += 1
        proof = self.world.proof(self.chip, unix_ns=UNIX_NS + self.step * S)
        return self.b.submit(proof, self.now_ns)

    def status(self) -> DeviceStatus:
        return self.b.device_status(self.chip.device_id, self.now_ns)

    def set_licence(self, region: str, valid_for_s: int) -> None:
        self.admin.set_licence(
            "op",
            device_id=self.chip.device_id,
            region=region,
            valid_until_ns=self.now_ns + valid_for_s * S,
            name="EL-1",
            now_ns=self.now_ns,
        )

    def close(self) -> None:
        for store in self.stores:
            store.close()


def operated(world: VerifierWorld, database: str) -> Operated:
    registry, revoked = world.root / "landmarks.json", world.root / "revocations.json"
    LandmarkRegistry(world.landmark_records()).save(registry)
    RevocationList().save(revoked)
    stores = (SqlStore.open(database), Interleaving.open(database))
    a, b = world.service(stores[0]), world.service(stores[1])
    admin = Admin(a, stores[0], OperatorFiles(registry, revoked), region_appraiser().has_region)
    chip = world.chip("dev-1")
    b.enrol(chip.identity(), chip.possession(), NOW_NS)
    return Operated(world, a, b, admin, stores, chip)


@pytest.fixture
def ops(tmp_path, database) -> Iterator[Operated]:
    opened = operated(VerifierWorld.create(tmp_path), database)
    yield opened
    opened.close()


def proved_allowed(ops: Operated) -> DeviceStatus:
    assert ops.prove().verdict is Verdict.ALLOWED
    status = ops.status()
    assert (status.last_verdict, status.standing) == (Verdict.ALLOWED, Standing.STANDS)
    assert status.verdict_current
    return status


def test_before_any_proof_there_is_no_verdict_to_stand(ops):
    status = ops.status()
    assert (status.last_verdict, status.standing) == (None, Standing.NO_VERDICT)
    assert not status.verdict_current
    assert status.licence_state is LicenceState.IN_FORCE


def test_a_withdrawn_licence_takes_the_last_allowed_away(ops):
    allowed = proved_allowed(ops)
    assert (allowed.licence.name, allowed.licence.version) == ("dev-1", 1)
    assert allowed.verdict_licence_version == 1

    ops.admin.withdraw_licence("op", "dev-1", "export licence revoked", ops.now_ns)
    status = ops.status()
    assert status.last_verdict is Verdict.ALLOWED  # what was judged stays on record
    assert (status.standing, status.licence_state) == (
        Standing.LICENCE_WITHDRAWN,
        LicenceState.WITHDRAWN,
    )
    assert not status.verdict_current
    assert (status.licence.version, status.verdict_licence_version) == (2, 1)
    assert ops.prove().verdict is Verdict.REJECTED
    assert ops.status().standing is Standing.LICENCE_WITHDRAWN


def test_the_fleet_view_counts_an_allowed_a_withdrawal_took_away(ops, database):
    view = FleetView.open(database)
    try:
        proved_allowed(ops)
        assert view.count_allowed_lapsed_by_licence(ops.now_ns) == 0
        ops.admin.withdraw_licence("op", "dev-1", "", ops.now_ns)
        assert view.allowed_lapsed_by_licence(ops.now_ns) == {"dev-1"}
        assert view.count_allowed_lapsed_by_licence(ops.now_ns) == 1
    finally:
        view.close()


def test_a_narrowed_licence_takes_it_away_until_the_next_proof_is_judged_under_it(ops):
    proved_allowed(ops)
    ops.set_licence("SYD-300", HOUR_S * 24)
    status = ops.status()
    assert status.licensed_region == "SYD-300"  # the licence in force, not the one judged
    assert (status.standing, status.verdict_licence_version) == (Standing.LICENCE_CHANGED, 1)
    assert not status.verdict_current

    assert ops.prove().verdict is Verdict.OUTSIDE
    status = ops.status()
    assert (status.last_verdict, status.standing, status.verdict_licence_version) == (
        Verdict.OUTSIDE,
        Standing.STANDS,
        2,
    )


def test_a_renewal_asks_for_a_proof_under_the_new_version(ops):
    proved_allowed(ops)
    ops.set_licence("FRA-300", HOUR_S * 24 * 365)
    assert ops.status().standing is Standing.LICENCE_CHANGED
    assert proved_allowed(ops).verdict_licence_version == 2


def test_an_expired_licence_takes_it_away_before_the_result_goes_stale(ops):
    ops.set_licence("FRA-300", HOUR_S)
    proved_allowed(ops)
    ops.step += HOUR_S + 1
    status = ops.status()
    assert (status.standing, status.licence_state) == (
        Standing.LICENCE_EXPIRED,
        LicenceState.EXPIRED,
    )


def test_a_verdict_older_than_the_stale_window_no_longer_stands(ops):
    proved_allowed(ops)
    ops.step += STALE_S + 1
    assert ops.status().standing is Standing.STALE


def test_a_device_revoked_then_restored_keeps_its_old_allowed_taken_away(ops):
    proved_allowed(ops)
    ops.admin.revoke_device("op", "dev-1", "stolen", ops.now_ns)
    assert ops.status().standing is Standing.DEVICE_REVOKED
    ops.admin.restore_device("op", "dev-1", "found", ops.now_ns)
    status = ops.status()
    assert (status.last_verdict, status.standing) == (Verdict.ALLOWED, Standing.DEVICE_REVOKED)
    proved_allowed(ops)


def test_a_landmark_excluded_after_the_allowed_takes_it_away_even_once_lifted(ops):
    proved_allowed(ops)
    ops.admin.exclude_landmark("op", "lm-fra", "clock drift", ops.now_ns)
    assert ops.status().standing is Standing.LANDMARK_UNTRUSTED
    ops.admin.lift_exclusion("op", "lm-fra", "clock repaired", ops.now_ns)
    assert ops.status().standing is Standing.LANDMARK_UNTRUSTED
    ops.step += 10  # only rounds lm-fra times after the lift count (its clock runs 2 s behind)
    proved_allowed(ops)


def test_a_landmark_revoked_after_the_allowed_takes_it_away(ops):
    proved_allowed(ops)
    ops.admin.revoke_landmark("op", "lm-han", "key leaked", ops.now_ns)
    assert ops.status().standing is Standing.LANDMARK_UNTRUSTED


def test_a_peer_audits_exclusion_is_journalled_and_takes_it_away(ops):
    proved_allowed(ops)
    alert = Alert("a1", "", "INCONSISTENT_LANDMARKS", "", "lm-dar timed faster than light", 1)
    ops.stores[0].record_peer_audit([], ops.now_ns, 0, lambda _audited: [("lm-dar", alert)])
    assert ops.status().standing is Standing.LANDMARK_UNTRUSTED
    (change,) = ops.stores[1].trust_changes()
    assert (change.change, change.subject, change.by, change.why) == (
        TrustChange.LANDMARK_EXCLUDED,
        "lm-dar",
        "peer audit",
        "lm-dar timed faster than light",
    )


def test_trust_changes_that_touch_neither_the_device_nor_its_landmarks_leave_it_standing(ops):
    proved_allowed(ops)
    ops.admin.revoke_device("op", "dev-2", "stolen", ops.now_ns)
    ops.admin.register_landmark(
        "op",
        landmark_id="lm-new",
        operator="op-new",
        latitude=48.0,
        longitude=11.0,
        public_key_der=KeySigner.generate().verifying_key.der(),
        name="",
        now_ns=ops.now_ns,
    )
    assert ops.status().standing is Standing.STANDS
    changes = [(r.change, r.subject) for r in ops.stores[1].trust_changes()]
    assert changes == [
        (TrustChange.DEVICE_REVOKED, "dev-2"),
        (TrustChange.LANDMARK_REGISTERED, "lm-new"),
    ]


def test_a_revocation_list_one_replica_follows_takes_it_away_on_every_replica(tmp_path):
    """A replica whose own file revokes the device or a landmark of the verdict stores that
    list: every replica, whatever its own file says, holds the verdict not current."""
    world = VerifierWorld.create(tmp_path)
    ops = operated(world, str(world.db_path))
    try:
        proved_allowed(ops)
        world.revocations = RevocationList().with_landmark("lm-wie")
        other = world.service(SqlStore.open(str(world.db_path)))
        assert other.device_status("dev-1", ops.now_ns).standing is Standing.LANDMARK_UNTRUSTED
        assert ops.status().standing is Standing.LANDMARK_UNTRUSTED  # its file revokes nothing
        world.revocations = RevocationList(version=2, devices=frozenset({"dev-1"}))
        third = world.service(SqlStore.open(str(world.db_path)))
        assert third.device_status("dev-1", ops.now_ns).standing is Standing.DEVICE_REVOKED
        # Version 2 no longer revokes lm-wie: the newer list is in force at every replica.
        assert other.device_status("dev-1", ops.now_ns).standing is Standing.DEVICE_REVOKED
        assert ops.status().standing is Standing.DEVICE_REVOKED
        other.store.close()
        third.store.close()
    finally:
        ops.close()


@pytest.mark.parametrize("old_key_revoked", [True, False])
def test_a_landmark_key_replaced_after_the_allowed_takes_it_away(tmp_path, old_key_revoked):
    """The verdict rests on the key that signed each receipt: once the registry holds
    another key under that id (rotated, the old one revoked by its key alone or simply
    dropped), it no longer vouches for the receipts the verdict was judged on."""
    world = VerifierWorld.create(tmp_path)
    ops = operated(world, str(world.db_path))
    try:
        proved_allowed(ops)
        old = world.landmarks["lm-fra"].verifying_key.key_id
        world.landmarks["lm-fra"] = KeySigner.generate()
        if old_key_revoked:
            world.revocations = RevocationList(landmark_keys=frozenset({old}))
        rotated = world.service(SqlStore.open(str(world.db_path)))
        status = rotated.device_status("dev-1", ops.now_ns)
        assert (status.last_verdict, status.standing) == (
            Verdict.ALLOWED,
            Standing.LANDMARK_UNTRUSTED,
        )
        assert not status.verdict_current
        # The replica on the old registry: the old key revoked in the other's file is
        # revoked there too (the store keeps the list); a key merely dropped is not.
        assert ops.status().standing is (
            Standing.LANDMARK_UNTRUSTED if old_key_revoked else Standing.STANDS
        )

        ops.step += 1
        proof = world.proof(ops.chip, unix_ns=UNIX_NS + ops.step * S)
        assert rotated.submit(proof, ops.now_ns).verdict is Verdict.ALLOWED
        assert rotated.device_status("dev-1", ops.now_ns).standing is Standing.STANDS
        rotated.store.close()
    finally:
        ops.close()


def test_a_verdict_resting_on_a_landmark_registered_through_the_admin_api_stands(ops):
    """The key and site the verdict was judged by are the stored registration's, read back
    the same from either database."""
    signer = KeySigner.generate()
    ops.admin.register_landmark(
        "op",
        landmark_id="lm-mai",
        operator="op-mai",
        latitude=50.0012345678901,
        longitude=8.2711234567891,
        public_key_der=signer.verifying_key.der(),
        name="",
        now_ns=ops.now_ns,
    )
    ops.world.landmarks["lm-mai"] = signer  # the chip measures it from now on
    status = proved_allowed(ops)
    assert "lm-mai" in {b.landmark_id for b in ops.b.store.summary("dev-1").head.fix}
    assert status.standing is Standing.STANDS


def test_a_landmark_moved_after_the_allowed_takes_it_away(tmp_path, monkeypatch):
    """The verdict's disk was drawn around the site registered then: a registry that puts
    the landmark elsewhere no longer vouches for it."""
    world = VerifierWorld.create(tmp_path)
    ops = operated(world, str(world.db_path))
    try:
        proved_allowed(ops)
        monkeypatch.setitem(verifier_world.LANDMARK_SITES, "lm-han", (50.2, 8.9))
        moved = world.service(SqlStore.open(str(world.db_path)))
        assert moved.device_status("dev-1", ops.now_ns).standing is Standing.LANDMARK_UNTRUSTED
        moved.store.close()
    finally:
        ops.close()


@dataclass
class Model:
    """What the operator did, as a relying party would need to know it."""

    version: int = 1
    region: str = "FRA-300"
    valid_until_s: int = 0
    withdrawn: bool = False
    revoked: bool = False
    excluded: set[str] = field(default_factory=set)
    verdict: Verdict | None = None
    judged: tuple[int, str] | None = None
    """The licence version and region the last verdict was judged under."""
    evidence_step: int = 0
    contradicted: bool = False
    """A revocation or exclusion since the last verdict."""


REGIONS = st.sampled_from(["FRA-300", "SYD-300"])
LANDMARKS = st.sampled_from(["lm-fra", "lm-han"])


class OperatorActions(RuleBasedStateMachine):
    """Any sequence of proofs and operator actions (admin API, licences file, waiting):
    after each step, what status says of the last verdict is exactly what the model of the
    actions says, and a current ALLOWED is judged under the licence region in force with
    nothing since."""

    database: Callable[[Path], str] = staticmethod(lambda folder: str(folder / "verifier.db"))

    def __init__(self) -> None:
        super().__init__()
        self._folder = tempfile.TemporaryDirectory()
        world = VerifierWorld.create(Path(self._folder.name))
        self.ops = operated(world, self.database(Path(self._folder.name)))
        self.model = Model(valid_until_s=self._licence_until_s())
        self._file_until_s = self.model.valid_until_s

    def _licence_until_s(self) -> int:
        licence = self.ops.stores[1].licence("dev-1")
        assert licence is not None
        return (licence.valid_until_ns - NOW_NS) // S

    def _change_terms(self, region: str, valid_until_s: int, withdrawn: bool) -> None:
        m = self.model
        if (region, valid_until_s, withdrawn) != (m.region, m.valid_until_s, m.withdrawn):
            m.version += 1
        m.region, m.valid_until_s, m.withdrawn = region, valid_until_s, withdrawn

    @rule()
    def prove(self, between: Callable[[], object] | None = None) -> None:
        result = self.ops.prove(between)
        m = self.model
        if result.verdict is Verdict.ALLOWED:  # nothing in force when answered contradicts it
            assert (m.withdrawn, m.revoked, m.excluded, m.region) == (
                False,
                False,
                set(),
                "FRA-300",
            )
            assert self.ops.step < m.valid_until_s
        if result.verdict is not Verdict.REJECTED:
            m.verdict, m.judged = result.verdict, (m.version, m.region)
            m.evidence_step, m.contradicted = self.ops.step, False
            assert self.ops.status().verdict_current

    @rule(region=REGIONS, hours=st.sampled_from([1, 2, 24]))
    def set_licence(self, region: str, hours: int) -> None:
        self.ops.set_licence(region, hours * HOUR_S)
        self._change_terms(region, self.ops.step + hours * HOUR_S, False)

    @rule()
    def withdraw_licence(self) -> None:
        self.ops.admin.withdraw_licence("op", "dev-1", "", self.ops.now_ns)
        self._change_terms(self.model.region, self.model.valid_until_s, True)

    @rule(names_device=st.booleans())
    def apply_licences_file(self, names_device: bool) -> None:
        """The operator's licences file applied: its terms for dev-1, or (not naming it)
        its licence withdrawn."""
        world = self.ops.world
        licensed = dict(world.licensed)
        if not names_device:
            del licensed["dev-1"]
        path = world.root / "changed-licences.json"
        path.write_text(
            json.dumps(
                {
                    "licences": {
                        device_id: {"region": region, "valid_until": world.valid_until}
                        for device_id, region in licensed.items()
                    }
                }
            )
        )
        has_region = region_appraiser().has_region
        self.ops.a.licences.apply(Licences.load(path, has_region), self.ops.now_ns)
        m = self.model
        if names_device:
            self._change_terms("FRA-300", self._file_until_s, False)
        else:
            self._change_terms(m.region, m.valid_until_s, True)

    @rule()
    def revoke_or_restore_device(self) -> None:
        if self.model.revoked:
            self.ops.admin.restore_device("op", "dev-1", "", self.ops.now_ns)
        else:
            self.ops.admin.revoke_device("op", "dev-1", "", self.ops.now_ns)
            self.model.contradicted = True
        self.model.revoked = not self.model.revoked

    @rule(landmark_id=LANDMARKS)
    def exclude_or_lift_landmark(self, landmark_id: str) -> None:
        if landmark_id in self.model.excluded:
            self.ops.admin.lift_exclusion("op", landmark_id, "", self.ops.now_ns)
            self.model.excluded.discard(landmark_id)
        else:
            self.ops.admin.exclude_landmark("op", landmark_id, "", self.ops.now_ns)
            self.model.excluded.add(landmark_id)
            self.model.contradicted = True

    @rule(
        action=st.sampled_from(["licence", "withdrawal", "revocation", "exclusion"]),
        region=REGIONS,
        landmark_id=LANDMARKS,
    )
    def prove_while_the_operator_acts(self, action: str, region: str, landmark_id: str) -> None:
        """An action that returns at ``a`` while ``b`` appraises a proof: the proof is
        answered and stored as judged after it."""
        acts: dict[str, Callable[[], None]] = {
            "licence": lambda: self.set_licence(region, 24),
            "withdrawal": self.withdraw_licence,
            "revocation": self.revoke_or_restore_device,
            "exclusion": lambda: self.exclude_or_lift_landmark(landmark_id),
        }
        self.prove(acts[action])

    @rule(hours=st.sampled_from([1, 3]))
    def wait(self, hours: int) -> None:
        self.ops.step += hours * HOUR_S

    @invariant()
    def status_says_what_the_actions_left(self) -> None:
        m, status, step = self.model, self.ops.status(), self.ops.step
        stands = (
            m.judged == (m.version, m.region)
            and not (m.withdrawn or m.revoked or m.contradicted)
            and step < m.valid_until_s
            and (step - m.evidence_step) * S + NOW_NS - UNIX_NS <= STALE_S * S
        )
        assert status.last_verdict is m.verdict
        assert status.verdict_current is stands, (status, m)
        if status.verdict_current and status.last_verdict is Verdict.ALLOWED:
            assert status.licence is not None
            assert (status.licence.version, status.licence.region) == m.judged
            assert status.licensed_region == m.region
            assert status.licence_state is LicenceState.IN_FORCE

    def teardown(self) -> None:
        self.ops.close()
        self._folder.cleanup()


OperatorActions.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
test_operator_actions_on_sqlite = OperatorActions.TestCase


def test_operator_actions_on_postgresql(postgres):
    """A short run of the same machine on the production backend."""

    class OnPostgres(OperatorActions):
        database = staticmethod(lambda _folder: postgres.database())

    run_state_machine_as_test(
        OnPostgres, settings=settings(max_examples=3, stateful_step_count=10, deadline=None)
    )
