"""Verdicts, distance bounds, and the interface the geography plugs in behind.

The verifier pipeline (``geoattest.verifier.pipeline``) turns checked receipts into
:class:`LandmarkBound` values and asks a :class:`RegionAppraiser` for the verdict.
Bounds use the speed of light in vacuum and nothing slower: an adversary can add
delay, never remove it, so the chip is always inside every bound's disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

SPEED_OF_LIGHT_KM_PER_S = 299_792.458
"""c in vacuum. Never replace with a 'realistic' speed for a decision."""
KM_PER_NS_OF_RTT = SPEED_OF_LIGHT_KM_PER_S / 1e9 / 2
"""Distance bound per nanosecond of round-trip time: about 149.896 km per ms."""


def bound_km(rtt_ns: int) -> float:
    """Farthest the responder can be from the landmark given a landmark-timed RTT."""
    return rtt_ns * KM_PER_NS_OF_RTT


class Verdict(StrEnum):
    """The outcome of appraising one location proof. Only ALLOWED is permissive."""

    ALLOWED = "ALLOWED"
    """Every place the chip could physically be lies inside the licensed region."""
    OUTSIDE = "OUTSIDE"
    """The feasible region does not touch the licensed region: the chip is elsewhere."""
    INCONCLUSIVE = "INCONCLUSIVE"
    """The feasible region straddles the border or is too large to decide."""
    INCONSISTENT = "INCONSISTENT"
    """The bounds have no common point: a landmark is faulty or lying."""
    REJECTED = "REJECTED"
    """The evidence failed a cryptographic, identity or freshness check."""


@dataclass(frozen=True, slots=True)
class LandmarkBound:
    """One landmark's disk: the chip is within ``bound_km`` of the landmark."""

    landmark_id: str
    latitude: float
    longitude: float
    rtt_min_ns: int
    motion_km: float = 0.0
    """Added when this round ran earlier than the proof's reference time: how far the
    chip could have been carried in between (see ``PipelineConfig.max_chip_speed_m_s``)."""

    @property
    def bound_km(self) -> float:
        """Always read the radius from here: light-speed bound plus any motion allowance."""
        return bound_km(self.rtt_min_ns) + self.motion_km


@dataclass(frozen=True, slots=True)
class RegionAppraisal:
    """What the geography says about a set of bounds against one licensed region."""

    verdict: Verdict
    embargoed: bool = False
    """True when the whole feasible region lies inside an embargoed country."""
    feasible_area_km2: float = 0.0
    feasible_region: Mapping[str, Any] | None = None
    """GeoJSON geometry of the sound feasible region (None when empty)."""
    detail: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    decided_by: frozenset[str] | None = None
    """Landmark ids whose bounds decided the verdict: the same bounds less any others
    give the same verdict. None promises nothing (every bound may count)."""


class RegionAppraiser(Protocol):
    """Decides a verdict from bounds. Implemented by ``geoattest.geo``."""

    @property
    def policy_id(self) -> str:
        """``policy:region/<id>@<version>`` of the loaded policy, for the result."""
        ...

    def has_region(self, region: str) -> bool:
        """Whether ``region`` (a licence region name) is defined by the policy."""
        ...

    def appraise(self, bounds: Sequence[LandmarkBound], region: str) -> RegionAppraisal:
        """Verdict for a chip licensed to ``region``; never ALLOWED unless proven inside.

        Never raises for any bounds: what it cannot use makes the verdict INCONCLUSIVE. (The
        pipeline judges a batch's geography after accepting its evidence; an exception
        there fails the whole batch, and nothing of it is stored.)
        """
        ...

    def verdict(self, bounds: Sequence[LandmarkBound], region: str) -> Verdict:
        """``appraise(bounds, region).verdict`` and nothing else (what re-judging without
        a fault domain needs); never raises either."""
        ...
