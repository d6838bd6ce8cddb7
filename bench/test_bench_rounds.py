"""The round's CPU costs on both sides, the agent's proof per algorithm, and wire sizes
(pytest-benchmark).

Run: ``python -m pytest bench --benchmark-only``. Landmark: per exchange (a Response in,
the next Challenge out) through the sans-I/O :class:`LandmarkRound` alone and through the
dispatch layer the server runs (rate limit, routing, clock bracket), and per receipt (the
Close checked and the receipt signed). Agent: per exchange, and one proof built and signed
per algorithm over k = 4 receipts. Sizes: every message kind of one k = 4, n = 8 proof,
printed and kept in ``extra_info``. Socket costs are in ``geoattest bench timing``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest

from geoattest.bench.fleet import MEASUREMENT, Fleet, run_round
from geoattest.crypto import Algorithm, KeySigner
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark.clock import Bracket
from geoattest.verifier.landmark.dispatch import Dispatcher, Limits, Outgoing

EXCHANGES = 8
SOURCE = ("127.0.0.1", 40000)
UNLIMITED = Limits(rate_per_s=1e9, burst=1e9)
LANDMARK = KeySigner.generate()
DEVICE = KeySigner.generate()


def _agent() -> AgentRound:
    return AgentRound(
        "dev-bench",
        "lm-bench",
        LANDMARK.verifying_key,
        DEVICE,
        secret=os.urandom(32),
        exchanges=EXCHANGES,
    )


def _bracket() -> Bracket:
    now = time.monotonic_ns()
    return Bracket(now, time.time_ns(), now)


def _dispatched_round(answers: int) -> tuple[Dispatcher, bytes]:
    """A dispatcher with one round open from ``SOURCE`` after ``answers`` timed exchanges;
    the agent's next datagram (a Response, or the Close once every exchange is timed)."""
    dispatcher = Dispatcher("lm-bench", LANDMARK, UNLIMITED, os.urandom)
    agent = _agent()
    retry = dispatcher.handle(agent.open(), SOURCE, _bracket(), None)
    assert retry is not None
    with_cookie = agent.receive(retry.datagram)
    assert with_cookie is not None
    out = dispatcher.handle(with_cookie, SOURCE, _bracket(), None)
    answered = 0
    while True:
        assert out is not None
        if out.timed is not None:
            out.timed.start_timer(_bracket())
        reply = agent.receive(out.datagram)
        assert reply is not None
        if answered == answers:
            return dispatcher, reply
        answered += 1
        out = dispatcher.handle(reply, SOURCE, _bracket(), None)


def test_landmark_exchange_state_machine(benchmark) -> None:
    """``LandmarkRound.receive`` of a Response: decode, time, next challenge."""

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        agent = _agent()
        landmark = LandmarkRound(
            "lm-bench",
            LANDMARK,
            decode_datagram(agent.open()).open,
            round_id=os.urandom(16),
            randomness=os.urandom,
        )
        response = agent.receive(landmark.next_challenge(time.monotonic_ns()))
        return (landmark, response), {}

    def exchange(landmark: LandmarkRound, response: bytes) -> bytes | None:
        return landmark.receive(response, time.monotonic_ns(), time.time_ns())

    benchmark.pedantic(exchange, setup=setup, rounds=3000, iterations=1)


def test_landmark_exchange_dispatched(benchmark) -> None:
    """The same through ``Dispatcher.handle``: rate limit, routing, arrival bracket."""

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        dispatcher, response = _dispatched_round(0)
        return (dispatcher, response), {}

    def exchange(dispatcher: Dispatcher, response: bytes) -> Outgoing | None:
        return dispatcher.handle(response, SOURCE, _bracket(), None)

    out = benchmark.pedantic(exchange, setup=setup, rounds=2000, iterations=1)
    assert out is not None
    assert decode_datagram(out.datagram).WhichOneof("kind") == "challenge"


def test_landmark_receipt_dispatched(benchmark) -> None:
    """A Close in, the reveal, n answers and the transcript checked, the receipt signed."""

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        dispatcher, close = _dispatched_round(EXCHANGES)
        return (dispatcher, close), {}

    def receipt(dispatcher: Dispatcher, close: bytes) -> Outgoing | None:
        return dispatcher.handle(close, SOURCE, _bracket(), None)

    out = benchmark.pedantic(receipt, setup=setup, rounds=500, iterations=1)
    assert out is not None
    assert decode_datagram(out.datagram).WhichOneof("kind") == "receipt"


def test_agent_exchange(benchmark) -> None:
    """``AgentRound.receive`` of a Challenge: decode, checks, answer, encode."""
    landmark = LandmarkRound(
        "lm-bench",
        LANDMARK,
        decode_datagram(_agent().open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    challenge = landmark.next_challenge(time.monotonic_ns())

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        return (_agent(), challenge), {}

    benchmark.pedantic(AgentRound.receive, setup=setup, rounds=3000, iterations=1)


@pytest.mark.parametrize("algorithm", list(Algorithm), ids=str)
def test_agent_proof_build_and_sign(benchmark, algorithm: Algorithm) -> None:
    """The proof over k = 4 receipts: encode, sign (the device key's algorithm), digest."""
    fleet = Fleet(1)
    receipts = [r.receipt for r in fleet.rounds(fleet.chips[0])]
    signer = KeySigner.generate(algorithm)
    chain = ProofChain("dev-bench")
    envelope, _ = benchmark(chain.extend, receipts, measurement=MEASUREMENT, signer=signer)
    benchmark.extra_info["proof_bytes"] = envelope.ByteSize()


def test_wire_sizes_k4_n8(benchmark) -> None:
    """Bytes of each message kind in one proof (k = 4 rounds of n = 8); the benchmark is
    decoding every datagram of those rounds, as both sides together do."""
    fleet = Fleet(1, k=4, exchanges=EXCHANGES)
    chip = fleet.chips[0]
    datagrams: list[bytes] = []
    receipts = [
        run_round(
            chip, lid, fleet.landmark_signers[lid], fleet.rtt_ns(chip, lid), EXCHANGES,
            tap=datagrams.append,
        ).receipt
        for lid in chip.landmarks
    ]  # fmt: skip
    proof, _ = chip.chain.extend(receipts, measurement=MEASUREMENT, signer=chip.signer)
    sizes: dict[str, list[int]] = defaultdict(list)
    for datagram in datagrams:
        sizes[str(decode_datagram(datagram).WhichOneof("kind"))].append(len(datagram))
    table = {f"{kind}_bytes": max(lengths) for kind, lengths in sizes.items()}
    table |= {f"{kind}_count": len(lengths) for kind, lengths in sizes.items()}
    table["timing_receipt_envelope_bytes"] = receipts[0].ByteSize()
    table["transcript_envelope_bytes"] = round_pb2.TimingReceipt.FromString(
        receipts[0].payload
    ).transcript.ByteSize()
    table["proof_envelope_bytes"] = proof.ByteSize()
    table["udp_payload_bytes_per_proof"] = sum(map(len, datagrams))
    benchmark.extra_info.update(table)
    print("\n| message (k = 4, n = 8) | bytes |\n|---|---|")
    for name, value in table.items():
        print(f"| {name} | {value} |")
    benchmark(lambda: [decode_datagram(d) for d in datagrams])
