"""Every attack scenario, group by group: the suite and ``geoattest attack`` read this list.

Each group of scenarios lives in its own module and exports a ``SCENARIOS`` tuple; this
module only joins them, so adding a group touches one line here.
"""

from __future__ import annotations

from geoattest.attacks import (
    agent_state,
    audit,
    clock,
    history,
    junk,
    landmark_identity,
    licence,
    revocation,
    scenarios,
)
from geoattest.attacks.scenarios import AttackScenario

SCENARIOS: tuple[AttackScenario, ...] = (
    *scenarios.SCENARIOS,
    *agent_state.SCENARIOS,
    *history.SCENARIOS,
    *clock.SCENARIOS,
    *junk.SCENARIOS,
    *landmark_identity.SCENARIOS,
    *audit.SCENARIOS,
    *licence.SCENARIOS,
    *revocation.SCENARIOS,
)

BY_NAME = {s.name: s for s in SCENARIOS}
