"""A fleet study: many chips at real places, one proof each, verdicts counted by truth.

Each chip is licensed to one of the policy's regions. Most sit at a place inside it; a
share is *diverted*: it sits in another country and its host plays one adversary strategy
(:class:`Strategy`) to look licensed. For every chip the study draws, in bulk, what the
network and the adversary do to each datagram of its rounds with its landmarks (the
protocol's message sequence, in integer nanoseconds of virtual time), takes the
landmark-timed RTTs the landmarks would record, and derives the bounds exactly as the
verifier pipeline does. Verdicts come from :class:`~geoattest.sim.shortcut.FleetVerdicts`
(sound numpy shortcuts, the real appraiser for the rest), and a random sample of chips is
replayed through real rounds, real signatures and the real pipeline
(:mod:`geoattest.sim.replay`) to show the two agree.

The latency model (:mod:`geoattest.netsim.latency`) says what honest paths do; the
adversary only ever adds time or carries datagrams at up to :data:`FAST_LINK_FRACTION_OF_C`
on a straight line; the verifier bounds at c. So a diverted chip is inside every disk and
can never be ALLOWED; the study counts it and says so.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from geoattest.demo.scenario import DemoScenario
from geoattest.errors import ConfigError
from geoattest.geo import Countries, GeoAppraiser
from geoattest.geo.places import populated_places
from geoattest.geo.sphere import distance_km
from geoattest.lifecycle import worker_signals
from geoattest.netsim.latency import LatencyModel, PathClass
from geoattest.sim.shortcut import (
    CODE_OF,
    VERDICT_CODES,
    FleetVerdicts,
    Shortcut,
    shortcut_verdict,
)
from geoattest.verdict import KM_PER_NS_OF_RTT, SPEED_OF_LIGHT_KM_PER_S, LandmarkBound, Verdict
from geoattest.verifier.pipeline import PipelineConfig

FAST_LINK_FRACTION_OF_C = 0.98
"""Speed of the adversary's private straight link (hollow-core fibre, microwave): faster
than any fibre, slower than light, with room for the sphere-versus-ellipsoid distance."""
NS = 1e9


class Placement(StrEnum):
    """How chips are spread over a region."""

    CITIES = "cities"
    """At towns of 15,000+ people, weighted by population (where data centres are)."""
    GRID = "grid"
    """On a regular longitude/latitude grid over the land, weighted by area."""


class Strategy(StrEnum):
    """What the host of a diverted chip does to look licensed (the attack toolkit's moves)."""

    NONE = "none"
    """Nothing: the chip measures its nearest landmarks from where it is."""
    CONSTANT_DELAY = "constant_delay"
    """Measures the landmarks nearest a licensed place; delays every datagram."""
    SELECTIVE_DELAY = "selective_delay"
    """Measures the landmarks nearest a licensed place; delays the ones nearer the chip."""
    ADAPTIVE_DELAY = "adaptive_delay"
    """Pads each landmark's delay up to what an honest chip at the licensed place shows."""
    RELAY = "relay"
    """A helper at the licensed place forwards every datagram to the chip and back."""
    FASTER_THAN_FIBRE = "faster_than_fibre"
    """A private straight link to each landmark at 0.98 c, padded like the adaptive delay."""


LICENSED = "licensed"
DIVERTED = "diverted"
AUDIT_OUTSIDE_A_DISK = "chips_outside_a_disk"
AUDIT_CONTRADICTIONS = "table_contradictions"
AUDIT_DIVERTED_BY_APPRAISER = "diverted_judged_by_appraiser"


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate; the defaults are the command's."""

    devices: int = 100_000
    diverted_share: float = 0.1
    regions: tuple[str, ...] = ()
    """Licensed regions to spread chips over (equal shares); empty means every country
    region of the policy."""
    destinations: tuple[str, ...] = ("CN", "HK", "MY", "RU", "IR")
    """Countries (ISO 3166-1 alpha-2) where diverted chips end up."""
    strategies: tuple[Strategy, ...] = tuple(Strategy)
    placement: Placement = Placement.CITIES
    grid_deg: float = 0.25
    seed: int = 7
    sample: int = 200
    """Chips replayed through real rounds and the real pipeline to check the verdicts:
    a random sample, split evenly over the rules that decided them and, within each,
    over licensed and diverted chips."""
    delay_ms: float = 5.0
    """The constant and selective strategies' added delay per datagram."""
    landmark_faults: int = 1
    """Lying landmark operators an ALLOWED must survive, as the verifier's default."""
    chunk: int = 50_000
    workers: int = 1
    """Processes that simulate chunks side by side (the results do not depend on it)."""

    def check(self) -> None:
        """Raises ConfigError for values the study cannot run with."""
        if not 1 <= self.devices <= 100_000_000:
            raise ConfigError(f"devices must be 1..100000000, got {self.devices}")
        if not 0.0 <= self.diverted_share <= 1.0:
            raise ConfigError(f"diverted share must be in [0, 1], got {self.diverted_share}")
        if self.diverted_share > 0 and not self.strategies:
            raise ConfigError("diverted chips need at least one strategy")
        if self.diverted_share > 0 and not self.destinations:
            raise ConfigError("diverted chips need at least one destination country")
        if not 0.01 <= self.grid_deg <= 5.0:
            raise ConfigError(f"grid step must be 0.01..5 degrees, got {self.grid_deg}")
        if not 0 <= self.sample <= 10_000:
            raise ConfigError(f"sample must be 0..10000, got {self.sample}")
        if not 0.0 <= self.delay_ms <= 10_000.0:
            raise ConfigError(f"delay must be 0..10000 ms, got {self.delay_ms}")
        if self.landmark_faults < 0:
            raise ConfigError("landmark faults must be >= 0")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers must be 1..64, got {self.workers}")


@dataclass(frozen=True)
class Schedule:
    """One chip's datagram delays (ns), enough to replay its rounds exactly."""

    landmarks: tuple[int, ...]
    open_ns: tuple[int, ...]
    down_ns: tuple[tuple[int, ...], ...]
    """Per landmark: each challenge's delay, then the Complete's."""
    up_ns: tuple[tuple[int, ...], ...]
    """Per landmark: each response's delay, then the Close's."""


@dataclass(frozen=True)
class SampledChip:
    """A chip kept for the sample check: where it was, its schedule, its fleet verdict."""

    index: int
    region: str
    truth: str
    place: str
    latitude: float
    longitude: float
    schedule: Schedule
    verdict: Verdict
    rule: Shortcut
    bounds: tuple[LandmarkBound, ...]


@dataclass(frozen=True)
class PlaceVerdicts:
    """Where the licensed chips sat and what they got: for maps."""

    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    code: npt.NDArray[np.str_]
    """The policy's country at each place."""
    counts: npt.NDArray[np.int64]
    """(places, verdicts): licensed chips at each place by verdict (index into
    :data:`~geoattest.sim.shortcut.VERDICT_CODES`)."""
    regions: tuple[str, ...]

    def allowed_share(self) -> npt.NDArray[np.float64]:
        """Share of the chips at each place that were ALLOWED (NaN where none sat)."""
        total = self.counts.sum(axis=1)
        allowed = self.counts[:, CODE_OF[Verdict.ALLOWED]]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(total > 0, allowed / total, np.nan))


