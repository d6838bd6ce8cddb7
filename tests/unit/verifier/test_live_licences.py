"""Licences as live data on the real service and store: changes hold for the next proof,
a bad file changes nothing, and (a hypothesis state machine) under any sequence of licence
changes and proofs an affirming result names the version in force at its appraisal, and
the chip's site lies inside that version's region."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from verifier_world import MEASUREMENT, NOW_NS, ProvisionedChip, VerifierWorld, region_appraiser

from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.verdict import Verdict
from geoattest.verifier.licences import ExportLicence, Licences
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.results import CLAIM_PREFIX, submod_name
from geoattest.verifier.service import ProofResult, VerifierService
from geoattest.verifier.store import SqlStore
from geoattest.verifier.wiring import apply_licences

S = 10**9
HOUR_NS = 3600 * S
SITE_REGION = "FRA-300"
"""The test landmarks (and so the chip) are around Frankfurt: inside FRA-300, not SYD-300."""


def claims(service: VerifierService, result: ProofResult) -> dict[str, object]:
    key = jwt.PyJWK(service.jwks()["keys"][0]).key  # type: ignore[index]
    decoded = jwt.decode(result.token, key, algorithms=["ES256"], options={"verify_exp": False})
    return {"exp": decoded["exp"], **decoded["submods"][submod_name(result.device_id)]}


def prove(
    world: VerifierWorld, service: VerifierService, chip: ProvisionedChip, now_ns: int
) -> ProofResult:
    """The chip's next proof, rounds a second before ``now_ns``; its chain moves only if the
    verifier accepted it (as the agent's outbox does)."""
    envelope, chain = chip.chain.extend(
        world.receipts(chip, unix_ns=now_ns - S),
        measurement=MEASUREMENT,
        signer=chip.signer,
    )
    result = service.submit(envelope, now_ns)
    if result.verdict is not Verdict.REJECTED:
        chip.chain = chain
    return result


@pytest.fixture
def world(tmp_path) -> VerifierWorld:
    return VerifierWorld.create(tmp_path, licensed={"dev-1": SITE_REGION})


def test_a_licences_file_that_does_not_load_changes_nothing(world) -> None:
    store = SqlStore.open(world.db_path)
    try:
        live = LiveLicences.load(store, world.licences_path, region_appraiser().has_region, NOW_NS)
        before = store.dump()["licences"]
        bad = {"licences": {"dev-1": {"region": "ATLANTIS", "valid_until": "2027-01-01T00:00Z"}}}
        world.licences_path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match="ATLANTIS"):
            LiveLicences.load(store, world.licences_path, region_appraiser().has_region, NOW_NS)
        world.licences_path.write_text('{"licences": {"dev-1": {"region": "FRA-300"}}}')
        with pytest.raises(ConfigError, match="malformed"):
            LiveLicences.load(store, world.licences_path, region_appraiser().has_region, NOW_NS)
        assert store.dump()["licences"] == before
        assert live.current("dev-1").version == 1
    finally:
        store.close()


def test_withdrawn_must_be_a_json_boolean(tmp_path) -> None:
    path = tmp_path / "licences.json"
    entry = {"region": "FRA-300", "valid_until": "2027-01-01T00:00:00Z", "withdrawn": "false"}
    path.write_text(json.dumps({"licences": {"dev-1": entry}}))
    with pytest.raises(ConfigError, match="withdrawn must be true or false"):
        Licences.load(path, region_appraiser().has_region)


@pytest.mark.parametrize(
    ("device_id", "fields", "refusal"),
    [
        ("dev-1", {"id": None}, "id must be text, not None"),
        ("dev-1", {"id": 42}, "id must be text, not 42"),
        ("dev-1", {"id": "EL-1\nEL-2"}, "a licence id must be at most 128 printable"),
        ("dev-1", {"id": "EL-\x00"}, "a licence id must be at most 128 printable"),
        ("dev-1", {"id": "E" * 129}, "a licence id must be at most 128 printable"),
        ("", {}, "device id '' must be 1..64 characters"),
        ("dev_1", {}, "device id 'dev_1' must be 1..64 characters"),
        ("d" * 65, {}, "must be 1..64 characters"),
    ],
)
def test_ids_a_result_could_not_name_as_written_are_refused_and_change_nothing(
    world, device_id: str, fields: dict[str, object], refusal: str
) -> None:
    """A licence id is named in every result: a ``null`` or a number was turned into the
    text ``None`` or ``42``, a line break or a NUL kept (PostgreSQL refuses the NUL at the
    apply); a device id no certificate can carry licenses nothing. Each is a configuration
    error, as the admin API's are, and the licences in force stay as they were."""
    store = SqlStore.open(world.db_path)
    try:
        live = LiveLicences.load(store, world.licences_path, region_appraiser().has_region, NOW_NS)
        before = store.dump()["licences"]
        entry = {"region": "FRA-300", "valid_until": "2027-01-01T00:00:00Z", **fields}
        world.licences_path.write_text(json.dumps({"licences": {device_id: entry}}))
        with pytest.raises(ConfigError, match="malformed") as refused:
            LiveLicences.load(store, world.licences_path, region_appraiser().has_region, NOW_NS)
        assert refusal in refused.value.detail
        assert store.dump()["licences"] == before
        assert live.current("dev-1").version == 1
    finally:
        store.close()


