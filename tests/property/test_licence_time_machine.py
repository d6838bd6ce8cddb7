"""Licences and clocks, stateful: no affirming result unless the licence in force when the
verdict is stored licenses the chip where it is, at the verifier's clock and at the
evidence's time, and every result names that licence version.

A hypothesis state machine drives the verifier as ``verifier serve`` builds it
(:func:`~geoattest.verifier.wiring.load_verifier` over the operator's files, SQLite) and a
second replica's admin API over the same database. The operator sets, renews, narrows and
withdraws the chip's licence through the admin API (also while a proof is in flight:
between the batch's read and its commit), edits the licences file, breaks it, rolls it
back to an older one, reloads it (SIGHUP) and restarts the verifier; the verifier host's
clock steps forward and back against the landmarks'. The model keeps the licence it
expects in force, version by version, and judges every answer against it:

- ALLOWED only where that licence is not withdrawn, ends after both the verifier's clock
  and the evidence time, and its region holds the chip (the Frankfurt circle);
- every result token names that version, and its ``exp`` is never past its end;
- where the receipts are within the clock skew and the receipt age, the verdict is the
  one the licence decides (no false REJECTED either);
- a licences file that does not load changes nothing, and a restart or reload with the
  file applied last undoes no admin change.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from verifier_world import (
    LICENCE_UNTIL_S,
    MEASUREMENT,
    NOW_NS,
    VERIFIER_ID,
    ProvisionedChip,
    VerifierWorld,
)

from geoattest.errors import ConfigError, Reason
from geoattest.verdict import Verdict
from geoattest.verifier.admin import Admin, AdminError
from geoattest.verifier.pipeline import PipelineConfig
from geoattest.verifier.results import CLAIM_PREFIX, submod_name
from geoattest.verifier.service import ProofResult
from geoattest.verifier.store import SqlStore
from geoattest.verifier.wiring import LoadedVerifier, VerifierFiles, VerifierOptions, load_verifier

S = 10**9
HOUR_S = 3600
DEVICE = "dev-1"
SITE_REGION = "FRA-300"
"""The chip and the test landmarks are around Frankfurt: inside FRA-300, not SYD-300."""
CLOCK_SKEW_NS = PipelineConfig().clock_skew_ns
MAX_RECEIPT_AGE_NS = PipelineConfig().max_receipt_age_ns

regions = st.sampled_from([SITE_REGION, "SYD-300"])
validities_s = st.sampled_from([-HOUR_S, 2, 4, 10, HOUR_S, 365 * 24 * HOUR_S])
"""A licence's end relative to the landmarks' clock: ended, about to end, an hour, a year."""
names = st.sampled_from(["", "EL-1", "EL-2"])
offsets_s = st.sampled_from([0, -3, -4, 3, -2 * HOUR_S, 2 * HOUR_S, 8 * 24 * HOUR_S])
"""The verifier host's clock against the landmarks': right, behind or ahead within the
clock skew, stepped back or forward by hours, or past the receipt age."""


@dataclass(frozen=True)
class Terms:
    """A licence's terms (its name, region, end, withdrawal) and its version in the store."""

    name: str
    region: str
    valid_until_ns: int
    withdrawn: bool = False
    version: int = 1

    def same(self, other: Terms) -> bool:
        return replace(self, version=0) == replace(other, version=0)

    def then(self, other: Terms) -> Terms:
        """The licence after ``other`` is put in force: a new version if its terms differ."""
        return self if self.same(other) else replace(other, version=self.version + 1)


@dataclass(frozen=True)
class LicenceFile:
    """The licences file as the operator wrote it; ``terms`` None: it does not load."""

    text: str
    terms: Terms | None


def good_file(name: str, region: str, valid_until_s: int, withdrawn: bool) -> LicenceFile:
    entry: dict[str, object] = {
        "region": region,
        "valid_until": dt.datetime.fromtimestamp(valid_until_s, dt.UTC).isoformat(),
        "withdrawn": withdrawn,
    }
    if name:
        entry["id"] = name
    terms = Terms(name or DEVICE, region, valid_until_s * S, withdrawn)
    return LicenceFile(json.dumps({"licences": {DEVICE: entry}}), terms)


