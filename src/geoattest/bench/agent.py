"""``geoattest bench agent``: the agent's CPU time and bytes on the wire per proof
(k landmarks, n exchanges each) and its duty cycle at a proof a minute and an hour.

The landmarks run in child processes (as in ``bench timing``); the agent's rounds and
proof signing run here, and ``time.process_time`` counts only this process. Baselines, timed
in the same run: the k + 1 ES256 signatures and k receipt verifications an agent must make
per proof, and the CPU of as many bare UDP echo round trips (to an echo child, interleaved
with the proofs, over one socket kept across them as the agent keeps one per landmark, no
kernel stamp read) as each proof's rounds made (adaptive rounds may run more exchanges than
asked for: the baseline follows them), each waited for as the agent waits (spinning where
the agent's rule spins that wait and the host lets it, else a blocking receive): a send and
that wait are what no agent can avoid. ``cpu_ratio_to_crypto_and_echo`` divides by those
three, the crypto timed back to back. ``cpu_ratio_to_bare_agent`` divides by the same work
done in the agent's order, the crypto between the round trips (:class:`BareAgent`): on a
virtual machine a signature right after network waits costs two to three times one back to
back, and no agent can sign before its landmark's Complete comes. ``--load`` runs
``stress-ng --cpu 2`` beside it all.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field

from geoattest.attestor.rounds import (
    LandmarkEndpoint,
    LandmarkSockets,
    PathFloors,
    RoundSettings,
    run_rounds,
)
from geoattest.bench.fleet import MEASUREMENT, Fleet
from geoattest.bench.report import Figures, median, progress
from geoattest.bench.timing import (
    child,
    echo_block,
    echo_child,
    landmark_child,
    load_context,
    timed_phase_priority,
)
from geoattest.crypto import KeySigner, generate_private_key, private_key_pem
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import RoundSecrets
from geoattest.v1 import envelope_pb2, round_pb2

UDP_IP_HEADER_BYTES = 28


@dataclass
class Agent:
    """The agent's side of ``bench agent``: one device, its chain, k landmarks to time."""

    endpoints: list[LandmarkEndpoint]
    settings: RoundSettings
    device: KeySigner = field(default_factory=KeySigner.generate)
    secrets: RoundSecrets = field(default_factory=lambda: RoundSecrets(os.urandom))
    chain: ProofChain = field(default_factory=lambda: ProofChain("dev-bench"))
    floors: PathFloors = field(default_factory=PathFloors)
    sockets: LandmarkSockets = field(default_factory=LandmarkSockets)
    landmark_io: str = "python"
    """Which path times the landmarks' receives and sends (``LandmarkServer.landmark_io``)."""

    def proof(self) -> list[envelope_pb2.Envelope]:
        """What the agent does per proof: k adaptive rounds over UDP, then the proof signed;
        returns the rounds' receipts (:func:`exchanges_of` reads them, outside the CPU
        counted for the proof: the agent itself does not decode them again)."""
        outcomes = run_rounds(
            self.endpoints,
            "dev-bench",
            self.device,
            self.secrets,
            self.settings,
            floors=self.floors,
            sockets=self.sockets,
        )
        receipts = [o.receipt for o in outcomes if o.receipt is not None]
        _, self.chain = self.chain.extend(receipts, measurement=MEASUREMENT, signer=self.device)
        return receipts


def exchanges_of(receipts: list[envelope_pb2.Envelope]) -> list[int]:
    """How many exchanges each receipt's round ran (adaptive rounds may run more)."""
    return [round_pb2.TimingReceipt.FromString(r.payload).exchanges for r in receipts]


@contextmanager
def agent(k: int, exchanges: int) -> Iterator[Agent]:
    """An :class:`Agent` with k landmark servers (kernel stamps) in child processes."""
    with ExitStack() as stack:
        endpoints = []
        ios = set()
        for i in range(k):
            key = generate_private_key()
            _, (port, _, landmark_io) = stack.enter_context(
                child(landmark_child, private_key_pem(key), f"lm-{i}", True)
            )
            endpoints.append(
                LandmarkEndpoint(f"lm-{i}", "127.0.0.1", port, KeySigner(key).verifying_key)
            )
            ios.add(landmark_io)
        bench = Agent(
            endpoints, RoundSettings(exchanges=exchanges), landmark_io="/".join(sorted(ios))
        )
        stack.callback(bench.sockets.close)
        yield bench


@dataclass
class BareAgent:
    """What no agent can avoid, in the agent's order: for each round its round trips as
    bare UDP echoes (each waited for as the agent waits), then a transcript's signature and
    a receipt's verification; then the proof's signature. Between network waits the crypto
    runs with the caches the waits left (on a virtual machine several times slower than
    back to back), as the agent's does."""

    echo_port: int
    device: KeySigner
    settings: RoundSettings
    """The agent's: its echoes are waited for by the same rule."""
    transcript: bytes = field(default_factory=lambda: os.urandom(300))
    """About a round transcript's size."""
    receipt: bytes = field(default_factory=lambda: os.urandom(600))
    """About a receipt's size."""
    proof: bytes = field(default_factory=lambda: os.urandom(3200))
    """About a proof's size."""

    sock: socket.socket = field(init=False)
    """Kept across proofs, as the agent keeps its landmarks' sockets (:meth:`close`)."""

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", self.echo_port))

    def close(self) -> None:
        self.sock.close()

    def run(self, round_trips: list[int]) -> tuple[float, float]:
        """One proof whose rounds made ``round_trips``: CPU seconds in all, and in echoes."""
        receipt_signature = self.device.sign(self.receipt)
        verify = self.device.verifying_key.verify
        echoes = 0.0
        start = time.process_time()
        for trips in round_trips:
            c0 = time.process_time()
            echo_block(
                self.echo_port,
                trips,
                as_agent=True,
                settings=self.settings,
                round_exchanges=trips - 2,
                sock=self.sock,
            )
            echoes += time.process_time() - c0
            self.device.sign(self.transcript)
            verify(receipt_signature, self.receipt)
        self.device.sign(self.proof)
        return time.process_time() - start, echoes