def test_a_licence_the_file_no_longer_names_is_withdrawn_with_a_stored_alert(world) -> None:
    store = SqlStore.open(world.db_path)
    try:
        service = world.service(store)
        chip = world.chip("dev-1")
        service.enrol(chip.identity(), chip.possession(), NOW_NS)
        assert prove(world, service, chip, NOW_NS + S).verdict is Verdict.ALLOWED
        world.licences_path.write_text('{"licences": {}}')
        (withdrawn,) = service.licences.apply(
            Licences.load(world.licences_path, region_appraiser().has_region), NOW_NS + 2 * S
        )
        assert (withdrawn.version, withdrawn.withdrawn) == (2, True)
        (alert,) = store.alerts("dev-1")
        assert alert.kind == AlertKind.LICENCE_WITHDRAWN
        result = prove(world, service, chip, NOW_NS + 3 * S)
        assert (result.verdict, result.reason) == (Verdict.REJECTED, Reason.LICENCE_WITHDRAWN)
        assert store.accepted_counters("dev-1") == [1]
        with pytest.raises(EvidenceError) as refused:
            service.licences.in_force("dev-1", NOW_NS + 3 * S)
        assert refused.value.reason is Reason.LICENCE_WITHDRAWN
    finally:
        store.close()


REGIONS = st.sampled_from(["FRA-300", "SYD-300"])
VALIDITY_NS = st.sampled_from([-HOUR_NS, 10 * S, HOUR_NS, 400 * 24 * HOUR_NS])
"""Valid-until relative to the clock: ended, about to end, an hour, a year."""


class LicenceChanges(RuleBasedStateMachine):
    """An operator changes one chip's licence while the chip keeps proving; the model
    keeps the version it expects in force."""

    def __init__(self) -> None:
        super().__init__()
        self._folder = tempfile.TemporaryDirectory()
        self.world = VerifierWorld.create(Path(self._folder.name), licensed={"dev-1": SITE_REGION})
        self.store = SqlStore.open(self.world.db_path)
        self.service = self.world.service(self.store)
        self.chip = self.world.chip("dev-1")
        self.service.enrol(self.chip.identity(), self.chip.possession(), NOW_NS)
        self.now_ns = NOW_NS
        self.in_force: ExportLicence = self.service.licences.current("dev-1")

    @rule(region=REGIONS, validity_ns=VALIDITY_NS, withdrawn=st.booleans())
    def change(self, region: str, validity_ns: int, withdrawn: bool) -> None:
        wanted = replace(
            self.in_force,
            region=region,
            valid_until_ns=self.now_ns + validity_ns,
            withdrawn=withdrawn,
        )
        stored = self.service.licences.change(wanted, self.now_ns)
        changed = not wanted.same_terms(self.in_force)
        assert stored.version == self.in_force.version + changed
        self.in_force = stored

    @rule(elapse_s=st.integers(min_value=1, max_value=30))
    def proof(self, elapse_s: int) -> None:
        self.now_ns += elapse_s * S
        result = prove(self.world, self.service, self.chip, self.now_ns)
        token = claims(self.service, result)
        named = token[f"{CLAIM_PREFIX}licence"]
        assert named == {  # every result names the version in force at its appraisal
            "id": "dev-1",
            "version": self.in_force.version,
            "valid-until": self.in_force.valid_until_ns // S,
            "withdrawn": self.in_force.withdrawn,
        }
        assert int(str(token["exp"])) <= self.in_force.valid_until_ns // S
        in_force = not self.in_force.withdrawn and self.in_force.valid_until_ns > self.now_ns
        if token["ear.status"] == "affirming":
            assert in_force
            assert self.in_force.region == SITE_REGION
        if in_force and self.in_force.region == SITE_REGION:
            assert result.verdict is Verdict.ALLOWED, result
        elif not in_force:
            assert result.verdict is Verdict.REJECTED, result

    @invariant()
    def the_store_holds_the_version_in_force(self) -> None:
        assert self.service.licences.current("dev-1") == self.in_force

    def teardown(self) -> None:
        self.store.close()
        self._folder.cleanup()


