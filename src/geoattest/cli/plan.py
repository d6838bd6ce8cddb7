"""``geoattest plan``: what a landmark deployment can certify, and where the next ones go.

::

    geoattest plan coverage                       # the demo's landmarks, region SG
    geoattest plan coverage --region JP --json
    geoattest plan landmarks --region DE --budget 3
    geoattest plan cost                           # cost, detection, published models
    geoattest plan cost --sweeps sweeps           # and landmarks, cadence, faults swept

See ``docs/PLANNING.md`` and ``docs/COST.md`` for what the figures mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from geoattest.cli import plan_cost
from geoattest.cli.outputs import png_file, writable_dir

app = typer.Typer(
    help="Plan landmark deployments: coverage maps, where new landmarks help most, and what "
    "a deployment costs.",
    no_args_is_help=True,
)

SCENARIO_HELP = (
    "Scenario or deployment TOML with landmarks and licences (default: the demo's; "
    "see docs/PLANNING.md)."
)
REGION_HELP = "Licensed region of the scenario's policy (default: its first region)."
RESOLUTION_HELP = (
    "Grid cell size in degrees (default: 120 cells along the longer side of the view)."
)


@contextmanager
def stage_progress() -> Iterator[Any]:
    """A progress bar on stderr whose stage and total change as the work goes on."""
    from geoattest.bench.report import progress  # noqa: PLC0415

    with progress("loading", 1) as (bar, task):

        def step(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))

        yield step


def _load(scenario: Path | None, landmark_faults: int | None) -> Any:
    """The deployment, judged at ``landmark_faults`` where given (else its own level)."""
    from geoattest.plan.deployment import (  # noqa: PLC0415
        default_deployment,
        load_deployment,
        with_landmark_faults,
    )

    deployment = default_deployment() if scenario is None else load_deployment(scenario)
    return with_landmark_faults(deployment, landmark_faults, "--landmark-faults")


def _share(value: float | None) -> str:
    return "n/a (no towns)" if value is None else f"{value:.1%}"


@app.command("coverage")
def coverage(
    scenario: Annotated[Path | None, typer.Option(help=SCENARIO_HELP)] = None,
    region: Annotated[str | None, typer.Option(help=REGION_HELP)] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="PNG map to write (default: coverage-REGION.png here)."),
    ] = None,
    resolution: Annotated[float | None, typer.Option(help=RESOLUTION_HELP)] = None,
    landmark_faults: plan_cost.Faults = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: certifiable_area_share, "
            "certifiable_population_share (median stretch), their _p90 twins, and more.",
        ),
    ] = False,
) -> None:
    """Where an honest chip would be ALLOWED, INCONCLUSIVE or OUTSIDE, on a map, and the
    certifiable share of the region's area and population at median and p90 stretch."""
    from geoattest.plan.coverage import measure  # noqa: PLC0415
    from geoattest.plan.maps import render_coverage  # noqa: PLC0415

    deployment = _load(scenario, landmark_faults)
    name = deployment.region(region)
    path = png_file(out or Path(f"coverage-{name}.png"), "--out")
    with stage_progress() as step:
        result, judge = measure(
            deployment.policy,
            name,
            deployment.landmarks,
            landmarks_per_chip=deployment.landmarks_per_chip,
            resolution_deg=resolution,
            progress=lambda done, total: step(f"judging honest chips over {name}", done, total),
            landmark_faults=deployment.landmark_faults,
        )
        step("drawing the map", 0, 1)
        render_coverage(
            path,
            result,
            deployment.policy,
            title=f"{deployment.name}: honest chips licensed to {name} "
            f"({len(deployment.landmarks)} landmarks, each chip measures its "
            f"{deployment.landmarks_per_chip} nearest)",
        )
    summary = {
        "scenario": deployment.name,
        **result.to_json(),
        "map": str(path),
        "appraised": judge.appraised,
        "inconclusive_by_witness": judge.by_witness,
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title=f"Coverage of {name}: {deployment.name}")
    table.add_column("path stretch")
    table.add_column("certifiable area", justify="right")
    table.add_column("certifiable population", justify="right")
    table.add_column("inconclusive area", justify="right")
    table.add_column("outside area", justify="right")
    for stretch_name, s in result.stretches.items():
        table.add_row(
            f"{stretch_name} (q={s.quantile:g})",
            _share(s.area_share),
            _share(s.population_share),
            _share(s.area_by_verdict["INCONCLUSIVE"]),
            _share(s.area_by_verdict["OUTSIDE"]),
        )
    console = Console(markup=False)
    console = console if console.is_terminal else Console(width=110, markup=False)
    console.print(table)
    grid, towns = result.grid, result.towns
    console.print(
        f"{int(grid.inside.sum()):,} grid cells on {name}'s land at {grid.resolution_deg:g} "
        f"degrees; {len(towns):,} towns ({float(towns.population.sum()):,.0f} people); "
        f"{judge.appraised:,} points judged by the appraiser, {judge.by_witness:,} "
        f"INCONCLUSIVE by witness; ALLOWED survives {deployment.landmark_faults} lying "
        f"landmark operator(s) (--landmark-faults); map: {path}"
    )


