"""The published cost estimates beside geoattest's own arithmetic and measurements.

The ping-based model (``data/published.toml``) states a fleet of 3 million chips, 12 to
500 landmark servers, and totals for rented and owned landmarks at both ends. Its
per-unit inputs could not be read (``docs/COST.md`` says why), so the only inputs its
totals allow are *derived* here, for each option: a cost per landmark and a fixed part,
the line through its two totals (:func:`derive`). :func:`reproduce` then runs geoattest's
own cost arithmetic (:func:`geoattest.plan.cost.price`) with those two as its only
non-zero prices, at each end of the range; a test checks that it gives the published
totals back.

:func:`compare` puts what geoattest measures for a deployment next to what the model
assumes or leaves out: a missed diversion (10 % assumed) against the fleet study's
verdicts, every honest chip counted against the share the coverage study certifies, and
the parts it does not itemise (verifier, network, the chips' own cost) against measured
throughput and bytes.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from geoattest.plan.cost import OWNED, RENTED, Cost, CostInputs, Load, percent, price

OPTIONS = (RENTED, OWNED)


@dataclass(frozen=True)
class PingModel:
    """The ping-based model's stated figures."""

    title: str
    source: str
    chips: int
    landmarks: tuple[int, int]
    totals: Mapping[str, tuple[float, float]]
    """Total cost (USD) at the low and high landmark count, by option."""
    missed_diversion_share: float


@dataclass(frozen=True)
class Software:
    """The pure-software scheme's stated ceiling."""

    title: str
    source: str
    ceiling_usd: float


@dataclass(frozen=True)
class Linear:
    """A model's cost as a fixed part plus a cost per landmark (both derived)."""

    fixed: float
    per_landmark: float

    def total(self, landmarks: int) -> float:
        return self.fixed + self.per_landmark * landmarks


