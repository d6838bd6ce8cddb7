"""Negative controls: the suite can fail. Each attack succeeds against a deliberately
broken, test-only variant and fails against the real verifier and agent.

The variants run at ``landmark_faults = 0``, where the part they break is the only defence
left: at the default policy the second operator's landmark in the data centre would also
stop them. The real parts defend at both settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from attack_suite import assert_outcome

from geoattest.attacks.catalog import BY_NAME
from geoattest.attacks.scenarios import HELPER_SITE
from geoattest.attacks.world import ChipAgent, WorldChip
from geoattest.netsim.latency import LatLon
from geoattest.verdict import LandmarkBound, RegionAppraisal, RegionAppraiser, Verdict


class FibreSpeedGeography:
    """A verifier variant that bounds at 2/3 c (the speed in fibre) instead of c."""

    def __init__(self, inner: RegionAppraiser) -> None:
        self.inner = inner

    @property
    def policy_id(self) -> str:
        return self.inner.policy_id

    def has_region(self, region: str) -> bool:
        return self.inner.has_region(region)

    def appraise(self, bounds: Sequence[LandmarkBound], region: str) -> RegionAppraisal:
        at_fibre_speed = [replace(b, rtt_min_ns=b.rtt_min_ns * 2 // 3) for b in bounds]
        return self.inner.appraise(at_fibre_speed, region)

    def verdict(self, bounds: Sequence[LandmarkBound], region: str) -> Verdict:
        return self.appraise(bounds, region).verdict


class LeakyAgent(ChipAgent):
    """An agent variant that leaks its round secret to the host before the reveal, so the
    host's helper answers the challenges from where it sits."""

    def answering_site(self, chip: WorldChip) -> LatLon:
        return HELPER_SITE


def test_fibre_speed_verifier_is_fooled_by_faster_than_fibre_links() -> None:
    scenario = BY_NAME["faster_than_fibre_links"]
    fooled = scenario.run(scenario.new_world(region_wrapper=FibreSpeedGeography, landmark_faults=0))
    assert fooled.verdict is Verdict.ALLOWED
    assert not fooled.defended
    assert scenario.run(scenario.new_world(landmark_faults=0)).verdict is Verdict.INCONCLUSIVE
    assert_outcome("faster_than_fibre_links", Verdict.INCONCLUSIVE)


def test_fibre_speed_verifier_still_judges_honest_chips_alike() -> None:
    """The variant is otherwise plausible: only the fast link tells it apart."""
    scenario = BY_NAME["honest_chip_in_licensed_region"]
    outcome = scenario.run(scenario.new_world(region_wrapper=FibreSpeedGeography))
    assert outcome.verdict is Verdict.ALLOWED


def test_leaky_agent_is_fooled_by_the_relay_helper() -> None:
    scenario = BY_NAME["helper_relay_next_to_landmarks"]
    fooled = scenario.run(scenario.new_world(agent=LeakyAgent(), landmark_faults=0))
    assert fooled.verdict is Verdict.ALLOWED
    assert not fooled.defended
    assert scenario.run(scenario.new_world(landmark_faults=0)).verdict is Verdict.INCONCLUSIVE
    assert_outcome("helper_relay_next_to_landmarks", Verdict.INCONCLUSIVE)
