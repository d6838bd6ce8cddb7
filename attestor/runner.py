"""The agent as a process: enrol, then attest on a cadence until stopped.

Configuration is a JSON file (``geoattest attestor run --config FILE``)::

    {
      "device_id": "chip-sg-01",
      "keystore": "chips/chip-sg-01/keys",      # from 'geoattest device provision'
      "outbox": "chips/chip-sg-01/outbox",
      "licence_state": "chips/chip-sg-01/licence.sealed",   # optional; this by default
      "verifier": "127.0.0.1:50051",
      "verifier_ca": "tls-ca.crt",        # the operator's TLS CA: mutual TLS, the chip
                                          # presenting its device certificate; or
                                          # "plaintext": true (a loopback verifier only)
      "verifier_id": "geoattest-verifier",
      "landmarks": [{"id": "lm-sin", "address": "127.0.0.1:40001",
                     "public_key": "<hex DER SubjectPublicKeyInfo>"}],
      "exchanges": 8, "cadence_s": 10, "grace_s": 60
    }

Every value is checked where the file is loaded (:meth:`AgentConfig.load`), so a bad one
is a one-line ``ConfigError`` before the agent starts: ``verifier`` and each landmark's
``address`` are ``HOST:PORT``; ``landmarks`` lists at least one landmark, each id once;
``exchanges`` is a whole number in 1..32 (the round's limit); ``cadence_s`` is a number of
seconds above 0 and at most a day (:data:`MAX_CADENCE_S`); ``grace_s`` a whole number of
seconds, 0 to a year (:data:`MAX_GRACE_S`).

Each cycle runs the rounds, keeps the proof in the outbox, then delivers everything
pending in order. Events (one JSON object per line on stdout) say what happened, for
people and for the demo: ``enrolled``, ``booted`` (the licence state restored from its
sealed slot, or why it was refused and the chip booted lapsed), ``proof`` (receipts
gathered), ``result`` (the verifier's answer, with the licence status after it),
``unreachable``.

The licence state (the licence, and when the chip degrades without one) is sealed under the
device key store (:mod:`geoattest.attestor.sealed`) in ``licence_state`` (default:
``licence.sealed`` beside the configuration), so a restart neither loses it nor starts a
fresh grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from geoattest.address import parse_address, require_loopback
from geoattest.attestor.agent import Attester, Delivered, DeliveryError
from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.attestor.licence import LICENCE_SLOT, LICENCE_STATE_FILE, AgentLicence
from geoattest.attestor.outbox import Outbox
from geoattest.attestor.rounds import LandmarkEndpoint, PathFloors, RoundSettings, run_rounds
from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError, EvidenceError
from geoattest.files import read_json
from geoattest.pki import load_certificate_pem
from geoattest.protocol.round import MAX_EXCHANGES, MIN_EXCHANGES, RoundSecrets
from geoattest.v1 import envelope_pb2, evidence_pb2
from geoattest.wire.client import VerifierClient, VerifierRefused, enrolment_request

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)

MAX_CADENCE_S = 86_400.0
"""The longest cadence an agent may be given (a day): a chip that proves less often than
this gives its verifier nothing to judge it by between proofs."""
MAX_GRACE_S = 365 * 86_400
"""The longest licence grace period an agent may be given (a year)."""


def _whole(raw: dict[str, Any], key: str, default: int, *, low: int, high: int, where: str) -> int:
    """``raw[key]`` as a whole number in ``low..high`` (a JSON boolean is not one)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: {key} must be a whole number {low}..{high}, not {value!r:.40}")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float, *, high: float, where: str) -> float:
    """``raw[key]`` as a number of seconds above 0 and at most ``high`` (NaN and infinity
    fail the comparison)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ConfigError(f"{where}: {key} must be seconds in (0, {high:g}], not {value!r:.40}")
    return float(value)


@dataclass(frozen=True)
class AgentConfig:
    device_id: str
    keystore: Path
    outbox: Path
    licence_state: Path
    verifier: str
    verifier_id: str
    landmarks: tuple[LandmarkEndpoint, ...]
    verifier_ca: Path | None = None
    """The operator's TLS CA certificate; None: plaintext, to a loopback verifier only."""
    exchanges: int = 8
    cadence_s: float = 10.0
    grace_s: int = 60

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        """The configuration in ``path``, every value checked (see the module).

        Raises:
            ConfigError: the file is missing, not JSON, or a value is missing or invalid.
        """
        raw = read_json(path, "agent config")
        base = path.parent
        where = f"agent config {path}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} is not a JSON object")
        try:
            entries = raw["landmarks"]
            if not isinstance(entries, list) or not entries:
                raise ConfigError(f"{where}: landmarks must list at least one landmark")
            landmarks = tuple(
                LandmarkEndpoint(
                    str(entry["id"]),
                    *parse_address(str(entry["address"]), f"landmark {entry['id']} address"),
                    VerifyingKey.from_der(bytes.fromhex(entry["public_key"])),
                )
                for entry in entries
            )
            if len({lm.landmark_id for lm in landmarks}) != len(landmarks):
                raise ConfigError(f"{where}: landmarks must name each landmark once")
            verifier = str(raw["verifier"])
            parse_address(verifier, "verifier")
            verifier_ca = base / raw["verifier_ca"] if "verifier_ca" in raw else None
            if (verifier_ca is None) != (raw.get("plaintext") is True):
                raise ConfigError(
                    f'agent config {path}: give "verifier_ca" (the operator\'s TLS CA) '
                    'or "plaintext": true (a loopback verifier only), one of them'
                )
            if verifier_ca is None:
                require_loopback(verifier, "verifier")
            return cls(
                device_id=str(raw["device_id"]),
                keystore=base / raw["keystore"],
                outbox=base / raw["outbox"],
                licence_state=base / raw.get("licence_state", LICENCE_STATE_FILE),
                verifier=verifier,
                verifier_id=str(raw["verifier_id"]),
                landmarks=landmarks,
                verifier_ca=verifier_ca,
                exchanges=_whole(
                    raw, "exchanges", 8, low=MIN_EXCHANGES, high=MAX_EXCHANGES, where=where
                ),
                cadence_s=_seconds(raw, "cadence_s", 10.0, high=MAX_CADENCE_S, where=where),
                grace_s=_whole(raw, "grace_s", 60, low=0, high=MAX_GRACE_S, where=where),
            )
        except (KeyError, TypeError, ValueError, EvidenceError) as exc:
            raise ConfigError(f"agent config {path} is malformed: {exc!r}") from None


