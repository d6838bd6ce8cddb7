"""Coverage at ``landmark_faults = 1``: an ALLOWED must survive losing any one operator's
bounds (an operator, or one site, is one fault domain)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import ConfigError
from geoattest.geo import build_policy, country_region
from geoattest.geo.policy import RegionPolicy
from geoattest.plan.coverage import ALLOWED_CODE, HonestJudge, code_of
from geoattest.verdict import Verdict

TAIWAN = (
    LandmarkSite("lm-tpe", "Taipei", 25.0330, 121.5654),
    LandmarkSite("lm-hkg", "Hong Kong", 22.3193, 114.1694),
    LandmarkSite("lm-tyo", "Tokyo", 35.6762, 139.6503),
)
TAIPEI_TWICE = (
    *TAIWAN,
    LandmarkSite("lm-tpe-2", "Taipei, a second operator", 25.0375, 121.5654, "tw-exchange"),
)
"""A second operator's landmark in another building of Taipei's site, 500 m north."""
TAIPEI_ONE_OPERATOR = (
    *TAIWAN,
    LandmarkSite("lm-tpe-2", "Taipei, the same operator", 25.0375, 121.5654, "lm-tpe"),
)
TAIPEI_ONE_HOST = (
    *TAIWAN,
    LandmarkSite("lm-tpe-2", "Taipei, a second key", 25.0330, 121.5654, "tw-exchange"),
)
# Taipei, Taichung, Kaohsiung, Hsinchu, Tainan; Xiamen across the strait.
LAT = np.asarray([25.04, 24.15, 22.63, 24.80, 22.99, 24.48])
LON = np.asarray([121.53, 120.67, 120.30, 120.97, 120.21, 118.09])


@functools.cache
def policy() -> RegionPolicy:
    return build_policy("faults-test", 1, [country_region("TW", ["TW"])], embargo=["KP"])


def verdicts(sites: tuple[LandmarkSite, ...], faults: int) -> list[int]:
    judge = HonestJudge(policy(), "TW", landmarks_per_chip=3, landmark_faults=faults)
    return judge.verdicts(LAT, LON, sites, 0.5).tolist()


def test_one_fault_only_ever_turns_allowed_into_inconclusive() -> None:
    trusting, tolerant = verdicts(TAIWAN, 0), verdicts(TAIWAN, 1)
    assert trusting[0] == ALLOWED_CODE  # Taipei, next to its landmark
    for zero, one in zip(trusting, tolerant, strict=True):
        if zero == ALLOWED_CODE:
            assert one in (ALLOWED_CODE, code_of(Verdict.INCONCLUSIVE))
        else:
            assert one == zero
    # Without Taipei's bound, Hong Kong's and Tokyo's reach the mainland: not ALLOWED.
    assert tolerant[0] == code_of(Verdict.INCONCLUSIVE)


def test_a_second_operator_at_the_site_restores_what_one_fault_took() -> None:
    assert verdicts(TAIPEI_TWICE, 1)[0] == ALLOWED_CODE


def test_a_second_id_of_the_same_operator_or_host_restores_nothing() -> None:
    assert verdicts(TAIPEI_ONE_OPERATOR, 1)[0] == code_of(Verdict.INCONCLUSIVE)
    assert verdicts(TAIPEI_ONE_HOST, 1)[0] == code_of(Verdict.INCONCLUSIVE)


def test_faults_must_leave_a_bound() -> None:
    with pytest.raises(ConfigError, match="below landmarks_per_chip"):
        HonestJudge(policy(), "TW", landmarks_per_chip=3, landmark_faults=3)