def load_published() -> tuple[PingModel, Software]:
    """The published figures, as ``data/published.toml`` states them."""
    path = resources.files("geoattest.plan").joinpath("data/published.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    ping, soft = data["ping_model"], data["software_scheme"]
    return (
        PingModel(
            title=ping["title"],
            source=ping["source"],
            chips=int(ping["chips"]),
            landmarks=(int(ping["landmarks_low"]), int(ping["landmarks_high"])),
            totals={
                o: (float(ping[f"{o}_low_usd"]), float(ping[f"{o}_high_usd"])) for o in OPTIONS
            },
            missed_diversion_share=float(ping["missed_diversion_share"]),
        ),
        Software(soft["title"], soft["source"], float(soft["ceiling_usd"])),
    )


def derive(model: PingModel) -> dict[str, Linear]:
    """Per option, the fixed part and cost per landmark through the two stated totals."""
    low, high = model.landmarks
    out = {}
    for option, (at_low, at_high) in model.totals.items():
        per = (at_high - at_low) / (high - low)
        out[option] = Linear(fixed=at_low - per * low, per_landmark=per)
    return out


def break_even(lines: Mapping[str, Linear]) -> float | None:
    """Landmarks above which owning costs less than renting (None: never)."""
    rented, owned = lines[RENTED], lines[OWNED]
    if rented.per_landmark <= owned.per_landmark:
        return None
    return (owned.fixed - rented.fixed) / (rented.per_landmark - owned.per_landmark)


@dataclass(frozen=True)
class Reproduced:
    option: str
    landmarks: int
    published_usd: float
    reproduced_usd: float
    chips: int

    def to_json(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "landmarks": self.landmarks,
            "published_usd": self.published_usd,
            "reproduced_usd": self.reproduced_usd,
            "per_chip_usd": self.reproduced_usd / self.chips,
        }


def reproduce(model: PingModel, base: CostInputs) -> list[Reproduced]:
    """The model's four totals through geoattest's cost arithmetic, from the derived
    inputs alone: one period, one server per landmark, every other price zero."""
    lines = derive(model)
    rows = []
    why = "derived from the published ping-based model's totals"
    zero = "zero: the published model does not itemise it"
    for option in OPTIONS:
        for landmarks in model.landmarks:
            inputs = (
                base.replace_figures(
                    zero,
                    verifier_replica_yearly=0.0,
                    verifier_min_replicas=0.0,
                    network_price=0.0,
                    host_cpu_price=0.0,
                    programme_yearly=0.0,
                    **{f"landmark_{option}_yearly": 0.0},
                )
                .replace_figures(
                    why,
                    programme_setup=lines[option].fixed,
                    **{f"landmark_{option}_setup": lines[option].per_landmark},
                )
                .replace_fleet(why, chips={"fleet": model.chips}, years=1, landmarks=option)
            )
            load = Load(
                landmark_ids=tuple(f"lm-{i}" for i in range(landmarks)),
                chips_per_landmark=(0.0,) * landmarks,
                landmarks_per_chip=1,
                bytes_per_proof=0,
            )
            cost = price(inputs, load, {"fleet": 1.0})
            rows.append(
                Reproduced(
                    option,
                    landmarks,
                    model.totals[option][model.landmarks.index(landmarks)],
                    cost.total,
                    model.chips,
                )
            )
    return rows


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table."""

    quantity: str
    published: str
    geoattest: str
    effect: str

    def to_json(self) -> dict[str, str]:
        return {
            "quantity": self.quantity,
            "published": self.published,
            "geoattest": self.geoattest,
            "effect": self.effect,
        }


@dataclass(frozen=True)
class Measured:
    """What geoattest measured for the deployment, as the comparison needs it."""

    name: str
    landmarks: int
    certifiable_share: float
    """Chip-weighted share of honest chips certifiable at median path stretch."""
    certifiable_share_p90: float
    diverted: int
    false_allowed: int
    outside_share: float
    """Diverted chips proven OUTSIDE, over every destination studied (None: no study)."""
    studied: bool


@dataclass(frozen=True)
class Comparison:
    model: PingModel
    software: Software
    lines: Mapping[str, Linear]
    break_even: float | None
    reproduced: tuple[Reproduced, ...]
    at_scale: Cost
    """The published fleet on the deployment's landmarks at geoattest's prices."""
    rows: tuple[Row, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": {
                "title": self.model.title,
                "source": self.model.source,
                "chips": self.model.chips,
                "landmarks": list(self.model.landmarks),
                "totals_usd": {o: list(t) for o, t in self.model.totals.items()},
                "missed_diversion_share": self.model.missed_diversion_share,
            },
            "derived": {
                o: {"fixed_usd": line.fixed, "per_landmark_usd": line.per_landmark}
                for o, line in self.lines.items()
            },
            "owning_cheaper_above_landmarks": self.break_even,
            "reproduced": [r.to_json() for r in self.reproduced],
            "published_fleet_on_this_deployment": self.at_scale.to_json(),
            "software_scheme": {
                "title": self.software.title,
                "source": self.software.source,
                "ceiling_usd": self.software.ceiling_usd,
            },
            "rows": [r.to_json() for r in self.rows],
        }


def compare(
    inputs: CostInputs, load: Load, certifiable: Mapping[str, float], measured: Measured
) -> Comparison:
    """The side-by-side: the model reproduced, then what the deployment's measurements
    change (see the module docstring)."""
    model, software = load_published()
    lines = derive(model)
    scale = model.chips / inputs.fleet.chips_total
    chips = scale_chips(inputs.fleet.chips, model.chips)
    at_scale = price(
        inputs.replace_fleet("the published model's fleet, spread as this deployment's", chips),
        Load(
            load.landmark_ids,
            tuple(c * scale for c in load.chips_per_landmark),
            load.landmarks_per_chip,
            load.bytes_per_proof,
        ),
        certifiable,
    )
    low, high = model.landmarks
    per_chip = [model.totals[o][i] / model.chips for o in OPTIONS for i in (0, 1)]
    share = measured.certifiable_share
    per_certified = (
        f"${min(per_chip) / share:,.2f} to ${max(per_chip) / share:,.2f} per certifiable chip"
        if share > 0
        else "no certifiable chip: every dollar buys denial, none certification"
    )
    cadence_h = inputs.fleet.cadence_s / 3600
    parts = {p.name: p for p in at_scale.parts}
    verifier, network, cpu = parts["verifier"], parts["network"], parts["chips' host CPU"]
    landmarks = next(p for n, p in parts.items() if n.startswith("landmarks"))
    landmark_share = (landmarks.setup + landmarks.yearly * at_scale.years) / at_scale.total
    rented_low, rented_high = model.totals[RENTED]
    against = (
        "below"
        if at_scale.total < rented_low
        else "above"
        if at_scale.total > rented_high
        else "within"
    )
    rows = [
        Row(
            "diverted chips that keep their licence",
            f"{model.missed_diversion_share:.0%} (assumed miss rate)",
            f"{measured.false_allowed} of {measured.diverted:,} simulated diverted chips "
            "ALLOWED (measured)"
            if measured.studied
            else "not studied in this run",
            "a diverted chip never stays licensed; what a deployment misses is the alert: "
            f"{measured.outside_share:.0%} are proven OUTSIDE, the rest only lose the licence"
            if measured.studied
            else "run with the detection study to measure it",
        ),
        Row(
            "honest chips certified",
            "every chip (implicit)",
            f"{share:.1%} of {measured.name}'s chips at the median path, "
            f"{measured.certifiable_share_p90:.1%} at the 90th percentile (measured)",
            f"${min(per_chip):,.2f} to ${max(per_chip):,.2f} per chip over the model's "
            f"horizon is {per_certified}",
        ),
        Row(
            "verifier for the whole fleet",
            "not itemised",
            f"{at_scale.verifier_replicas} replicas for {model.chips:,} chips at a proof "
            f"every {cadence_h:g} h, ${verifier.yearly:,.0f} a year (measured throughput)",
            f"{verifier.yearly * at_scale.years / at_scale.total:.2%} of the total",
        ),
        Row(
            "network",
            "not itemised",
            f"{at_scale.gb_per_year / 1e3:,.1f} TB a year, ${network.yearly:,.0f} a year "
            f"({load.bytes_per_proof:,} bytes per proof, from the protocol's messages)",
            f"{network.yearly * at_scale.years / at_scale.total:.2%} of the total; it "
            f"scales with cadence: a proof a minute would cost {cadence_h * 60:g} times this",
        ),
        Row(
            "the chips' own cost",
            "not itemised",
            f"the agent uses {percent(at_scale.duty_cycle)} of a host CPU core; GPU "
            "throughput loss not measured",
            f"${cpu.yearly / model.chips:.4f} of host CPU per chip a year; the GPU's "
            "loss is unpriced until geoattest bench gpu runs on a GPU",
        ),
        Row(
            "landmarks",
            f"{low} to {high}",
            f"{measured.landmarks} in {measured.name}",
            "more landmarks help only chips they become nearest to; a chip near a border "
            "needs one in its data centre (docs/PLANNING.md)",
        ),
        Row(
            "total",
            f"${model.totals[RENTED][0] / 1e6:,.2f}M to ${model.totals[RENTED][1] / 1e6:,.1f}M "
            f"rented, ${model.totals[OWNED][0] / 1e6:,.2f}M to "
            f"${model.totals[OWNED][1] / 1e6:,.1f}M owned; "
            f"the software scheme under ${software.ceiling_usd / 1e6:g}M",
            f"${at_scale.total / 1e6:,.2f}M over {at_scale.years} years for "
            f"{model.chips:,} chips on {measured.name}'s landmarks "
            f"({inputs.fleet.ownership}), "
            + (
                f"${at_scale.per_certifiable_chip_year:,.2f} per certifiable chip a year"
                if at_scale.per_certifiable_chip_year is not None
                else "no certifiable chip"
            ),
            f"{against} the published rented range; landmark servers are "
            f"{landmark_share:.0%} of it",
        ),
    ]
    return Comparison(
        model,
        software,
        lines,
        break_even(lines),
        tuple(reproduce(model, inputs)),
        at_scale,
        tuple(rows),
    )


def scale_chips(chips: Mapping[str, int], total: int) -> dict[str, int]:
    """``chips`` by region scaled to ``total``, in whole chips that add up to it."""
    have = sum(chips.values())
    out = {r: math.floor(n * total / have) for r, n in chips.items()}
    short = total - sum(out.values())
    for r in sorted(chips, key=lambda r: -chips[r])[:short]:
        out[r] += 1
    return out
