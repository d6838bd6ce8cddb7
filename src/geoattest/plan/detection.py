"""Detection: what share of diverted chips a deployment catches, where, and how soon.

The shares come from the fleet study's real verdicts (``geoattest sim fleet``), not from
an assumed miss rate. For each licensed region with chips and each destination outside
it, a study places chips licensed to the region at towns of the destination (weighted by
population), every one of them diverted, their hosts playing each strategy of the attack
toolkit in equal shares; a sample of each study is replayed through real rounds and the
real pipeline, and a study that fails its own checks is an error, never a figure.

A diverted chip is *caught* when it is not ALLOWED: OUTSIDE proves it elsewhere and
raises an alert; INCONCLUSIVE denies it the licence without saying where it is. A
diverted chip ALLOWED would be a false ALLOWED; the speed of light rules it out, and the
count is reported. Shares by destination weigh each region's study by its chips.

How soon follows from the verifier's and the agent's own rules (:class:`Timing`): an
accepted proof licenses the chip for the stale window (``stale_after_cadences`` cadences),
a result that does not affirm ends the licence at once, and the agent runs degraded a
grace period after its licence lapses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geoattest.demo.scenario import DemoScenario
from geoattest.errors import StudyError
from geoattest.plan.cost import FleetPlan
from geoattest.sim.fleet import DIVERTED, FleetConfig, Strategy, run_fleet
from geoattest.sim.replay import check_sample
from geoattest.sim.shortcut import FleetVerdicts, LandVertices
from geoattest.verdict import Verdict

DESTINATIONS: tuple[str, ...] = FleetConfig().destinations
"""Where diverted chips go unless told: the fleet study's default destinations."""
DEVICES = 2_000
"""Diverted chips simulated per region and destination."""
SAMPLE = 16
"""Chips of each study replayed through the real pipeline."""
NAIVE = f"{DIVERTED}/{Strategy.NONE.value}"

Step = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Timing:
    """How long a diverted chip keeps its licence, and when someone hears of it."""

    cadence_s: float
    stale_window_s: float
    grace_s: float

    @property
    def alert_within_s(self) -> float:
        """An OUTSIDE verdict (and its alert) comes with the chip's first proof from
        abroad: within one cadence of it proving there."""
        return self.cadence_s

    @property
    def licence_kept_s(self) -> float:
        """Longest a chip stays licensed after its last proof at home: a result lives
        for the stale window, and any proof from abroad ends it sooner."""
        return self.stale_window_s

    @property
    def degraded_within_s(self) -> float:
        """When the chip's agent runs it degraded, at the latest, after its last proof at
        home: the licence's end plus the grace period."""
        return self.stale_window_s + self.grace_s

    def to_json(self) -> dict[str, float]:
        return {
            "cadence_s": self.cadence_s,
            "stale_window_s": self.stale_window_s,
            "grace_s": self.grace_s,
            "outside_alert_within_s": self.alert_within_s,
            "licence_kept_at_most_s": self.licence_kept_s,
            "stale_alert_after_s": self.stale_window_s,
            "degraded_within_s": self.degraded_within_s,
        }

    @classmethod
    def of(cls, fleet: FleetPlan) -> Timing:
        return cls(fleet.cadence_s, fleet.stale_window_s, fleet.grace_s)


@dataclass(frozen=True)
class Pair:
    """One study: chips licensed to ``region``, all diverted to ``destination``."""

    region: str
    destination: str
    verdicts: Mapping[str, int]
    """Diverted chips by verdict, every strategy together."""
    naive: Mapping[str, int]
    """The same for hosts that do nothing to hide (strategy ``none``)."""
    sample_checked: int
    sample_matched: int

    @property
    def chips(self) -> int:
        return sum(self.verdicts.values())

    def share(self, verdict: Verdict) -> float:
        return self.verdicts.get(verdict.value, 0) / self.chips if self.chips else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "destination": self.destination,
            "verdicts": dict(self.verdicts),
            "naive_verdicts": dict(self.naive),
            "sample_checked": self.sample_checked,
            "sample_matched": self.sample_matched,
        }


@dataclass(frozen=True)
class Destination:
    """Diverted chips caught at one destination, weighted by the regions' chips."""

    destination: str
    chips: int
    """Diverted chips simulated for this destination, over every region."""
    outside: float
    """Share proven OUTSIDE (an alert)."""
    not_allowed: float
    """Share denied the licence (OUTSIDE, INCONCLUSIVE or INCONSISTENT)."""
    outside_naive: float | None
    """OUTSIDE share of chips whose host did nothing to hide."""
    regions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "simulated_chips": self.chips,
            "outside_share": self.outside,
            "not_allowed_share": self.not_allowed,
            "outside_share_no_evasion": self.outside_naive,
            "regions": list(self.regions),
        }


