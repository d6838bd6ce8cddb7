"""``geoattest report``: a Markdown report with maps for a named deployment.

::

    geoattest report                                   # the demo's landmarks and licences
    geoattest report --deployment southeast-asia.toml --out-dir sea-report
    geoattest report --brief --deployment example      # BRIEF.html for decision makers
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from geoattest.cli.outputs import writable_dir
from geoattest.cli.plan import RESOLUTION_HELP, stage_progress
from geoattest.cli.plan_cost import Faults


def report(
    deployment: Annotated[
        Path | None,
        typer.Option(
            help="Deployment TOML: a demo scenario file, optionally with a [plan] table "
            "(default: the demo's landmarks and licences; 'example' for the shipped "
            "Southeast Asia deployment with 12 landmarks)."
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(help="Directory for REPORT.md and its maps (created if missing)."),
    ] = Path("geoattest-report"),
    budget: Annotated[
        int | None,
        typer.Option(help="New landmarks to plan per region (default: the deployment's, 3)."),
    ] = None,
    resolution: Annotated[float | None, typer.Option(help=RESOLUTION_HELP)] = None,
    landmark_faults: Faults = None,
    fleet_devices: Annotated[
        int,
        typer.Option(
            help="Chips in the report's fleet study; with --brief, diverted chips per region "
            "and destination in its detection study (0 leaves the study out)."
        ),
    ] = 20_000,
    brief: Annotated[
        bool,
        typer.Option(
            "--brief",
            help="Write BRIEF.html instead: what the deployment proves, where, what it "
            "catches and costs, with maps and plots inside (docs/COST.md).",
        ),
    ] = False,
    costs: Annotated[
        Path | None,
        typer.Option(help="With --brief: a cost file of figures and fleet values (docs/COST.md)."),
    ] = None,
    chips: Annotated[
        str | None,
        typer.Option(help="With --brief: chips by licensed region, REGION=N,... or a total."),
    ] = None,
) -> None:
    """Coverage, landmark plan and a fleet study for a deployment, as Markdown with maps;
    with --brief, a short HTML brief with its cost, detection and sensitivity studies."""
    from geoattest.errors import ConfigError  # noqa: PLC0415
    from geoattest.plan.deployment import (  # noqa: PLC0415
        check_budget,
        default_deployment,
        example_deployment_path,
        load_deployment,
        with_landmark_faults,
    )
    from geoattest.plan.report import write_report  # noqa: PLC0415

    if budget is not None:
        check_budget(budget)
    if not 0 <= fleet_devices <= 10_000_000:
        raise ConfigError(f"--fleet-devices must be in [0, 10000000], got {fleet_devices}")
    if deployment is None:
        loaded = default_deployment()
    elif str(deployment) == "example":
        loaded = load_deployment(example_deployment_path())
    else:
        loaded = load_deployment(deployment)
    loaded = with_landmark_faults(loaded, landmark_faults, "--landmark-faults")
    if not brief and (costs is not None or chips is not None):
        raise ConfigError("--costs and --chips go with --brief")
    directory = writable_dir(out_dir, "--out-dir")
    if brief:
        path = _brief(
            loaded,
            deployment,
            directory,
            costs,
            chips,
            budget,
            resolution,
            fleet_devices,
            landmark_faults,
        )
        print(f"brief: {path}")
        return
    with stage_progress() as step:
        path = write_report(
            loaded,
            directory,
            resolution_deg=resolution,
            budget=budget,
            fleet_devices=fleet_devices,
            progress=step,
        )
    print(f"report: {path}")


def _brief(
    loaded: Any,
    named: Path | None,
    directory: Path,
    costs: Path | None,
    chips: str | None,
    budget: int | None,
    resolution: float | None,
    devices: int,
    landmark_faults: int | None,
) -> Path:
    """Write the brief; the command that reproduces it is printed at its end."""
    from geoattest.cli.plan_cost import cost_inputs  # noqa: PLC0415
    from geoattest.plan.brief import write_brief  # noqa: PLC0415

    inputs = cost_inputs(loaded, costs, chips=chips, landmark_faults=landmark_faults)
    given = [
        ("--deployment", named),
        ("--costs", costs),
        ("--chips", chips),
        ("--budget", budget),
        ("--resolution", resolution),
        ("--landmark-faults", landmark_faults),
        ("--fleet-devices", None if devices == 20_000 else devices),
    ]
    command = " ".join(
        [
            "geoattest report --brief",
            *(f"{flag} {value}" for flag, value in given if value is not None),
        ]
    )
    with stage_progress() as step:
        return write_brief(
            loaded,
            inputs,
            directory,
            resolution_deg=resolution,
            detection_devices=devices,
            budget=loaded.budget if budget is None else budget,
            command=command,
            progress=step,
        )
