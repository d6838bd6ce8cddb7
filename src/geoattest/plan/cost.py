"""What a deployment costs, from inputs that each carry a unit and a source.

Every input is a :class:`Figure`: a value, its unit, where it comes from and what kind of
figure it is (``measured`` by geoattest's benchmarks, ``quoted`` from a publication,
``derived`` by arithmetic the source shows, an ``assumption`` said to be one, or
``given`` by the user). The defaults are ``geoattest/plan/data/costs.toml``; a cost file
of the same shape overrides any of them, and refuses unknown names, other units and
negative values, so no figure enters the model without its unit and source.

:func:`price` turns the figures and what a deployment asks of its parts (:class:`Load`)
into a :class:`Cost`. Per year of 8,760 hours:

- landmark servers: a landmark whose chips ask for ``r`` rounds/s needs
  ``ceil(r / (capacity x utilisation))`` servers, at least one;
- verifier replicas: ``ceil(proofs/s / (throughput x utilisation))``, at least the minimum;
- network: proofs per year times bytes per proof, priced per GB;
- the chips' CPU: proofs per year times k rounds times CPU per round, per core-hour;
- the chips' GPU: only with a measured loss of throughput (there is none yet);
- the programme: set-up and yearly, as given.

Year 1 carries every set-up cost. The cost per chip per year spreads the total over the
chips and the years; the cost per *certifiable* chip spreads it over the honest chips the
coverage study shows ALLOWED only, which is what the money buys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from geoattest.errors import ConfigError
from geoattest.files import read_toml

HOURS_PER_YEAR = 8760
SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600
BYTES_PER_GB = 1e9
KINDS = frozenset({"measured", "quoted", "derived", "assumption", "given"})
"""What a figure rests on; ``given`` is the user's own."""
RENTED = "rented"
MOST_CHIPS = 10**10
"""The largest fleet costed: more chips than the world makes in decades."""
MOST_YEARS = 100
"""The longest horizon costed, in years."""
OWNED = "owned"


@dataclass(frozen=True)
class Spec:
    """What a figure means and which values it takes."""

    unit: str
    meaning: str
    positive: bool = False
    """Must be above zero (it divides, or a zero makes no sense)."""
    whole: bool = False
    fraction: bool = False
    """Must lie in (0, 1]."""
    required: bool = True
    most: float | None = None
    """The largest value that still describes a deployment: the model's tables are as long
    as the horizon and its sums as large as the fleet, so an absurd value is refused."""


FIGURES: Mapping[str, Spec] = {
    "landmark_rented_setup": Spec("USD/landmark server", "putting a rented landmark in service"),
    "landmark_rented_yearly": Spec("USD/landmark server/year", "a rented landmark, a year"),
    "landmark_owned_setup": Spec("USD/landmark server", "buying and installing a landmark"),
    "landmark_owned_yearly": Spec("USD/landmark server/year", "an owned landmark, a year"),
    "landmark_rounds_per_s": Spec(
        "rounds/s/landmark server", "timed rounds one landmark server serves", positive=True
    ),
    "verifier_proofs_per_s": Spec(
        "proofs/s/replica", "proofs one verifier replica appraises", positive=True
    ),
    "verifier_replica_yearly": Spec("USD/replica/year", "one verifier replica, a year"),
    "verifier_min_replicas": Spec("replicas", "fewest verifier replicas run", whole=True),
    "target_utilisation": Spec(
        "fraction of capacity", "load planned for, of measured capacity", fraction=True
    ),
    "network_price": Spec("USD/GB", "a gigabyte on the wire"),
    "agent_cpu_per_round": Spec("us CPU/round", "the agent's CPU per timed round"),
    "host_cpu_price": Spec("USD/core-hour", "a core-hour of the chip's host CPU"),
    "gpu_loss_per_round_rate": Spec(
        "fraction of GPU throughput per round/s",
        "GPU throughput lost per timed round a second (geoattest bench gpu)",
        required=False,
    ),
    "gpu_yearly_value": Spec("USD/GPU/year", "a GPU's work for a year", required=False),
    "programme_setup": Spec("USD", "programme set-up: staff, audits, ceremonies"),
    "programme_yearly": Spec("USD/year", "programme running cost"),
}
"""Every priced figure the model knows, with its unit."""

