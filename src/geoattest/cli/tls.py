"""``geoattest tls``: the operator's TLS CA and the certificates of each party; and how
every client command chooses its transport (TLS, or plaintext asked for on loopback)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geoattest.address import parse_address, require_loopback
from geoattest.errors import ConfigError
from geoattest.pki.tls import DEFAULT_SERVER_HOSTS, ISSUED_ROLES, OperatorCA, Role

if TYPE_CHECKING:
    import grpc

    from geoattest.verifier.access import HttpsAccess

app = typer.Typer(
    help="The operator's TLS CA: who may talk to the verifier, and in which role.",
    no_args_is_help=True,
)

MAX_VALIDITY_DAYS = 100 * 365
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def server_host(host: str) -> str:
    """``host`` if a server certificate can name it: an IP address, or a DNS name in the
    ASCII form certificates hold (letters, digits and hyphens; ``*.`` first for a wildcard).
    Any other name would be written into a certificate no client could match.

    Raises:
        ConfigError: ``host`` is neither.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removeprefix("*.").split(".")
        if (
            len(host) > 253
            or not all(_DNS_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()
        ):
            raise ConfigError(
                f"--host {host!r} is neither an IP address nor a DNS name (ASCII letters, "
                "digits and hyphens; an internationalised name in its xn-- form)"
            ) from None
    return host


@app.command("init")
def tls_init(
    out: Annotated[Path, typer.Option(help="New (or empty) directory for tls-ca.key/.crt.")],
    name: Annotated[str, typer.Option(help="Operator name in the root certificate.")] = (
        "Example Operator"
    ),
    validity_days: Annotated[
        int, typer.Option(min=1, max=MAX_VALIDITY_DAYS, help="Root validity in days.")
    ] = 3650,
) -> None:
    """Create the operator's TLS CA (refuses an existing non-empty --out)."""
    ca = OperatorCA.create(name, dt.datetime.now(dt.UTC), dt.timedelta(days=validity_days))
    ca.save(out)
    typer.echo(f"operator TLS root written to {out}")


@app.command("issue")
def tls_issue(
    ca: Annotated[Path, typer.Option(help="TLS CA directory ('geoattest tls init').")],
    role: Annotated[
        str,
        typer.Option(
            help="server (the verifier, the console), relying-party, operator, auditor, "
            "landmark or monitor (a metrics scraper). "
            "Chips use their manufacturer's device certificate instead."
        ),
    ],
    name: Annotated[str, typer.Option(help="Who holds it (the certificate commonName).")],
    out: Annotated[Path, typer.Option(help="New (or empty) directory for key, cert, CA.")],
    host: Annotated[
        list[str] | None,
        typer.Option(
            help="A DNS name or IP address the server is reached at (repeatable; server "
            f"only; default {', '.join(DEFAULT_SERVER_HOSTS)})."
        ),
    ] = None,
    validity_days: Annotated[
        int, typer.Option(min=1, max=MAX_VALIDITY_DAYS, help="Validity in days.")
    ] = 365,
) -> None:
    """Issue a key and certificate for one party: key.pem (owner-only), cert.pem, ca.crt."""
    try:
        chosen = Role(role)
    except ValueError:
        chosen = None
    if chosen not in ISSUED_ROLES:
        names = ", ".join(r.value for r in ISSUED_ROLES)
        raise ConfigError(f"--role must be one of {names}, not {role!r}")
    assert chosen is not None
    if host and chosen is not Role.SERVER:
        raise ConfigError("--host is for a server certificate only")
    hosts = tuple(map(server_host, host or DEFAULT_SERVER_HOSTS)) if chosen is Role.SERVER else ()
    certificate = OperatorCA.load(ca).issue_to(
        out,
        chosen,
        name,
        dt.datetime.now(dt.UTC),
        hosts=hosts,
        validity=dt.timedelta(days=validity_days),
    )
    until = certificate.not_valid_after_utc.date().isoformat()
    typer.echo(f"{chosen.value} certificate for {name} (until {until}) written to {out}")


def check_transport(
    address: str, what: str, tls: Path | None, *, plaintext: bool, flag: str = "--tls"
) -> None:
    """TLS (``flag`` DIR), or plaintext asked for explicitly (its ``--plaintext`` twin) on
    loopback; never both, never neither.

    Raises:
        ConfigError: neither or both given.
        PlaintextNotLoopbackError: plaintext off this host.
    """
    plain_flag = "--verifier-plaintext" if flag.startswith("--verifier-tls") else "--plaintext"
    if (tls is None) == (not plaintext):
        raise ConfigError(
            f"give {flag} (TLS) or {plain_flag} (loopback only)"
            if tls is None
            else f"{flag} and {plain_flag} exclude each other"
        )
    if plaintext:
        require_loopback(address, what)


METRICS_TLS_HELP = (
    "A server TLS directory ('tls issue --role server') for --metrics: HTTPS, a client "
    "certificate of the same operator CA in the monitor or operator role required. "
    "Without it the metrics are plain HTTP on a loopback address."
)


def checked_metrics_address(metrics: str | None, tls: Path | None) -> str | None:
    """``--metrics`` checked before anything starts: HOST:PORT, and loopback unless
    ``--metrics-tls`` is given.

    Raises:
        ConfigError: not HOST:PORT, ``--metrics-tls`` without ``--metrics``, or a
            directory that does not exist.
        PlaintextNotLoopbackError: plain HTTP off this host.
    """
    if metrics is None:
        if tls is not None:
            raise ConfigError("--metrics-tls needs --metrics")
        return None
    address = str(parse_address(metrics, "--metrics", any_port=True))
    if tls is None:
        require_loopback(address, "--metrics (without --metrics-tls)")
    elif not tls.is_dir():
        raise ConfigError(f"--metrics-tls directory {tls} does not exist")
    return address


def metrics_access(tls: Path | None) -> HttpsAccess | None:
    """Who a metrics endpoint admits over HTTPS; None: plain HTTP."""
    from geoattest.verifier.access import HttpsAccess  # noqa: PLC0415
    from geoattest.verifier.metrics import SCRAPERS  # noqa: PLC0415

    return HttpsAccess(tls, SCRAPERS, "scrape the metrics") if tls else None


def party_credentials(tls: Path | None) -> grpc.ChannelCredentials | None:
    """A party's channel credentials from its 'tls issue' directory; None: plaintext."""
    from geoattest.pki.tls import TlsIdentity  # noqa: PLC0415
    from geoattest.wire.client import tls_credentials  # noqa: PLC0415

    if tls is not None and not tls.is_dir():
        raise ConfigError(f"TLS directory {tls} does not exist")
    return tls_credentials(TlsIdentity.load(tls)) if tls else None


def call_verifier(target: str, call: Coroutine[Any, Any, str]) -> str:
    """Run one client call; an unreachable or refusing verifier is a one-line error."""
    from geoattest.wire.client import VerifierRefused  # noqa: PLC0415

    try:
        return asyncio.run(call)
    except VerifierRefused as exc:
        raise ConfigError(f"verifier at {target}: {exc.code.name} {exc.detail}") from exc
