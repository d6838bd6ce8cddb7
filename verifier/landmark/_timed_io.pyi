"""The landmark's timed receive and send in C (``_timed_io.c``); see ``server.py``."""

from geoattest.verifier.landmark.clock import Bracket

def bind_bracket(bracket: type[Bracket], /) -> None:
    """The tuple subclass the calls build their clock readings as."""

def receive(
    fd: int, size: int, until_ns: int, /
) -> tuple[bytes, tuple[str, int] | tuple[str, int, int, int], Bracket, int | None] | None:
    """One datagram with its source, the readings right after its receive and its kernel
    stamp; ``until_ns`` 0 blocks (``SO_RCVTIMEO`` applies), otherwise polls until then
    (None if nothing came)."""

def send_timed(
    fd: int,
    family: int,
    datagram: bytes,
    peer: tuple[str, int] | tuple[str, int, int, int],
    key: int,
    stamped: bool,
    /,
) -> tuple[Bracket, int, int, int, Bracket | None]:
    """A challenge's send: (sent, errno, next key, transmit stamp or 0, after or None)."""