FLEET: Mapping[str, Spec] = {
    "chips_total": Spec(
        "chips", "chips, split evenly when not given by region", whole=True, most=MOST_CHIPS
    ),
    "cadence_s": Spec("s", "seconds between a chip's proofs", positive=True),
    "stale_after_cadences": Spec(
        "cadences", "missed cadences before a chip is STALE", positive=True, whole=True
    ),
    "grace_s": Spec("s", "the agent's grace period after its licence lapses"),
    "landmark_faults": Spec("landmarks", "lying landmarks an ALLOWED must survive", whole=True),
    "years": Spec("years", "the horizon costed", positive=True, whole=True, most=MOST_YEARS),
    "landmarks": Spec("rented or owned", "whether landmark servers are rented or owned"),
}
"""The deployment's own inputs: chips, cadence, fault tolerance, horizon."""

_FILE_KEYS = frozenset({"figures", "fleet"})
_FIGURE_KEYS = frozenset({"value", "unit", "source", "kind"})


@dataclass(frozen=True)
class Figure:
    """One input: its value, unit, source and kind."""

    name: str
    value: float | str
    unit: str
    source: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "kind": self.kind,
            "source": self.source,
        }


@dataclass(frozen=True)
class FleetPlan:
    """The deployment's inputs, checked, with the figures they came from."""

    chips: Mapping[str, int]
    """Chips by licensed region."""
    cadence_s: float
    stale_after_cadences: int
    grace_s: float
    landmark_faults: int
    ownership: str
    years: int
    figures: Mapping[str, Figure]
    """The :data:`FLEET` figures these values came from."""
    chips_source: str
    """Where the chips by region came from (None in :attr:`figures` when split evenly)."""
    chips_given: bool

    @property
    def inputs(self) -> tuple[Figure, ...]:
        """The fleet's inputs for a report: the chips by region when given, else the
        total that was split evenly, and every other value."""
        shown = [f for n, f in self.figures.items() if n != "chips_total" or not self.chips_given]
        if self.chips_given:
            chips = ", ".join(f"{r}={n}" for r, n in self.chips.items())
            shown.append(Figure("chips", chips, "chips by region", self.chips_source, "given"))
        return tuple(shown)

    @property
    def chips_total(self) -> int:
        return sum(self.chips.values())

    @property
    def proofs_per_chip_year(self) -> float:
        return SECONDS_PER_YEAR / self.cadence_s

    @property
    def stale_window_s(self) -> float:
        """How long an accepted proof licenses the chip (the verifier's stale window)."""
        return self.stale_after_cadences * self.cadence_s


@dataclass(frozen=True)
class CostInputs:
    """Every input of a cost study: the priced figures and the deployment's own."""

    figures: Mapping[str, Figure]
    fleet: FleetPlan

    def value(self, name: str) -> float:
        value = self.figures[name].value
        assert isinstance(value, float)
        return value

    def optional(self, name: str) -> float | None:
        return self.value(name) if name in self.figures else None

    def all_inputs(self) -> tuple[Figure, ...]:
        return (*self.figures.values(), *self.fleet.inputs)

    def replace_fleet(
        self, why: str, chips: Mapping[str, int] | None = None, **changes: Any
    ) -> CostInputs:
        """The same inputs with fleet values (or the chips by region) changed, for a
        sweep or a comparison; the changed figures say ``why``."""
        fleet = self.fleet
        raw = dict(fleet.figures)
        for name, value in changes.items():
            raw[name] = _figure(
                f"{why}: {name}",
                name,
                {"value": value, "unit": FLEET[name].unit, "source": why},
                FLEET[name],
                "given",
            )
        if chips is not None:
            return CostInputs(self.figures, _fleet_plan(raw, chips, tuple(chips), why))
        given = dict(fleet.chips) if fleet.chips_given else None
        return CostInputs(
            self.figures, _fleet_plan(raw, given, tuple(fleet.chips), fleet.chips_source)
        )

    def replace_figures(self, why: str, **values: float) -> CostInputs:
        """The same inputs with priced figures set to ``values``, each saying ``why``."""
        figures = dict(self.figures)
        for name, value in values.items():
            spec = FIGURES[name]
            figures[name] = _figure(
                f"{why}: {name}",
                name,
                {"value": value, "unit": spec.unit, "source": why},
                spec,
                "derived",
            )
        return CostInputs(figures, self.fleet)


