"""Timed rounds over real UDP sockets, one landmark or several, from the answering side.

The agent runs them with its device key; a landmark auditing its peers runs them with its
own key, so both parties share this driver from the core. :func:`run_round` drives
:class:`~geoattest.protocol.round.AgentRound` over a socket connected to one landmark.
The landmark's clock times every exchange, so the answering side's path is the RTT: it is
kept to ``recv``, the state machine's decode-hash-encode, and ``send`` on a connected
socket, with no ``poll`` before the read (the receive timeout is the kernel's
``SO_RCVTIMEO``, not Python's).

Loss: the landmark replaces a lost challenge and re-sends Complete; the agent re-sends
its Open (nothing heard yet) or its Close (no receipt yet) when the landmark has been
silent for ``resend_s``. Anything that is not a datagram for this round is ignored, and
the round ends with a receipt or a :class:`RoundFailedError` by ``deadline_s``.

Several landmarks: :func:`run_rounds` runs them one after another by default. Run
concurrently (one thread each), two answers due at the same moment queue for the
interpreter lock and the later one's RTT grows by the other's answer time; on loopback
that is measurable (BENCHMARKS.md, "Timing path"), over the Internet's millisecond
RTTs it is rare and small, and it only ever loosens a bound.

Example::

    secrets = RoundSecrets(os.urandom)      # one per agent: r is never reused
    receipt = run_round(endpoint, "dev-1", device_signer, secrets)
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from geoattest.crypto import Signer, VerifyingKey
from geoattest.errors import GeoattestError, Reason, RoundError, WireError
from geoattest.protocol.round import AgentRound, AgentRoundState, RoundSecrets
from geoattest.v1 import envelope_pb2
from geoattest.wire.decode import MAX_DATAGRAM_BYTES

RECEIVE_BYTES = MAX_DATAGRAM_BYTES + 1


@dataclass(frozen=True, slots=True)
class LandmarkEndpoint:
    """Where a landmark listens and the key its receipts must verify with."""

    landmark_id: str
    host: str
    port: int
    key: VerifyingKey


@dataclass(frozen=True, slots=True)
class RoundSettings:
    exchanges: int = 8
    deadline_s: float = 5.0
    """The whole round, from Open to receipt."""
    resend_s: float = 0.25
    """Silence after which the agent re-sends its Open or its Close."""


class RoundFailedError(GeoattestError):
    """A round with one landmark ended without a receipt; the reason says why."""

    def __init__(self, landmark_id: str, reason: Reason, detail: str = "") -> None:
        super().__init__(reason, f"landmark {landmark_id}: {detail}" if detail else landmark_id)
        self.landmark_id = landmark_id


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    landmark_id: str
    receipt: envelope_pb2.Envelope | None
    failure: RoundFailedError | None


def _connect(endpoint: LandmarkEndpoint, timeout_s: float) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_DGRAM
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise RoundFailedError(endpoint.landmark_id, Reason.UNREACHABLE, str(exc)) from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(address)  # the kernel drops datagrams from anyone else
    except OSError as exc:
        sock.close()
        raise RoundFailedError(endpoint.landmark_id, Reason.UNREACHABLE, str(exc)) from exc
    if sys.platform == "linux":
        seconds, micros = divmod(max(1, int(timeout_s * 1e6)), 1_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", seconds, micros))
    else:
        sock.settimeout(timeout_s)
    return sock


def run_round(
    endpoint: LandmarkEndpoint,
    device_id: str,
    signer: Signer,
    secrets: RoundSecrets,
    settings: RoundSettings = RoundSettings(),
    *,
    clock: Callable[[], float] = time.monotonic,
) -> envelope_pb2.Envelope:
    """Run one timed round with one landmark and return its checked receipt.

    Raises:
        RoundFailedError: UNREACHABLE (nothing was ever heard from the landmark),
            ROUND_TIMEOUT, ROUND_ABORTED, or the receipt's own check (bad signature,
            transcript mismatch).
        ConfigError: the settings ask for an impossible round (too many exchanges).
        RoundError: the round could not start (a repeated secret).
    """
    agent = AgentRound(
        device_id,
        endpoint.landmark_id,
        endpoint.key,
        signer,
        secret=secrets.draw(),
        exchanges=settings.exchanges,
    )
    deadline = clock() + settings.deadline_s
    sock = _connect(endpoint, settings.resend_s)
    try:
        return _drive(agent, sock, deadline, settings.resend_s, clock)
    finally:
        sock.close()


def _drive(
    agent: AgentRound,
    sock: socket.socket,
    deadline: float,
    resend_s: float,
    clock: Callable[[], float],
) -> envelope_pb2.Envelope:
    recv, send, receive = sock.recv, sock.send, agent.receive
    last_sent = agent.open()
    heard = False
    refused: GeoattestError | None = None
    resend_at = clock() + resend_s
    _send_quietly(send, last_sent)
    while True:
        try:
            data = recv(RECEIVE_BYTES)
        except (BlockingIOError, TimeoutError, ConnectionRefusedError):
            data = None
        if data is not None:
            heard = True
            try:
                reply = receive(data)
            except (WireError, RoundError) as exc:
                if agent.state is AgentRoundState.FAILED:
                    raise RoundFailedError(agent.landmark_id, exc.reason, exc.detail) from exc
                refused, reply = exc, None  # not for this round, or not now: ignore it
            if reply is not None:
                _send_quietly(send, reply)
                last_sent = reply
                resend_at = clock() + resend_s
            elif agent.state is AgentRoundState.DONE:
                assert agent.receipt is not None
                return agent.receipt
        now = clock()
        if now >= deadline:
            reason = Reason.ROUND_TIMEOUT if heard else Reason.UNREACHABLE
            why = f"; last datagram refused: {refused}" if refused else ""
            raise RoundFailedError(
                agent.landmark_id, reason, f"no receipt in state {agent.state.value}{why}"
            )
        if now >= resend_at and agent.state in (AgentRoundState.OPENED, AgentRoundState.REVEALED):
            _send_quietly(send, last_sent)
            resend_at = now + resend_s


def _send_quietly(send: Callable[[bytes], int], datagram: bytes) -> None:
    """A refused send (nothing listening yet) is loss; the deadline decides."""
    try:  # noqa: SIM105  (a try costs nothing in 3.11; suppress() builds an object per answer)
        send(datagram)
    except ConnectionRefusedError:
        pass


def run_rounds(
    endpoints: Sequence[LandmarkEndpoint],
    device_id: str,
    signer: Signer,
    secrets: RoundSecrets,
    settings: RoundSettings = RoundSettings(),
    *,
    concurrent: bool = False,
) -> list[RoundOutcome]:
    """One round with each landmark, in the order given; failures are outcomes, not raised."""

    def one(endpoint: LandmarkEndpoint) -> RoundOutcome:
        try:
            receipt = run_round(endpoint, device_id, signer, secrets, settings)
        except RoundFailedError as failure:
            return RoundOutcome(endpoint.landmark_id, None, failure)
        return RoundOutcome(endpoint.landmark_id, receipt, None)

    if not concurrent or len(endpoints) < 2:
        return [one(e) for e in endpoints]
    with ThreadPoolExecutor(len(endpoints), thread_name_prefix="round") as pool:
        return list(pool.map(one, endpoints))
