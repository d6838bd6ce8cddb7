"""Licences are live data: a change of the licence in force decides the next proof's
verdict and its result's expiry, with no re-enrolment; a withdrawn licence never yields an
affirming result; every result names the licence version it was judged under."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any

from attack_suite import assert_outcome

from geoattest.attacks.licence import (
    STANDS,
    change_licence,
    proving,
    standing_state,
    token_claims,
)
from geoattest.attacks.served import ServedWorld
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.results import CLAIM_PREFIX
from geoattest.verifier.standing import Standing
from geoattest.verifier.store import CommitRecord, SqlStore

LICENCE = f"{CLAIM_PREFIX}licence"


def test_licence_control_is_allowed_and_names_the_first_version() -> None:
    outcome = assert_outcome(
        "licence_control", Verdict.ALLOWED, device_state=STANDS, licence="licensed"
    )
    assert "'version': 1" in outcome.detail
    assert "(in force: v1)" in outcome.detail


def test_licence_narrowed_judges_the_next_proof_outside_under_the_new_version() -> None:
    outcome = assert_outcome(
        "licence_narrowed",
        Verdict.OUTSIDE,
        alerts=(AlertKind.OUTSIDE_LICENSED_REGION,),
        device_state=STANDS,
        licence="grace",
    )
    assert "'version': 2" in outcome.detail
    assert "(in force: v2)" in outcome.detail


def test_licence_withdrawn_is_rejected_with_its_reason_alerts_and_moves_nothing() -> None:
    outcome = assert_outcome(
        "licence_withdrawn",
        Verdict.REJECTED,
        reason=Reason.LICENCE_WITHDRAWN,
        alerts=(AlertKind.LICENCE_WITHDRAWN,),
        device_state=standing_state("ATTESTING", Standing.LICENCE_WITHDRAWN),
        licence="licensed",
    )
    assert "'withdrawn': True" in outcome.detail


def test_licence_widened_allows_the_next_proof_without_reenrolment() -> None:
    assert_outcome(
        "licence_widened",
        Verdict.ALLOWED,
        alerts=(AlertKind.OUTSIDE_LICENSED_REGION,),
        device_state=STANDS,
        licence="licensed",
    )


def test_licence_renewed_lets_the_next_result_outlast_the_old_end() -> None:
    outcome = assert_outcome(
        "licence_renewed", Verdict.ALLOWED, device_state=STANDS, licence="licensed"
    )
    assert "expires in 30 min" in outcome.detail  # the stale window, no longer the licence


def test_licence_shortened_ends_the_next_result_with_it() -> None:
    outcome = assert_outcome(
        "licence_shortened",
        Verdict.ALLOWED,
        device_state=standing_state("ATTESTING", Standing.LICENCE_EXPIRED),
        licence="expired",
    )
    assert "expires in 10 min" in outcome.detail


def test_a_withdrawn_then_reissued_licence_allows_again_and_the_chain_goes_on() -> None:
    """The rejected proofs leave the chain where it was; the agent builds its next proof on
    the last accepted one, so a reissued licence needs no re-enrolment."""
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving(served, "SG")
        served.licences.withdraw(chip.device_id, served.world.now_ns())
        served.cycle(chip)
        rejected = chip.results[-1]
        assert (rejected.verdict, rejected.reason) == (Verdict.REJECTED, Reason.LICENCE_WITHDRAWN)
        assert token_claims(served, chip)["ear.status"] == "contraindicated"
        change_licence(served, chip, withdrawn=False)
        served.cycle(chip)
        assert chip.results[-1].verdict is Verdict.ALLOWED, chip.results[-1]
        assert token_claims(served, chip)[LICENCE]["version"] == 3  # type: ignore[index]
        assert served.store.accepted_counters(chip.device_id) == [1, 2]
        assert [a.kind for a in served.store.alerts(chip.device_id)] == [
            AlertKind.LICENCE_WITHDRAWN
        ]


def test_an_unchanged_licence_keeps_its_version() -> None:
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving(served, "SG")
        change_licence(served, chip)  # the same terms
        assert served.licences.current(chip.device_id).version == 1


class _ChangesLicenceBeforeCommit(SqlStore):
    """A real store whose next commit finds the operator's licence change committed first,
    through another connection (another replica's admin call between this batch's reads
    and its commit)."""

    change: Callable[[], None] | None = None

    def commit(self, records: Sequence[CommitRecord], **read: Any) -> None:
        change, self.change = self.change, None
        if change is not None:
            change()
        super().commit(records, **read)


def test_a_licence_withdrawn_while_a_proof_is_appraised_decides_that_proof() -> None:
    """The withdrawal commits after the batch read the licence and before its commit: the
    proof is judged again under the withdrawn licence, never answered ALLOWED under the
    version it replaced."""
    with ServedWorld.open(AttackWorld()) as served:
        chip = proving(served, "SG")
        before = served.head(chip)
        with (
            closing(_ChangesLicenceBeforeCommit.open(served.directory / "verifier.db")) as racing,
            closing(SqlStore.open(served.directory / "verifier.db")) as other,
        ):
            assert isinstance(racing, _ChangesLicenceBeforeCommit)
            racing.change = lambda: _withdraw(other, chip.device_id, served.world.now_ns())
            served.service = served._serve(racing)
            served.cycle(chip)
        answer = chip.results[-1]
        assert (answer.verdict, answer.reason) == (Verdict.REJECTED, Reason.LICENCE_WITHDRAWN)
        assert token_claims(served, chip)[LICENCE]["version"] == 2  # type: ignore[index]
        assert served.head(chip) == before
        assert served.store.accepted_counters(chip.device_id) == [1]


def _withdraw(store: SqlStore, device_id: str, now_ns: int) -> None:
    LiveLicences(store).withdraw(device_id, now_ns)