def default_costs_path() -> Path:
    return Path(str(resources.files("geoattest.plan").joinpath("data/costs.toml")))


def load_inputs(
    regions: Sequence[str],
    path: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    options: Mapping[str, str] | None = None,
) -> CostInputs:
    """The default figures, then a cost file's, then command-line fleet values.

    Args:
        regions: the deployment's licensed regions (chips may only go there).
        path: a cost file (``[figures.NAME]`` tables, a ``[fleet]`` table), or None.
        overrides: fleet values from the command line, by :data:`FLEET` name or
            ``chips`` (a mapping of region to chips, or a total to split evenly).
        options: the command-line option that gave each override, named by its error
            (default ``--NAME``).

    Raises:
        ConfigError: unreadable file, unknown name, wrong unit, a missing source, a
            negative or out-of-range value, or chips in a region the deployment lacks.
    """
    default_path = default_costs_path()
    defaults = read_toml(default_path, "cost file")
    figures = {
        name: _figure(f"{default_path} figures.{name}", name, raw, FIGURES[name], None)
        for name, raw in _table(defaults, "figures", default_path).items()
    }
    fleet = {
        name: _figure(f"{default_path} fleet.{name}", name, raw, FLEET[name], None)
        for name, raw in _table(defaults, "fleet", default_path).items()
    }
    chips: Any = None
    chips_source = fleet["chips_total"].source
    if path is not None:
        document = read_toml(path, "cost file")
        unknown = sorted(set(document) - _FILE_KEYS)
        if unknown:
            raise ConfigError(f"cost file {path}: unknown table(s) {unknown}; use figures, fleet")
        for name, raw in _table(document, "figures", path).items():
            if name not in FIGURES:
                raise ConfigError(
                    f"cost file {path}: unknown figure {name!r} (known: {', '.join(FIGURES)})"
                )
            figures[name] = _figure(f"{path} figures.{name}", name, raw, FIGURES[name], "given")
        for name, raw in _table(document, "fleet", path).items():
            if name == "chips":
                chips, chips_source = raw, f"cost file {path}"
                continue
            if name not in FLEET:
                known = ", ".join(["chips", *FLEET])
                raise ConfigError(f"cost file {path}: unknown fleet value {name!r} ({known})")
            fleet[name] = _fleet_figure(f"cost file {path}", name, raw)
    for name, raw in (overrides or {}).items():
        source = f"command line ({(options or {}).get(name, '--' + name.replace('_', '-'))})"
        if name == "chips":
            chips, chips_source = raw, source
            continue
        fleet[name] = _fleet_figure(source, name, raw)
    missing = sorted(n for n, s in FIGURES.items() if s.required and n not in figures)
    missing += sorted(set(FLEET) - set(fleet))
    if missing:
        raise ConfigError(f"cost inputs missing: {missing}")
    if ("gpu_loss_per_round_rate" in figures) != ("gpu_yearly_value" in figures):
        raise ConfigError("give gpu_loss_per_round_rate and gpu_yearly_value together, or neither")
    if chips is not None:
        parsed = _chips(chips, regions, chips_source)
        if isinstance(parsed, int):
            fleet["chips_total"] = Figure(
                "chips_total", float(parsed), "chips", chips_source, "given"
            )
            chips = None
        else:
            chips = parsed
    return CostInputs(figures, _fleet_plan(fleet, chips, tuple(regions), chips_source))


