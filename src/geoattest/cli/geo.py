"""Geography commands for analysts."""

from __future__ import annotations

import typer

app = typer.Typer(help="Feasible regions and verdicts from landmark RTTs.", no_args_is_help=True)
