"""A benchmark fleet: the demo scenario's landmarks, policy and chip sites, with many
chips placed on those sites and real proofs from real (in-memory) rounds.

Rounds run the real state machines with every datagram crossing as bytes; only the clock
is synthetic, stepping by an RTT that a chip at its site would plausibly see (fibre at
2/3 c, path stretch 1.7, 0.1 ms access), so the verifier's geography works as in service.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from geoattest.crypto import KeySigner, PrivateKey, VerifyingKey, generate_private_key
from geoattest.demo.scenario import (
    ChipSite,
    DemoScenario,
    LandmarkSite,
    default_scenario_path,
    load_scenario,
)
from geoattest.errors import ConfigError, StudyError
from geoattest.netsim.latency import great_circle_km
from geoattest.pki import LandmarkRecord, LandmarkRegistry, ManufacturerCA, ResultKey
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import AgentRound, LandmarkRound, decode_datagram
from geoattest.v1 import envelope_pb2
from geoattest.verifier.state import DeviceRecord
from geoattest.wire.client import device_tls_credentials

MEASUREMENT = b"\x00" * 32
VERIFIER_ID = "geoattest-bench-verifier"
KM_PER_MS_FIBRE = 200.0 / 1.7
"""Distance per ms of one-way delay: light in fibre (2/3 c) over a path 1.7x the great circle."""
ACCESS_NS = 100_000
TWIN_OFFSET_DEG = 1.0
"""Latitude step of the twin landmarks added when k exceeds the scenario's landmarks."""


@dataclass
class FleetChip:
    """A benchmark fleet's chip: its key, certificate, site, landmarks and proof chain."""

    device_id: str
    key: PrivateKey
    certificate_der: bytes
    site: ChipSite
    landmarks: list[str]
    chain: ProofChain = field(init=False)
    signer: KeySigner = field(init=False)

    def __post_init__(self) -> None:
        self.chain = ProofChain(self.device_id)
        self.signer = KeySigner(self.key)

    def tls_credentials(self, verifier_ca: x509.Certificate) -> grpc.ChannelCredentials:
        """Mutual TLS as this chip, with its device certificate (as its key store makes)."""
        certificate = x509.load_der_x509_certificate(self.certificate_der)
        return device_tls_credentials(self.key, certificate, verifier_ca)


@dataclass
class RoundResult:
    receipt: envelope_pb2.Envelope
    wire_bytes: int
    """UDP payload bytes of every datagram of the round, both directions."""
    datagrams: int


