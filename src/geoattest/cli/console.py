"""``geoattest console``: the operator's web console over a verifier's database.

Every input is checked and the address bound before anything is served; a missing file or
a port in use is a one-line error. The console binds to loopback unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoattest.address import parse_address
from geoattest.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:8080"


def console(
    db: Annotated[Path, typer.Option(help="The verifier's SQLite database.")],
    policy: Annotated[Path, typer.Option(help="Region policy JSON (the verifier's).")],
    landmarks: Annotated[Path, typer.Option(help="Landmark registry JSON (the verifier's).")],
    revocations: Annotated[
        Path | None, typer.Option(help="Revocation list JSON (the verifier's).")
    ] = None,
    verifier: Annotated[
        str | None,
        typer.Option(help="The verifier's HOST:PORT, for its published keys (token inspector)."),
    ] = None,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to serve on (loopback by default; port 0: any).")
    ] = DEFAULT_LISTEN,
) -> None:
    """Serve the operator's console (fleet map, alerts, devices, landmarks, token
    inspector) until SIGTERM or SIGINT. It only reads the database."""
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from geoattest.console.app import ConsoleFiles, console_app, load_console  # noqa: PLC0415

    host, port = parse_address(listen, "--listen", any_port=True)
    if verifier:
        parse_address(verifier, "--verifier")
    for path, what in ((db, "database"), (policy, "region policy"), (landmarks, "registry")):
        if not path.exists():
            raise ConfigError(f"{what} {path} does not exist")
    if revocations is not None and not revocations.exists():
        raise ConfigError(f"revocation list {revocations} does not exist")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    app = console_app(load_console(ConsoleFiles(db, policy, landmarks, revocations, verifier)))
    sock.listen(128)  # connections wait in the backlog until uvicorn takes the socket
    bound = sock.getsockname()
    typer.echo(f"console on http://{host}:{bound[1]}/")
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    )
    server.run(sockets=[sock])
