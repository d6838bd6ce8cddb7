"""``geoattest demo``: the whole system on this machine."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from geoattest.cli.outputs import png_file


def demo(
    duration: Annotated[
        float, typer.Option(min=0, max=7 * 86400, help="Seconds to run (0: until Ctrl-C).")
    ] = 60.0,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Scenario TOML (default: the shipped one; copy it to edit)."),
    ] = None,
    cadence: Annotated[
        float | None,
        typer.Option(min=0.5, max=86400, help="Seconds between proofs (overrides the scenario)."),
    ] = None,
    map_path: Annotated[
        Path, typer.Option("--map", help="PNG map of the feasible regions, written at the end.")
    ] = Path("geoattest-demo-map.png"),
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Directory for keys, database and logs, kept at the end (default: a new "
            "temporary one, removed at the end unless --keep)."
        ),
    ] = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the temporary workspace and print where it is."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per verdict, then a summary line.")
    ] = False,
) -> None:
    """Start a verifier, landmarks, the network emulator and simulated chips; show verdicts."""
    from geoattest.demo.run import default_workdir, run_demo  # noqa: PLC0415
    from geoattest.demo.scenario import default_scenario_path, load_scenario  # noqa: PLC0415
    from geoattest.errors import ConfigError  # noqa: PLC0415

    loaded = load_scenario(scenario or default_scenario_path())
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        raise ConfigError(f"workdir {workdir} is not empty")
    png_file(map_path, "--map")
    root = workdir or default_workdir()
    kept = keep or workdir is not None
    try:
        run_demo(
            loaded,
            duration_s=duration,
            root=root,
            out=sys.stdout,
            as_json=as_json,
            map_path=map_path,
            cadence_s=cadence,
            workspace_kept=kept,
        )
    finally:
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
