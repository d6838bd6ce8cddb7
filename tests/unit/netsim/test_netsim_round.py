"""A real timed round (the sans-I/O state machines) across the virtual network."""

from __future__ import annotations

import os
from collections.abc import Iterable

from conftest import UNIX_NS

from geoattest.crypto import KeySigner
from geoattest.netsim.adversary import Adversary, ConstantDelay, FasterThanFibre, Role
from geoattest.netsim.latency import LatencyModel
from geoattest.netsim.virtual import VirtualClock, VirtualNetwork
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram

MODEL = LatencyModel.default()
PARIS = (48.86, 2.35)
TOKYO = (35.68, 139.69)


def timed_round(
    device: KeySigner, landmark: KeySigner, adversary: Adversary | None
) -> tuple[LandmarkRound, VirtualNetwork]:
    clock = VirtualClock(start_ns=10**9)
    net = VirtualNetwork(clock, MODEL, seed=8, adversary=adversary)
    agent = AgentRound(
        "dev-1", "lm-tyo", landmark.verifying_key, device, secret=os.urandom(32), exchanges=8
    )
    rounds: list[LandmarkRound] = []

    def landmark_side(payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
        if not rounds:
            lm = LandmarkRound(
                "lm-tyo",
                landmark,
                decode_datagram(payload).open,
                round_id=os.urandom(16),
                randomness=os.urandom,
            )
            rounds.append(lm)
            return [(src, lm.next_challenge(now_ns))]
        reply = rounds[0].receive(payload, now_ns, UNIX_NS)
        return [] if reply is None else [(src, reply)]

    def agent_side(payload: bytes, src: str, now_ns: int) -> Iterable[tuple[str, bytes]]:
        reply = agent.receive(payload)
        return [] if reply is None else [(src, reply)]

    net.attach("lm-tyo", TOKYO, Role.LANDMARK, landmark_side)
    net.attach("dev-1", PARIS, Role.CHIP, agent_side)
    net.send("dev-1", "lm-tyo", agent.open())
    clock.run()
    assert agent.receipt is not None
    return rounds[0], net


def test_honest_round_measures_the_modelled_path(
    device_signer: KeySigner, landmark_signer: KeySigner
) -> None:
    lm, net = timed_round(device_signer, landmark_signer, None)
    assert lm.rtt_min_ns >= 2 * net.route("dev-1", "lm-tyo").base_delay_s * 1e9


def test_delay_only_lengthens_and_a_link_at_c_reaches_the_light_floor_exactly(
    device_signer: KeySigner, landmark_signer: KeySigner
) -> None:
    honest, net = timed_round(device_signer, landmark_signer, None)
    delayed, _ = timed_round(device_signer, landmark_signer, ConstantDelay(0.005))
    assert delayed.rtt_min_ns >= honest.rtt_min_ns
    at_c, _ = timed_round(device_signer, landmark_signer, FasterThanFibre(MODEL, PARIS, TOKYO, 1.0))
    assert at_c.rtt_min_ns == 2 * net.route("dev-1", "lm-tyo").floor_ns
