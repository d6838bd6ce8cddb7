"""``geoattest bench NAME --json`` in tiny configurations: the promised keys, positive
ratios. No wall-clock thresholds: the figures themselves live in BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from command import require_stress_ng
from postgres import unavailable

from geoattest.bench.fleet import Fleet
from geoattest.bench.postgres import PREFIX, binaries
from geoattest.errors import ConfigError
from geoattest.verifier.landmark.server import NATIVE_IO
from geoattest.verifier.pool import connections_at_most

GEOATTEST = str(Path(sys.executable).with_name("geoattest"))
LANDMARK_IO = "native" if NATIVE_IO else "python"
"""Which path the bench's landmarks time with, as their reports name it."""


def bench_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [GEOATTEST, "bench", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def assert_positive(out: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert isinstance(out[key], int | float), key
        assert out[key] > 0, key


def test_timing_reports_echo_exchange_and_their_ratio() -> None:
    out = bench_json("timing", "--samples", "64")
    assert_positive(out, "udp_echo_p50_us", "exchange_p50_us", "ratio_p50", "exchange_km_at_c")
    assert isinstance(out["overhead_km_at_c"], float)
    assert_positive(
        out, "udp_echo_as_agent_p50_us", "receipt_rtt_min_p50_us", "receipt_ratio_to_echo_as_agent"
    )
    assert 0 <= out["rounds_spinning_share"] <= 1
    assert out["load"] == "none"
    assert out["timed_phase"] in ("SCHED_FIFO 10", "normal (SCHED_FIFO not permitted)")
    assert out["landmark_io"] == LANDMARK_IO


@pytest.mark.parametrize("name", ["timing", "agent"])
def test_load_without_stress_ng_is_a_one_line_error(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [GEOATTEST, "bench", name, "--load", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: --load needs stress-ng on PATH (Debian: apt-get install stress-ng)"
    )


@pytest.mark.slow
def test_timing_under_load_runs_stress_ng_beside_it() -> None:
    require_stress_ng()
    out = bench_json("timing", "--samples", "64", "--load")
    assert out["load"] == "stress-ng --cpu 2"
    assert_positive(out, "udp_echo_as_agent_p50_us", "receipt_ratio_to_echo_as_agent")


@pytest.mark.slow
def test_verifier_reports_each_path_against_the_crypto_bound() -> None:
    out = bench_json("verifier", "--chips", "4", "--batch", "2", "--cores", "1")
    assert_positive(
        out,
        "crypto_bound_per_s",
        "pipeline_per_s",
        "pipeline_ratio",
        "pipeline_batch_per_s",
        "pipeline_batch_ratio",
        "grpc_unary_per_s",
        "grpc_batch_per_s",
        "grpc_batch_ratio",
    )
    assert out["signature_checks_per_proof"] == 2 * out["k"] + 1
    assert out["grpc_batch_phases"] == 3
    assert out["grpc_batch_proofs"] == 3 * 8 * 4  # phases x successive proofs x chips


def require_postgresql() -> None:
    """The benches start a PostgreSQL server of their own for ``--db postgresql``."""
    if binaries() is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


@pytest.mark.slow
def test_verifier_on_postgresql_reports_each_replica_count_beside_sqlite() -> None:
    require_postgresql()
    out = bench_json(
        "verifier", "--chips", "4", "--batch", "2", "--cores", "2",
        "--db", "postgresql", "--replicas", "1", "--replicas", "2",
    )  # fmt: skip
    assert_positive(out, "grpc_batch_ratio", "grpc_unary_ratio")  # SQLite, in the same run
    for replicas in (1, 2):
        prefix = f"postgresql_{replicas}_replicas_"
        assert_positive(out, f"{prefix}grpc_batch_per_s", f"{prefix}grpc_batch_ratio")
        assert out[f"{prefix}grpc_batch_proofs"] == 3 * 8 * 4
        assert out[f"{prefix}workers_per_replica"] == 2 // replicas
        assert out[f"{prefix}db_connections_pool_rule"] == connections_at_most(2)
        assert 0 < out[f"{prefix}db_connections"] <= connections_at_most(2)


@pytest.mark.slow
def test_a_terminated_bench_stops_its_database_server_and_removes_its_directory() -> None:
    """SIGTERM (what ``timeout`` or a service manager sends) unwinds a bench as Ctrl-C does:
    the temporary PostgreSQL server it started stops, and its directory goes."""
    require_postgresql()
    # In the system's temporary directory, not pytest's (private to this user): a bench run
    # as root starts the server as the server's own user, which must reach its directory.
    with tempfile.TemporaryDirectory() as scratch:
        tmp_path = Path(scratch)
        tmp_path.chmod(0o755)
        _terminate_bench(tmp_path)


def _terminate_bench(tmp_path: Path) -> None:
    bench = subprocess.Popen(
        [GEOATTEST, "bench", "verifier", "--db", "postgresql", "--replicas", "1"],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid_file = None
        while pid_file is None and bench.poll() is None:
            pid_file = next(tmp_path.glob(f"{PREFIX}*/data/postmaster.pid"), None)
            time.sleep(0.1)
        assert pid_file is not None, "the bench ended before its server started"
        time.sleep(1.0)  # the server's pid file is complete
        postmaster = int(pid_file.read_text().split()[0])
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        bench.kill()
    assert not _alive(postmaster), "the bench left its server running"
    assert not list(tmp_path.glob(f"{PREFIX}*"))


def _alive(pid: int) -> bool:
    """Whether the process runs (an exited one that its parent has not reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
def test_alerts_reports_latency_across_replicas_on_postgresql_and_sqlite() -> None:
    require_postgresql()
    out = bench_json("alerts", "--alerts", "3")
    assert out["alerts"] == 3
    for database in ("postgresql", "sqlite"):
        assert_positive(
            out,
            f"{database}_alert_p50_ms",
            f"{database}_alert_p99_ms",
            f"{database}_refusal_p50_ms",
            f"{database}_alert_p50_over_refusal",
        )
        assert out[f"{database}_alert_p99_ms"] >= out[f"{database}_alert_p50_ms"]


@pytest.mark.slow
def test_scale_on_postgresql_enrols_each_fleet_in_its_own_database(tmp_path: Path) -> None:
    require_postgresql()
    plot = tmp_path / "scale.png"
    out = bench_json(
        "scale", "--quick", "--db", "postgresql", "--fleet", "1000", "--fleet", "5000",
        "--plot", str(plot),
    )  # fmt: skip
    assert out["database"] == "postgresql"
    assert out["fleet_1000_ratio"] == 1.0
    assert_positive(out, "fleet_5000_ratio", "fleet_5000_per_proof_us", "fleet_5000_db_mib")
    assert out["fleet_5000_db_mib"] > out["fleet_1000_db_mib"]
    # the server's backends are this machine's: their CPU is counted beside the client's
    assert_positive(out, "fleet_1000_cpu_us", "fleet_5000_cpu_us", "fleet_5000_cpu_ratio")
    assert out["fleet_1000_cpu_ratio"] == 1.0
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_security_reports_mtls_and_audit_against_plaintext() -> None:
    out = bench_json("security", "--chips", "2", "--rounds", "2")
    assert_positive(
        out,
        "plaintext_proofs_per_s",
        "mtls_proofs_per_s",
        "mtls_audit_proofs_per_s",
        "mtls_vs_plaintext",
        "audit_vs_mtls",
    )
    assert isinstance(out["audit_us_per_proof"], float)


def test_agent_reports_cpu_bytes_and_duty_cycle() -> None:
    out = bench_json("agent", "--proofs", "2")
    assert_positive(
        out,
        "cpu_us_per_proof",
        "bytes_per_proof",
        "duty_cycle_per_minute",
        "duty_cycle_per_hour",
        "cpu_ratio_to_signing",
        "receipt_verify_us_per_proof",
        "echo_cpu_us_per_proof",
        "cpu_ratio_to_crypto_and_echo",
        "bare_agent_us_per_proof",
        "cpu_ratio_to_bare_agent",
        "exchanges_per_round",
    )
    assert out["duty_cycle_per_minute"] > out["duty_cycle_per_hour"]
    assert out["landmark_io"] == LANDMARK_IO
    # the bare agent does the crypto and the echoes, and nothing else
    assert out["bare_agent_us_per_proof"] > out["echo_cpu_us_per_proof"]


def test_gpu_skips_cleanly_without_cuda() -> None:
    out = bench_json("gpu")
    assert "pending a machine with a GPU" in out["skipped"]


@pytest.mark.slow
def test_scale_reports_fleet_and_k_ratios_and_writes_the_plot(tmp_path: Path) -> None:
    plot = tmp_path / "scale.png"
    out = bench_json("scale", "--quick", "--plot", str(plot))
    fleets = [key for key in out if key.startswith("fleet_") and key.endswith("_ratio")]
    ks = [key for key in out if key.startswith("k_") and key.endswith("_cost_over_crypto")]
    assert len(fleets) >= 2
    assert len(ks) >= 2
    assert_positive(out, *fleets, *ks)
    assert out[fleets[0]] == 1.0  # the smallest fleet is the baseline
    for key in (
        "per_proof_us",
        "appraise_us",
        "commit_us",
        "cpu_us",
        "cpu_ratio",
        "peak_alloc_kib",
        "peak_rss_mib",
    ):
        assert_positive(out, *(f"fleet_{n}_{key}" for n in (1000, 10000)))
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_a_bench_fleet_asked_for_more_landmarks_than_it_has_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at most"):
        Fleet(0, k=1000)
