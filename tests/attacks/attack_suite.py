"""Shared assertion for the attack suite: exact verdict, reason and alerts, and whether
the attacked device's trusted chain head moved (it must not on a rejection)."""

from __future__ import annotations

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.scenarios import Outcome
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind


def assert_outcome(
    name: str,
    verdict: Verdict | None,
    *,
    reason: Reason | None = None,
    alerts: tuple[AlertKind, ...] = (),
    world: AttackWorld | None = None,
    device_state: str = "",
    licence: str = "",
) -> Outcome:
    """Run scenario ``name`` and check the verifier's exact answer (``verdict`` None: the
    attack ended with no proof appraised, as when a heartbeat stops)."""
    outcome = BY_NAME[name].run(world)
    assert outcome.verdict is verdict, outcome
    assert outcome.reason is reason, outcome
    assert set(outcome.alerts) == set(alerts), outcome
    assert outcome.device_state == device_state, outcome
    assert outcome.licence == licence, outcome
    evidence = verdict not in (Verdict.REJECTED, None)
    assert outcome.head_moved is evidence, (
        "trusted state moved without accepted evidence" if not evidence else outcome
    )
    assert outcome.defended, outcome
    return outcome


def never_allowed(name: str, seeds: range) -> list[Verdict]:
    """The scenario's verdicts over several seeded networks; callers assert none is ALLOWED."""
    scenario = BY_NAME[name]
    return [scenario.run(AttackWorld(seed=seed, **scenario.world)).verdict for seed in seeds]