def _fleet_plan(
    raw: Mapping[str, Figure],
    chips: Mapping[str, int] | None,
    regions: tuple[str, ...],
    chips_source: str,
) -> FleetPlan:
    def number(name: str) -> float:
        value = raw[name].value
        assert isinstance(value, float)
        return value

    given = chips is not None
    by_region = dict(chips) if chips is not None else _split(int(number("chips_total")), regions)
    if not sum(by_region.values()):
        raise ConfigError("the fleet has no chips")
    if sum(by_region.values()) > MOST_CHIPS:
        raise ConfigError(f"{chips_source}: at most {MOST_CHIPS:g} chips in all")
    return FleetPlan(
        chips=by_region,
        cadence_s=number("cadence_s"),
        stale_after_cadences=int(number("stale_after_cadences")),
        grace_s=number("grace_s"),
        landmark_faults=int(number("landmark_faults")),
        ownership=str(raw["landmarks"].value),
        years=int(number("years")),
        figures=dict(raw),
        chips_source=chips_source,
        chips_given=given,
    )


def _split(total: int, regions: Sequence[str]) -> dict[str, int]:
    """``total`` chips over ``regions``, as evenly as whole chips allow."""
    if not regions:
        raise ConfigError("the deployment licenses no region to put chips in")
    share, extra = divmod(total, len(regions))
    return {r: share + (1 if i < extra else 0) for i, r in enumerate(regions)}


def _chips(raw: Any, regions: Sequence[str], where: str) -> int | dict[str, int]:
    """Chips as a total (split later) or by region; each region must be licensed."""
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.isdigit():
            raw = int(raw)
        else:
            pairs = {}
            for item in raw.split(","):
                region, sep, count = item.partition("=")
                if not sep or not count.strip().lstrip("-").isdigit():
                    raise ConfigError(
                        f"{where}: chips must be REGION=N,... or a total, got {item!r}"
                    )
                pairs[region.strip()] = int(count)
            raw = pairs
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw <= 0:
            raise ConfigError(f"{where}: chips must be above 0, got {raw}")
        return raw
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: chips must be a table of chips by region, or a total")
    out = {}
    for region, count in raw.items():
        if region not in regions:
            raise ConfigError(
                f"{where}: region {region!r} is not licensed by this deployment "
                f"({', '.join(regions)})"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"{where}: chips in {region} must be a whole number >= 0")
        out[region] = count
    return out


def _fleet_figure(where: str, name: str, raw: Any) -> Figure:
    """A fleet value from a cost file or the command line: a plain value or a table."""
    if name not in FLEET:
        raise ConfigError(f"{where}: unknown fleet value {name!r}")
    if isinstance(raw, dict):
        return _figure(f"{where} fleet.{name}", name, raw, FLEET[name], "given")
    spec = FLEET[name]
    return _figure(
        f"{where} fleet.{name}",
        name,
        {"value": raw, "unit": spec.unit, "source": where},
        spec,
        "given",
    )


