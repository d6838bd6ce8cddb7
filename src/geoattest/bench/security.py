"""``geoattest bench security``: what mutual TLS and the audit log cost the batch path.

Three ``verifier serve`` processes run side by side over the same fleet's files, each with
its own database: plaintext, mutual TLS, and mutual TLS with the audit log. Each chip
connects to each as itself (over TLS with its device certificate, as an agent does) and
submits batches of its own successive proofs, all chips at once. The phases are
interleaved (plaintext, TLS, TLS + audit, then again) so all three see the same load; each
figure is the median over the repeats, and the ratios are of medians measured in the same
run. Every connection is opened (and its handshake done) before its phase is timed, as an
agent keeps its channel open across proofs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Fleet, FleetChip
from geoattest.bench.report import Figures, median, progress
from geoattest.bench.verifier import accepted
from geoattest.crypto import KeySigner
from geoattest.demo.run import Party
from geoattest.pki.tls import OperatorCA, Role
from geoattest.protocol.proof import ProofChain
from geoattest.v1 import envelope_pb2
from geoattest.verifier.audit_log import AuditLog, appraisal_record
from geoattest.wire.client import VerifierClient, enrolment_request

REPEATS = 3
START_S = 600.0
"""Three verifiers load their geography at once; on a busy machine that takes minutes."""
KINDS = ("plaintext", "mtls", "mtls_audit")


def _serve(fleet: Fleet, root: Path, kind: str, tls: Path) -> Party:
    root.mkdir()
    argv = fleet.write(root)
    argv.remove("--plaintext")
    if kind != "plaintext":
        argv += ["--tls", str(tls)]
    else:
        argv += ["--plaintext"]
    if kind == "mtls_audit":
        argv += ["--audit-log", str(root / "audit.log")]
    return Party(kind, [sys.executable, "-m", "geoattest", *argv], root / "log")


def _client(target: str, chip: FleetChip, ca: OperatorCA | None) -> VerifierClient:
    credentials = chip.tls_credentials(ca.certificate) if ca is not None else None
    return VerifierClient(target, timeout_s=300.0, credentials=credentials)


async def _phase(
    clients: list[VerifierClient], batches: list[list[envelope_pb2.Envelope]]
) -> float:
    """All chips' batches at once; proofs per second, after checking none was rejected."""
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(client.submit_batch(batch) for client, batch in zip(clients, batches, strict=True))
    )
    elapsed = time.perf_counter() - started
    return sum(accepted(answer) for answer in answers) / elapsed


async def _run(fleet: Fleet, targets: dict[str, str], ca: OperatorCA, rounds: int) -> Figures:
    clients = {
        kind: [_client(target, c, None if kind == "plaintext" else ca) for c in fleet.chips]
        for kind, target in targets.items()
    }
    try:
        for kind_clients in clients.values():
            for chip, client in zip(fleet.chips, kind_clients, strict=True):
                await client.enroll(
                    enrolment_request(
                        chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
                    )
                )
        rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
        chains = {kind: [ProofChain(c.device_id) for c in fleet.chips] for kind in KINDS}
        for _ in range(REPEATS):
            for kind in KINDS:
                batches = []
                for i, chip in enumerate(fleet.chips):  # each verifier its own chain
                    chip.chain = chains[kind][i]
                    batches.append([fleet.proof(chip) for _ in range(rounds)])
                    chains[kind][i] = chip.chain
                rates[kind].append(await _phase(clients[kind], batches))
        plain, mtls, audited = (median(rates[kind]) for kind in KINDS)
        append_us = audit_append_us(rounds)
        return {
            "plaintext_proofs_per_s": round(plain, 1),
            "mtls_proofs_per_s": round(mtls, 1),
            "mtls_audit_proofs_per_s": round(audited, 1),
            "mtls_vs_plaintext": round(mtls / plain, 3),
            "audit_vs_mtls": round(audited / mtls, 3),
            "audit_us_per_proof": round(1e6 / audited - 1e6 / mtls, 1),
            "audit_append_us_per_proof": round(append_us, 1),
            "audit_append_share_of_mtls_proof": round(append_us / (1e6 / mtls), 4),
        }
    finally:
        for kind_clients in clients.values():
            for client in kind_clients:
                await client.close()


def audit_append_us(per_batch: int, batches: int = 200) -> float:
    """Wall time per proof of the audit log's own work, measured alone: appending a batch's
    appraisal records (hashing, the tree's edge, one write and one fsync per batch), as a
    median over ``batches`` appends."""
    signer = KeySigner.generate()
    record = appraisal_record(
        device_id="bench-0000000",
        counter=1,
        proof_digest=bytes(32),
        verdict="ALLOWED",
        reason="",
        token="x" * 900,
    )
    with tempfile.TemporaryDirectory(prefix="geoattest-bench-") as tmp:
        log = AuditLog(
            Path(tmp) / "audit.log", signer, origin="bench", checkpoint_every_ns=60 * 10**9
        )
        times = []
        for i in range(batches):
            started = time.perf_counter()
            log.append([record] * per_batch, now_ns=i)
            times.append((time.perf_counter() - started) / per_batch)
        log.close()
    return median(times) * 1e6


def run(chips: int = 16, rounds: int = 8) -> Figures:
    """Batch-path proofs/s over plaintext, mutual TLS, and mutual TLS with the audit log."""
    with progress("security", 4) as (bar, task):
        fleet = Fleet(chips)
        now = dt.datetime.now(dt.UTC)
        ca = OperatorCA.create("Bench Operator", now - dt.timedelta(hours=1))
        bar.advance(task)
        with tempfile.TemporaryDirectory(prefix="geoattest-bench-") as tmp:
            root = Path(tmp)
            ca.issue_to(root / "tls", Role.SERVER, "verifier", now, hosts=["127.0.0.1"])
            parties = {kind: _serve(fleet, root / kind, kind, root / "tls") for kind in KINDS}
            try:
                targets = {
                    kind: str(p.wait_for_address(timeout_s=START_S)) for kind, p in parties.items()
                }
                bar.advance(task)
                figures = asyncio.run(_run(fleet, targets, ca, rounds))
                bar.advance(task)
            finally:
                for party in parties.values():
                    party.stop()
    return {"chips": chips, "proofs_per_batch": rounds, **figures}