def run(proofs: int = 100, k: int = 4, exchanges: int = 8, *, load: bool = False) -> Figures:
    cpu: list[float] = []
    wall: list[float] = []
    echo_cpu: list[float] = []
    bare_cpu: list[float] = []
    exchanges_run: list[int] = []
    round_trips: list[int] = []
    with (
        load_context(load) as load_name,
        agent(k, exchanges) as bench,
        child(echo_child) as (_, echo_port),
        closing(BareAgent(echo_port, KeySigner.generate(), bench.settings)) as bare,
        progress("agent: proofs", proofs) as (bar, task),
    ):
        for _ in range(proofs):
            c0, w0 = time.process_time(), time.perf_counter()
            receipts = bench.proof()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            ran = exchanges_of(receipts)
            exchanges_run.append(sum(ran))
            # each Response, and each round's Open and Close
            trips = [exchanges_in_round + 2 for exchanges_in_round in ran]
            round_trips.append(sum(trips))
            bare_s, echo_s = bare.run(trips)
            bare_cpu.append(bare_s)
            echo_cpu.append(echo_s)
            bar.advance(task)
    device = bench.device
    message = os.urandom(600)  # about a receipt's size
    signature = device.sign(message)
    signing = _median_cpu_s(functools.partial(device.sign, message), k + 1)
    verifying = _median_cpu_s(functools.partial(device.verifying_key.verify, signature, message), k)
    wire = wire_bytes(k, exchanges)
    cpu_s, socket_s, bare_s = median(cpu), median(echo_cpu), median(bare_cpu)
    explained = signing + verifying + socket_s
    return {
        "load": load_name,
        "timed_phase": timed_phase_priority(),
        "k": k,
        "exchanges": exchanges,
        "cpu_us_per_proof": round(cpu_s * 1e6, 1),
        "wall_ms_per_proof": round(median(wall) * 1e3, 3),
        "signing_us_per_proof": round(signing * 1e6, 1),
        "cpu_ratio_to_signing": round(cpu_s / signing, 2),
        "receipt_verify_us_per_proof": round(verifying * 1e6, 1),
        "echo_round_trips_per_proof": median(round_trips),
        "exchanges_per_round": round(sum(exchanges_run) / (k * len(exchanges_run)), 2),
        "echo_cpu_us_per_proof": round(socket_s * 1e6, 1),
        "cpu_ratio_to_crypto_and_echo": round(cpu_s / explained, 2),
        "bare_agent_us_per_proof": round(bare_s * 1e6, 1),
        "cpu_ratio_to_bare_agent": round(cpu_s / bare_s, 2),
        "landmark_io": bench.landmark_io,
        "bytes_per_proof": wire.udp_payload + wire.proof,
        "udp_payload_bytes_per_proof": wire.udp_payload,
        "udp_datagrams_per_proof": wire.datagrams,
        "udp_bytes_with_headers": wire.udp_with_headers,
        "proof_envelope_bytes": wire.proof,
        "duty_cycle_per_minute": cpu_s / 60,
        "duty_cycle_per_hour": cpu_s / 3600,
    }


@dataclass(frozen=True)
class WireBytes:
    """What one proof puts on the wire: its k rounds' datagrams and the proof itself."""

    udp_payload: int
    """UDP payload of every datagram of the proof's rounds, both directions."""
    datagrams: int
    proof: int
    """The signed proof envelope sent to the verifier."""

    @property
    def udp_with_headers(self) -> int:
        """The rounds' datagrams with their IPv4 and UDP headers."""
        return self.udp_payload + self.datagrams * UDP_IP_HEADER_BYTES


def wire_bytes(k: int, exchanges: int) -> WireBytes:
    """Bytes per proof from the protocol's real messages (in-memory rounds, no timing), so
    a deployment's k and exchanges are priced by what the code sends, not by a constant."""
    fleet = Fleet(1, k=k, exchanges=exchanges)
    rounds = fleet.rounds(fleet.chips[0])
    return WireBytes(
        udp_payload=sum(r.wire_bytes for r in rounds),
        datagrams=sum(r.datagrams for r in rounds),
        proof=fleet.proof(fleet.chips[0]).ByteSize(),
    )


def _median_cpu_s(operation: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``repeat`` calls of ``operation``, over 200 samples."""
    samples = []
    for _ in range(200):
        t0 = time.process_time()
        for _ in range(repeat):
            operation()
        samples.append(time.process_time() - t0)
    return median(samples)
