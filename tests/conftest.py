"""Shared fixtures: real keys, and a driver that runs a round between real state machines."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from geoattest.crypto import KeySigner
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram


@dataclass
class RoundRun:
    agent: AgentRound
    landmark: LandmarkRound
    receipt: bytes | None


class FakeClock:
    """A landmark clock the test controls: each reading advances by ``step_ns``."""

    def __init__(self, start_ns: int = 1_000_000, step_ns: int = 10_000) -> None:
        self._ticks: Iterator[int] = itertools.count(start_ns, step_ns)

    def __call__(self) -> int:
        return next(self._ticks)


@pytest.fixture
def device_signer() -> KeySigner:
    return KeySigner.generate()


@pytest.fixture
def landmark_signer() -> KeySigner:
    return KeySigner.generate()


RunRound = Callable[..., RoundRun]


@pytest.fixture
def run_round(device_signer: KeySigner, landmark_signer: KeySigner) -> RunRound:
    """Run one complete round in memory; every datagram crosses as bytes."""

    def run(
        *,
        device_id: str = "dev-1",
        landmark_id: str = "lm-1",
        exchanges: int = 8,
        clock: Callable[[], int] | None = None,
        unix_ns: int = 1_767_225_600 * 10**9,
        device: KeySigner | None = None,
        landmark: KeySigner | None = None,
    ) -> RoundRun:
        clock = clock or FakeClock()
        device = device or device_signer
        landmark = landmark or landmark_signer
        agent = AgentRound(
            device_id,
            landmark_id,
            landmark.verifying_key,
            device,
            secret=os.urandom(32),
            exchanges=exchanges,
        )
        lm = LandmarkRound(
            landmark_id,
            landmark,
            decode_datagram(agent.open()).open,
            round_id=os.urandom(16),
            randomness=os.urandom,
        )
        to_agent: bytes | None = lm.next_challenge(clock())
        receipt = None
        while to_agent is not None:
            to_landmark = agent.receive(to_agent)
            if to_landmark is None:
                receipt = to_agent
                break
            to_agent = lm.receive(to_landmark, clock(), unix_ns)
        return RoundRun(agent, lm, receipt)

    return run
