"""Junk cannot speak for a device: forged proofs, oversized batches and datagram floods.

What an adversary without the device's key can send: proofs that claim the victim's
device id and key id but are not signed by its key, a batch of more entries than the
verifier takes, and datagrams from the chip's own address and port to its landmarks
(random bytes, forged and replayed Opens, answers and Closes for rounds that do not
exist). None of it may raise an alert against the victim, move its chain, reach its
history, or keep its honest rounds from completing; the verifier only counts it.

The same junk serves the tests and a real flood over UDP (:func:`flood`).
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from geoattest.attacks.scenarios import (
    SG1,
    SINGAPORE,
    AttackScenario,
    Expect,
    Observed,
    _expect,
    _honest,
)
from geoattest.attacks.served import ServedChip, ServedWorld
from geoattest.attacks.world import LANDMARKS, AttackWorld, WorldChip
from geoattest.crypto import KeySigner
from geoattest.errors import GeoattestError, Reason
from geoattest.netsim.adversary import Action, DatagramDelivery, Direction, Transit
from geoattest.v1 import envelope_pb2, round_pb2
from geoattest.verdict import Verdict
from geoattest.verifier.landmark.dispatch import Limits
from geoattest.verifier.pipeline import AlertKind
from geoattest.wire.envelope import PayloadType, seal

JUNK_KINDS = ("bytes", "open", "forged_cookie", "replayed", "response", "close")
"""What a flood from the chip's address sends: random bytes, Opens without a cookie or
with a made-up one, replays of what the chip sent, and Responses and Closes that name
rounds that do not exist."""


def junk_datagram(kind: str, seed: bytes, replayed: Sequence[bytes] = ()) -> bytes:
    """One junk datagram of ``kind``, made from ``seed`` (``replayed``: datagrams the
    adversary saw the chip send, for the "replayed" kind)."""
    if kind == "bytes":
        return seed
    if kind == "replayed" and replayed:
        return replayed[len(seed) % len(replayed)]
    round_id = (seed * 16)[:16] if seed else bytes(16)
    if kind == "response":
        response = round_pb2.Response(round_id=round_id, index=len(seed) % 8, answer=bytes(32))
        return round_pb2.Datagram(response=response).SerializeToString()
    if kind == "close":
        close = round_pb2.Close(round_id=round_id, secret=(seed * 32)[:32] or bytes(32))
        return round_pb2.Datagram(close=close).SerializeToString()
    cookie = (seed * 20)[:20] if kind == "forged_cookie" and seed else b""
    forged = round_pb2.Open(device_id="chip-sg", commit=round_id * 2, exchanges=8, cookie=cookie)
    return round_pb2.Datagram(open=forged).SerializeToString()


@dataclass(frozen=True)
class JunkFlood:
    """With every datagram the chip sends a landmark, ``per_datagram`` junk datagrams
    from the chip's own address, some arriving before it and some after (never faster
    than light), each kind in turn; the chip's own datagram is replayed too."""

    per_datagram: int = 12
    spacing_ns: int = 2_000

    def intercept(self, transit: Transit, rng: random.Random) -> Sequence[DatagramDelivery]:
        honest = transit.deliver()
        if transit.direction is not Direction.UPLINK:
            return [honest]
        junk = [
            DatagramDelivery(
                transit.floor_ns + i * self.spacing_ns,
                junk_datagram(
                    JUNK_KINDS[i % len(JUNK_KINDS)],
                    rng.randbytes(rng.randrange(1, 64)),
                    (transit.payload,),
                ),
                Action.INJECT,
            )
            for i in range(self.per_datagram)
        ]
        return [honest, *junk]


def flood(
    sock: socket.socket,
    target: tuple[str, int],
    stop: threading.Event,
    *,
    replayed: Sequence[bytes] = (),
    burst: int = 64,
    pause_s: float = 0.0005,
    seed: int = 0,
) -> int:
    """Send junk from ``sock`` to ``target`` until ``stop`` is set, ``burst`` datagrams
    at a time, ``pause_s`` between bursts; returns how many were sent."""
    rng = random.Random(seed)  # noqa: S311  (junk needs no secrecy, and a seed repeats it)
    sent = 0
    while not stop.is_set():
        for i in range(burst):
            datagram = junk_datagram(
                JUNK_KINDS[i % len(JUNK_KINDS)], rng.randbytes(rng.randrange(1, 64)), replayed
            )
            try:
                sock.sendto(datagram, target)
            except OSError:  # a full send buffer or an ICMP error: the flood goes on
                continue
            sent += 1
        stop.wait(pause_s)
    return sent


FLOOD_LIMITS = Limits(max_rounds_per_source=1, rate_per_s=1.0, burst=16.0)
"""Landmarks as strict as an honest chip allows: one round at a time from its address,
and a rate with room for one round's sixteen datagrams, not for a flood's."""
FLOODED_WORLD = {"dispatched_landmarks": dict.fromkeys(LANDMARKS, FLOOD_LIMITS)}
"""A world whose landmarks run their server's own dispatcher under :data:`FLOOD_LIMITS`."""
FORGERIES = 8
"""Forged proofs the forgery scenario submits."""


def play_junk_control(world: AttackWorld) -> envelope_pb2.Envelope:
    """The control: an honest Singapore chip's rounds with landmarks that run their
    server's dispatcher, and no junk."""
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1)


