"""``geoattest bench agent``: the agent's CPU time and bytes on the wire per proof
(k landmarks, n exchanges each) and its duty cycle at a proof a minute and an hour.

The landmarks run in child processes (as in ``bench timing``); the agent's rounds and
proof signing run here, and ``time.process_time`` counts only this process. The baseline
is the k + 1 ES256 signatures an agent must make per proof, timed in the same run.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack

from attestor.rounds import LandmarkEndpoint, RoundSettings, run_rounds
from geoattest.bench.fleet import MEASUREMENT, Fleet
from geoattest.bench.report import Figures, median, progress
from geoattest.bench.timing import child, landmark_child
from geoattest.crypto import KeySigner, generate_private_key, private_key_pem
from geoattest.protocol.proof import ProofChain
from geoattest.protocol.round import RoundSecrets

UDP_IP_HEADER_BYTES = 28


def run(proofs: int = 100, k: int = 4, exchanges: int = 8) -> Figures:
    device = KeySigner.generate()
    secrets = RoundSecrets(os.urandom)
    keys = [generate_private_key() for _ in range(k)]
    settings = RoundSettings(exchanges=exchanges)
    cpu: list[float] = []
    wall: list[float] = []
    with ExitStack() as stack, progress("agent: proofs", proofs) as (bar, task):
        endpoints = []
        for i, key in enumerate(keys):
            _, (port, _) = stack.enter_context(
                child(landmark_child, private_key_pem(key), f"lm-{i}", True)
            )
            endpoints.append(
                LandmarkEndpoint(f"lm-{i}", "127.0.0.1", port, KeySigner(key).verifying_key)
            )
        chain = ProofChain("dev-bench")
        for _ in range(proofs):
            c0, w0 = time.process_time(), time.perf_counter()
            outcomes = run_rounds(endpoints, "dev-bench", device, secrets, settings)
            receipts = [o.receipt for o in outcomes if o.receipt is not None]
            _, chain = chain.extend(receipts, measurement=MEASUREMENT, signer=device)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            bar.advance(task)
    signing = _signing_s(device, k + 1)
    fleet = Fleet(1, k=k, exchanges=exchanges)
    rounds = fleet.rounds(fleet.chips[0])
    proof_bytes = fleet.proof(fleet.chips[0]).ByteSize()
    udp_payload = sum(r.wire_bytes for r in rounds)
    datagrams = sum(r.datagrams for r in rounds)
    cpu_s = median(cpu)
    return {
        "k": k,
        "exchanges": exchanges,
        "cpu_us_per_proof": round(cpu_s * 1e6, 1),
        "wall_ms_per_proof": round(median(wall) * 1e3, 3),
        "signing_us_per_proof": round(signing * 1e6, 1),
        "cpu_ratio_to_signing": round(cpu_s / signing, 2),
        "bytes_per_proof": udp_payload + proof_bytes,
        "udp_payload_bytes_per_proof": udp_payload,
        "udp_datagrams_per_proof": datagrams,
        "udp_bytes_with_headers": udp_payload + datagrams * UDP_IP_HEADER_BYTES,
        "proof_envelope_bytes": proof_bytes,
        "duty_cycle_per_minute": cpu_s / 60,
        "duty_cycle_per_hour": cpu_s / 3600,
    }


def _signing_s(signer: KeySigner, signatures: int) -> float:
    """Median time of ``signatures`` ES256 signatures over a receipt-sized message."""
    message = os.urandom(600)
    samples = []
    for _ in range(200):
        t0 = time.process_time()
        for _ in range(signatures):
            signer.sign(message)
        samples.append(time.process_time() - t0)
    return median(samples)
