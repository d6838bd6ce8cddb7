"""PKI commands: manufacturer CA, device provisioning, landmark and verifier keys."""

from __future__ import annotations

import typer

ca_app = typer.Typer(help="The manufacturer root CA (the Endorser).", no_args_is_help=True)
device_app = typer.Typer(help="Provision and revoke devices.", no_args_is_help=True)
landmark_app = typer.Typer(help="Landmark keys and the landmark registry.", no_args_is_help=True)
verifier_app = typer.Typer(help="The verifier's result-signing key.", no_args_is_help=True)
