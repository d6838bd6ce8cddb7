"""The timed round, both sides, as state machines that never touch a socket.

Protocol (see docs/PROTOCOL.md)::

    agent                                   landmark (its own clock times each exchange)
      Open{device, commit=H(r), n}   ->
                                     <-    Retry{cookie}            (keeps no state)
      Open{device, commit, n, cookie}->    (a real socket's landmark only; see below)
                                     <-    Challenge{round, j, c_j}        timer j starts
      Response{round, j, z_j}        ->                                    timer j stops
      ... until n exchanges were timed ...
                                     <-    Complete{round, accepted c_j}
      Close{round, r, transcript sig}->    checks commit and every z_j
                                     <-    signed TimingReceipt

The landmark's server answers an Open without a valid cookie with a Retry and keeps
nothing; only an Open that carries the cookie, and so comes from someone who receives
datagrams at its source address, opens a round (see
:mod:`geoattest.verifier.landmark.dispatch`). :class:`LandmarkRound` starts after that. A
cookie stays valid for the device's later rounds from the same address for a while, so a
driver that keeps its socket sets :attr:`AgentRound.cookie` and its first Open carries it.

``r`` exists only inside the agent until Close, so no relay or helper can answer a
challenge for it: they can only add delay. The landmark sends a fresh challenge
with a fresh index when one is lost (it never re-sends a challenge), and answers
to superseded indices are ignored, so lost, late and duplicated datagrams never
shorten a measured round-trip time.

Example: a driver owns the sockets and the clocks; here the datagrams are handed across
in memory, and every answer reaches the landmark 0.2 ms after its challenge left.

>>> import os
>>> from geoattest.crypto import KeySigner
>>> device, landmark_key = KeySigner.generate(), KeySigner.generate()
>>> agent = AgentRound(
...     "chip-de-01", "lm-fra", landmark_key.verifying_key, device,
...     secret=os.urandom(32), exchanges=4,
... )
>>> landmark = LandmarkRound(
...     "lm-fra", landmark_key, decode_datagram(agent.open()).open,
...     round_id=os.urandom(16), randomness=os.urandom,
... )
>>> now_ns, unix_ns = 0, 1_767_225_600 * 10**9  # the landmark's monotonic and wall clocks
>>> datagram = landmark.next_challenge(now_ns)
>>> while (reply := agent.receive(datagram)) is not None:  # None: the receipt arrived
...     now_ns += 200_000
...     datagram = landmark.receive(reply, now_ns, unix_ns)
>>> agent.state.name, landmark.rtt_min_ns, agent.receipt is not None
('DONE', 200000, True)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from geoattest.crypto import Signer, VerifyingKey, sha256
from geoattest.errors import ConfigError, EvidenceError, Reason, RoundError, WireError
from geoattest.v1 import envelope_pb2, round_pb2
from geoattest.wire.decode import MAX_DATAGRAM_BYTES, decode
from geoattest.wire.envelope import PayloadType, open_envelope, seal

COMMIT_DOMAIN = b"geoattest/v1/commit\x00"
SECRET_BYTES = 32
CHALLENGE_BYTES = 16
"""16 random bytes: r || c_j is 48 bytes, so z_j = SHA-256(r || c_j) is one compression
block, cheap enough for a GPU responder kernel."""
ROUND_ID_BYTES = 16
ANSWER_BYTES = 32
"""z_j is one SHA-256 digest."""
MIN_EXCHANGES = 1
MAX_EXCHANGES = 32
"""Bounded so that Complete and the receipt always fit one datagram."""
MAX_ATTEMPTS_PER_EXCHANGE = 4
MAX_COOKIE_BYTES = 32
"""Longest Retry cookie an agent echoes."""

Randomness = Callable[[int], bytes]


class RoundSecrets:
    """Draws a fresh r for every round and refuses a repeat.

    With the OS's randomness a repeat never happens; the check is there so that a
    broken or predictable source fails loudly instead of letting a relay that saw an
    earlier reveal answer a later round.
    """

    def __init__(self, randomness: Randomness) -> None:
        self._randomness = randomness
        self._used: set[bytes] = set()

    def draw(self) -> bytes:
        secret = self._randomness(SECRET_BYTES)
        if len(secret) != SECRET_BYTES:
            raise RoundError(Reason.MISSING_FIELD, "randomness returned wrong length")
        fingerprint = commitment(secret)[:16]
        if fingerprint in self._used:
            raise RoundError(Reason.ROUND_SECRET_REUSED, "round secret repeated")
        self._used.add(fingerprint)
        return secret


def commitment(secret: bytes) -> bytes:
    return sha256(COMMIT_DOMAIN, secret)


def answer(secret: bytes, challenge: bytes) -> bytes:
    """z_j = SHA-256(r || c_j): only the holder of r can compute it."""
    return sha256(secret, challenge)


class Responder(Protocol):
    """What computes z_j for the round's r when it is not the CPU: a GPU responder armed
    with the same r before Open (attestor/gpu). It must return ``answer(r, c_j)``;
    a wrong answer only voids the round at the landmark."""

    def answer(self, challenge: bytes) -> bytes: ...


def transcript_payload(
    landmark_id: str, device_id: str, round_id: bytes, commit: bytes, challenges: list[bytes]
) -> bytes:
    return round_pb2.RoundTranscript(
        landmark_id=landmark_id,
        device_id=device_id,
        round_id=round_id,
        commit=commit,
        challenges=challenges,
    ).SerializeToString(deterministic=True)


def check_open(open_message: round_pb2.Open, max_exchanges: int = MAX_EXCHANGES) -> None:
    """The Open names a device, commits to a secret and asks for 1..``max_exchanges``
    (an adaptive round's ``max_exchanges`` is 0 or at least its ``exchanges``).

    Raises:
        RoundError: MISSING_FIELD.
    """
    if not open_message.device_id or len(open_message.device_id) > 128:
        raise RoundError(Reason.MISSING_FIELD, "device id missing or too long")
    if len(open_message.commit) != 32:
        raise RoundError(Reason.MISSING_FIELD, "commit must be 32 bytes")
    if not MIN_EXCHANGES <= open_message.exchanges <= max_exchanges:
        raise RoundError(Reason.MISSING_FIELD, f"exchanges must be 1..{max_exchanges}")
    if 0 < open_message.max_exchanges < open_message.exchanges:
        raise RoundError(Reason.MISSING_FIELD, "max_exchanges below exchanges")


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def _varint(value: int) -> bytes:
    if value <= 0x7F:  # a length or a round's index: one byte
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _head(key: bytes, payload_bytes: int, round_id: bytes, index: int) -> bytes:
    """A Challenge's or a Response's datagram bytes up to the payload of its field 3
    (``payload_bytes`` long): exactly the protobuf encoding of ``Datagram`` with that
    message (``key``: its field's key) without the payload."""
    fields = b"\x0a" + _varint(len(round_id)) + round_id  # round_id = 1
    if index:  # proto3 leaves a zero index out
        fields += b"\x10" + _varint(index)  # index = 2
    fields += b"\x1a" + _varint(payload_bytes)  # challenge / answer = 3
    return key + _varint(len(fields) + payload_bytes) + fields


_RESPONSE_KEY = b"\x1a"  # Datagram.response = 3
_CHALLENGE_KEY = b"\x12"  # Datagram.challenge = 2


def _template(key: bytes, payload_bytes: int) -> tuple[bytes, bytes]:
    """What :func:`_head` writes before and after a 16-byte round id and a one-byte index
    (every exchange but a round's first), written once; the answer path only joins them."""
    marker = bytes(range(1, ROUND_ID_BYTES + 1))
    before, _, after = _head(key, payload_bytes, marker, 0x7F).partition(marker + b"\x10\x7f")
    return before, after


_RESPONSE_START, _RESPONSE_END = _template(_RESPONSE_KEY, ANSWER_BYTES)
_CHALLENGE_START, _CHALLENGE_END = _template(_CHALLENGE_KEY, CHALLENGE_BYTES)
_RESPONSE_TAILS = [b"\x10" + _ONE_BYTE[index] + _RESPONSE_END for index in range(0x80)]
_CHALLENGE_TAILS = [b"\x10" + _ONE_BYTE[index] + _CHALLENGE_END for index in range(0x80)]
"""What follows the round id in a head, by one-byte index: a head is two joins."""


def response_head(round_id: bytes, index: int) -> bytes:
    """A Response datagram's bytes up to its 32-byte answer, which the agent appends: the
    answer path builds no message while a challenge waits. The bytes are exactly the
    protobuf encoding of ``Datagram(response=Response(round_id, index, answer))``."""
    if 0 < index <= 0x7F and len(round_id) == ROUND_ID_BYTES:
        return _RESPONSE_START + round_id + _RESPONSE_TAILS[index]
    return _head(_RESPONSE_KEY, ANSWER_BYTES, round_id, index)


def challenge_head(round_id: bytes, index: int) -> bytes:
    """A Challenge datagram's bytes up to its 16 random bytes: exactly the protobuf encoding
    of ``Datagram(challenge=Challenge(round_id, index, challenge))`` without them. Bytes
    that are this head and 16 more decode to that challenge and nothing else, so the agent
    reads an expected challenge by comparing bytes instead of decoding them."""
    if 0 < index <= 0x7F and len(round_id) == ROUND_ID_BYTES:
        return _CHALLENGE_START + round_id + _CHALLENGE_TAILS[index]
    return _head(_CHALLENGE_KEY, CHALLENGE_BYTES, round_id, index)


def decode_datagram(data: bytes) -> round_pb2.Datagram:
    return decode(round_pb2.Datagram, data, limit=MAX_DATAGRAM_BYTES)


def _encode(**kind: object) -> bytes:
    return round_pb2.Datagram(**kind).SerializeToString()  # type: ignore[arg-type]


class AgentRoundState(Enum):
    """Where the agent's side of one round stands."""

    OPENED = "opened"
    """Open sent; no challenge seen yet."""
    ANSWERING = "answering"
    """Answering challenges; r is still secret."""
    REVEALED = "revealed"
    """Close sent: r is public and no further challenge is answered."""
    DONE = "done"
    """A valid receipt arrived."""
    FAILED = "failed"
    """The landmark aborted or sent a receipt that does not check."""


class AgentRound:
    """The agent's side of one timed round with one landmark.

    The agent never reveals r before the landmark reports every exchange timed,
    answers no challenge after revealing it, and signs only a transcript whose
    challenges it actually answered.

    Adaptive: with ``max_exchanges`` above ``exchanges`` and ``extend_above_ns`` set, the
    landmark times more exchanges (up to ``max_exchanges``) while its best is above
    ``extend_above_ns``; the agent accepts a Complete listing anything from ``exchanges``
    to ``max_exchanges`` challenges it answered.
    """

    def __init__(
        self,
        device_id: str,
        landmark_id: str,
        landmark_key: VerifyingKey,
        signer: Signer,
        *,
        secret: bytes,
        exchanges: int,
        max_exchanges: int = 0,
        extend_above_ns: int = 0,
        responder: Responder | None = None,
    ) -> None:
        if len(secret) != SECRET_BYTES:
            raise RoundError(Reason.MISSING_FIELD, f"round secret must be {SECRET_BYTES} bytes")
        if not MIN_EXCHANGES <= exchanges <= MAX_EXCHANGES:
            raise ConfigError(f"exchanges must be 1..{MAX_EXCHANGES}")
        if max_exchanges and not exchanges <= max_exchanges <= MAX_EXCHANGES:
            raise ConfigError(f"max_exchanges must be 0 or {exchanges}..{MAX_EXCHANGES}")
        if extend_above_ns < 0:
            raise ConfigError("extend_above_ns must not be negative")
        self.device_id = device_id
        self.landmark_id = landmark_id
        self._landmark_key = landmark_key
        self._signer = signer
        self._secret = secret
        self._responder = responder
        self.commit = commitment(secret)
        self.exchanges = exchanges
        self.max_exchanges = max(exchanges, max_exchanges)
        self.extend_above_ns = extend_above_ns if self.max_exchanges > exchanges else 0
        self.state = AgentRoundState.OPENED
        self.round_id: bytes | None = None
        self.cookie = b""
        """The landmark's cookie the Open carries: the Retry's, or one a driver kept from an
        earlier round over the same socket (if it is no longer valid, the landmark answers
        a Retry with a fresh one)."""
        self._answered: set[bytes] = set()
        self._response_heads: dict[int, bytes] = {}
        """A Response's bytes up to its answer, by challenge index (:meth:`prepare`)."""
        self._challenge_heads: dict[bytes, int] = {}
        """The expected challenges' bytes up to their random bytes, to their index; only
        while the round is answering (a challenge read by its head needs no other check)."""
        self._highest_index = -1
        self._prepared_through = -1
        self._hash_prefix = hashlib.sha256(secret)
        """SHA-256 of r, copied for each answer: z_j = SHA-256(r || c_j) hashes only c_j."""
        self._transcript_digest: bytes | None = None
        self._close: bytes | None = None
        self._closed_challenges: list[bytes] = []
        self.receipt: envelope_pb2.Envelope | None = None
        self.rtt_min_ns: int | None = None
        """The receipt's rtt_min, once it arrived."""
        self.failure: Reason | None = None

    def open(self) -> bytes:
        adaptive = self.extend_above_ns > 0
        return _encode(
            open=round_pb2.Open(
                device_id=self.device_id,
                commit=self.commit,
                exchanges=self.exchanges,
                cookie=self.cookie,
                max_exchanges=self.max_exchanges if adaptive else 0,
                extend_above_ns=self.extend_above_ns,
            )
        )

    def receive(self, data: bytes) -> bytes | None:
        """Consume one datagram from the landmark; return the datagram to send, if any.

        Raises:
            WireError: the bytes are not a datagram.
            RoundError: the datagram is not acceptable now; the round's state is
                unchanged unless the error says the round failed.
        """
        index = self._challenge_heads.get(data[:-CHALLENGE_BYTES])
        if index is not None:  # an expected challenge: this round's, while answering
            return self._respond(self._response_heads[index], data[-CHALLENGE_BYTES:], index)
        datagram = decode_datagram(data)
        kind = datagram.WhichOneof("kind")
        if kind == "challenge":
            return self._on_challenge(datagram.challenge)
        if kind == "retry":
            return self._on_retry(datagram.retry)
        if kind == "complete":
            return self._on_complete(datagram.complete)
        if kind == "receipt":
            self._on_receipt(datagram.receipt)
            return None
        if kind == "abort":
            self._check_round(datagram.abort.round_id)
            self._fail(Reason.ROUND_ABORTED)
            raise RoundError(Reason.ROUND_ABORTED, datagram.abort.reason[:200])
        raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"agent does not accept {kind}")

    def _check_round(self, round_id: bytes) -> None:
        if self.round_id is None or not hmac.compare_digest(round_id, self.round_id):
            raise RoundError(Reason.ROUND_UNKNOWN, "datagram for another round")

    def _on_retry(self, retry: round_pb2.Retry) -> bytes:
        """The landmark wants the Open again with its cookie; nothing else changes."""
        if self.state is not AgentRoundState.OPENED:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "retry after the round started")
        if not 0 < len(retry.cookie) <= MAX_COOKIE_BYTES:
            raise RoundError(Reason.MISSING_FIELD, "cookie missing or too long")
        self.cookie = bytes(retry.cookie)
        return self.open()

    def _on_challenge(self, challenge: round_pb2.Challenge) -> bytes:
        if len(challenge.challenge) != CHALLENGE_BYTES or len(challenge.round_id) != ROUND_ID_BYTES:
            raise RoundError(Reason.MISSING_FIELD, "challenge or round id of wrong length")
        return self._answer(bytes(challenge.round_id), challenge.index, bytes(challenge.challenge))

    def _answer(self, round_id: bytes, index: int, challenge: bytes) -> bytes:
        if self.state in (AgentRoundState.REVEALED, AgentRoundState.DONE):
            raise RoundError(Reason.ROUND_SECRET_REVEALED, "secret already revealed")
        if self.state is AgentRoundState.FAILED:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "round failed")
        head = self._response_heads.get(index) or response_head(round_id, index)
        if self.state is AgentRoundState.OPENED:
            response = self._respond(head, challenge, index)  # an error leaves it unopened
            self.round_id = round_id
            self.state = AgentRoundState.ANSWERING
            return response
        self._check_round(round_id)
        return self._respond(head, challenge, index)

    def _respond(self, head: bytes, challenge: bytes, index: int) -> bytes:
        """The Response to challenge ``index`` of this round (``head``: its bytes up to the
        answer). The caller checked the round and its state, or :meth:`prepare` did: its
        heads are kept only while the round is answering."""
        if len(self._answered) >= MAX_EXCHANGES * MAX_ATTEMPTS_PER_EXCHANGE:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "too many challenges")
        if self._responder is None:
            digest = self._hash_prefix.copy()
            digest.update(challenge)
            z = digest.digest()
        else:  # an error here (RoundError) leaves the round as it was
            z = self._responder.answer(challenge)
            if len(z) != ANSWER_BYTES:
                raise RoundError(Reason.MISSING_FIELD, f"answer must be {ANSWER_BYTES} bytes")
        self._answered.add(challenge)
        self._highest_index = max(self._highest_index, index)
        return head + z

    @property
    def highest_index(self) -> int:
        """The highest index of a challenge answered; -1 before the first."""
        return self._highest_index

    def prepare(self) -> None:
        """Build, between exchanges (off the landmark's clock), the bytes that the next
        challenges' answers need: their heads (:func:`challenge_head`, so they are read
        without decoding) and their Responses' heads. The landmark numbers its challenges
        in order, a replacement for a lost one included, so the next two indices are
        prepared; any other challenge is decoded in full."""
        through = self._highest_index + 2
        prepared = self._prepared_through
        round_id = self.round_id
        if through <= prepared or self.state is not AgentRoundState.ANSWERING or not round_id:
            return
        for index in range(max(prepared, self._highest_index) + 1, through + 1):
            self._response_heads[index] = response_head(round_id, index)
            self._challenge_heads[challenge_head(round_id, index)] = index
        self._prepared_through = through

    def _on_complete(self, complete: round_pb2.Complete) -> bytes:
        if self.state is AgentRoundState.REVEALED and self._close is not None:
            self._check_round(complete.round_id)
            if list(complete.challenges) != self._closed_challenges:
                raise RoundError(Reason.ROUND_UNKNOWN_CHALLENGE, "complete differs after reveal")
            return self._close  # our Close was lost: the same bytes again, nothing new revealed
        if self.state is not AgentRoundState.ANSWERING:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"complete in state {self.state}")
        self._check_round(complete.round_id)
        challenges = list(complete.challenges)
        if not self.exchanges <= len(challenges) <= self.max_exchanges:
            raise RoundError(Reason.ROUND_UNKNOWN_CHALLENGE, "complete lists wrong number")
        if not self._answered.issuperset(challenges):
            raise RoundError(Reason.ROUND_UNKNOWN_CHALLENGE, "complete lists unanswered challenge")
        assert self.round_id is not None
        payload = transcript_payload(
            self.landmark_id, self.device_id, self.round_id, self.commit, challenges
        )
        self._transcript_digest = sha256(payload)
        self.state = AgentRoundState.REVEALED
        self._challenge_heads = {}
        self._closed_challenges = challenges
        self._close = _encode(
            close=round_pb2.Close(
                round_id=self.round_id,
                secret=self._secret,
                transcript=seal(PayloadType.ROUND_TRANSCRIPT, payload, self._signer),
            )
        )
        return self._close

    def _on_receipt(self, envelope: envelope_pb2.Envelope) -> None:
        if self.state is not AgentRoundState.REVEALED:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"receipt in state {self.state}")
        try:
            payload = open_envelope(envelope, PayloadType.TIMING_RECEIPT, self._landmark_key)
        except EvidenceError as exc:
            raise RoundError(Reason.BAD_RECEIPT_SIGNATURE, exc.detail) from exc
        receipt = decode(round_pb2.TimingReceipt, payload, limit=MAX_DATAGRAM_BYTES)
        assert self.round_id is not None
        assert self._transcript_digest is not None
        if (
            receipt.landmark_id != self.landmark_id
            or receipt.device_id != self.device_id
            or receipt.round_id != self.round_id
            or receipt.transcript_digest != self._transcript_digest
        ):
            self._fail(Reason.TRANSCRIPT_MISMATCH)
            raise RoundError(Reason.TRANSCRIPT_MISMATCH, "receipt is not for this round")
        self.receipt = envelope
        self.rtt_min_ns = receipt.rtt_min_ns
        self.state = AgentRoundState.DONE

    def _fail(self, reason: Reason) -> None:
        self.state = AgentRoundState.FAILED
        self.failure = reason
        self._challenge_heads = {}