@dataclass
class FleetResult:
    """Counts of verdicts by truth, and how they were reached."""

    scenario: str
    policy_id: str
    config: FleetConfig
    counts: dict[str, Counter[str]]
    """Truth label (``licensed/<region>`` or ``diverted/<strategy>``) to verdict to chips."""
    decided_by: Counter[str]
    seconds: float
    places: PlaceVerdicts
    audit: dict[str, int] = field(default_factory=dict)
    """Checks run on every chip (see ``_audit``); the first two must be zero."""
    notes: tuple[str, ...] = ()
    appraiser_s_per_proof: float = 0.0
    """Baseline: the real appraiser alone on the sampled proofs, measured in the same run."""
    sampled: list[SampledChip] = field(default_factory=list)
    sample_check: dict[str, Any] = field(default_factory=dict)

    @property
    def devices(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    @property
    def sound(self) -> bool:
        """No false ALLOWED, and the every-chip checks found nothing wrong."""
        return (
            self.false_allowed == 0
            and self.audit.get(AUDIT_OUTSIDE_A_DISK, 0) == 0
            and self.audit.get(AUDIT_CONTRADICTIONS, 0) == 0
        )

    @property
    def verified(self) -> bool:
        """Sound, and every replayed sample verdict identical to the real pipeline's (the
        sample check must have run: see :func:`geoattest.sim.replay.check_sample`)."""
        check = self.sample_check
        return self.sound and bool(check) and check["matched"] == check["checked"]

    def problems(self) -> str:
        """What failed, in one line, for an error message ('' when verified)."""
        found = []
        if self.false_allowed:
            found.append(f"{self.false_allowed} diverted chips ALLOWED")
        for key in (AUDIT_OUTSIDE_A_DISK, AUDIT_CONTRADICTIONS):
            if self.audit.get(key):
                found.append(f"{key} = {self.audit[key]}")
        if not self.sample_check:
            found.append("the sample check did not run")
        elif self.sample_check["matched"] != self.sample_check["checked"]:
            check = self.sample_check
            found.append(f"{check['checked'] - check['matched']} sampled verdicts differ")
        return "; ".join(found)

    @property
    def false_allowed(self) -> int:
        """Diverted chips that got ALLOWED: must be zero."""
        return sum(
            c[Verdict.ALLOWED.value] for t, c in self.counts.items() if t.startswith(DIVERTED)
        )

    def totals(self, prefix: str) -> Counter[str]:
        """Verdict counts over every truth label that starts with ``prefix``."""
        out: Counter[str] = Counter()
        for truth, c in self.counts.items():
            if truth.startswith(prefix):
                out.update(c)
        return out

    def to_json(self) -> dict[str, Any]:
        licensed = self.totals(LICENSED)
        n_licensed = sum(licensed.values())

        def rate(verdict: Verdict) -> float:
            return licensed[verdict.value] / n_licensed if n_licensed else 0.0

        return {
            "scenario": self.scenario,
            "policy_id": self.policy_id,
            "devices": self.devices,
            "seed": self.config.seed,
            "placement": self.config.placement.value,
            "counts": {t: dict(sorted(c.items())) for t, c in sorted(self.counts.items())},
            "totals": {
                label: dict(sorted(self.totals(label).items())) for label in (LICENSED, DIVERTED)
            },
            "honest_allowed_rate": rate(Verdict.ALLOWED),
            "honest_inconclusive_rate": rate(Verdict.INCONCLUSIVE),
            "honest_outside_rate": rate(Verdict.OUTSIDE),
            "false_allowed": self.false_allowed,
            "verified": self.verified,
            "audit": self.audit,
            "notes": list(self.notes),
            "decided_by": dict(sorted(self.decided_by.items())),
            "seconds": round(self.seconds, 3),
            "devices_per_s": round(self.devices / self.seconds) if self.seconds else None,
            "appraiser_per_s": round(1 / self.appraiser_s_per_proof)
            if self.appraiser_s_per_proof
            else None,
            "speedup_vs_appraiser": round(
                self.devices / self.seconds * self.appraiser_s_per_proof, 1
            )
            if self.seconds and self.appraiser_s_per_proof
            else None,
            "sample_check": self.sample_check,
        }


@dataclass(frozen=True)
class _Sites:
    """Where chips can be put: one row per place, weighted by people or by area."""

    names: tuple[str, ...]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    code: npt.NDArray[np.str_]
    """The policy's (Natural Earth) country at each place."""
    weight: npt.NDArray[np.float64]


Progress = Callable[[int, int], None]
"""Called with (chips done, chips in all) after each chunk."""


def run_fleet(
    scenario: DemoScenario,
    config: FleetConfig,
    *,
    model: LatencyModel | None = None,
    verdicts: FleetVerdicts | None = None,
    progress: Progress | None = None,
) -> FleetResult:
    """Simulate the fleet; see the module docstring.

    Raises:
        ConfigError: the configuration or the scenario cannot be simulated.
    """
    config.check()
    started = time.perf_counter()
    policy = scenario.policy
    regions = config.regions or tuple(
        name for name, r in sorted(policy.regions.items()) if r.is_countries
    )
    for name in regions:
        region = policy.regions.get(name)
        if region is None:
            raise ConfigError(f"region {name!r} is not in policy {policy.policy_id}")
        if not region.is_countries:
            raise ConfigError(f"region {name!r} is a shape; fleet studies place chips by country")
    k = scenario.landmarks_per_chip
    if len(scenario.landmarks) < k:
        raise ConfigError(f"scenario has {len(scenario.landmarks)} landmarks, chips measure {k}")
    if verdicts is not None and (
        verdicts.appraiser.policy_id != policy.policy_id
        or verdicts.regions != regions
        or verdicts.landmarks != scenario.landmarks
        or verdicts.landmark_faults != config.landmark_faults
    ):
        # Its tables are indexed by region and landmark: another set would misread them.
        raise ConfigError(
            "the prepared fleet verdicts are for another policy, regions, landmarks or "
            "landmark faults than this study"
        )
    appraiser = policy.appraiser() if verdicts is None else verdicts.appraiser
    # The places first: a study that cannot place its chips fails before the tables are built.
    world = _World(scenario, config, regions, model or LatencyModel.default(), appraiser)
    if verdicts is None:
        verdicts = FleetVerdicts(
            appraiser, scenario.landmarks, regions, landmark_faults=config.landmark_faults
        )
    quota = math.ceil(config.sample / len(_STRATA)) if config.sample else 0
    starts = range(0, config.devices, config.chunk)
    seeds = np.random.SeedSequence(config.seed).spawn(len(starts))
    tasks = [
        _Chunk(start, min(config.chunk, config.devices - start), seed, quota)
        for start, seed in zip(starts, seeds, strict=True)
    ]
    kept: dict[tuple[int, bool], list[tuple[float, SampledChip]]] = {s: [] for s in _STRATA}
    counts: dict[str, Counter[str]] = {}
    decided_by: Counter[str] = Counter()
    audit: Counter[str] = Counter()
    licensed_at = np.zeros((len(world.sites.names), len(VERDICT_CODES)), dtype=np.int64)
    done = 0
    for outcome in _run_chunks(tasks, world, verdicts, config.workers):
        licensed_at += outcome.licensed_at
        audit.update(outcome.audit)
        for label, row in outcome.counts.items():
            counts.setdefault(label, Counter()).update(row)
        decided_by.update(outcome.decided_by)
        for stratum, chips in outcome.kept.items():
            kept[stratum] = sorted(kept[stratum] + chips, key=lambda kc: kc[0])[:quota]
        done += outcome.devices
        if progress is not None:
            progress(done, config.devices)
    seconds = time.perf_counter() - started
    sampled = sorted((chip for chips in kept.values() for _, chip in chips), key=lambda c: c.index)
    return FleetResult(
        scenario=scenario.name,
        policy_id=policy.policy_id,
        config=config,
        counts=counts,
        decided_by=decided_by,
        seconds=seconds,
        audit=dict(audit),
        notes=world.notes,
        places=PlaceVerdicts(
            world.sites.lat, world.sites.lon, world.sites.code, licensed_at, world.regions
        ),
        appraiser_s_per_proof=_appraiser_baseline(verdicts, sampled),
        sampled=sampled,
    )


def _appraiser_baseline(verdicts: FleetVerdicts, sampled: Sequence[SampledChip]) -> float:
    """Seconds per proof of the real appraiser (geography only, no signatures) on the
    sampled proofs: what the study would cost without its shortcuts."""
    if not sampled:
        return 0.0
    started = time.perf_counter()
    for chip in sampled:
        verdicts.exact(chip.bounds, chip.region)
    return (time.perf_counter() - started) / len(sampled)


@dataclass(frozen=True)
class _Chunk:
    """One slice of the fleet, with its own random stream (so the study does not depend
    on how many workers share it)."""

    start: int
    devices: int
    seed: np.random.SeedSequence
    quota: int


@dataclass
class _ChunkOutcome:
    devices: int
    counts: dict[str, Counter[str]]
    decided_by: Counter[str]
    kept: dict[tuple[int, bool], list[tuple[float, SampledChip]]]
    licensed_at: npt.NDArray[np.int64]
    """(places, verdicts): licensed chips at each place by verdict code."""
    audit: Counter[str]


def _simulate_chunk(chunk: _Chunk, world: _World, verdicts: FleetVerdicts) -> _ChunkOutcome:
    gen = np.random.default_rng(chunk.seed)
    batch = world.batch(chunk.devices, gen)
    codes, rules = _judge(batch, verdicts, world)
    counts: dict[str, Counter[str]] = {}
    _count(counts, batch, codes, world)
    decided_by = Counter(
        {
            Shortcut(int(r)).name.lower(): int(c)
            for r, c in zip(*np.unique(rules, return_counts=True), strict=True)
        }
    )
    # A uniform random sample of up to ``quota`` chips per deciding rule and per truth
    # (licensed or diverted), by the smallest random keys over the whole run, so that
    # every shortcut, the real appraiser and the diverted chips are all checked even
    # when one of them is rare.
    keys = gen.random(chunk.devices)
    kept: dict[tuple[int, bool], list[tuple[float, SampledChip]]] = {}
    for rule, diverted in _STRATA:
        rows = np.flatnonzero((rules == rule) & ((batch.truth > 0) == diverted))
        best = rows[np.argsort(keys[rows])[: chunk.quota]].tolist()
        kept[rule, diverted] = [
            (float(keys[i]), batch.sampled(i, chunk.start + i, codes[i], rules[i], world))
            for i in best
        ]
    licensed_at = np.zeros((len(world.sites.names), len(VERDICT_CODES)), dtype=np.int64)
    honest = batch.truth == 0
    np.add.at(licensed_at, (batch.place[honest], codes[honest].astype(np.int64)), 1)
    return _ChunkOutcome(
        chunk.devices, counts, decided_by, kept, licensed_at, _audit(batch, verdicts, world, rules)
    )


def _audit(
    batch: _Batch, verdicts: FleetVerdicts, world: _World, rules: npt.NDArray[np.int8]
) -> Counter[str]:
    """Checks on every chip, not just the sample: each chip lies inside every one of its
    (grown) disks, as physics demands; no chip's place contradicts the shortcuts' distance
    tables; and how many diverted chips the real appraiser judged (the shortcuts can only
    say OUTSIDE or INCONCLUSIVE for them, so false ALLOWED rests on those)."""
    true_km = np.take_along_axis(world.site_km[batch.place], batch.landmark, axis=1)
    licensed = batch.truth == 0
    return Counter(
        {
            AUDIT_OUTSIDE_A_DISK: int(
                np.count_nonzero(np.any(true_km > verdicts.grown(batch.bound_km), axis=1))
            ),
            AUDIT_CONTRADICTIONS: verdicts.contradictions(
                batch.region, batch.landmark, batch.bound_km, licensed
            ),
            AUDIT_DIVERTED_BY_APPRAISER: int(
                np.count_nonzero(~licensed & (rules == Shortcut.UNDECIDED))
            ),
        }
    )


_STRATA = tuple(
    (int(rule), diverted)
    for rule in Shortcut
    for diverted in (False, True)
    if (rule, diverted)
    not in {(Shortcut.ALLOWED_BY_REACH, True), (Shortcut.OUTSIDE_BY_REACH, False)}
)
"""The sample check's strata: every way a verdict is reached, for each kind of truth,
except two that cannot hold a chip (the ALLOWED rule needs a licensed chip; a licensed
chip OUTSIDE by reach is a table contradiction, which the audit counts)."""

_FORKED: tuple[_World, FleetVerdicts] | None = None
"""What forked workers inherit instead of unpickling (the world is large)."""


def _simulate_forked(chunk: _Chunk) -> _ChunkOutcome:
    assert _FORKED is not None
    return _simulate_chunk(chunk, *_FORKED)


def _run_chunks(
    tasks: Sequence[_Chunk], world: _World, verdicts: FleetVerdicts, workers: int
) -> Iterator[_ChunkOutcome]:
    """Chunks in this process, or over forked worker processes that share the world."""
    if workers <= 1 or len(tasks) <= 1 or "fork" not in mp.get_all_start_methods():
        for task in tasks:
            yield _simulate_chunk(task, world, verdicts)
        return
    global _FORKED  # noqa: PLW0603  (set before the fork, read by the children)
    _FORKED = (world, verdicts)
    try:
        with mp.get_context("fork").Pool(
            min(workers, len(tasks)), initializer=worker_signals
        ) as pool:
            yield from pool.imap_unordered(_simulate_forked, tasks)
    finally:
        _FORKED = None


@dataclass(frozen=True)
class _Batch:
    """One chunk of chips: who they are and what their landmarks timed."""

    region: npt.NDArray[np.int64]
    truth: npt.NDArray[np.int64]
    """0 for a licensed chip, 1 + strategy index for a diverted one."""
    place: npt.NDArray[np.int64]
    landmark: npt.NDArray[np.int64]
    """(chips, k) landmark indices, in the order the proof lists its receipts."""
    open_ns: npt.NDArray[np.int64]
    down_ns: npt.NDArray[np.int64]
    up_ns: npt.NDArray[np.int64]
    rtt_min_ns: npt.NDArray[np.int64]
    motion_km: npt.NDArray[np.float64]

    @property
    def bound_km(self) -> npt.NDArray[np.float64]:
        """Each bound's radius, computed as :class:`LandmarkBound` computes it."""
        return np.asarray(self.rtt_min_ns * KM_PER_NS_OF_RTT + self.motion_km)

    def bounds(self, i: int, world: _World) -> tuple[LandmarkBound, ...]:
        """Chip ``i``'s bounds as the pipeline would build them from its receipts."""
        return tuple(
            LandmarkBound(
                world.landmark_ids[lm],
                float(world.lm_lat[lm]),
                float(world.lm_lon[lm]),
                int(self.rtt_min_ns[i, j]),
                motion_km=float(self.motion_km[i, j]),
            )
            for j, lm in enumerate(self.landmark[i].tolist())
        )

    def sampled(self, i: int, index: int, code: int, rule: int, world: _World) -> SampledChip:
        p = int(self.place[i])
        return SampledChip(
            index=index,
            region=world.regions[int(self.region[i])],
            truth=world.truth_labels[int(self.truth[i])],
            place=world.sites.names[p],
            latitude=float(world.sites.lat[p]),
            longitude=float(world.sites.lon[p]),
            schedule=Schedule(
                landmarks=tuple(self.landmark[i].tolist()),
                open_ns=tuple(self.open_ns[i].tolist()),
                down_ns=tuple(tuple(row) for row in self.down_ns[i].tolist()),
                up_ns=tuple(tuple(row) for row in self.up_ns[i].tolist()),
            ),
            verdict=VERDICT_CODES[code],
            rule=Shortcut(rule),
            bounds=self.bounds(i, world),
        )


class _World:
    """Everything fixed for a study: sites, landmarks, who goes where, the latency model."""

    def __init__(
        self,
        scenario: DemoScenario,
        config: FleetConfig,
        regions: Sequence[str],
        model: LatencyModel,
        appraiser: GeoAppraiser,
    ) -> None:
        self.config = config
        self.model = model
        self.regions = tuple(regions)
        self.k, self.exchanges = scenario.landmarks_per_chip, scenario.exchanges
        self.landmark_ids = tuple(s.landmark_id for s in scenario.landmarks)
        self.lm_lat = np.asarray([s.latitude for s in scenario.landmarks])
        self.lm_lon = np.asarray([s.longitude for s in scenario.landmarks])
        self.km_per_ns = PipelineConfig().max_chip_speed_m_s / 1e12
        self.strategies = tuple(config.strategies)
        self.truth_labels = (LICENSED, *(f"{DIVERTED}/{s.value}" for s in self.strategies))
        policy = appraiser.policy
        licensed_codes = [policy.regions[r].countries for r in self.regions]
        self.region_codes = licensed_codes
        wanted = set().union(*licensed_codes) | set(config.destinations)
        if config.placement is Placement.CITIES:
            self.sites = _city_sites(policy.countries, wanted)
        else:
            self.sites = _grid_sites(policy.countries, wanted, config.grid_deg)
        self.licensed_sites: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
        self.diverted_sites: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
        destinations = sorted(set(config.destinations))
        for name, codes in zip(self.regions, licensed_codes, strict=True):
            inside = np.isin(self.sites.code, sorted(codes))
            if not inside.any():
                raise ConfigError(f"region {name!r} has no place to put a chip")
            self.licensed_sites.append(self._pick(inside))
            self.diverted_sites.append(self._pick(np.isin(self.sites.code, destinations) & ~inside))
        if config.diverted_share > 0 and not any(len(i) for i, _ in self.diverted_sites):
            raise ConfigError(f"no place to divert chips to in {', '.join(destinations)}")
        self.notes = tuple(
            f"no destination lies outside {name}: its chips are all licensed ones"
            for name, (away, _) in zip(self.regions, self.diverted_sites, strict=True)
            if config.diverted_share > 0 and not away.size
        )
        self.site_km = distance_km(
            self.sites.lat[:, None], self.sites.lon[:, None], self.lm_lat, self.lm_lon
        )
        self.nearest = np.argsort(self.site_km, axis=1, kind="stable")[:, : self.k]
        self.in_china = self.sites.code == "CN"

    def _pick(
        self, mask: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        index = np.flatnonzero(mask)
        w = self.sites.weight[index]
        return index, (w / w.sum() if w.size else w)

    def batch(self, n: int, gen: np.random.Generator) -> _Batch:
        config = self.config
        region = gen.integers(len(self.regions), size=n)
        diverted = gen.random(n) < config.diverted_share
        truth = np.where(diverted, 1 + gen.integers(max(1, len(self.strategies)), size=n), 0)
        place = np.zeros(n, dtype=np.int64)
        target = np.zeros(n, dtype=np.int64)
        for r in range(len(self.regions)):
            here = region == r
            inside, inside_w = self.licensed_sites[r]
            away, away_w = self.diverted_sites[r]
            if not away.size:
                truth[here] = 0
            honest = here & (truth == 0)
            moved = here & (truth > 0)
            place[honest] = gen.choice(inside, size=int(honest.sum()), p=inside_w)
            place[moved] = gen.choice(away, size=int(moved.sum()), p=away_w) if away.size else 0
            target[here] = gen.choice(inside, size=int(here.sum()), p=inside_w)
        naive = truth == 0
        if Strategy.NONE in self.strategies:
            naive |= truth == 1 + self.strategies.index(Strategy.NONE)
        landmark = np.where(naive[:, None], self.nearest[place], self.nearest[target])
        base_s, jitter_s = self._legs(place, target, landmark, truth, gen)
        m = 2 * self.exchanges + 3  # Open, challenges and Complete, responses and Close
        delays = (
            base_s[..., None] + gen.exponential(1.0, size=(*base_s.shape, m)) * jitter_s[..., None]
        )
        datagram_ns = np.ceil(delays * NS).astype(np.int64)
        open_ns = datagram_ns[..., 0]
        down_ns = datagram_ns[..., 1 : self.exchanges + 2]
        up_ns = datagram_ns[..., self.exchanges + 2 :]
        rtt = down_ns[..., : self.exchanges] + up_ns[..., : self.exchanges]
        finished = open_ns + down_ns.sum(axis=-1) + up_ns.sum(axis=-1)
        newest = finished.max(axis=1, keepdims=True)
        return _Batch(
            region=region,
            truth=truth,
            place=place,
            landmark=landmark,
            open_ns=open_ns,
            down_ns=down_ns,
            up_ns=up_ns,
            rtt_min_ns=rtt.min(axis=-1),
            motion_km=(newest - finished) * self.km_per_ns,
        )

    def _legs(
        self,
        place: npt.NDArray[np.int64],
        target: npt.NDArray[np.int64],
        landmark: npt.NDArray[np.int64],
        truth: npt.NDArray[np.int64],
        gen: np.random.Generator,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """One-way base delay and jitter mean (s) between each chip and each landmark."""
        d = np.take_along_axis(self.site_km[place], landmark, axis=1)
        base, jitter = self._honest(d, self.in_china[place], gen)
        moves = truth > 0
        if not moves.any():
            return base, jitter
        cloud = self.model.parameters(PathClass.CLOUD)
        d_target = np.take_along_axis(self.site_km[target], landmark, axis=1)
        disguise = (
            self.model.stretch_quantiles(d_target, 0.5) * d_target / self.model.fibre_speed_km_per_s
            + 2 * cloud.access_delay_s
        )
        extra = self.config.delay_ms / 1e3
        for code in np.unique(truth[moves]).tolist():
            rows = truth == code
            move = self.strategies[code - 1]
            if move is Strategy.CONSTANT_DELAY:
                base[rows] += extra
            elif move is Strategy.SELECTIVE_DELAY:
                base[rows] += np.where(d[rows] < d_target[rows], extra, 0.0)
            elif move is Strategy.ADAPTIVE_DELAY:
                base[rows] = np.maximum(base[rows], disguise[rows])
            elif move is Strategy.RELAY:
                hop = distance_km(
                    self.sites.lat[place[rows]],
                    self.sites.lon[place[rows]],
                    self.sites.lat[target[rows]],
                    self.sites.lon[target[rows]],
                )
                near_base, near_jitter = self._honest(
                    d_target[rows], np.zeros(rows.sum(), bool), gen
                )
                far_base, far_jitter = self._honest(
                    np.repeat(hop[:, None], self.k, axis=1), self.in_china[place[rows]], gen
                )
                base[rows] = near_base + far_base
                jitter[rows] = near_jitter + far_jitter
            elif move is Strategy.FASTER_THAN_FIBRE:
                fast = d[rows] / (FAST_LINK_FRACTION_OF_C * SPEED_OF_LIGHT_KM_PER_S)
                base[rows] = np.maximum(fast + 2 * cloud.access_delay_s, disguise[rows])
                jitter[rows] = cloud.jitter_mean_s
        return base, jitter

    def _honest(
        self, d: npt.NDArray[np.float64], china: npt.NDArray[np.bool_], gen: np.random.Generator
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Honest one-way base delay and jitter mean over routes of length ``d`` (km)."""
        base = np.empty_like(d)
        jitter = np.empty_like(d)
        for path_class, rows in ((PathClass.CLOUD, ~china), (PathClass.CN_CONSUMER, china)):
            if not rows.any():
                continue
            params = self.model.parameters(path_class)
            stretch = self.model.sample_stretches(d[rows], gen, path_class)
            propagation = np.asarray(self.model.propagation_s(d[rows], stretch))
            base[rows] = propagation + 2 * params.access_delay_s
            jitter[rows] = (
                params.jitter_mean_s + params.jitter_fraction_of_propagation * propagation
            )
        return base, jitter


def _judge(
    batch: _Batch, verdicts: FleetVerdicts, world: _World
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Verdict codes and the rule that decided each (UNDECIDED: the real appraiser)."""
    bound = batch.bound_km
    licensed = batch.truth == 0
    rules = verdicts.by_reach(batch.region, batch.landmark, bound, licensed)
    open_ = np.flatnonzero(rules == Shortcut.UNDECIDED)
    if open_.size:
        pairs, back = np.unique(
            np.stack([batch.place[open_], batch.region[open_]], axis=1), axis=0, return_inverse=True
        )
        qlat = np.full(len(pairs), np.nan)
        qlon = np.full(len(pairs), np.nan)
        for r in np.unique(pairs[:, 1]).tolist():
            rows = pairs[:, 1] == r
            places = pairs[rows, 0]
            qlat[rows], qlon[rows] = verdicts.probes(
                world.sites.lat[places],
                world.sites.lon[places],
                r,
                np.isin(world.sites.code[places], sorted(world.region_codes[r])),
            )
        covered = verdicts.by_probe(
            batch.region[open_],
            batch.landmark[open_],
            bound[open_],
            licensed[open_],
            qlat[back.ravel()],
            qlon[back.ravel()],
        )
        rules[open_[covered]] = Shortcut.INCONCLUSIVE_BY_PROBE
    codes = shortcut_verdict(rules)
    for i in np.flatnonzero(rules == Shortcut.UNDECIDED).tolist():
        region = world.regions[int(batch.region[i])]
        codes[i] = CODE_OF[verdicts.exact(batch.bounds(i, world), region)]
    return codes, rules


def _count(
    counts: dict[str, Counter[str]], batch: _Batch, codes: npt.NDArray[np.int8], world: _World
) -> None:
    """Add a chunk's verdicts under ``licensed/<region>`` or ``diverted/<strategy>``."""
    regions = len(world.regions)
    truth = np.where(batch.truth == 0, batch.region, regions + batch.truth - 1)
    pairs, n = np.unique(np.stack([truth, codes.astype(np.int64)]), axis=1, return_counts=True)
    for (label, code), c in zip(pairs.T.tolist(), n.tolist(), strict=True):
        name = (
            f"{LICENSED}/{world.regions[label]}"
            if label < regions
            else world.truth_labels[label - regions + 1]
        )
        counts.setdefault(name, Counter())[VERDICT_CODES[code].value] += c


def codes_at(
    countries: Countries, lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]
) -> npt.NDArray[np.str_]:
    """The one country whose land holds each point; '' at sea or on a border."""
    points = shapely.points(lon, lat)
    point, piece = countries.tree.query(points, predicate="intersects")
    code = countries.piece_code[piece]
    out = [""] * int(np.asarray(lat).shape[0])
    first: dict[int, int] = {}
    for p, c in zip(point.tolist(), code.tolist(), strict=True):
        if first.setdefault(p, c) != c:
            first[p] = -1
    for p, c in first.items():
        out[p] = countries.code_at(c) if c >= 0 else ""
    return np.asarray(out, dtype=str)


def _city_sites(countries: Countries, codes: set[str]) -> _Sites:
    places = populated_places().in_countries(codes)
    code = codes_at(countries, places.lat, places.lon)
    keep = code != ""
    return _Sites(
        names=tuple(n for n, k in zip(places.names, keep.tolist(), strict=True) if k),
        lat=places.lat[keep],
        lon=places.lon[keep],
        code=code[keep],
        weight=places.population[keep],
    )


def _grid_sites(countries: Countries, codes: set[str], step: float) -> _Sites:
    boxes = np.asarray([countries.get(c).shape.bounds for c in sorted(codes) if countries.has(c)])
    if not boxes.size:
        raise ConfigError(f"no country shapes for {', '.join(sorted(codes))}")
    lon0, lat0 = boxes[:, 0].min(), boxes[:, 1].min()
    lon1, lat1 = boxes[:, 2].max(), boxes[:, 3].max()
    lats = np.arange(math.floor(lat0 / step) * step + step / 2, lat1, step)
    lons = np.arange(math.floor(lon0 / step) * step + step / 2, lon1, step)
    lat, lon = (a.ravel() for a in np.meshgrid(lats, lons, indexing="ij"))
    code = codes_at(countries, lat, lon)
    keep = np.isin(code, sorted(codes))
    return _Sites(
        names=tuple(f"grid {a:.2f},{b:.2f}" for a, b in zip(lat[keep], lon[keep], strict=True)),
        lat=lat[keep],
        lon=lon[keep],
        code=code[keep],
        weight=np.cos(np.radians(lat[keep])),
    )