def run_round(
    chip: FleetChip,
    landmark_id: str,
    landmark: KeySigner,
    rtt_ns: int,
    exchanges: int,
    *,
    tap: Callable[[bytes], None] | None = None,
) -> RoundResult:
    """One round between the real state machines in memory; the clock steps by ``rtt_ns``.
    ``tap`` sees every datagram, both directions, in order (for wire-size tables)."""
    agent = AgentRound(
        chip.device_id,
        landmark_id,
        landmark.verifying_key,
        chip.signer,
        secret=os.urandom(32),
        exchanges=exchanges,
    )
    opening = agent.open()
    lm = LandmarkRound(
        landmark_id,
        landmark,
        decode_datagram(opening).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    now = time.monotonic_ns()
    unix_ns = time.time_ns()
    seen: list[bytes] = [opening]
    to_agent: bytes | None = lm.next_challenge(now)
    while to_agent is not None:
        seen.append(to_agent)
        to_landmark = agent.receive(to_agent)
        if to_landmark is None:
            break
        seen.append(to_landmark)
        now += rtt_ns
        to_agent = lm.receive(to_landmark, now, unix_ns)
    if agent.receipt is None:
        raise StudyError(f"bench round did not complete: {agent.state}")
    if tap is not None:
        for datagram in seen:
            tap(datagram)
    return RoundResult(agent.receipt, sum(map(len, seen)), len(seen))


def _landmarks(scenario: DemoScenario, k: int) -> tuple[LandmarkSite, ...]:
    """The scenario's landmarks; for k beyond them, twins 1 degree (~111 km) north of each,
    so a chip's k nearest stay plausible for k up to twice the scenario's count."""
    sites = scenario.landmarks
    if k <= len(sites):
        return sites
    twins = tuple(
        replace(
            s,
            landmark_id=f"{s.landmark_id}-twin",
            latitude=s.latitude + TWIN_OFFSET_DEG,
            operator=f"{s.operator}-twin",
        )
        for s in sites
    )
    if k > 2 * len(sites):
        raise ConfigError(f"k = {k}: the bench fleet has at most {2 * len(sites)} landmarks")
    return sites + twins


class Fleet:
    """A CA, the scenario's landmarks (keys fresh) and ``chips`` chips on its sites."""

    def __init__(self, chips: int, *, k: int | None = None, exchanges: int = 8) -> None:
        self.scenario: DemoScenario = load_scenario(default_scenario_path())
        self.k = k or self.scenario.landmarks_per_chip
        self.exchanges = exchanges
        self.now = dt.datetime.now(dt.UTC)
        self.ca = ManufacturerCA.create("Bench Accelerators", self.now - dt.timedelta(days=1))
        self.landmarks = _landmarks(self.scenario, self.k)
        self.landmark_signers = {s.landmark_id: KeySigner.generate() for s in self.landmarks}
        self.sites = {s.landmark_id: (s.latitude, s.longitude) for s in self.landmarks}
        self.chips = [self._chip(i) for i in range(chips)]

    def _chip(self, i: int) -> FleetChip:
        site = self.scenario.chips[i % len(self.scenario.chips)]
        key = generate_private_key()
        device_id = f"bench-{i:07d}"
        certificate = self.ca.issue_device_certificate(
            key.public_key(), device_id, "H100", self.now - dt.timedelta(hours=1)
        )
        ranked = sorted(
            self.sites,
            key=lambda lid: great_circle_km((site.latitude, site.longitude), self.sites[lid]),
        )
        return FleetChip(
            device_id,
            key,
            certificate.public_bytes(serialization.Encoding.DER),
            site,
            ranked[: self.k],
        )

    def rtt_ns(self, chip: FleetChip, landmark_id: str) -> int:
        km = great_circle_km((chip.site.latitude, chip.site.longitude), self.sites[landmark_id])
        return ACCESS_NS + int(2 * km / KM_PER_MS_FIBRE * 1e6)

    def rounds(self, chip: FleetChip) -> list[RoundResult]:
        return [
            run_round(chip, lid, self.landmark_signers[lid], self.rtt_ns(chip, lid), self.exchanges)
            for lid in chip.landmarks
        ]

    def proof(self, chip: FleetChip, *, advance: bool = True) -> envelope_pb2.Envelope:
        """The chip's next proof over fresh rounds; ``advance``: its chain moves on."""
        receipts = [r.receipt for r in self.rounds(chip)]
        envelope, chain = chip.chain.extend(receipts, measurement=MEASUREMENT, signer=chip.signer)
        if advance:
            chip.chain = chain
        return envelope

    def landmark_records(self) -> list[LandmarkRecord]:
        return [
            LandmarkRecord(
                s.landmark_id,
                s.latitude,
                s.longitude,
                self.landmark_signers[s.landmark_id].verifying_key,
                s.name,
                s.operator,
            )
            for s in self.landmarks
        ]

    def device_record(self, chip: FleetChip) -> DeviceRecord:
        """What enrolment would store for ``chip`` (for the store-free pipeline)."""
        now_ns = time.time_ns()
        return DeviceRecord(
            device_id=chip.device_id,
            verifying_key=VerifyingKey.from_public_key(chip.signer.verifying_key.public_key),
            licensed_region=chip.site.licensed_region,
            certificate_serial=0,
            not_valid_after_ns=now_ns + 365 * 86_400 * 10**9,
            enrolled_at_ns=now_ns,
        )

    def write(self, root: Path) -> list[str]:
        """The verifier's operator files under ``root``; the ``verifier serve`` flags."""
        (root / "ca.crt").write_bytes(self.ca.certificate.public_bytes(serialization.Encoding.PEM))
        LandmarkRegistry(self.landmark_records()).save(root / "landmarks.json")
        (root / "policy.json").write_text(json.dumps(self.scenario.policy_document))
        until = (self.now + dt.timedelta(days=30)).isoformat()
        licences = {
            c.device_id: {"region": c.site.licensed_region, "valid_until": until}
            for c in self.chips
        }
        (root / "licences.json").write_text(json.dumps({"licences": licences}))
        ResultKey.generate().save(root / "result-key")
        return [
            "verifier", "serve", "--listen", "127.0.0.1:0", "--db", str(root / "verifier.db"),
            "--trust-root", str(root / "ca.crt"), "--landmarks", str(root / "landmarks.json"),
            "--policy", str(root / "policy.json"), "--licences", str(root / "licences.json"),
            "--result-key", str(root / "result-key"), "--verifier-id", VERIFIER_ID,
            "--plaintext",
        ]  # fmt: skip
