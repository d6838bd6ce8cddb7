"""The fleet study's sample check: sampled chips replayed through the real protocol.

Each sampled chip gets a fresh device key and is enrolled; for each of its landmarks a
real :class:`AgentRound` and :class:`LandmarkRound` (with its own landmark key) exchange
real datagrams, each delivered after exactly the delay the study drew for it, on a
virtual clock that only the landmarks read. The agent's :class:`ProofChain` signs the
proof, and the real :class:`ProofAppraiser` with the scenario's policy appraises it. The
check passes when every replayed verdict equals the study's.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from geoattest.crypto import KeySigner, sha256
from geoattest.demo.scenario import DemoScenario
from geoattest.errors import GeoattestError
from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
from geoattest.sim.fleet import FleetResult, SampledChip
from geoattest.units import SECOND_NS
from geoattest.v1 import envelope_pb2
from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser
from geoattest.verifier.state import DeviceRecord, InMemoryState

UNIX_BASE_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: the landmarks' wall clocks read this plus virtual time."""
MEASUREMENT = sha256(b"geoattest fleet agent")
"""The agent firmware the replay's policy allows."""


class _Landmarks:
    """The scenario's landmarks with fresh keys, as the registry lists them."""

    def __init__(self, scenario: DemoScenario) -> None:
        self.sites = scenario.landmarks
        self.signers = [KeySigner.generate() for _ in self.sites]

    def records(self) -> list[LandmarkRecord]:
        return [
            LandmarkRecord(
                s.landmark_id,
                s.latitude,
                s.longitude,
                signer.verifying_key,
                s.name,
                s.operator,
            )
            for s, signer in zip(self.sites, self.signers, strict=True)
        ]


def check_sample(
    scenario: DemoScenario,
    result: FleetResult,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Replay ``result.sampled`` and compare verdicts; the summary goes into the result.

    Returns a mapping with ``checked``, ``matched``, ``mismatches`` (a few, for a bug
    report) and ``by_rule`` (how the study had decided the chips it checked).
    """
    landmarks = _Landmarks(scenario)
    appraiser = ProofAppraiser(
        PipelineConfig(
            quorum=scenario.quorum,
            allowed_measurements=frozenset({MEASUREMENT}),
            landmark_faults=result.config.landmark_faults,
        ),
        landmarks.records(),
        RevocationList(1, frozenset(), frozenset()),
        scenario.policy.appraiser(),
    )
    state = InMemoryState()
    mismatches: list[dict[str, Any]] = []
    by_rule: Counter[str] = Counter()
    for n, chip in enumerate(result.sampled, 1):
        verdict = _replay(chip, landmarks, appraiser, state, scenario.exchanges)
        by_rule[chip.rule.name.lower()] += 1
        if verdict != chip.verdict.value:
            mismatches.append(
                {
                    "index": chip.index,
                    "place": chip.place,
                    "region": chip.region,
                    "truth": chip.truth,
                    "fleet": chip.verdict.value,
                    "pipeline": verdict,
                }
            )
        if progress is not None:
            progress(n, len(result.sampled))
    checked = len(result.sampled)
    summary = {
        "checked": checked,
        "matched": checked - len(mismatches),
        "mismatches": mismatches[:10],
        "by_rule": dict(sorted(by_rule.items())),
    }
    result.sample_check = summary
    return summary


def _replay(
    chip: SampledChip,
    landmarks: _Landmarks,
    appraiser: ProofAppraiser,
    state: InMemoryState,
    exchanges: int,
) -> str:
    device_id = f"fleet-{chip.index}"
    signer = KeySigner.generate()
    state.enrol(
        DeviceRecord(
            device_id, signer.verifying_key, chip.region, chip.index + 1, 2**62, UNIX_BASE_NS
        )
    )
    schedule = chip.schedule
    receipts: list[envelope_pb2.Envelope] = []
    finished: list[int] = []
    for j, lm in enumerate(schedule.landmarks):
        receipt, at_ns = _round(
            device_id,
            signer,
            landmarks.sites[lm].landmark_id,
            landmarks.signers[lm],
            exchanges=exchanges,
            open_ns=schedule.open_ns[j],
            down_ns=schedule.down_ns[j],
            up_ns=schedule.up_ns[j],
        )
        if receipt is not None:
            receipts.append(receipt)
            finished.append(at_ns)
    proof, _ = ProofChain(device_id).extend(receipts, measurement=MEASUREMENT, signer=signer)
    now_ns = UNIX_BASE_NS + max(finished, default=0) + SECOND_NS
    return appraiser.appraise(proof, state, now_ns).verdict.value


def _round(
    device_id: str,
    signer: KeySigner,
    landmark_id: str,
    landmark_signer: KeySigner,
    *,
    exchanges: int,
    open_ns: int,
    down_ns: Sequence[int],
    up_ns: Sequence[int],
) -> tuple[envelope_pb2.Envelope | None, int]:
    """One round, every datagram delivered after its drawn delay; the landmark's receipt
    and the virtual instant the landmark signed it (the Close's arrival)."""
    agent = AgentRound(
        device_id,
        landmark_id,
        landmark_signer.verifying_key,
        signer,
        secret=os.urandom(32),
        exchanges=exchanges,
    )
    now = open_ns
    landmark = LandmarkRound(
        landmark_id,
        landmark_signer,
        decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    to_agent: bytes | None = landmark.next_challenge(now)
    for down, up in zip(down_ns, up_ns, strict=True):
        if to_agent is None:
            break
        now += down
        try:
            to_landmark = agent.receive(to_agent)
        except GeoattestError:
            return None, now
        if to_landmark is None:
            break
        now += up
        to_agent = landmark.receive(to_landmark, now, UNIX_BASE_NS + now)
    if to_agent is not None:
        agent.receive(to_agent)  # the receipt: when it arrives does not matter
    return agent.receipt, now
