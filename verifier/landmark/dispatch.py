"""The landmark's table of open rounds: which round a datagram belongs to, what to answer.

No socket and no clock live here: the server passes each datagram with its source and
its clock readings, and sends what comes back. That keeps every rule (rate limits,
bounds on open rounds, expiry, counters) testable with made-up times, and keeps the
socket thread's loop short.

Rules, in the order a datagram meets them:

1. Decode: bytes that are not a round datagram (or are too long) are dropped.
2. A Response or Close must name an open round by id *and* come from the address that
   opened it; the round's state machine (:class:`~geoattest.protocol.round.LandmarkRound`)
   decides the rest, so a receipt is signed only when the commit and every answer check.
   A live round's own datagrams are never rate-limited, so junk from its address cannot
   use up their share.
3. An ``Open`` without a valid cookie is answered with a ``Retry`` carrying one (a MAC
   over the source address, the Open and the time), and nothing is kept: a spoofed
   source never sees the cookie, so it can create no state (as DTLS's and QUIC's
   address validation). The Retry is smaller than the Open, so nothing is amplified.
4. An ``Open`` with a valid cookie is rate-limited per source host (token bucket), then
   starts a round if the table has room (overall and per source host); its first
   challenge is timed from its send. An Open never evicts a round: a full table refuses
   it.

So a flood from the chip's own address and port (random bytes, forged or replayed Opens,
answers and Closes for rounds that do not exist) changes no round and takes no room from
one: only a party that receives the landmark's datagrams at that address can open a
round there, and only one that saw a round's id can send it anything it will read.

Nothing a peer sends can raise out of :meth:`Dispatcher.handle`: refusals are counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from geoattest.crypto import Signer
from geoattest.errors import Reason, RoundError, WireError
from geoattest.protocol.round import (
    ANSWER_BYTES,
    MAX_EXCHANGES,
    ROUND_ID_BYTES,
    LandmarkRound,
    LandmarkRoundState,
    Randomness,
    check_open,
    decode_datagram,
)
from geoattest.units import SECOND_NS
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark.clock import Bracket, arrival_monotonic

Address = tuple[Any, ...]
"""A socket address as ``recvmsg`` returns it: (host, port) or the IPv6 four-tuple."""

FinishedHook = Callable[[LandmarkRound], None]
"""Called with each round as it is signed or fails (off the clock): every exchange's RTT
is in ``round.timed``; for audit logs and benchmarks."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one landmark holds open and how fast it lets one source talk."""

    max_rounds: int = 1024
    """Active rounds at once; as many finished ones are kept to answer repeated Closes."""
    max_rounds_per_source: int = 16
    max_exchanges: int = MAX_EXCHANGES
    """Largest n an Open may ask for (longer rounds are refused), and the most exchanges an
    adaptive round runs."""
    rate_per_s: float = 5000.0
    """Rounds opened per second per source host (Opens with a valid cookie; nothing else
    is rate-limited: a live round's own datagrams are bounded by the round)."""
    burst: float = 1000.0
    max_sources: int = 4096
    """Rate-limit buckets kept; the least recently seen source's bucket goes first."""
    challenge_timeout_ns: int = 250_000_000
    """Silence after which a challenge is replaced by a fresh one (or Complete re-sent)."""
    linger_ns: int = 5 * SECOND_NS
    """How long a finished round stays (at most ``max_rounds`` of them), so that a repeated
    Close gets the same receipt again."""
    round_ttl_ns: int = 60 * SECOND_NS
    """Hard cap on a round's life, whatever its state."""
    cookie_epoch_ns: int = 10 * SECOND_NS
    """A Retry's cookie is valid for the rest of its epoch and the whole next one."""


@dataclass(slots=True)
class Counters:
    """What the landmark did with what it received; only ever increases."""

    datagrams_received: int = 0
    datagrams_rate_limited: int = 0
    """Opens with a valid cookie over their host's rate."""
    datagrams_malformed: int = 0
    """Not a round datagram, or longer than the protocol allows."""
    datagrams_rejected: int = 0
    """Well formed but refused: a bad Open, an unknown round, another source, a stale answer."""
    opens_retried: int = 0
    """Opens without a valid cookie, answered with a Retry and forgotten."""
    rounds_opened: int = 0
    rounds_refused: int = 0
    """Opens turned away because the table (or the source's share of it) was full."""
    rounds_failed: int = 0
    rounds_expired: int = 0
    receipts_signed: int = 0
    exchanges_timed: int = 0
    exchanges_kernel_timed: int = 0
    """Exchanges whose arrival came from the kernel's receive stamp (the rest: monotonic)."""
    challenges_transmit_stamped: int = 0
    """Challenges whose timer starts at the kernel's transmit stamp (the rest: just before
    the send)."""
    datagrams_polled: int = 0
    """Datagrams read by polling after a challenge (``LandmarkServer``'s ``spin_s``; the
    rest: a blocking receive)."""
    send_errors: int = 0
    internal_errors: int = 0

    def snapshot(self) -> Counters:
        return dataclasses.replace(self)


