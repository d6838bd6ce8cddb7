"""The ``geoattest`` command.

Every command prints a one-line error and exits non-zero on bad input: errors that
geoattest raises on purpose (:class:`geoattest.errors.GeoattestError`) and operating
system errors on paths are caught here, never shown as tracebacks.
"""

from __future__ import annotations

import sys

import typer

from geoattest.cli import geo, pki
from geoattest.errors import GeoattestError

app = typer.Typer(
    name="geoattest",
    help="Chip location attestation: landmark-timed proofs that a chip is where its licence says.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(pki.ca_app, name="ca")
app.add_typer(pki.device_app, name="device")
app.add_typer(pki.landmark_app, name="landmark")
app.add_typer(pki.verifier_app, name="verifier")
app.add_typer(geo.app, name="geo")

EXIT_ERROR = 2


def main() -> None:
    try:
        app()
    except GeoattestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error:{where}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