@app.command("landmarks")
def landmarks(
    scenario: Annotated[Path | None, typer.Option(help=SCENARIO_HELP)] = None,
    region: Annotated[str | None, typer.Option(help=REGION_HELP)] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            help="Candidate sites, TOML ([[candidates]] name, lat, lon) or JSON list "
            "(default: the deployment's [plan] candidates, else the 30 largest towns near "
            "the region and, at --landmark-faults 1 or more, a second operator beside each "
            "landmark near it)."
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(help="New landmarks to place (default: the deployment's, else 3)."),
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option(
            help="Default candidates lie within this many km of the region (default 600)."
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Directory for the before/after maps (default: plan-REGION here)."),
    ] = None,
    resolution: Annotated[float | None, typer.Option(help=RESOLUTION_HELP)] = None,
    landmark_faults: plan_cost.Faults = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: picks, before, after, ...")
    ] = False,
) -> None:
    """Greedy placement of new landmarks from candidate sites, maximising the certifiable
    share of the region's population (area for a region without towns)."""
    from geoattest.plan.deployment import (  # noqa: PLC0415
        check_budget,
        load_candidates,
        unique_ids,
    )
    from geoattest.plan.placement import default_candidates  # noqa: PLC0415

    if budget is not None:
        check_budget(budget)
    if radius is not None and not 1.0 <= radius <= 20_000.0:
        raise typer.BadParameter(f"--radius {radius} km must be in [1, 20000]")
    deployment = _load(scenario, landmark_faults)
    name = deployment.region(region)
    planned_budget = deployment.budget if budget is None else budget
    if candidates is not None:
        sites = load_candidates(candidates)
    elif deployment.candidates is not None:
        sites = deployment.candidates
    else:
        sites = default_candidates(
            deployment.policy,
            name,
            deployment.landmarks,
            radius_km=radius or deployment.candidate_radius_km,
            landmark_faults=deployment.landmark_faults,
        )
    unique_ids(deployment.landmarks, sites)
    if planned_budget > len(sites):
        raise typer.BadParameter(f"--budget {planned_budget} exceeds the {len(sites)} candidates")
    directory = writable_dir(out_dir or Path(f"plan-{name}"), "--out-dir")
    with stage_progress() as step:
        result = write_plan(deployment, name, sites, planned_budget, directory, resolution, step)
    if as_json:
        print(json.dumps(result))
        return
    print_plan(result)


def write_plan(
    deployment: Any,
    region: str,
    sites: Any,
    budget: int,
    directory: Path,
    resolution: float | None,
    step: Any,
) -> dict[str, Any]:
    """Run the search and write the before/after maps; the plan as JSON-ready data."""
    from geoattest.plan.maps import render_coverage  # noqa: PLC0415
    from geoattest.plan.placement import plan_landmarks  # noqa: PLC0415

    plan = plan_landmarks(
        deployment.policy,
        region,
        deployment.landmarks,
        sites,
        landmarks_per_chip=deployment.landmarks_per_chip,
        budget=budget,
        resolution_deg=resolution,
        progress=step,
        landmark_faults=deployment.landmark_faults,
    )
    step("drawing the maps", 0, 1)
    before = directory / f"landmarks-{region}-before.png"
    after = directory / f"landmarks-{region}-after.png"
    render_coverage(
        before,
        plan.before,
        deployment.policy,
        title=f"{region} before: {len(deployment.landmarks)} landmarks ({deployment.name})",
    )
    new = [p.site.landmark_id for p in plan.picks]
    render_coverage(
        after,
        plan.after,
        deployment.policy,
        title=f"{region} after adding {len(new)}: {', '.join(new) or 'none helped'}",
        new_landmarks=set(new),
    )
    return {
        "scenario": deployment.name,
        **plan.to_json(),
        "maps": {"before": str(before), "after": str(after)},
    }


def print_plan(result: dict[str, Any]) -> None:
    """The plan as a table of picks and a before/after line, for people."""
    console = Console(markup=False)
    console = console if console.is_terminal else Console(width=120, markup=False)
    table = Table(title=f"New landmarks for {result['region']}: {result['scenario']}")
    table.add_column("#", justify="right")
    table.add_column("site")
    table.add_column("lat, lon")
    table.add_column("population (search)", justify="right")
    table.add_column("gain", justify="right")
    table.add_column("area (search)", justify="right")
    table.add_column("gain", justify="right")
    for i, pick in enumerate(result["picks"], 1):
        table.add_row(
            str(i),
            f"{pick['id']} ({pick['name']})",
            f"{pick['lat']:.3f}, {pick['lon']:.3f}",
            _share(pick["search_population_share"]),
            _share(pick["population_gain"]),
            _share(pick["search_area_share"]),
            _share(pick["area_gain"]),
        )
    console.print(table)
    if any(pick["alone_adds_nothing"] for pick in result["picks"]):
        console.print(
            "a pick with no gain of its own is certifiable only with a later one: at "
            f"{result['landmark_faults']} lying operator(s) a chip needs that many more "
            "close landmarks of other operators (docs/PLANNING.md)"
        )
    if result["stopped_early"]:
        console.print("no remaining candidate adds any certifiable share; the search stopped")
    before, after = result["before"], result["after"]
    for key, label in (("", "median"), ("_p90", "p90")):
        console.print(
            f"{label} stretch: certifiable population "
            f"{_share(before['certifiable_population_share' + key])} -> "
            f"{_share(after['certifiable_population_share' + key])}, area "
            f"{_share(before['certifiable_area_share' + key])} -> "
            f"{_share(after['certifiable_area_share' + key])}"
        )
    console.print(
        f"{result['candidates']} candidates searched on a {result['search_resolution_deg']:g}-"
        f"degree grid in {result['search_seconds']} s; {result['seconds']} s in all; every "
        f"ALLOWED survives {result['landmark_faults']} lying landmark operator(s); "
        f"maps: {result['maps']['before']}, {result['maps']['after']}"
    )


app.command("cost")(plan_cost.cost)