Emit = Callable[[dict[str, Any]], None]


def backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff with full jitter, so a fleet does not retry in step."""
    return random.uniform(0.0, min(cap_s, base_s * 2**attempt))  # noqa: S311 (not crypto)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, waking at once when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def unix_s() -> int:
    """The agent's clock for licence expiry: whole seconds of Unix time."""
    return int(time.time())


def print_event(event: dict[str, Any]) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


def rejected_result(device_id: str, refusal: VerifierRefused) -> evidence_pb2.AttestationResult:
    """A refusal of the proof itself, in the shape of a REJECTED result."""
    return evidence_pb2.AttestationResult(
        device_id=device_id,
        verdict=evidence_pb2.VERDICT_REJECTED,
        reason=refusal.reason,
        detail=refusal.detail,
    )


class AgentProcess:
    """One chip's agent: its key store, outbox, licence and connection to the verifier."""

    def __init__(self, config: AgentConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.secrets = RoundSecrets(os.urandom)
        self.settings = RoundSettings(exchanges=config.exchanges)
        self.floors = PathFloors()
        self.keystore = DeviceKeyStore.open(config.keystore)
        if self.keystore.device_id != config.device_id:
            raise ConfigError(
                f"key store {config.keystore} holds {self.keystore.device_id}, "
                f"not {config.device_id}"
            )
        self.outbox = Outbox(config.outbox, config.device_id)
        self.credentials = (
            self.keystore.tls_credentials(load_certificate_pem(config.verifier_ca))
            if config.verifier_ca is not None
            else None
        )

    async def run(self, stop: asyncio.Event) -> None:
        async with VerifierClient(self.config.verifier, credentials=self.credentials) as client:
            attester = await self._start(client, stop)
            if attester is None:
                return
            while not stop.is_set():
                started = time.monotonic()
                outcomes = await asyncio.to_thread(
                    run_rounds,
                    self.config.landmarks,
                    self.config.device_id,
                    self.keystore,
                    self.secrets,
                    self.settings,
                    concurrent=True,
                    floors=self.floors,
                )
                receipts = {o.landmark_id: o.receipt for o in outcomes if o.receipt is not None}
                attester.attest(receipts.get)
                failed = {o.landmark_id: o.failure.reason.value for o in outcomes if o.failure}
                self.emit(
                    {
                        "event": "proof",
                        "device_id": self.config.device_id,
                        "receipts": len(receipts),
                        "failed": failed,
                    }
                )
                await self._deliver(client, attester)
                await pause(stop, self.config.cadence_s - (time.monotonic() - started))

    async def _start(self, client: VerifierClient, stop: asyncio.Event) -> Attester | None:
        """Enrol (idempotent) and fetch the verifier's keys; wait while it is unreachable."""
        request = enrolment_request(
            self.keystore,
            self.config.device_id,
            self.keystore.certificate_der(),
            [],
            self.config.verifier_id,
        )
        attempt = 0
        while not stop.is_set():
            try:
                await client.enroll(request)
                jwks = await client.result_keys()
            except VerifierRefused as refusal:
                if refusal.code not in RETRYABLE:
                    self.emit(
                        {
                            "event": "enrolment_refused",
                            "device_id": self.config.device_id,
                            "reason": refusal.reason,
                            "detail": refusal.detail,
                        }
                    )
                    return None
                self.emit({"event": "unreachable", "device_id": self.config.device_id})
                await pause(stop, backoff_s(attempt))
                attempt += 1
                continue
            self.emit({"event": "enrolled", "device_id": self.config.device_id})
            licence = AgentLicence(
                self.config.device_id,
                jwks,
                grace_s=self.config.grace_s,
                booted_at_s=unix_s(),
                slot=self.keystore.sealed_slot(LICENCE_SLOT, self.config.licence_state),
            )
            self.emit(
                {
                    "event": "booted",
                    "device_id": self.config.device_id,
                    "refused": licence.refused.reason.value if licence.refused else None,
                    "detail": licence.refused.detail if licence.refused else "",
                    **licence_report(licence, unix_s()),
                }
            )
            return Attester(
                self.keystore,
                self.config.device_id,
                [lm.landmark_id for lm in self.config.landmarks],
                self.outbox,
                licence,
            )
        return None

    async def _deliver(self, client: VerifierClient, attester: Attester) -> None:
        """Drain the outbox with the attester's delivery loop in a worker thread (its
        outbox writes wait for fsync); each call to the verifier runs on this event loop."""
        loop = asyncio.get_running_loop()

        def submit(proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult:
            try:
                return asyncio.run_coroutine_threadsafe(client.submit(proof), loop).result()
            except VerifierRefused as refusal:
                if refusal.code in RETRYABLE:
                    raise DeliveryError(str(refusal)) from refusal
                return rejected_result(self.config.device_id, refusal)

        await asyncio.to_thread(
            attester.deliver, submit, unix_s, lambda delivered: self._report(delivered, attester)
        )
        if pending := len(self.outbox.pending()):
            self.emit(
                {"event": "unreachable", "device_id": self.config.device_id, "pending": pending}
            )

    def _report(self, delivered: Delivered, attester: Attester) -> None:
        result = delivered.result
        self.emit(
            {
                "event": "result",
                "device_id": self.config.device_id,
                "counter": delivered.counter,
                "outcome": delivered.outcome.value,
                "verdict": evidence_pb2.Verdict.Name(result.verdict).removeprefix("VERDICT_"),
                "reason": result.reason,
                "bounds": [
                    {
                        "landmark_id": b.landmark_id,
                        "lat": b.latitude,
                        "lon": b.longitude,
                        "rtt_us": round(b.rtt_min_ns / 1000, 1),
                        "bound_km": round(b.bound_km, 3),
                    }
                    for b in result.bounds
                ],
                "result_token": result.result_token,
                **licence_report(attester.licence, unix_s()),
            }
        )


def licence_report(licence: AgentLicence, now_s: int) -> dict[str, Any]:
    """The licence's status at ``now_s``, until when it runs, and when the chip degrades."""
    return {
        "licence": licence.status(now_s).value,
        "licence_until": licence.current.expires_at_s if licence.current else None,
        "degrades_at": licence.state.degrades_at_s,
    }
