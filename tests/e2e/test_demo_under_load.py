"""The demo with both cores busy: the Singapore data-centre chip's headline verdict must not
depend on the host's mood (its in-data-centre landmarks' bounds stay within Singapore)."""

from __future__ import annotations

import json

import pytest
from command import require_stress_ng, run_geoattest

from geoattest.bench.timing import cpu_load

SINGAPORE_DATA_CENTRE = "chip-sg-01"


@pytest.mark.slow
def test_the_singapore_chip_is_allowed_in_nineteen_proofs_of_twenty_under_load(tmp_path):
    require_stress_ng()
    with cpu_load(2):
        result = run_geoattest(
            "demo",
            *("--duration", "45", "--cadence", "2", "--json"),
            *("--workdir", str(tmp_path / "work"), "--map", str(tmp_path / "map.png")),
            timeout=300,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    verdicts = [line["verdict"] for line in lines if line.get("device_id") == SINGAPORE_DATA_CENTRE]
    assert len(verdicts) >= 10, verdicts
    allowed = verdicts.count("ALLOWED")
    assert allowed >= 0.95 * len(verdicts), verdicts
