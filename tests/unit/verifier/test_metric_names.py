"""The Grafana dashboard in docs/ asks only for metrics the verifier and landmarks expose,
and every exposed name follows Prometheus's conventions (units and ``_total`` in names)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from geoattest.crypto import KeySigner
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer
from geoattest.verifier.landmark.metrics import LandmarkCollector
from geoattest.verifier.metrics import VerifierMetrics

DASHBOARD = Path(__file__).parents[3] / "docs" / "grafana-dashboard.json"
SUFFIXES = ("_total", "_seconds", "_bucket", "_count", "_sum", "_info", "_proofs", "_rounds")


def exposed() -> set[str]:
    names = set()
    metrics = VerifierMetrics()
    metrics.proofs.labels(verdict="ALLOWED", reason="none").inc()
    metrics.alerts.labels(kind="CLONE").inc()
    metrics.refusals.labels(reason="wire.malformed_message").inc()
    metrics.store_errors.labels(reason="store.unavailable").inc()
    for metric in vars(metrics).values():
        for family in metric.collect():
            names |= {sample.name for sample in family.samples}
    with LandmarkServer(LandmarkIdentity("lm-1", 0.0, 0.0), KeySigner.generate()) as landmark:
        landmark._dispatcher.rtt_floor_ns = 1000  # as after a first timed exchange
        registry = CollectorRegistry()
        registry.register(LandmarkCollector(landmark))
        for family in registry.collect():
            names |= {sample.name for sample in family.samples}
    # ``_created`` samples are the client library's own, for single-process counters only.
    return {name for name in names if not name.endswith("_created")} | {
        "geoattest_verifier_devices",
        "geoattest_verifier_allowed_lapsed_devices",
    }


def test_the_dashboard_uses_only_exposed_metrics():
    asked = set(re.findall(r"geoattest_[a-z_]+", DASHBOARD.read_text()))
    json.loads(DASHBOARD.read_text())
    assert asked, "the dashboard asks for nothing"
    assert asked <= exposed(), asked - exposed()


def test_counters_end_in_total_and_timings_in_seconds():
    for name in exposed():
        assert name.startswith(("geoattest_verifier_", "geoattest_landmark_")), name
        if "seconds" in name or "rtt" in name:
            assert "_seconds" in name, name
        assert name.endswith(SUFFIXES) or name in {
            "geoattest_verifier_devices",
            "geoattest_verifier_allowed_lapsed_devices",
            "geoattest_landmark_open_rounds",
        }, name
