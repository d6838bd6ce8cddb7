"""Signature costs per algorithm, to choose the default by measurement.

Run:  python -m pytest bench/test_bench_crypto.py --benchmark-only
      python bench/test_bench_crypto.py          # the ratio table for docs/CRYPTO.md

The verifier checks 2k+1 signatures per proof (proof, k receipts, k transcripts) and the
agent makes k+1 (k transcripts, the proof), so verification speed decides the default.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from geoattest.crypto import Algorithm, KeySigner, generate_private_key
from geoattest.pki import ManufacturerCA, TrustAnchors

MESSAGE = os.urandom(600)  # about a receipt's size
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("algorithm", list(Algorithm), ids=str)
def test_sign(benchmark, algorithm):
    signer = KeySigner.generate(algorithm)
    benchmark(signer.sign, MESSAGE)


@pytest.mark.parametrize("algorithm", list(Algorithm), ids=str)
def test_verify(benchmark, algorithm):
    signer = KeySigner.generate(algorithm)
    signature = signer.sign(MESSAGE)
    assert benchmark(signer.verifying_key.verify, signature, MESSAGE)


@pytest.mark.parametrize("algorithm", [Algorithm.ES256, Algorithm.ES384], ids=str)
def test_device_chain(benchmark, algorithm):
    ca = ManufacturerCA.create("Bench", NOW, algorithm)
    key = generate_private_key(algorithm)
    der = ca.issue_device_certificate(key.public_key(), "dev-1", "H100", NOW).public_bytes(
        serialization.Encoding.DER
    )
    anchors = TrustAnchors([ca.certificate])
    benchmark(anchors.verify_device, der, [], NOW)


def _median_us(operation: Callable[[], object], rounds: int = 7, number: int = 300) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            operation()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def main() -> None:
    """Print sign and verify cost per algorithm, as ratios to ES256 measured in the same run."""
    rows = {}
    for algorithm in Algorithm:
        signer = KeySigner.generate(algorithm)
        signature = signer.sign(MESSAGE)
        rows[algorithm] = (
            _median_us(lambda s=signer: s.sign(MESSAGE)),
            _median_us(lambda s=signer, g=signature: s.verifying_key.verify(g, MESSAGE)),
            len(signature),
        )
    base_sign, base_verify, _ = rows[Algorithm.ES256]
    print(
        "| algorithm | sign µs | verify µs | sign / ES256 | verify / ES256 "
        "| proof verify k=4 µs | signature bytes |"
    )
    print("|---|---|---|---|---|---|---|")
    for algorithm, (sign, verify, size) in rows.items():
        print(
            f"| {algorithm} | {sign:.0f} | {verify:.0f} | {sign / base_sign:.2f} | "
            f"{verify / base_verify:.2f} | {9 * verify:.0f} | {size} |"
        )


if __name__ == "__main__":
    main()