class LandmarkRoundState(Enum):
    """Where the landmark's side of one round stands."""

    TIMING = "timing"
    """Challenges out, exchanges being timed."""
    AWAITING_CLOSE = "awaiting_close"
    """Every exchange timed; Complete sent; waiting for the reveal."""
    SIGNED = "signed"
    """Commit and every answer checked; receipt signed."""
    FAILED = "failed"
    """Something did not check; nothing is signed for this round."""


_TIMING = LandmarkRoundState.TIMING
"""Read per challenge: a member read through its enum class costs ``EnumType.__getattr__``."""


@dataclass(slots=True)
class Exchange:
    """One timed exchange: the challenge, the answer, and the landmark-clock RTT. Not
    frozen: the landmark builds one per exchange between an answer and the next challenge,
    and a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
    (about 0.5 µs more here); nothing changes one once built."""

    index: int
    challenge: bytes
    answer: bytes
    rtt_ns: int


class LandmarkRound:
    """The landmark's side of one round. All times are the landmark's own monotonic clock.

    A challenge's timer starts when the challenge is built (``now_ns`` of the call
    that returns it). Building takes a few microseconds, so a driver that wants the
    tightest bound calls :meth:`start_timer` immediately *before* handing the datagram
    to the socket: a timer can only move later, and never past the send, so the RTT
    measured is never shorter than the real one. The receive side passes the
    datagram's arrival time (ideally the kernel's receive timestamp).
    """

    def __init__(
        self,
        landmark_id: str,
        signer: Signer,
        open_message: round_pb2.Open,
        *,
        round_id: bytes,
        randomness: Randomness,
        challenge_timeout_ns: int = 500_000_000,
        max_exchanges: int = MAX_EXCHANGES,
    ) -> None:
        check_open(open_message, max_exchanges)
        self.landmark_id = landmark_id
        self.device_id = open_message.device_id
        self.commit = bytes(open_message.commit)
        self.exchanges = open_message.exchanges
        self.max_exchanges = min(
            max(open_message.exchanges, open_message.max_exchanges), max_exchanges
        )
        """Adaptive rounds: at most this many exchanges (the Open's ask within this
        landmark's limit)."""
        self.extend_above_ns = open_message.extend_above_ns
        self.round_id = round_id
        self._signer = signer
        self._randomness = randomness
        self._timeout_ns = challenge_timeout_ns
        self.state = LandmarkRoundState.TIMING
        self.timed: list[Exchange] = []
        self._next_index = 0
        self.awaiting: tuple[int, bytes] | None = None
        """The outstanding challenge's index and the bytes a Response to it starts with
        (:func:`response_head`; its answer follows), for a reader that routes answers by
        their bytes; None when no challenge is outstanding, as whenever the round is not
        timing."""
        self._challenge = b""
        """The outstanding challenge's 16 bytes."""
        self._sent_ns = 0
        """When the outstanding challenge's timer started."""
        self._attempts = 0
        self._complete_sent_ns = 0
        self.receipt: envelope_pb2.Envelope | None = None
        self._receipt_datagram: bytes | None = None
        self.failure: Reason | None = None

    @property
    def rtt_min_ns(self) -> int:
        return min(e.rtt_ns for e in self.timed)

    def next_challenge(self, now_ns: int) -> bytes:
        """A fresh challenge for the next exchange; the timer starts at ``now_ns``."""
        if self.state is not _TIMING:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "no challenge due")
        challenge = self._randomness(CHALLENGE_BYTES)
        if len(challenge) != CHALLENGE_BYTES:
            raise RoundError(Reason.MISSING_FIELD, "randomness returned wrong length")
        index = self._next_index
        self._next_index = index + 1
        round_id = self.round_id
        self.awaiting = (index, response_head(round_id, index))
        self._challenge = challenge
        self._sent_ns = now_ns
        return challenge_head(round_id, index) + challenge  # the protobuf encoding

    def start_timer(self, now_ns: int) -> None:
        """Move the outstanding challenge's start to ``now_ns``, just before its send."""
        if self.awaiting is not None and now_ns > self._sent_ns:
            self._sent_ns = now_ns

    def retransmit_due(self, now_ns: int) -> bytes | None:
        """Handle loss: what to send when the agent has gone quiet for too long.

        An unanswered challenge is replaced by a fresh one with a new index (a
        challenge is never re-sent, so a late answer can never be timed against a
        later send); an unanswered Complete is sent again. After too many attempts
        the round fails. Returns the datagram to send, or None if nothing is due.
        """
        if self.awaiting is not None:
            last_sent = self._sent_ns
        elif self.state is LandmarkRoundState.AWAITING_CLOSE:
            last_sent = self._complete_sent_ns
        else:
            return None
        if now_ns - last_sent < self._timeout_ns:
            return None
        self._attempts += 1
        if self._attempts >= MAX_ATTEMPTS_PER_EXCHANGE:
            self._fail(Reason.ROUND_TIMEOUT)
            return self.abort_datagram()
        if self.state is LandmarkRoundState.AWAITING_CLOSE:
            self._complete_sent_ns = now_ns
            return self.complete_datagram()
        return self.next_challenge(now_ns)

    def receive(self, data: bytes, now_ns: int, unix_ns: int) -> bytes | None:
        """Consume one datagram from the agent; return the datagram to send, if any.

        ``now_ns`` is the receive time on the landmark's monotonic clock (it stops the
        timer); ``unix_ns`` is its wall clock, stamped into a receipt.

        Raises:
            WireError: the bytes are not a datagram.
            RoundError: not acceptable now. Datagrams for superseded challenges and
                duplicates are refused without changing the round.
        """
        datagram = decode_datagram(data)
        kind = datagram.WhichOneof("kind")
        if kind == "response":
            return self.on_response(datagram.response, now_ns)
        if kind == "close":
            return self.on_close(datagram.close, unix_ns)
        raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"landmark round does not accept {kind}")

    def on_response(self, response: round_pb2.Response, now_ns: int) -> bytes | None:
        if not hmac.compare_digest(response.round_id, self.round_id):
            raise RoundError(Reason.ROUND_UNKNOWN, "response for another round")
        return self.on_answer(response.index, bytes(response.answer), now_ns)

    def on_answer(self, index: int, answer: bytes, now_ns: int) -> bytes:
        """The answer to challenge ``index`` of this round arrived at ``now_ns``: what a
        Response carries, read by whoever already knows it is for this round."""
        awaiting = self.awaiting
        if awaiting is None:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "no challenge outstanding")
        if index != awaiting[0]:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, "response to a superseded challenge")
        if len(answer) != ANSWER_BYTES:
            raise RoundError(Reason.MISSING_FIELD, f"answer must be {ANSWER_BYTES} bytes")
        exchanges = self.timed
        exchanges.append(Exchange(index, self._challenge, answer, now_ns - self._sent_ns))
        self.awaiting = None
        self._attempts = 0
        timed = len(exchanges)
        if timed < self.exchanges or (
            timed < self.max_exchanges and self.rtt_min_ns > self.extend_above_ns > 0
        ):
            return self.next_challenge(now_ns)
        self.state = LandmarkRoundState.AWAITING_CLOSE
        self._complete_sent_ns = now_ns
        return self.complete_datagram()

    def complete_datagram(self) -> bytes:
        """Complete lists the timed challenges; re-sent if the agent did not get it."""
        return _encode(
            complete=round_pb2.Complete(
                round_id=self.round_id, challenges=[e.challenge for e in self.timed]
            )
        )

    def abort_datagram(self) -> bytes:
        return _encode(
            abort=round_pb2.Abort(
                round_id=self.round_id, reason=self.failure.value if self.failure else ""
            )
        )

    def on_close(self, close: round_pb2.Close, unix_ns: int) -> bytes:
        """Check the reveal, every answer and the transcript; sign the receipt."""
        if not hmac.compare_digest(close.round_id, self.round_id):
            raise RoundError(Reason.ROUND_UNKNOWN, "close for another round")
        if self.state is LandmarkRoundState.SIGNED and self._receipt_datagram is not None:
            return self._receipt_datagram  # the receipt was lost: send it again, sign nothing new
        if self.state is not LandmarkRoundState.AWAITING_CLOSE:
            raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"close in state {self.state}")
        secret = bytes(close.secret)
        if len(secret) != SECRET_BYTES or not hmac.compare_digest(commitment(secret), self.commit):
            return self._void(Reason.ROUND_BAD_COMMIT)
        if any(not hmac.compare_digest(answer(secret, e.challenge), e.answer) for e in self.timed):
            return self._void(Reason.ROUND_BAD_RESPONSE)
        expected = round_pb2.RoundTranscript(
            landmark_id=self.landmark_id,
            device_id=self.device_id,
            round_id=self.round_id,
            commit=self.commit,
            challenges=[e.challenge for e in self.timed],
        )
        transcript = close.transcript
        if transcript.payload_type != PayloadType.ROUND_TRANSCRIPT or not transcript.signature:
            return self._void(Reason.TRANSCRIPT_MISMATCH)
        try:
            signed = decode(round_pb2.RoundTranscript, transcript.payload, limit=MAX_DATAGRAM_BYTES)
        except WireError:
            return self._void(Reason.TRANSCRIPT_MISMATCH)
        if signed != expected:
            return self._void(Reason.TRANSCRIPT_MISMATCH)
        receipt = round_pb2.TimingReceipt(
            landmark_id=self.landmark_id,
            device_id=self.device_id,
            round_id=self.round_id,
            transcript_digest=sha256(transcript.payload),
            rtt_min_ns=self.rtt_min_ns,
            exchanges=len(self.timed),
            landmark_time_ns=unix_ns,
            transcript=transcript,
            secret=secret,
        )
        self.state = LandmarkRoundState.SIGNED
        envelope = seal(PayloadType.TIMING_RECEIPT, receipt.SerializeToString(), self._signer)
        self.receipt = envelope
        self._receipt_datagram = _encode(receipt=envelope)
        return self._receipt_datagram

    def _void(self, reason: Reason) -> bytes:
        self._fail(reason)
        return self.abort_datagram()

    def _fail(self, reason: Reason) -> None:
        self.state = LandmarkRoundState.FAILED
        self.awaiting = None
        self.failure = reason
