"""``geoattest sim fleet``: what a deployment proves about a whole fleet of chips.

::

    geoattest sim fleet                         # 100,000 chips, the demo's landmarks
    geoattest sim fleet --devices 1000000 --json

Exits 1 if any diverted chip was ALLOWED or a sampled verdict differs from the real
pipeline's: either is a bug, never an outcome to accept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from geoattest.bench.report import progress
from geoattest.cli.outputs import png_file
from geoattest.verdict import Verdict

app = typer.Typer(help="Fleet studies on a virtual clock.", no_args_is_help=True)

EXIT_UNSOUND = 1
SHOWN = (Verdict.ALLOWED, Verdict.INCONCLUSIVE, Verdict.OUTSIDE, Verdict.INCONSISTENT)


def _codes(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip())


@app.command("fleet")
def fleet(
    devices: Annotated[int, typer.Option(min=1, help="Chips to simulate.")] = 100_000,
    diverted: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of chips that are diverted abroad.")
    ] = 0.1,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Scenario TOML with landmarks and policy (default: the demo's)."),
    ] = None,
    regions: Annotated[
        str,
        typer.Option(help="Licensed regions, comma-separated (default: every country region)."),
    ] = "",
    destinations: Annotated[
        str, typer.Option(help="Countries diverted chips end up in, comma-separated ISO codes.")
    ] = "CN,HK,MY,RU,IR",
    strategies: Annotated[
        str,
        typer.Option(
            help="Adversary strategies for diverted chips, comma-separated: none, "
            "constant_delay, selective_delay, adaptive_delay, relay, faster_than_fibre "
            "(default: all)."
        ),
    ] = "",
    placement: Annotated[
        str,
        typer.Option(help="Where chips sit: 'cities' (population-weighted) or 'grid' (area)."),
    ] = "cities",
    grid_deg: Annotated[
        float, typer.Option(min=0.01, max=5.0, help="Grid step in degrees for --placement grid.")
    ] = 0.25,
    delay_ms: Annotated[
        float,
        typer.Option(min=0.0, help="Delay per datagram of the constant and selective strategies."),
    ] = 5.0,
    landmark_faults: Annotated[
        int,
        typer.Option(
            min=0,
            help="Lying landmark operators an ALLOWED verdict must survive "
            "(the verifier's default: 1).",
        ),
    ] = 1,
    sample: Annotated[
        int,
        typer.Option(
            min=0, help="Chips replayed through real rounds and the real pipeline as a check."
        ),
    ] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random draw.")] = 7,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="Processes to share the work (default: one per CPU, at most 8)."
        ),
    ] = None,
    map_path: Annotated[
        Path | None,
        typer.Option(
            "--map", help="Also write a PNG: per region, the share of each town's chips ALLOWED."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON object: devices, counts, false_allowed, ..."),
    ] = False,
) -> None:
    """Simulate many chips (one proof each) and count verdicts by where they really are."""
    from geoattest.demo.scenario import default_scenario_path, load_scenario  # noqa: PLC0415
    from geoattest.errors import ConfigError  # noqa: PLC0415
    from geoattest.sim.fleet import FleetConfig, Placement, Strategy, run_fleet  # noqa: PLC0415
    from geoattest.sim.replay import check_sample  # noqa: PLC0415

    try:
        chosen = tuple(Strategy(s) for s in _codes(strategies)) or tuple(Strategy)
        where = Placement(placement)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = FleetConfig(
        devices=devices,
        diverted_share=diverted,
        regions=_codes(regions),
        destinations=_codes(destinations),
        strategies=chosen,
        placement=where,
        grid_deg=grid_deg,
        seed=seed,
        sample=sample,
        delay_ms=delay_ms,
        landmark_faults=landmark_faults,
        workers=workers or min(8, os.cpu_count() or 1),
    )
    config.check()
    if map_path is not None:
        png_file(map_path, "--map")
    loaded = load_scenario(scenario or default_scenario_path())
    if landmark_faults >= loaded.quorum:
        raise ConfigError("landmark faults must be below the scenario's quorum")
    with progress("fleet", devices) as (bar, task):
        result = run_fleet(
            loaded, config, progress=lambda done, _total: bar.update(task, completed=done)
        )
    with progress("sample check", max(1, len(result.sampled))) as (bar, task):
        check_sample(loaded, result, progress=lambda done, _total: bar.update(task, completed=done))
    if map_path is not None:
        from geoattest.sim.render import render_fleet_map  # noqa: PLC0415

        render_fleet_map(map_path, result, loaded)
    summary = result.to_json()
    if as_json:
        print(json.dumps(summary))
    else:
        _print(summary)
    if not result.verified:
        raise typer.Exit(EXIT_UNSOUND)


def _print(summary: dict[str, object]) -> None:
    counts = summary["counts"]
    assert isinstance(counts, dict)
    table = Table(title=f"{summary['devices']:,} chips, {summary['scenario']}")
    table.add_column("truth", no_wrap=True)
    table.add_column("chips", justify="right")
    for verdict in SHOWN:
        table.add_column(verdict.value.lower(), justify="right")
    totals = summary["totals"]
    assert isinstance(totals, dict)
    for truth, row in [*counts.items(), *((f"all {t}", r) for t, r in totals.items())]:
        n = sum(row.values())
        if not n:
            continue
        cells = [f"{row.get(v.value, 0) / n:.1%}" for v in SHOWN]
        table.add_row(truth, f"{n:,}", *cells)
    console = Console(markup=False)
    if not console.is_terminal:
        console = Console(width=110, markup=False)  # a file or a pipe: do not squeeze it
    console.print(table)
    false_allowed = summary["false_allowed"]
    console.print(
        f"false ALLOWED (a diverted chip certified): {false_allowed}"
        + ("" if false_allowed else "  (none, as the speed of light guarantees)")
    )
    audit = summary["audit"]
    assert isinstance(audit, dict)
    console.print(
        f"checked on every chip: {audit['chips_outside_a_disk']} outside one of its disks, "
        f"{audit['table_contradictions']} contradicting the shortcuts' tables (both must be 0); "
        f"{audit['diverted_judged_by_appraiser']:,} diverted chips judged by the real "
        "appraiser, the rest by rules that can only say OUTSIDE or INCONCLUSIVE for them"
    )
    notes = summary["notes"]
    assert isinstance(notes, list)
    for note in notes:
        console.print(f"note: {note}")
    check = summary["sample_check"]
    assert isinstance(check, dict)
    console.print(
        f"sample check against the real pipeline: {check['matched']} of {check['checked']} "
        f"verdicts identical (by rule: {check['by_rule']})"
    )
    for m in check["mismatches"]:
        console.print(f"  MISMATCH {m}")
    console.print(
        f"decided by: {summary['decided_by']}; {summary['seconds']} s "
        f"({summary['devices_per_s']:,} chips/s)"
    )