@dataclass(frozen=True)
class Detection:
    pairs: tuple[Pair, ...]
    destinations: tuple[Destination, ...]
    timing: Timing
    notes: tuple[str, ...]

    @property
    def diverted(self) -> int:
        return sum(p.chips for p in self.pairs)

    @property
    def false_allowed(self) -> int:
        return sum(p.verdicts.get(Verdict.ALLOWED.value, 0) for p in self.pairs)

    @property
    def outside(self) -> float:
        """OUTSIDE share over every destination, each weighted alike."""
        rows = self.destinations
        return sum(d.outside for d in rows) / len(rows) if rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "diverted_chips": self.diverted,
            "false_allowed": self.false_allowed,
            "by_destination": [d.to_json() for d in self.destinations],
            "timing": self.timing.to_json(),
            "studies": [p.to_json() for p in self.pairs],
            "notes": list(self.notes),
        }


def study_detection(
    scenario: DemoScenario,
    fleet: FleetPlan,
    *,
    destinations: Sequence[str] = DESTINATIONS,
    devices: int = DEVICES,
    seed: int = 7,
    progress: Step | None = None,
) -> Detection:
    """Run one fleet study per region with chips and destination outside it.

    Raises:
        ConfigError: the scenario or the destinations cannot be simulated.
        StudyError: a study failed its own checks (a bug, not a property of the deployment).
    """
    policy = scenario.policy
    step = progress or (lambda _stage, _done, _total: None)
    notes = []
    work = []
    for region, chips in fleet.chips.items():
        if not chips:
            continue
        if not policy.regions[region].is_countries:
            notes.append(f"{region} is drawn as a shape: fleet studies place chips by country")
            continue
        countries = policy.regions[region].countries
        work += [(region, d) for d in destinations if d not in countries]
    appraiser = policy.appraiser()
    land = LandVertices(appraiser)
    prepared: dict[str, FleetVerdicts] = {}
    pairs = []
    for done, (region, destination) in enumerate(work):
        step(f"detection: chips of {region} diverted to {destination}", done, len(work))
        if region not in prepared:
            prepared[region] = FleetVerdicts(
                appraiser,
                scenario.landmarks,
                (region,),
                landmark_faults=fleet.landmark_faults,
                land=land,
            )
        config = FleetConfig(
            devices=devices,
            diverted_share=1.0,
            regions=(region,),
            destinations=(destination,),
            seed=seed,
            sample=SAMPLE,
            landmark_faults=fleet.landmark_faults,
        )
        result = run_fleet(scenario, config, verdicts=prepared[region])
        check_sample(scenario, result)
        if not result.verified:
            raise StudyError(
                f"the detection study of {region} -> {destination} failed its checks: "
                f"{result.problems()}"
            )
        if result.notes:
            notes += [f"{region} -> {destination}: {note}" for note in result.notes]
        pairs.append(
            Pair(
                region,
                destination,
                dict(result.totals(DIVERTED)),
                dict(result.counts.get(NAIVE, Counter())),
                result.sample_check["checked"],
                result.sample_check["matched"],
            )
        )
    step("detection", len(work), len(work))
    return Detection(
        tuple(pairs),
        by_destination(pairs, fleet.chips, destinations),
        Timing.of(fleet),
        tuple(notes),
    )


def by_destination(
    pairs: Sequence[Pair], chips: Mapping[str, int], destinations: Sequence[str]
) -> tuple[Destination, ...]:
    """Each destination's shares, the regions' studies weighted by their chips."""
    rows = []
    for destination in destinations:
        mine = [p for p in pairs if p.destination == destination and p.chips]
        weight = sum(chips[p.region] for p in mine)
        if not weight:
            continue

        def mean(value: Callable[[Pair], float], of: Sequence[Pair] = mine) -> float:
            total = sum(chips[p.region] for p in of)
            return sum(chips[p.region] * value(p) for p in of) / total

        naive = [p for p in mine if sum(p.naive.values())]
        rows.append(
            Destination(
                destination=destination,
                chips=sum(p.chips for p in mine),
                outside=mean(lambda p: p.share(Verdict.OUTSIDE)),
                not_allowed=mean(lambda p: 1.0 - p.share(Verdict.ALLOWED)),
                outside_naive=mean(
                    lambda p: p.naive.get(Verdict.OUTSIDE.value, 0) / sum(p.naive.values()), naive
                )
                if naive
                else None,
                regions=tuple(p.region for p in mine),
            )
        )
    return tuple(rows)