UNTIL = "2027-01-01T00:00:00Z"


def broken_file(**entry: object) -> LicenceFile:
    """A licences file for the chip with these fields, which must not load."""
    return LicenceFile(json.dumps({"licences": {DEVICE: entry}}), None)


BROKEN_FILES = (
    LicenceFile("{", None),
    LicenceFile('{"licences": []}', None),
    LicenceFile(
        f'{{"licences": {{"dev-1": {{"region": "SYD-300", "valid_until": "{UNTIL}"}}, '
        f'"dev-1": {{"region": "FRA-300", "valid_until": "{UNTIL}"}}}}}}',
        None,
    ),
    broken_file(region="ATLANTIS", valid_until=UNTIL),
    broken_file(region=SITE_REGION, valid_until="2027-01-01T00:00:00"),
    broken_file(region=SITE_REGION, valid_until=UNTIL, withdrawn="false"),
    broken_file(id=None, region=SITE_REGION, valid_until=UNTIL),
    broken_file(id="EL\n2", region=SITE_REGION, valid_until=UNTIL),
)
"""Files that must not load: not JSON, no licences object, two licences for the chip, an
undefined region, an expiry without a zone, a withdrawal that is not a boolean, a licence
id that is not text or not one line."""


class LicencesAndClocks(RuleBasedStateMachine):
    """One chip in Frankfurt proves while its licence and the verifier's clock change."""

    def __init__(self) -> None:
        super().__init__()
        self._folder = tempfile.TemporaryDirectory(prefix="geoattest-licence-time-")
        root = Path(self._folder.name)
        self.world = VerifierWorld.create(root, licensed={DEVICE: SITE_REGION})
        self.world.serve_args()  # writes the registry, the policy and the result key
        self.files = VerifierFiles(
            db=self.world.db_path,
            trust_roots=[root / "ca.crt"],
            landmarks=root / "landmarks.json",
            policy=root / "policy.json",
            licences=self.world.licences_path,
            result_key=root / "result-key",
        )
        self.options = VerifierOptions(
            VERIFIER_ID, PipelineConfig(quorum=3, allowed_measurements=frozenset({MEASUREMENT}))
        )
        self.landmark_ns = NOW_NS
        """The landmarks' clock (true time): it only moves forward."""
        self.offset_ns = 0
        """How far the verifier host's clock is from the landmarks'."""
        self.file = good_file("", SITE_REGION, LICENCE_UNTIL_S, False)
        self.written = [self.file]
        self.world.licences_path.write_text(self.file.text)
        self.loaded: LoadedVerifier = load_verifier(self.files, self.options)
        self.store = SqlStore.open(self.world.db_path)
        self.service = self.loaded.service(self.store)
        self.other_store = SqlStore.open(self.world.db_path)
        self.admin: Admin = self.world.admin(
            self.loaded.service(self.other_store), self.other_store
        )
        assert self.file.terms is not None
        self.in_force: Terms = self.file.terms
        self.applied: Terms = self.file.terms
        """The terms of the licences file applied last."""
        self.chip: ProvisionedChip = self.world.chip(DEVICE)
        self.service.enrol(self.chip.identity(), self.chip.possession(), self.verifier_ns)

    def teardown(self) -> None:
        self.store.close()
        self.other_store.close()
        self._folder.cleanup()

    @property
    def verifier_ns(self) -> int:
        return self.landmark_ns + self.offset_ns

    # --- the operator ----------------------------------------------------------------

    def _admin_sets(self, name: str, region: str, validity_s: int) -> None:
        """The admin API at the other replica (whose clock is right) sets the licence."""
        valid_until_ns = self.landmark_ns + validity_s * S
        try:
            self.admin.set_licence(
                "operator:alice",
                device_id=DEVICE,
                region=region,
                valid_until_ns=valid_until_ns,
                name=name,
                now_ns=self.landmark_ns,
            )
        except AdminError as refused:
            assert refused.reason is Reason.ADMIN_INVALID
            assert valid_until_ns <= self.landmark_ns
            return
        wanted = Terms(name or self.in_force.name, region, valid_until_ns)
        self.in_force = self.in_force.then(wanted)

    def _admin_withdraws(self) -> None:
        self.admin.withdraw_licence("operator:alice", DEVICE, "export licence revoked", 0)
        self.in_force = self.in_force.then(replace(self.in_force, withdrawn=True))

    @rule(name=names, region=regions, validity_s=validities_s)
    def admin_sets(self, name: str, region: str, validity_s: int) -> None:
        self._admin_sets(name, region, validity_s)

    @rule()
    def admin_withdraws(self) -> None:
        self._admin_withdraws()

    @rule(name=names, region=regions, validity_s=validities_s, withdrawn=st.booleans())
    def edit_file(self, name: str, region: str, validity_s: int, withdrawn: bool) -> None:
        """The operator edits the licences file (it holds only once reloaded)."""
        valid_until_s = self.landmark_ns // S + validity_s
        self.file = good_file(name, region, valid_until_s, withdrawn)
        self.written.append(self.file)
        self.world.licences_path.write_text(self.file.text)

    @rule(broken=st.sampled_from(BROKEN_FILES))
    def break_file(self, broken: LicenceFile) -> None:
        self.file = broken
        self.world.licences_path.write_text(broken.text)

    @rule(pick=st.integers(0, 1 << 16))
    def roll_file_back(self, pick: int) -> None:
        """The operator puts back a licences file written earlier."""
        self.file = self.written[pick % len(self.written)]
        self.world.licences_path.write_text(self.file.text)

    def _file_applied(self, apply: Callable[[], object]) -> None:
        """A reload or a start: a file that does not load changes nothing; one whose terms
        are those applied last undoes no admin change; any other is put in force."""
        if self.file.terms is None:
            with pytest.raises(ConfigError):
                apply()
            return
        apply()
        if not self.file.terms.same(self.applied):
            self.applied = self.file.terms
            self.in_force = self.in_force.then(self.file.terms)

    @rule()
    def reload(self) -> None:
        """SIGHUP: ``verifier serve`` applies the licences file again."""
        self._file_applied(self.loaded.reload_licences)

    @rule()
    def restart(self) -> None:
        """``verifier serve`` starts again over the same database and files; one that
        refuses to start (a broken file) leaves the running one serving."""

        def start() -> None:
            loaded = load_verifier(self.files, self.options)
            self.store.close()
            self.loaded, self.store = loaded, SqlStore.open(self.world.db_path)
            self.service = self.loaded.service(self.store)

        self._file_applied(start)

    # --- clocks ----------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 5, 60, HOUR_S]))
    def time_passes(self, seconds: int) -> None:
        self.landmark_ns += seconds * S

    # --- proofs ----------------------------------------------------------------------

    @rule(
        wait_s=st.sampled_from([1, 3, 10, HOUR_S]),
        offset_s=offsets_s,
        in_flight=st.sampled_from(["", "withdraw", "narrow", "renew", "end"]),
        size=st.integers(1, 2),
    )
    def prove(self, wait_s: int, offset_s: int, in_flight: str, size: int) -> None:
        """The chip proves ``wait_s`` after its last step (``size`` proofs in one batch, a
        second apart) to a verifier whose host clock is ``offset_s`` from the landmarks'
        now; with ``in_flight``, the other replica's admin API changes the licence after
        the batch read it and before it commits."""
        self.landmark_ns += wait_s * S + size * S
        self.offset_ns = offset_s * S
        chains, proofs, evidence_ns = [], [], []
        chain = self.chip.chain
        for k in range(size):
            evidence_ns.append(self.landmark_ns - (size - k) * S)
            proof, chain = chain.extend(
                self.world.receipts(self.chip, unix_ns=evidence_ns[-1]),
                measurement=MEASUREMENT,
                signer=self.chip.signer,
            )
            proofs.append(proof)
            chains.append(chain)
        if in_flight:
            self._overtake(in_flight)
        results = self.service.submit_batch(proofs, self.verifier_ns)
        extends_head = True
        for result, chain, at_ns in zip(results, chains, evidence_ns, strict=True):
            if not extends_head:  # its predecessor in the batch was refused
                assert result.verdict is Verdict.REJECTED, result
                continue
            self._judge(result, at_ns)
            extends_head = result.verdict is not Verdict.REJECTED
            if extends_head:
                self.chip.chain = chain

    def _overtake(self, change: str) -> None:
        """Run the other replica's change just after this replica's next batch read."""
        read = self.store.enrolled_for_keys
        actions: dict[str, Callable[[], None]] = {
            "withdraw": self._admin_withdraws,
            "narrow": lambda: self._admin_sets("", "SYD-300", 365 * 24 * HOUR_S),
            "renew": lambda: self._admin_sets("", SITE_REGION, 365 * 24 * HOUR_S),
            "end": lambda: self._admin_sets("", SITE_REGION, 2),
        }

        def read_then_change(key_ids: object) -> object:
            found = read(key_ids)  # type: ignore[arg-type]
            self.store.enrolled_for_keys = read  # type: ignore[method-assign]
            actions[change]()
            return found

        self.store.enrolled_for_keys = read_then_change  # type: ignore[method-assign]

    def _judge(self, result: ProofResult, evidence_ns: int) -> None:
        licence, now_ns = self.in_force, self.verifier_ns
        claims = _claims(result)
        named = claims.get(f"{CLAIM_PREFIX}licence")
        if named is not None:  # every result that names a licence names the one in force
            assert named == {
                "id": licence.name,
                "version": licence.version,
                "valid-until": licence.valid_until_ns // S,
                "withdrawn": licence.withdrawn,
            }, (named, licence)
        assert int(str(claims["exp"])) <= licence.valid_until_ns // S
        in_force = not licence.withdrawn and licence.valid_until_ns > max(now_ns, evidence_ns)
        if result.verdict is Verdict.ALLOWED:
            assert claims["ear.status"] == "affirming"
            assert in_force, (licence, now_ns, evidence_ns)
            assert licence.region == SITE_REGION, licence
        if evidence_ns > now_ns + CLOCK_SKEW_NS:
            expected = (Verdict.REJECTED, Reason.FUTURE_RECEIPT)
        elif evidence_ns < now_ns - MAX_RECEIPT_AGE_NS:
            expected = (Verdict.REJECTED, Reason.STALE_RECEIPT)
        elif licence.withdrawn:
            expected = (Verdict.REJECTED, Reason.LICENCE_WITHDRAWN)
        elif not in_force:
            expected = (Verdict.REJECTED, Reason.LICENCE_EXPIRED)
        elif licence.region == SITE_REGION:
            expected = (Verdict.ALLOWED, None)
        else:
            expected = (Verdict.OUTSIDE, None)
        assert (result.verdict, result.reason) == expected, (result, licence, now_ns)

    # --- the promises ----------------------------------------------------------------

    @invariant()
    def the_store_holds_the_licence_the_model_expects(self) -> None:
        stored = self.service.licences.current(DEVICE)
        held = Terms(
            stored.name, stored.region, stored.valid_until_ns, stored.withdrawn, stored.version
        )
        assert held == self.in_force


def _claims(result: ProofResult) -> dict[str, object]:
    """The result token's claims for the chip (its signature is checked elsewhere)."""
    body = result.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return {"exp": claims["exp"], **claims["submods"][submod_name(result.device_id)]}


def _run(examples: int, *, derandomize: bool) -> None:
    run_state_machine_as_test(
        LicencesAndClocks,
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            derandomize=derandomize,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_licences_and_clocks() -> None:
    """The same sequences on every run (a licence change in flight is found in a few)."""
    _run(50, derandomize=True)


@pytest.mark.slow
def test_licences_and_clocks_over_many_examples() -> None:
    """Fresh random sequences: a licence that ends between a lagging verifier clock and
    the evidence time takes a few hundred examples to meet."""
    _run(400, derandomize=False)