LicenceChanges.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)
test_licence_changes = LicenceChanges.TestCase


def test_a_replica_starting_or_reloading_with_the_file_applied_undoes_no_admin_change(
    world, database
) -> None:
    """The file is applied (a replica's start); the licence is withdrawn as the admin API
    does; another replica starts, or one reloads, with the same file, however laid out:
    the licence stays withdrawn. A file whose terms changed is applied; so is any file
    through ``verifier licences apply``."""
    has_region = region_appraiser().has_region

    def start_or_reload() -> list[ExportLicence]:
        return apply_licences(database, world.licences_path, has_region, if_file_changed=True)

    assert [c.version for c in start_or_reload()] == [1]
    store = SqlStore.open(database)
    try:
        live = LiveLicences(store)
        assert live.withdraw("dev-1", NOW_NS).version == 2
        assert start_or_reload() == []
        terms = json.loads(world.licences_path.read_text())
        world.licences_path.write_text(json.dumps(terms, indent=4))
        assert start_or_reload() == []
        assert live.current("dev-1").withdrawn
        assert live.change(replace(live.current("dev-1"), withdrawn=False), NOW_NS).version == 3
        terms["licences"]["dev-1"]["region"] = "SYD-300"
        world.licences_path.write_text(json.dumps(terms))
        (narrowed,) = start_or_reload()
        assert (narrowed.version, narrowed.region) == (4, "SYD-300")
        assert live.withdraw("dev-1", NOW_NS).version == 5
        (explicit,) = apply_licences(database, world.licences_path, has_region)
        assert (explicit.version, explicit.withdrawn) == (6, False)
    finally:
        store.close()


def test_a_file_edit_applied_at_a_start_or_reload_leaves_other_devices_as_the_admin_left_them(
    tmp_path, database
) -> None:
    """The file names dev-1 and dev-2; the admin API narrows dev-1 and licenses dev-3,
    which no file names. The operator edits dev-2's entry and a replica reloads: dev-2
    takes the file's new terms, dev-1 stays narrowed (an unrelated edit must not widen
    it back), dev-3 stays licensed. Dropping dev-2 from the file withdraws it; ``verifier
    licences apply`` makes the whole file the licences in force."""
    world = VerifierWorld.create(tmp_path, licensed={"dev-1": "FRA-300", "dev-2": "FRA-300"})
    has_region = region_appraiser().has_region

    def reload() -> dict[str, tuple[int, str, bool]]:
        apply_licences(database, world.licences_path, has_region, if_file_changed=True)
        return {d: (c.version, c.region, c.withdrawn) for d, c in current().items()}

    def current() -> dict[str, ExportLicence]:
        store = SqlStore.open(database)
        try:
            live = LiveLicences(store)
            return {d: live.current(d) for d in ("dev-1", "dev-2", "dev-3")}
        finally:
            store.close()

    apply_licences(database, world.licences_path, has_region, if_file_changed=True)
    store = SqlStore.open(database)
    try:
        live = LiveLicences(store)
        live.change(replace(live.current("dev-1"), region="SYD-300"), NOW_NS)
        live.change(replace(live.current("dev-1"), device_id="dev-3"), NOW_NS)
    finally:
        store.close()
    terms = json.loads(world.licences_path.read_text())
    terms["licences"]["dev-2"]["region"] = "SYD-300"
    world.licences_path.write_text(json.dumps(terms))
    assert reload() == {
        "dev-1": (2, "SYD-300", False),
        "dev-2": (2, "SYD-300", False),
        "dev-3": (1, "SYD-300", False),
    }
    del terms["licences"]["dev-2"]
    world.licences_path.write_text(json.dumps(terms))
    assert reload() == {
        "dev-1": (2, "SYD-300", False),
        "dev-2": (3, "SYD-300", True),
        "dev-3": (1, "SYD-300", False),
    }
    apply_licences(database, world.licences_path, has_region)
    assert {d: (c.version, c.region, c.withdrawn) for d, c in current().items()} == {
        "dev-1": (3, "FRA-300", False),
        "dev-2": (3, "SYD-300", True),
        "dev-3": (2, "SYD-300", True),
    }