def _figure(where: str, name: str, raw: Any, spec: Spec, kind: str | None) -> Figure:
    """Check one ``{value, unit, source[, kind]}`` table against its spec."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table with value, unit and source")
    unknown = sorted(set(raw) - _FIGURE_KEYS)
    missing = sorted({"value", "unit", "source"} - set(raw))
    if unknown or missing:
        raise ConfigError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}")
    if raw["unit"] != spec.unit:
        raise ConfigError(
            f"{where}: unit {raw['unit']!r} is not {spec.unit!r} (nothing is converted)"
        )
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: source must say where the figure comes from")
    figure_kind = raw.get("kind", kind)
    if figure_kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {sorted(KINDS)}, got {figure_kind!r}")
    value = raw["value"]
    if name == "landmarks":
        if value not in (RENTED, OWNED):
            raise ConfigError(f"{where}: must be {RENTED!r} or {OWNED!r}, got {value!r}")
        return Figure(name, value, spec.unit, source.strip(), figure_kind)
    return Figure(name, _check_number(where, value, spec), spec.unit, source.strip(), figure_kind)


def _check_number(where: str, value: Any, spec: Spec) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: value must be a number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where}: value must not be negative, got {value!r}")
    if spec.positive and value == 0:
        raise ConfigError(f"{where}: value must be above 0")
    if spec.whole and value != int(value):
        raise ConfigError(f"{where}: value must be a whole number, got {value!r}")
    if spec.most is not None and value > spec.most:
        raise ConfigError(f"{where}: value must be at most {spec.most:g}, got {value!r}")
    if spec.fraction and not 0 < value <= 1:
        raise ConfigError(f"{where}: value must be in (0, 1], got {value!r}")
    return float(value)


def _table(document: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    table = document.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"cost file {path}: [{key}] must be a table")
    return table


# --- the arithmetic -------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What a deployment's chips ask of its parts, before any price."""

    landmark_ids: tuple[str, ...]
    chips_per_landmark: tuple[float, ...]
    """Chips that measure each landmark (each chip measures ``landmarks_per_chip``)."""
    landmarks_per_chip: int
    bytes_per_proof: int
    """Every byte one proof puts on the wire: its rounds' datagrams and the proof."""


@dataclass(frozen=True)
class Part:
    """One part of the cost: set-up (year 1) and yearly, and what is bought."""

    name: str
    setup: float
    yearly: float
    quantity: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "setup_usd": self.setup,
            "yearly_usd": self.yearly,
            "quantity": self.quantity,
        }


@dataclass(frozen=True)
class Cost:
    """A deployment priced: its parts, totals, and what each chip costs."""

    parts: tuple[Part, ...]
    years: int
    chips: int
    certifiable_chips: float
    landmark_servers: int
    verifier_replicas: int
    gb_per_year: float
    duty_cycle: float
    """Share of one host core the agent uses (CPU per proof over the cadence)."""
    unpriced: tuple[str, ...]
    """Costs the model knows of but has no measured figure for."""

    @property
    def setup(self) -> float:
        return sum(p.setup for p in self.parts)

    @property
    def yearly(self) -> float:
        return sum(p.yearly for p in self.parts)

    @property
    def by_year(self) -> tuple[float, ...]:
        return tuple(self.yearly + (self.setup if y == 0 else 0.0) for y in range(self.years))

    @property
    def total(self) -> float:
        return self.setup + self.yearly * self.years

    @property
    def per_chip_year(self) -> float:
        return self.total / (self.chips * self.years)

    @property
    def per_certifiable_chip_year(self) -> float | None:
        """None when no chip is certifiable: the money then buys no certification."""
        if self.certifiable_chips <= 0:
            return None
        return self.total / (self.certifiable_chips * self.years)

    def to_json(self) -> dict[str, Any]:
        return {
            "parts": [p.to_json() for p in self.parts],
            "years": self.years,
            "by_year_usd": list(self.by_year),
            "total_usd": self.total,
            "setup_usd": self.setup,
            "yearly_usd": self.yearly,
            "chips": self.chips,
            "certifiable_chips": self.certifiable_chips,
            "cost_per_chip_year_usd": self.per_chip_year,
            "cost_per_certifiable_chip_year_usd": self.per_certifiable_chip_year,
            "landmark_servers": self.landmark_servers,
            "verifier_replicas": self.verifier_replicas,
            "gb_per_year": self.gb_per_year,
            "agent_duty_cycle": self.duty_cycle,
            "unpriced": list(self.unpriced),
        }


