"""``HOST:PORT`` addresses, as flags and configuration files write them."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from geoattest.errors import ConfigError, PlaintextNotLoopbackError

MAX_PORT = 65535


class HostPort(NamedTuple):
    """A host and a port; as a tuple it is also a socket address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str, what: str = "address", *, any_port: bool = False) -> HostPort:
    """Split ``HOST:PORT`` at its last colon; ``what`` names the value in the error.

    Port 0 ("any free port") is only for an address to listen on (``any_port``).

    Raises:
        ConfigError: no host, or a port that is not a number in range.
    """
    host, sep, port = text.rpartition(":")
    lowest = 0 if any_port else 1
    if (
        not sep
        or not host
        or not (port.isascii() and port.isdigit())
        or not lowest <= int(port) <= MAX_PORT
    ):
        raise ConfigError(f"{what} {text!r} is not HOST:PORT")
    return HostPort(host, int(port))


def require_loopback(address: str, what: str) -> None:
    """Plaintext gRPC stays on this host: ``address`` must be a loopback one.

    Raises:
        PlaintextNotLoopbackError: any other host (a name other than ``localhost`` too).
        ConfigError: not ``HOST:PORT``.
    """
    host = parse_address(address, what, any_port=True).host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise PlaintextNotLoopbackError(
            f"{what} {address}: plaintext is only for loopback addresses; use TLS "
            "(a certificate from 'geoattest tls issue') to reach another host"
        )
