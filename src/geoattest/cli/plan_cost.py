"""``geoattest plan cost``: what a deployment costs, what it certifies and catches, and
(``--sweeps``) what each extra landmark, proof or tolerated fault buys.

::

    geoattest plan cost                                   # the demo's landmarks, 3M chips
    geoattest plan cost --chips SG=200000,JP=100000 --cadence 900 --json
    geoattest plan cost --scenario example --costs my-prices.toml
    geoattest plan cost --sweeps sweeps                   # and plots of the three sweeps

See ``docs/COST.md`` for the model, every default figure and its source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

SCENARIO_HELP = (
    "Deployment or scenario TOML (default: the demo's landmarks and licences; 'example' "
    "for the shipped Southeast Asia deployment)."
)
COSTS_HELP = (
    "Cost file (TOML): figures.NAME tables with value, unit and source, and a fleet table "
    "(default figures: docs/COST.md)."
)
CHIPS_HELP = "Chips by licensed region, REGION=N,... or a total to split evenly (default 3M)."
DESTINATIONS_HELP = "Countries diverted chips go to, comma-separated (default CN,HK,MY,RU,IR)."


def load_deployment_option(scenario: Path | None) -> Any:
    """The deployment a ``--scenario``/``--deployment`` option names."""
    from geoattest.plan.deployment import (  # noqa: PLC0415
        default_deployment,
        example_deployment_path,
        load_deployment,
    )

    if scenario is None:
        return default_deployment()
    if str(scenario) == "example":
        return load_deployment(example_deployment_path())
    return load_deployment(scenario)


def cost_inputs(
    deployment: Any,
    costs: Path | None,
    *,
    chips: str | None = None,
    cadence: float | None = None,
    landmark_faults: int | None = None,
    landmarks: str | None = None,
    years: int | None = None,
    grace: float | None = None,
) -> Any:
    """The default figures, the cost file's, then the command line's fleet values (None:
    not given)."""
    from geoattest.plan.cost import load_inputs  # noqa: PLC0415

    given = {
        "chips": chips,
        "cadence_s": cadence,
        "landmark_faults": landmark_faults,
        "landmarks": landmarks,
        "years": years,
        "grace_s": grace,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    return load_inputs(deployment.regions, costs, overrides=overrides, options=FLEET_OPTIONS)


FLEET_OPTIONS = {
    "chips": "--chips",
    "cadence_s": "--cadence",
    "landmark_faults": "--landmark-faults",
    "landmarks": "--landmarks",
    "years": "--years",
    "grace_s": "--grace",
}
"""The option that gives each fleet value on the command line, named by its errors (the
cost file's names differ: ``cadence_s`` is ``--cadence``)."""


def destination_codes(deployment: Any, text: str | None) -> tuple[str, ...]:
    """``--destinations`` checked against the policy's countries."""
    from geoattest.errors import ConfigError  # noqa: PLC0415
    from geoattest.plan.detection import DESTINATIONS  # noqa: PLC0415

    if text is None:
        return DESTINATIONS
    codes = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    if not codes:
        raise ConfigError("--destinations names no country")
    for code in codes:
        if not deployment.policy.countries.has(code):
            raise ConfigError(f"--destinations: unknown country code {code!r}")
    return codes


def run_study(
    deployment: Any,
    inputs: Any,
    *,
    resolution: float | None,
    detection_devices: int,
    destinations: tuple[str, ...],
    step: Any,
) -> Any:
    from geoattest.errors import ConfigError  # noqa: PLC0415
    from geoattest.plan.cost_study import study_cost  # noqa: PLC0415

    if not 0 <= detection_devices <= 1_000_000:
        raise ConfigError(f"--detection-devices must be in [0, 1000000], got {detection_devices}")
    return study_cost(
        deployment,
        inputs,
        resolution_deg=resolution,
        detection_devices=detection_devices,
        destinations=destinations,
        progress=step,
    )


ScenarioFile = Annotated[Path | None, typer.Option(help=SCENARIO_HELP)]
Costs = Annotated[Path | None, typer.Option(help=COSTS_HELP)]
Chips = Annotated[str | None, typer.Option(help=CHIPS_HELP)]
Cadence = Annotated[
    float | None, typer.Option(help="Seconds between a chip's proofs (default 3600).")
]
Faults = Annotated[
    int | None,
    typer.Option(
        help="Lying landmark operators an ALLOWED must survive, as 'verifier serve "
        "--landmark-faults' (default 1; below the quorum and the landmarks each chip "
        "measures)."
    ),
]
Ownership = Annotated[
    str | None, typer.Option("--landmarks", help="Landmark servers 'rented' or 'owned'.")
]
Years = Annotated[int | None, typer.Option(help="Years costed (default 5).")]
Grace = Annotated[
    float | None, typer.Option(help="The agent's grace period in seconds (default 60).")
]
Resolution = Annotated[
    float | None,
    typer.Option(help="Coverage grid cell size in degrees (default: 120 cells across a region)."),
]
DetectionDevices = Annotated[
    int,
    typer.Option(
        help="Diverted chips simulated per region and destination (0 leaves detection out)."
    ),
]
Destinations = Annotated[str | None, typer.Option(help=DESTINATIONS_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def cost(
    scenario: ScenarioFile = None,
    costs: Costs = None,
    chips: Chips = None,
    cadence: Cadence = None,
    landmark_faults: Faults = None,
    landmarks: Ownership = None,
    years: Years = None,
    grace: Grace = None,
    resolution: Resolution = None,
    detection_devices: DetectionDevices = 2_000,
    destinations: Destinations = None,
    sweeps: Annotated[
        Path | None,
        typer.Option(
            help="Also sweep landmarks, cadence and landmark faults, and draw the three "
            "plots into this directory (created if missing)."
        ),
    ] = None,
    budget: Annotated[int, typer.Option(help="With --sweeps: new landmarks tried per region.")] = 3,
    as_json: AsJson = False,
) -> None:
    """What a deployment costs by year, per chip and per certifiable chip; what share of
    diverted chips it catches and how soon; the published models beside it; with
    --sweeps, what each extra landmark, proof or tolerated fault buys."""
    from geoattest.cli.outputs import writable_dir  # noqa: PLC0415
    from geoattest.cli.plan import stage_progress  # noqa: PLC0415
    from geoattest.plan.sensitivity import sweep  # noqa: PLC0415

    deployment = load_deployment_option(scenario)
    inputs = cost_inputs(
        deployment,
        costs,
        chips=chips,
        cadence=cadence,
        landmark_faults=landmark_faults,
        landmarks=landmarks,
        years=years,
        grace=grace,
    )
    wanted = destination_codes(deployment, destinations)
    directory = None if sweeps is None else writable_dir(sweeps, "--sweeps")
    with stage_progress() as step:
        study = run_study(
            deployment,
            inputs,
            resolution=resolution,
            detection_devices=detection_devices,
            destinations=wanted,
            step=step,
        )
        if directory is not None:
            swept = sweep(study, budget=budget, progress=step)
            step("drawing the plots", 0, 1)
            plots = write_plots(directory, swept, study)
    summary = study.to_json()
    if directory is not None:
        summary["sensitivity"] = {**swept.to_json(), "plots": plots}
    if as_json:
        print(json.dumps(summary))
        return
    print_study(study)
    if directory is not None:
        print_sensitivity(swept, plots)


def write_plots(directory: Path, result: Any, study: Any) -> dict[str, str]:
    """The three sweep plots in ``directory``; their paths by sweep."""
    from geoattest.plan.cost_plots import (  # noqa: PLC0415
        plot_cadence,
        plot_faults,
        plot_landmarks,
    )

    name = study.deployment.name
    paths = {
        "landmarks": directory / "sensitivity-landmarks.png",
        "cadence": directory / "sensitivity-cadence.png",
        "faults": directory / "sensitivity-faults.png",
    }
    plot_landmarks(paths["landmarks"], result, f"{name}: what extra landmarks buy")
    plot_cadence(
        paths["cadence"],
        result,
        f"{name}: what cadence costs and buys",
        study.inputs.fleet.cadence_s,
    )
    plot_faults(paths["faults"], result, f"{name}: tolerating one lying landmark")
    return {k: str(v) for k, v in paths.items()}


def _console() -> Console:
    console = Console(markup=False)
    return console if console.is_terminal else Console(width=130, markup=False)


def print_study(study: Any) -> None:
    """The cost study as tables, for people."""
    from geoattest.plan.cost import duration, usd  # noqa: PLC0415

    console = _console()
    cost, fleet, d = study.cost, study.inputs.fleet, study.deployment
    table = Table(
        title=f"Cost of {d.name}: {cost.chips:,} chips, {len(d.landmarks)} landmarks "
        f"({fleet.ownership}), a proof every {duration(fleet.cadence_s)}, {cost.years} years"
    )
    for column in ("part", "set-up", "per year", "what"):
        table.add_column(column, justify="left" if column in ("part", "what") else "right")
    for part in cost.parts:
        table.add_row(part.name, usd(part.setup), usd(part.yearly), part.quantity)
    table.add_row("total", usd(cost.setup), usd(cost.yearly), "")
    console.print(table)
    console.print(
        "by year: "
        + "; ".join(f"year {i + 1} {usd(v)}" for i, v in enumerate(cost.by_year))
        + f"; {usd(cost.total)} in all"
    )
    shares = ", ".join(f"{r} {s:.1%}" for r, s in study.certifiable.items())
    console.print(
        f"cost per chip per year: {usd(cost.per_chip_year)}; certifiable chips: "
        f"{cost.certifiable_chips:,.0f} of {cost.chips:,} ({study.certifiable_share:.1%}: "
        f"{shares})"
    )
    per = cost.per_certifiable_chip_year
    console.print(
        "cost per certifiable chip per year: "
        + (usd(per) if per is not None else "none is certifiable: the spend buys no certificate")
    )
    for note in cost.unpriced:
        console.print(f"not priced: {note}")
    if study.detection is not None:
        _print_detection(console, study.detection)
    _print_published(console, study.comparison)
    inputs = Table(title="Inputs (docs/COST.md)")
    for column in ("input", "value", "unit", "kind", "source"):
        inputs.add_column(column, overflow="fold")
    for figure in study.inputs.all_inputs():
        value = figure.value if isinstance(figure.value, str) else f"{figure.value:,.10g}"
        inputs.add_row(figure.name, value, figure.unit, figure.kind, figure.source)
    console.print(inputs)


def _print_detection(console: Console, detection: Any) -> None:
    from geoattest.plan.cost import duration  # noqa: PLC0415

    table = Table(
        title=f"Diverted chips caught, by destination ({detection.diverted:,} simulated, "
        f"false ALLOWED: {detection.false_allowed})"
    )
    for column in (
        "destination",
        "chips",
        "denied the licence",
        "proven OUTSIDE",
        "OUTSIDE if not hiding",
    ):
        table.add_column(column, justify="left" if column == "destination" else "right")
    for row in detection.destinations:
        naive = "n/a" if row.outside_naive is None else f"{row.outside_naive:.1%}"
        table.add_row(
            row.destination, f"{row.chips:,}", f"{row.not_allowed:.1%}", f"{row.outside:.1%}", naive
        )
    console.print(table)
    timing = detection.timing
    console.print(
        f"how soon: an OUTSIDE alert within {duration(timing.alert_within_s)} of the chip's "
        f"first proof from abroad; licensed at most {duration(timing.licence_kept_s)} after "
        f"its last proof at home (a STALE alert then if it stopped proving); degraded within "
        f"{duration(timing.degraded_within_s)}"
    )
    for note in detection.notes:
        console.print(f"note: {note}")


def _print_published(console: Console, comparison: Any) -> None:
    from geoattest.plan.cost import usd  # noqa: PLC0415

    table = Table(title="The published ping-based model, reproduced from its totals (derived)")
    for column in ("landmarks", "published", "geoattest arithmetic", "per chip"):
        table.add_column(column, justify="right")
    for row in comparison.reproduced:
        table.add_row(
            f"{row.landmarks} {row.option}",
            usd(row.published_usd),
            usd(row.reproduced_usd),
            usd(row.reproduced_usd / row.chips),
        )
    console.print(table)
    lines = ", ".join(
        f"{o}: {usd(line.fixed)} fixed + {usd(line.per_landmark)} per landmark"
        for o, line in comparison.lines.items()
    )
    console.print(f"derived from its totals: {lines}")
    side = Table(title="What geoattest's measurements change")
    for column in ("quantity", "published", "geoattest", "effect"):
        side.add_column(column, overflow="fold")
    for row in comparison.rows:
        side.add_row(row.quantity, row.published, row.geoattest, row.effect)
    console.print(side)


def print_sensitivity(result: Any, plots: dict[str, str]) -> None:
    from geoattest.plan.cost import duration, usd  # noqa: PLC0415

    console = _console()
    table = Table(title="Landmarks added to every region")
    for column in (
        "added",
        "faults",
        "landmarks",
        "certifiable",
        "per year",
        "per certifiable chip",
    ):
        table.add_column(column, justify="right")
    for p in result.landmarks:
        per = p.per_certifiable_chip_year
        table.add_row(
            str(p.added),
            str(p.faults),
            str(p.landmarks),
            f"{p.certifiable_share:.1%}",
            usd(p.total_per_year),
            "none certifiable" if per is None else usd(per),
        )
    console.print(table)
    for region in result.regions:
        needed = region.needed_at_one_fault()
        console.print(
            f"{region.region}: {region.in_region} landmark(s) on its land; at 1 fault the same "
            "share needs " + (f"{needed}" if needed is not None else "more than this sweep tried")
        )
    cadence = Table(title="Cadence")
    for column in (
        "proof every",
        "OUTSIDE alert",
        "degraded",
        "TB/year",
        "replicas",
        "servers",
        "per year",
    ):
        cadence.add_column(column, justify="right")
    for p in result.cadence:
        cadence.add_row(
            duration(p.cadence_s),
            duration(p.timing.alert_within_s),
            duration(p.timing.degraded_within_s),
            f"{p.gb_per_year / 1e3:,.1f}",
            str(p.verifier_replicas),
            str(p.landmark_servers),
            usd(p.total_per_year),
        )
    console.print(cadence)
    console.print("plots: " + ", ".join(plots.values()))