def play_honest_amid_junk(world: AttackWorld) -> envelope_pb2.Envelope:
    """The same chip's rounds under a datagram flood from its own address and port."""
    return _honest(world, "chip-sg", SINGAPORE, "SG", datacentre=SG1, adversary=JunkFlood())


def _victim(served: ServedWorld) -> ServedChip:
    """An honest Singapore chip whose first proof was accepted."""
    chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", served.world.nearest(SINGAPORE), SG1))
    served.cycle(chip)
    if chip.results[-1].verdict is not Verdict.ALLOWED:
        raise AssertionError(f"the victim's own proof: {chip.results[-1]}")
    return chip


def _forgeries(victim: ServedChip, proof: envelope_pb2.Envelope) -> list[bytes]:
    """Proofs that claim the victim without its key, from a copy of one of its proofs:
    the signature zeroed, the payload changed, or the payload signed by a stranger under
    the stranger's key id or the victim's."""
    stranger = KeySigner.generate()
    forged: list[bytes] = []
    for i in range(FORGERIES):
        envelope = envelope_pb2.Envelope()
        envelope.CopyFrom(proof)
        variant = i % 4
        if variant == 0:
            envelope.signature = bytes(len(envelope.signature))
        elif variant == 1:
            payload = bytearray(envelope.payload)
            payload[(7 * i) % len(payload)] ^= 0x40
            envelope.payload = bytes(payload)
        else:
            envelope = seal(PayloadType.LOCATION_PROOF, proof.payload, stranger)
            if variant == 3:
                envelope.key_id = victim.signer.verifying_key.key_id
        forged.append(envelope.SerializeToString())
    return forged


def _observed(
    served: ServedWorld, victim: ServedChip, moved: bool, reason: Reason | None, detail: str
) -> Observed:
    """What the victim's state shows after the junk: alerts against it, whether its chain
    moved, its device state; and the verifier's count of refusals."""
    counted = ", ".join(
        f"{r.value} x{n}" for r, n in sorted(served.service.rejections.snapshot().items())
    )
    return Observed(
        Verdict.REJECTED,
        reason,
        tuple(AlertKind(a.kind) for a in served.alerts if a.device_id == victim.device_id),
        moved,
        f"{detail}; counted: {counted}",
        served.service.device_status(victim.device_id, served.world.now_ns()).state.value,
    )


def play_forged_proofs_claim_victim(world: AttackWorld) -> Observed:
    """The host copies a proof the victim's agent made but has not delivered yet, and
    submits forgeries of it that claim the victim."""
    with ServedWorld.open(world) as served:
        victim = _victim(served)
        served.cycle(victim, verifier_reachable=False)
        withheld = victim.attester.outbox.pending()[-1].envelope
        before = served.head(victim)
        results = [served.service.submit(f, world.now_ns()) for f in _forgeries(victim, withheld)]
        if any(r.device_id or r.token for r in results):
            raise AssertionError(f"a forgery was answered for a device: {results}")
        return _observed(
            served,
            victim,
            served.head(victim) != before,
            results[-1].reason,
            f"{len(results)} forgeries refused",
        )


def play_oversized_batch(world: AttackWorld) -> Observed:
    """A batch of one entry more than the verifier takes, each entry junk."""
    with ServedWorld.open(world) as served:
        victim = _victim(served)
        before = served.head(victim)
        limit = served.service.config.max_batch
        entry = b"\x0a\x03\xff\xff\xff"  # an entry whose proof no decoder accepts
        try:
            served.service.submit_batch_request(entry * (limit + 1), world.now_ns())
        except GeoattestError as refused:
            return _observed(
                served, victim, served.head(victim) != before, refused.reason, refused.detail
            )
        return _observed(served, victim, served.head(victim) != before, None, "accepted")


SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "junk_control_honest_chip",
        "junk",
        "Control: chip in a Singapore data centre licensed to SG; its landmarks run their "
        "server's dispatcher (cookies, rate limits, one round per address); no junk.",
        _expect(Verdict.ALLOWED),
        play_junk_control,
        world=FLOODED_WORLD,
    ),
    AttackScenario(
        "honest_chip_amid_junk_flood",
        "junk",
        "Chip in a Singapore data centre licensed to SG; with every datagram it sends, "
        "twelve junk datagrams from its own address and port reach the landmark (random "
        "bytes, forged and replayed Opens, answers and Closes for no round), whose server "
        "allows that address one round at a time and sixteen datagrams' worth of rate.",
        _expect(Verdict.ALLOWED),
        play_honest_amid_junk,
        world=FLOODED_WORLD,
    ),
    AttackScenario(
        "forged_proofs_claim_victim_device",
        "junk",
        "The host copies an accepted chip's undelivered proof and submits forgeries of it: "
        "signature zeroed, payload changed, re-signed by a stranger under the stranger's "
        "key id or the chip's. Refused and counted; no alert against the chip, its chain "
        "and state unchanged.",
        Expect(frozenset({Verdict.REJECTED}), Reason.BAD_SIGNATURE, device_state="ATTESTING"),
        play_forged_proofs_claim_victim,
    ),
    AttackScenario(
        "oversized_batch_of_junk",
        "junk",
        "One batch call with one entry more than the verifier takes, none of them a "
        "proof: refused as oversized before any entry is decoded, and counted.",
        Expect(frozenset({Verdict.REJECTED}), Reason.OVERSIZED_MESSAGE, device_state="ATTESTING"),
        play_oversized_batch,
    ),
)