def price(inputs: CostInputs, load: Load, certifiable: Mapping[str, float]) -> Cost:
    """The deployment's cost (see the module docstring).

    Args:
        inputs: the figures and the fleet.
        load: what the chips ask of landmarks and the network.
        certifiable: the share of each region's honest chips that the coverage study
            shows ALLOWED (every region with chips must have one).
    """
    fleet = inputs.fleet
    value = inputs.value
    utilisation = value("target_utilisation")
    rounds_capacity = value("landmark_rounds_per_s") * utilisation
    servers = sum(
        max(1, math.ceil(chips / fleet.cadence_s / rounds_capacity))
        for chips in load.chips_per_landmark
    )
    proofs_per_s = fleet.chips_total / fleet.cadence_s
    replicas = max(
        int(value("verifier_min_replicas")),
        math.ceil(proofs_per_s / (value("verifier_proofs_per_s") * utilisation)),
    )
    proofs_per_year = fleet.chips_total * fleet.proofs_per_chip_year
    gb_per_year = proofs_per_year * load.bytes_per_proof / BYTES_PER_GB
    cpu_s_per_proof = load.landmarks_per_chip * value("agent_cpu_per_round") / 1e6
    core_hours = proofs_per_year * cpu_s_per_proof / 3600
    own = fleet.ownership
    parts = [
        Part(
            f"landmarks ({own})",
            servers * value(f"landmark_{own}_setup"),
            servers * value(f"landmark_{own}_yearly"),
            f"{servers:,} servers at {len(load.landmark_ids)} sites",
        ),
        Part(
            "verifier",
            0.0,
            replicas * value("verifier_replica_yearly"),
            f"{replicas} replicas for {proofs_per_s:,.1f} proofs/s",
        ),
        Part("network", 0.0, gb_per_year * value("network_price"), f"{gb_per_year:,.0f} GB/year"),
        Part(
            "chips' host CPU",
            0.0,
            core_hours * value("host_cpu_price"),
            f"{core_hours:,.0f} core-hours/year",
        ),
    ]
    unpriced = []
    loss_rate, gpu_value = (
        inputs.optional("gpu_loss_per_round_rate"),
        inputs.optional("gpu_yearly_value"),
    )
    if loss_rate is not None and gpu_value is not None:
        loss = loss_rate * load.landmarks_per_chip / fleet.cadence_s
        parts.append(
            Part(
                "chips' GPU throughput",
                0.0,
                fleet.chips_total * loss * gpu_value,
                f"{loss:.2e} of each GPU's throughput",
            )
        )
    else:
        unpriced.append(
            "chips' GPU throughput: not measured (geoattest bench gpu has not run on a GPU); "
            "give gpu_loss_per_round_rate and gpu_yearly_value to price it"
        )
    parts.append(
        Part("programme", value("programme_setup"), value("programme_yearly"), "staff, audits")
    )
    return Cost(
        parts=tuple(parts),
        years=fleet.years,
        chips=fleet.chips_total,
        certifiable_chips=sum(n * certifiable[r] for r, n in fleet.chips.items()),
        landmark_servers=servers,
        verifier_replicas=replicas,
        gb_per_year=gb_per_year,
        duty_cycle=cpu_s_per_proof / fleet.cadence_s,
        unpriced=tuple(unpriced),
    )


def usd(value: float) -> str:
    """Dollars for people: millions above a million, three figures below ten dollars."""
    if abs(value) >= 1e6:
        return f"${value / 1e6:,.2f}M"
    if abs(value) >= 10 or value == 0:
        return f"${value:,.0f}"
    return f"${value:.3g}"


def duration(seconds: float) -> str:
    """A duration for people, in its largest two units."""
    units = (("day", 86_400), ("h", 3600), ("min", 60), ("s", 1))
    parts = []
    rest = round(seconds)
    for name, size in units:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {name}" + ("s" if name == "day" and count > 1 else ""))
    return " ".join(parts[:2]) or "0 s"


def percent(share: float) -> str:
    """A share as a percentage with two significant figures and no exponent
    (0.000038 %), for a small one as for a large one."""
    if share <= 0:
        return "0 %"
    digits = max(0, 1 - math.floor(math.log10(share * 100)))
    return f"{share * 100:.{digits}f} %"
