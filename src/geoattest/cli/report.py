"""``geoattest report``: a Markdown report with maps for a named deployment.

::

    geoattest report                                   # the demo's landmarks and licences
    geoattest report --deployment southeast-asia.toml --out-dir sea-report
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoattest.cli.plan import RESOLUTION_HELP, stage_progress, writable_dir


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
    fleet_devices: Annotated[
        int,
        typer.Option(help="Chips in the report's fleet study (0 leaves the study out)."),
    ] = 20_000,
) -> None:
    """Coverage, landmark plan and a fleet study for a deployment, as Markdown with maps."""
    from geoattest.errors import ConfigError  # noqa: PLC0415
    from geoattest.plan.deployment import (  # noqa: PLC0415
        check_budget,
        default_deployment,
        example_deployment_path,
        load_deployment,
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
    directory = writable_dir(out_dir, "--out-dir")
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
