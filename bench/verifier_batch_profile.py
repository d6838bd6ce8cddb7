"""Where the batch call's time goes: cProfile of ``VerifierService.submit_batch`` over the
durable store (SQLite WAL, ``synchronous=FULL``), batches of 50 proofs of the bench fleet.

Run: ``python bench/verifier_batch_profile.py [--chips 400] [--top 25]`` (about 20 s).
Prints the share of the batch path spent in each part, then the top functions by own time.
cProfile's per-call cost inflates Python-heavy parts (statement building, JSON) against
native ones (signature checks), so read shares, not absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from geoattest.bench.fleet import VERIFIER_ID, Fleet, FleetChip
from geoattest.bench.verifier import make_appraiser
from geoattest.geo import load_policy
from geoattest.pki import ResultKey, TrustAnchors
from geoattest.v1 import envelope_pb2
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.results import ResultSigner
from geoattest.verifier.service import VerifierConfig, VerifierService
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import enrolment_request

BATCH = 50
PARTS = {
    "signature checks (ES256 verify)": (
        "~",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ec.ECPublicKey' objects>",
    ),
    "store reads (devices with heads, once per batch; successors)": (
        "verifier/store.py",
        "enrolled_for_keys",
        "head",
        "successor",
    ),
    "store commit (one transaction per batch)": ("verifier/store.py", "commit"),
    "EAR result signing": ("verifier/results.py", "sign"),
    "geography": ("geo/appraiser.py", "appraise", "verdict"),
}
"""Part -> (file suffix, function names): cumulative time of those functions."""


def service_for(
    fleet: Fleet, root: Path, db: Path | None = None, chips: Sequence[FleetChip] | None = None
) -> VerifierService:
    """The service ``verifier serve`` would run for the fleet (its files written under
    ``root`` unless there already), over ``db`` (default ``root/verifier.db``), every chip
    of ``chips`` (default: the fleet's) enrolled."""
    if not (root / "policy.json").exists():
        fleet.write(root)
    region = load_policy(root / "policy.json").appraiser()
    store = SqlStore.open(db or root / "verifier.db")
    now = time.time_ns()
    service = VerifierService(
        VerifierConfig(VERIFIER_ID),
        anchors=TrustAnchors.from_pem_files([root / "ca.crt"]),
        appraiser=make_appraiser(fleet),
        licences=LiveLicences.load(store, root / "licences.json", region.has_region, now),
        signer=ResultSigner(
            ResultKey.load(root / "result-key"), verifier_id=VERIFIER_ID, policy_id=region.policy_id
        ),
        store=store,
    )
    for chip in fleet.chips if chips is None else chips:
        request = enrolment_request(
            chip.signer, chip.device_id, chip.certificate_der, [], VERIFIER_ID
        )
        service.enrol(request.identity, request.possession, now)
    return service


def submit_all(service: VerifierService, proofs: Sequence[envelope_pb2.Envelope]) -> float:
    """Submit in batches; proofs per second."""
    start = time.perf_counter()
    for i in range(0, len(proofs), BATCH):
        for result in service.submit_batch(proofs[i : i + BATCH], time.time_ns()):
            if result.reason is not None:
                raise AssertionError(f"bench proof rejected: {result.reason} {result.detail}")
    return len(proofs) / (time.perf_counter() - start)


def cumulative(stats: pstats.Stats, suffix: str, names: Sequence[str]) -> float:
    """Seconds under the named functions (outermost calls only: no double counting)."""
    total = 0.0
    table = stats.stats  # type: ignore[attr-defined]
    for (path, _, name), (_, _, _, cum, callers) in table.items():
        if path.endswith(suffix) and name in names:
            outer = [c for c in callers if not (c[0].endswith(suffix) and c[2] in names)]
            if outer or not callers:
                total += cum
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description="cProfile of the verifier's batch call")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    fleet = Fleet(args.chips)
    with tempfile.TemporaryDirectory(prefix="geoattest-profile-") as tmp:
        service = service_for(fleet, Path(tmp))
        warm, measured = ([fleet.proof(chip) for chip in fleet.chips] for _ in range(2))
        print(f"unprofiled: {submit_all(service, warm):.0f} proofs/s")
        profile = cProfile.Profile()
        profile.enable()
        rate = submit_all(service, measured)
        profile.disable()
    stats = pstats.Stats(profile)
    whole = cumulative(stats, "verifier/service.py", ["submit_batch"])
    print(f"profiled: {rate:.0f} proofs/s; submit_batch {whole / len(measured) * 1e6:.0f} µs/proof")
    for part, (suffix, *names) in PARTS.items():
        seconds = cumulative(stats, suffix, names)
        print(f"  {seconds / whole:6.1%}  {seconds / len(measured) * 1e6:7.0f} µs/proof  {part}")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