class TokenBuckets:
    """One token bucket per source host, in a bounded table."""

    def __init__(self, rate_per_s: float, burst: float, max_sources: int) -> None:
        self._per_ns = rate_per_s / SECOND_NS
        self._burst = burst
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # host -> [tokens, at_ns]

    def allow(self, host: str, now_ns: int) -> bool:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._buckets.popitem(last=False)
            bucket = self._buckets[host] = [self._burst, now_ns]
        else:
            self._buckets.move_to_end(host)
        tokens = min(self._burst, bucket[0] + max(0, now_ns - int(bucket[1])) * self._per_ns)
        bucket[1] = now_ns
        allowed = tokens >= 1.0
        bucket[0] = tokens - 1.0 if allowed else tokens
        return allowed


COOKIE_MAC_BYTES = 16
_EPOCH_BYTES = 4


class Cookies:
    """Stateless proof that an Open's sender receives datagrams at its source address.

    A cookie is the epoch it was issued in and a MAC, under a key that never leaves this
    landmark, over that epoch, the source address and the Open's device id; checking one
    needs nothing stored. It covers no field that changes from round to round (the commit,
    the adaptive asks), so an agent that keeps its socket sends its next rounds' Opens with
    the cookie it was given and skips the Retry's round trip while the cookie is valid: what
    the cookie proves is the address, and the per-host rate and round limits bound what one
    address opens.
    """

    def __init__(self, key: bytes, epoch_ns: int) -> None:
        self._key = key
        self._epoch_ns = epoch_ns

    def _mac(self, epoch: bytes, source: Address, message: round_pb2.Open) -> bytes:
        host, port = source[0], source[1]
        device = round_pb2.Open(device_id=message.device_id).SerializeToString()
        signed = b"|".join((epoch, f"{host}|{port}".encode(), device))
        return hmac.digest(self._key, signed, hashlib.sha256)[:COOKIE_MAC_BYTES]

    def _epoch(self, now_ns: int) -> int:
        return (now_ns // self._epoch_ns) % (1 << (8 * _EPOCH_BYTES))

    def issue(self, source: Address, message: round_pb2.Open, now_ns: int) -> bytes:
        epoch = self._epoch(now_ns).to_bytes(_EPOCH_BYTES, "big")
        return epoch + self._mac(epoch, source, message)

    def valid(self, source: Address, message: round_pb2.Open, now_ns: int) -> bool:
        """The Open carries a cookie issued to this source for these fields, this epoch
        or the one before."""
        cookie = bytes(message.cookie)
        if len(cookie) != _EPOCH_BYTES + COOKIE_MAC_BYTES:
            return False
        epoch, mac = cookie[:_EPOCH_BYTES], cookie[_EPOCH_BYTES:]
        age = (self._epoch(now_ns) - int.from_bytes(epoch, "big")) % (1 << (8 * _EPOCH_BYTES))
        return age <= 1 and hmac.compare_digest(mac, self._mac(epoch, source, message))


@dataclass(slots=True)
class RoundEntry:
    """An open round, the address that opened it, and its last challenge's send reading."""

    round: LandmarkRound
    peer: Address
    opened_ns: int
    sent: Bracket | None = None
    finished_ns: int | None = None
    answer_head: bytes | None = None
    """The bytes a Response to the outstanding challenge starts with (its answer follows),
    while one is outstanding."""
    answer_index: int = 0
    """The outstanding challenge's index, while ``answer_head`` is set."""

    def start_timer(self, sent: Bracket, departed_ns: int = 0) -> None:
        """Start the challenge's timer: ``sent`` is the reading taken immediately before
        it went to the socket, ``departed_ns`` where the kernel stamped its departure (on
        the monotonic clock and never later than it left, :func:`departure_monotonic`).
        The timer starts at the later of the two (a timer only ever moves later)."""
        self.sent = sent
        after = sent.after
        self.round.start_timer(departed_ns if departed_ns > after else after)


class Outgoing(NamedTuple):
    """A datagram to send (a named tuple: one is built for every challenge)."""

    datagram: bytes
    peer: Address
    timed: RoundEntry | None
    """The round whose timer starts at this send (the datagram is a challenge), or None."""


class Dispatcher:
    """Routes datagrams to rounds, opens and expires rounds, and counts everything."""

    def __init__(
        self,
        landmark_id: str,
        signer: Signer,
        limits: Limits,
        randomness: Randomness,
        on_finished: FinishedHook | None = None,
    ) -> None:
        self.landmark_id = landmark_id
        self._signer = signer
        self._limits = limits
        self._randomness = randomness
        self._active: dict[bytes, RoundEntry] = {}
        self._finished: OrderedDict[bytes, RoundEntry] = OrderedDict()
        """Finished rounds, oldest first, kept a while to answer a repeated Close."""
        self._answers: dict[bytes, RoundEntry] = {}
        """Rounds by the head of the one Response each awaits (``response_head``), so
        that an answer in the protocol's own encoding is routed without being decoded."""
        self._per_source: Counter[str] = Counter()
        """Active rounds per source host."""
        self._buckets = TokenBuckets(limits.rate_per_s, limits.burst, limits.max_sources)
        self._cookies = Cookies(randomness(32), limits.cookie_epoch_ns)
        self.counters = Counters()
        self.rtt_floor_ns: int | None = None
        """The shortest exchange timed so far (none yet: None): the path's floor, which
        a landmark's operator watches for a slower route or a clock gone wrong."""
        self._on_finished = on_finished

    @property
    def open_rounds(self) -> int:
        """Rounds still timing or awaiting their Close."""
        return len(self._active)

    def handle(
        self, data: bytes, source: Address, received: Bracket, kernel_ns: int | None
    ) -> Outgoing | None:
        """One datagram in; the datagram to send back, if any.

        Args:
            data: the datagram as received (a too-long one may be cut: it is refused anyway).
            source: its source address.
            received: clock readings taken right after ``recvmsg`` returned.
            kernel_ns: the kernel's receive stamp (realtime), if the socket gave one.
        """
        counters = self.counters
        try:
            awaiting = self._answers.get(data[:-ANSWER_BYTES])
            if awaiting is not None and awaiting.peer == source:
                # Exactly the encoding of a Response to the awaited challenge: the
                # answer is all there is to read (any other encoding is decoded below).
                answer = data[-ANSWER_BYTES:]
                return self._answer(awaiting, awaiting.answer_index, answer, received, kernel_ns)
            try:
                datagram = decode_datagram(data)
            except WireError:
                counters.datagrams_malformed += 1
                return None
            return self._route(datagram, source, received, kernel_ns)
        except RoundError:
            counters.datagrams_rejected += 1
            return None
        finally:
            # Counted once dealt with: a reader that sees it counted sees what it did.
            counters.datagrams_received += 1

    def _route(
        self,
        datagram: round_pb2.Datagram,
        source: Address,
        received: Bracket,
        kernel_ns: int | None,
    ) -> Outgoing | None:
        kind = datagram.WhichOneof("kind")
        if kind == "open":
            return self._open(datagram.open, source, received.before)
        if kind == "response":
            response = datagram.response
            entry = self._entry(response.round_id, source)  # found by id: the id matches
            return self._answer(entry, response.index, bytes(response.answer), received, kernel_ns)
        if kind == "close":
            entry = self._entry(datagram.close.round_id, source)
            already_signed = entry.round.state is LandmarkRoundState.SIGNED
            reply = entry.round.on_close(datagram.close, received.realtime)
            if entry.round.state is LandmarkRoundState.SIGNED and not already_signed:
                self.counters.receipts_signed += 1
            return self._outgoing(entry, reply, received.before)
        raise RoundError(Reason.ROUND_UNEXPECTED_MESSAGE, f"landmark does not accept {kind}")

    def _answer(
        self,
        entry: RoundEntry,
        index: int,
        answer: bytes,
        received: Bracket,
        kernel_ns: int | None,
    ) -> Outgoing | None:
        """Time the answer to challenge ``index`` of the entry's round."""
        sent = entry.sent
        if sent is None:
            arrival_ns, from_kernel = received.before, False
        else:
            arrival_ns, from_kernel = arrival_monotonic(sent, received, kernel_ns)
        landmark_round = entry.round
        reply = landmark_round.on_answer(index, answer, arrival_ns)
        rtt_ns = landmark_round.timed[-1].rtt_ns
        floor_ns = self.rtt_floor_ns
        if floor_ns is None or rtt_ns < floor_ns:
            self.rtt_floor_ns = rtt_ns
        counters = self.counters
        counters.exchanges_timed += 1
        counters.exchanges_kernel_timed += from_kernel
        if landmark_round.state is _TIMING:
            # The reply is the round's next challenge (what _outgoing does for one).
            self._await_answer(entry)
            return _new_tuple(Outgoing, (reply, entry.peer, entry))
        return self._outgoing(entry, reply, received.before)

    def _entry(self, round_id: bytes, source: Address) -> RoundEntry:
        entry = self._active.get(round_id) or self._finished.get(round_id)
        if entry is None or entry.peer != source:
            raise RoundError(Reason.ROUND_UNKNOWN, "no such round from this address")
        return entry

    def _open(self, message: round_pb2.Open, source: Address, now_ns: int) -> Outgoing | None:
        host = source[0]
        limits = self._limits
        check_open(message, limits.max_exchanges)
        if not self._cookies.valid(source, message, now_ns):
            self.counters.opens_retried += 1
            cookie = self._cookies.issue(source, message, now_ns)
            retry = round_pb2.Datagram(retry=round_pb2.Retry(cookie=cookie))
            return Outgoing(retry.SerializeToString(), source, None)
        if not self._buckets.allow(host, now_ns):
            self.counters.datagrams_rate_limited += 1
            return None
        round_id = self._randomness(ROUND_ID_BYTES)
        if (
            len(self._active) >= limits.max_rounds
            or self._per_source[host] >= limits.max_rounds_per_source
            or round_id in self._active
            or round_id in self._finished
        ):
            self.counters.rounds_refused += 1
            return None
        landmark_round = LandmarkRound(
            self.landmark_id,
            self._signer,
            message,
            round_id=round_id,
            randomness=self._randomness,
            challenge_timeout_ns=limits.challenge_timeout_ns,
            max_exchanges=limits.max_exchanges,
        )
        entry = RoundEntry(landmark_round, source, now_ns)
        self._active[round_id] = entry
        self._per_source[host] += 1
        self.counters.rounds_opened += 1
        challenge = landmark_round.next_challenge(now_ns)
        self._await_answer(entry)
        return Outgoing(challenge, source, entry)

    def _await_answer(self, entry: RoundEntry) -> None:
        """Route by its head the Response the entry's round awaits now, and no other."""
        answers = self._answers
        if entry.answer_head is not None:
            del answers[entry.answer_head]
            entry.answer_head = None
        awaiting = entry.round.awaiting
        if awaiting is not None:
            entry.answer_index, head = awaiting
            entry.answer_head = head
            answers[head] = entry

    def _outgoing(self, entry: RoundEntry, reply: bytes | None, now_ns: int) -> Outgoing | None:
        state = entry.round.state
        self._await_answer(entry)
        if entry.finished_ns is None and state in _FINISHED:
            if state is LandmarkRoundState.FAILED:
                self.counters.rounds_failed += 1
            entry.finished_ns = now_ns
            if self._on_finished is not None:
                self._on_finished(entry.round)
            self._deactivate(entry)
            self._finished[entry.round.round_id] = entry
            if len(self._finished) > self._limits.max_rounds:
                self._finished.popitem(last=False)
        if reply is None:
            return None
        return Outgoing(reply, entry.peer, entry if state is LandmarkRoundState.TIMING else None)

    def sweep(self, now_ns: int) -> list[Outgoing]:
        """Re-send what loss left unanswered, fail silent rounds, forget finished ones."""
        limits = self._limits
        finished = self._finished
        while finished:
            oldest = next(iter(finished.values()))
            if oldest.finished_ns is None or now_ns - oldest.finished_ns < limits.linger_ns:
                break
            finished.popitem(last=False)
        out: list[Outgoing] = []
        for entry in list(self._active.values()):
            if now_ns - entry.opened_ns >= limits.round_ttl_ns:
                self.counters.rounds_expired += 1
                self._deactivate(entry)
                continue
            outgoing = self._outgoing(entry, entry.round.retransmit_due(now_ns), now_ns)
            if outgoing is not None:
                out.append(outgoing)
        return out

    def _deactivate(self, entry: RoundEntry) -> None:
        if entry.answer_head is not None:
            del self._answers[entry.answer_head]
            entry.answer_head = None
        del self._active[entry.round.round_id]
        host = entry.peer[0]
        self._per_source[host] -= 1
        if self._per_source[host] <= 0:
            del self._per_source[host]


_FINISHED = (LandmarkRoundState.SIGNED, LandmarkRoundState.FAILED)
_TIMING = LandmarkRoundState.TIMING
"""Read per answer: a member read through its enum class costs ``EnumType.__getattr__``."""
_new_tuple = tuple.__new__
"""Builds the Outgoing of each next challenge without the named tuple's Python ``__new__``."""
