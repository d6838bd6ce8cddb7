"""``bench gpu``'s orchestration without a GPU: a stand-in torch (events on the host
clock) and CPU responders in place of the CUDA ones, so the phases, the checks and every
promised key are exercised here; only the figures themselves need the GPU machine. No
wall-clock thresholds."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from geoattest.attestor.gpu import CpuResponder, ResponderError
from geoattest.attestor.gpu import cuda as gpu_cuda
from geoattest.bench import gpu


class FakeEvent:
    def __init__(self, enable_timing: bool = False) -> None:
        self.at = 0.0

    def record(self) -> None:
        self.at = time.perf_counter()

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.at - self.at) * 1e3 + 1e-6


def fake_torch() -> SimpleNamespace:
    def matmul(a: object, b: object, out: object) -> None:
        time.sleep(0.0005)

    return SimpleNamespace(
        bfloat16="bf16",
        randn=lambda *shape, **kw: object(),
        empty=lambda *shape, **kw: object(),
        matmul=matmul,
        cuda=SimpleNamespace(Event=FakeEvent, get_device_name=lambda index: "stand-in"),
    )


class FakeContext:
    backend = "none"
    priority = -5
    released = 0

    def close(self) -> None:
        FakeContext.released += 1


class WrongResponder(CpuResponder):
    def answer(self, challenge: bytes) -> bytes:
        return bytes(32)


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", fake_torch())
    monkeypatch.setattr(gpu_cuda, "CudaContext", FakeContext)
    monkeypatch.setattr(gpu_cuda, "ArmedResponder", lambda context: CpuResponder())
    monkeypatch.setattr(gpu_cuda, "LaunchResponder", lambda context: CpuResponder())
    monkeypatch.setattr(gpu, "IDLE_ROUNDS", 3)


def test_run_reports_every_promised_key(stand_ins: None) -> None:
    lines: list[str] = []
    FakeContext.released = 0
    figures = gpu.run(seconds=0.05, size=256, log=lines.append)
    for key in ("tflops_baseline", "tflops_with_agent", "throughput_loss"):
        assert isinstance(figures[key], float), key
    assert isinstance(figures["gpu_answer_p50_us_busy"], float)
    assert figures["agent_design"] in gpu.DESIGNS
    for design in gpu.DESIGNS:
        for rate in ("1", "100"):
            assert f"tflops_{design}_{rate}_per_s" in figures
            assert f"loss_{design}_{rate}_per_s" in figures
            assert figures[f"rounds_{design}_{rate}_per_s"] >= 1  # type: ignore[operator]
        for when in ("idle", "busy"):
            assert f"{design}_answer_p50_us_{when}" in figures
            assert f"{design}_answer_p99_us_{when}" in figures
    assert figures["answers_checked"] > 0  # type: ignore[operator]
    assert figures["goal_throughput_loss_lt_0_01"] in ("met", "not met")
    assert FakeContext.released == len(gpu.DESIGNS)
    assert any("phase 7/7" in line for line in lines)


def test_a_wrong_gpu_answer_fails_the_benchmark(
    stand_ins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_cuda, "ArmedResponder", lambda context: WrongResponder())
    FakeContext.released = 0
    lines: list[str] = []
    with pytest.raises(ResponderError, match="differ from hashlib"):
        gpu.run(seconds=0.05, size=256, log=lines.append)
    assert FakeContext.released == len(gpu.DESIGNS)
    assert "cpu_answer_p50_us" in lines[-1]  # what was measured is not lost


def test_an_agent_error_is_kept_and_raised_not_lost() -> None:
    class Broken(CpuResponder):
        def arm(self, secret: bytes) -> None:
            raise ResponderError(gpu.Reason.ROUND_TIMEOUT, "not resident")

    load = gpu.AgentLoad(Broken(), rate=None)
    load.run(gpu.threading.Event(), max_rounds=2)
    with pytest.raises(ResponderError, match="not resident"):
        gpu._checked(load, "broken")


def test_skip_reason_names_what_is_missing() -> None:
    reason: Any = gpu.skip_reason()
    if reason is None:
        pytest.skip("this machine has CUDA, torch and CuPy")
    assert "skipped" in reason
    assert gpu.PENDING in reason
