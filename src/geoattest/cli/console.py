"""``geoattest console``: the operator's web console over a verifier's database.

Every input is checked and the address bound before anything is served; a missing file or
a port in use is a one-line error. The console serves HTTPS to the operator role only
(``--tls``), or plain HTTP asked for explicitly (``--plaintext``) on a loopback address;
it binds to loopback unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoattest.address import parse_address
from geoattest.cli.tls import check_transport
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
    verifier_tls: Annotated[
        Path | None,
        typer.Option(
            help="The operator's TLS directory ('tls issue --role operator') for --verifier."
        ),
    ] = None,
    verifier_plaintext: Annotated[
        bool, typer.Option(help="Reach --verifier without TLS (a loopback verifier only).")
    ] = False,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to serve on (loopback by default; port 0: any).")
    ] = DEFAULT_LISTEN,
    tls: Annotated[
        Path | None,
        typer.Option(
            help="The console's TLS directory ('tls issue --role server'): HTTPS, a client "
            "certificate of the same operator CA required, the operator role only."
        ),
    ] = None,
    plaintext: Annotated[
        bool,
        typer.Option(help="Serve plain HTTP to anyone who can connect: loopback addresses only."),
    ] = False,
) -> None:
    """Serve the operator's console (fleet map, alerts, devices, landmarks, token
    inspector) until SIGTERM or SIGINT. It only reads the database."""
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from geoattest.console.app import ConsoleFiles, console_app, load_console  # noqa: PLC0415
    from geoattest.console.https import server_config  # noqa: PLC0415
    from geoattest.pki.tls import Role  # noqa: PLC0415
    from geoattest.verifier.access import HttpsAccess  # noqa: PLC0415

    host, port = parse_address(listen, "--listen", any_port=True)
    check_transport(listen, "--listen", tls, plaintext=plaintext)
    if verifier:
        parse_address(verifier, "--verifier")
        check_transport(
            verifier,
            "--verifier",
            verifier_tls,
            plaintext=verifier_plaintext,
            flag="--verifier-tls",
        )
    elif verifier_tls is not None or verifier_plaintext:
        raise ConfigError("--verifier-tls and --verifier-plaintext need --verifier")
    for path, what in ((db, "database"), (policy, "region policy"), (landmarks, "registry")):
        if not path.exists():
            raise ConfigError(f"{what} {path} does not exist")
    for directory, flag in ((tls, "--tls"), (verifier_tls, "--verifier-tls")):
        if directory is not None and not directory.is_dir():
            raise ConfigError(f"{flag} directory {directory} does not exist")
    if revocations is not None and not revocations.exists():
        raise ConfigError(f"revocation list {revocations} does not exist")
    access = HttpsAccess(tls, frozenset({Role.OPERATOR}), "use the console") if tls else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    files = ConsoleFiles(db, policy, landmarks, revocations, verifier, verifier_tls)
    app = console_app(load_console(files), access)
    sock.listen(128)  # connections wait in the backlog until uvicorn takes the socket
    bound = sock.getsockname()
    scheme = "https" if access else "http"
    typer.echo(f"console on {scheme}://{host}:{bound[1]}/")
    config = server_config(
        app, access, log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        # uvicorn drains on SIGINT or SIGTERM, then raises the signal again: a console that
        # stopped as asked exits 0, as the other serving commands do.
        if not server.should_exit:
            raise
