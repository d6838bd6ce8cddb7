"""``geoattest bench gpu``: what attesting costs a GPU that is busy with real work.

bf16 matrix products (torch, ``size``³, timed with CUDA events on the workload's own
stream) run with no agent, then with an agent thread attesting at 1 and at 100 rounds
a second (each round: arm, n = 8 challenges answered on the GPU, close), for both GPU
designs in :mod:`geoattest.attestor.gpu.cuda`: the *armed* resident responder (the agent's path)
and one kernel *launched per challenge*. Every figure is a ratio to a baseline measured
in the same run; the baseline is measured three times, between the loaded phases, and
its spread is reported so a loss can be read against the noise. The answer latency is
from writing the challenge to reading z_j back on the host, idle and under full load,
beside the CPU's hashlib answer timed the same way; every GPU answer is checked against
hashlib after it is timed.

Where there is no CUDA (CI, the dev machines), :func:`skip_reason` says why, and the
command exits 0.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from geoattest.attestor.gpu import CpuResponder, ResponderError, RoundResponder
from geoattest.bench.report import KM_PER_US, Figures, quantile
from geoattest.errors import Reason

PENDING = "GPU figures are pending a machine with a GPU (see BENCHMARKS.md)"
SIZE = 8192
EXCHANGES = 8
RATES: tuple[float, ...] = (1.0, 100.0)
PHASE_S = 5.0
GAP_US = 100
"""Pause between a round's challenges (a landmark's next challenge follows an RTT)."""
IDLE_ROUNDS = 250
DESIGNS = ("armed", "launch")
MATMULS_PER_EVENT = 4
EVENTS_AHEAD = 8
"""The workload's queue is kept this many event-chunks (~45 ms at 8192³) ahead, so the
launching thread's turns for the interpreter lock never leave the GPU without work."""
POLL_S = 0.002


def _cuda_device_count() -> int:
    """Devices the driver sees, asked of libcuda directly (no framework needed)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def skip_reason() -> str | None:
    """Why the GPU benchmark does not run here, or None when it can."""
    if _cuda_device_count() < 1:
        return f"no CUDA device here (no libcuda, or it sees no GPU): skipped; {PENDING}"
    missing = [name for name in ("torch", "cupy") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"CUDA found, but {' and '.join(missing)} is not installed (pip install torch "
            f"cupy-cuda13x): skipped; {PENDING}"
        )
    return None


def say(message: str) -> None:
    """Progress on stderr, one line at a time, so that ``--json`` stays one clean object."""
    print(f"[bench gpu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class AgentLoad:
    """One agent: rounds of ``exchanges`` challenges at ``rate`` rounds a second (None:
    back to back), each answer timed from writing the challenge to reading z_j."""

    responder: RoundResponder
    rate: float | None
    exchanges: int = EXCHANGES
    gap_s: float = GAP_US / 1e6
    answer_ns: list[int] = field(default_factory=list)
    arm_ns: list[int] = field(default_factory=list)
    rounds: int = 0
    mismatches: int = 0
    error: Exception | None = None

    def one_round(self) -> None:
        secret = os.urandom(32)
        started = time.perf_counter_ns()
        self.responder.arm(secret)
        self.arm_ns.append(time.perf_counter_ns() - started)
        try:
            for _ in range(self.exchanges):
                challenge = os.urandom(16)
                sent = time.perf_counter_ns()
                z = self.responder.answer(challenge)
                self.answer_ns.append(time.perf_counter_ns() - sent)
                if z != hashlib.sha256(secret + challenge).digest():
                    self.mismatches += 1
                if self.gap_s:
                    time.sleep(self.gap_s)
        finally:
            self.responder.close()
        self.rounds += 1

    def run(self, stop: threading.Event, max_rounds: int | None = None) -> None:
        """Attest until ``stop`` (or ``max_rounds``); an error ends the load and is kept."""
        next_at = time.perf_counter()
        try:
            while not stop.is_set() and (max_rounds is None or self.rounds < max_rounds):
                self.one_round()
                if self.rate is not None:
                    next_at += 1.0 / self.rate
                    wait = next_at - time.perf_counter()
                    if wait > 0:
                        stop.wait(wait)
                    else:
                        next_at = time.perf_counter()
        except Exception as exc:  # kept, and re-raised by the caller (_checked)
            self.error = exc


class Matmul:
    """The workload: back-to-back bf16 ``size``³ products on torch's current stream."""

    def __init__(self, torch: ModuleType, size: int) -> None:
        self.torch = torch
        self.size = size
        self.flop = 2 * size**3
        self.a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        self.b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        self.out = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)

    def _wait(self, event: Any) -> None:
        while not event.query():  # never a device-wide sync: a responder may be resident
            time.sleep(POLL_S)

    def run(self, seconds: float) -> float:
        """TFLOP/s over about ``seconds`` of products, timed by CUDA events."""
        torch = self.torch
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        ahead: list[Any] = []
        count = 0
        start.record()
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            for _ in range(MATMULS_PER_EVENT):
                torch.matmul(self.a, self.b, out=self.out)
            count += MATMULS_PER_EVENT
            chunk = torch.cuda.Event()
            chunk.record()
            ahead.append(chunk)
            while len(ahead) > EVENTS_AHEAD:
                self._wait(ahead.pop(0))
        end.record()
        self._wait(end)
        seconds_gpu = float(start.elapsed_time(end)) / 1e3
        return self.flop * count / seconds_gpu / 1e12


def _us(samples_ns: list[int], q: float) -> float:
    return round(quantile(samples_ns, q) / 1e3, 2) if samples_ns else float("nan")


def _checked(load: AgentLoad, what: str) -> AgentLoad:
    """The load's own error, or a typed one if any GPU answer was wrong."""
    if load.error is not None:
        raise load.error
    if load.mismatches:
        raise ResponderError(
            Reason.ROUND_BAD_RESPONSE, f"{what}: {load.mismatches} GPU answers differ from hashlib"
        )
    return load


def _idle(responder: RoundResponder, what: str) -> AgentLoad:
    load = AgentLoad(responder, rate=None)
    load.run(threading.Event(), max_rounds=IDLE_ROUNDS)
    return _checked(load, what)


def _loaded(
    matmul: Matmul, responder: RoundResponder, rate: float, seconds: float
) -> tuple[float, AgentLoad]:
    """Products for ``seconds`` while an agent thread attests at ``rate``."""
    stop = threading.Event()
    load = AgentLoad(responder, rate=rate)
    thread = threading.Thread(target=load.run, args=(stop,), daemon=True)
    thread.start()
    try:
        tflops = matmul.run(seconds)
    finally:
        stop.set()
        thread.join(timeout=30)
    return tflops, load


def _measure_idle(
    figures: Figures, responders: dict[str, RoundResponder], log: Callable[[str], None]
) -> None:
    log("idle answer latency: CPU (hashlib), armed, launch per challenge")
    cpu = _idle(CpuResponder(), "cpu idle")
    figures["cpu_answer_p50_us"] = _us(cpu.answer_ns, 0.5)
    figures["cpu_answer_p99_us"] = _us(cpu.answer_ns, 0.99)
    for design, responder in responders.items():
        load = _idle(responder, f"{design} idle")
        figures[f"{design}_answer_p50_us_idle"] = _us(load.answer_ns, 0.5)
        figures[f"{design}_answer_p99_us_idle"] = _us(load.answer_ns, 0.99)
        figures[f"{design}_arm_p50_us_idle"] = _us(load.arm_ns, 0.5)


def _measure_loaded(
    figures: Figures,
    matmul: Matmul,
    responders: dict[str, RoundResponder],
    seconds: float,
    log: Callable[[str], None],
) -> None:
    """Baseline, each design at each rate, baseline again between, then the ratios."""
    baselines: list[float] = []
    busy: dict[str, list[AgentLoad]] = {design: [] for design in DESIGNS}
    plan: list[tuple[str, float]] = [("baseline", 0)]
    for rate in sorted(RATES, reverse=True):
        plan += [(design, rate) for design in DESIGNS] + [("baseline", 0)]
    for number, (design, rate) in enumerate(plan, 1):
        label = "no agent" if design == "baseline" else f"{design} at {rate:g} rounds/s"
        log(f"phase {number}/{len(plan)}: {seconds:g} s of products, {label}")
        if design == "baseline":
            baselines.append(matmul.run(seconds))
            log(f"  {baselines[-1]:.1f} TFLOP/s")
            continue
        tflops, load = _loaded(matmul, responders[design], rate, seconds)
        _checked(load, f"{design} at {rate:g}/s")
        busy[design].append(load)
        key = f"{design}_{rate:g}_per_s"
        figures[f"tflops_{key}"] = round(tflops, 2)
        figures[f"rounds_{key}"] = load.rounds
        log(f"  {tflops:.1f} TFLOP/s, {load.rounds} rounds, p50 {_us(load.answer_ns, 0.5)} us")

    baseline = sorted(baselines)[len(baselines) // 2]
    figures["tflops_baseline"] = round(baseline, 2)
    figures["tflops_baseline_spread"] = round((max(baselines) - min(baselines)) / baseline, 4)
    for design in DESIGNS:
        answers = [ns for load in busy[design] for ns in load.answer_ns]
        arms = [ns for load in busy[design] for ns in load.arm_ns]
        figures[f"{design}_answer_p50_us_busy"] = _us(answers, 0.5)
        figures[f"{design}_answer_p99_us_busy"] = _us(answers, 0.99)
        figures[f"{design}_arm_p50_us_busy"] = _us(arms, 0.5)
        figures[f"{design}_arm_p99_us_busy"] = _us(arms, 0.99)
        for rate in RATES:
            key = f"{design}_{rate:g}_per_s"
            figures[f"loss_{key}"] = round(1 - float(figures[f"tflops_{key}"]) / baseline, 4)
    figures["answers_checked"] = sum(len(load.answer_ns) for v in busy.values() for load in v)


def _choose(figures: Figures) -> None:
    """The agent's design: the one whose answer p50 under full load is lower."""
    agent = min(DESIGNS, key=lambda d: float(figures[f"{d}_answer_p50_us_busy"]))
    other = DESIGNS[1 - DESIGNS.index(agent)]
    worst = max(RATES)
    figures["agent_design"] = agent
    figures["agent_design_why"] = (
        f"lower answer p50 under full load ({figures[f'{agent}_answer_p50_us_busy']} us vs "
        f"{figures[f'{other}_answer_p50_us_busy']} us)"
    )
    figures["tflops_with_agent"] = figures[f"tflops_{agent}_{worst:g}_per_s"]
    figures["throughput_loss"] = figures[f"loss_{agent}_{worst:g}_per_s"]
    figures["gpu_answer_p50_us_busy"] = figures[f"{agent}_answer_p50_us_busy"]
    figures["gpu_answer_p99_us_busy"] = figures[f"{agent}_answer_p99_us_busy"]
    p50_us = float(figures["gpu_answer_p50_us_busy"])
    figures["gpu_answer_p50_km_at_c_busy"] = round(p50_us * KM_PER_US, 3)
    loss = float(figures["throughput_loss"])
    figures["goal_throughput_loss_lt_0_01"] = "met" if loss < 0.01 else "not met"
    figures["goal_answer_p50_lt_10_us"] = "met" if p50_us < 10 else "not met"


def run(
    seconds: float = PHASE_S,
    size: int = SIZE,
    *,
    log: Callable[[str], None] = say,
) -> Figures:
    """Measure both designs against the no-agent baseline: 7 phases of ``seconds``.

    Raises:
        ResponderError: a GPU answer differed from hashlib, or a responder failed.
        GpuUnavailableError: CuPy cannot compile or run the responder here.
    """
    torch = importlib.import_module("torch")
    from geoattest.attestor.gpu import cuda as gpu_cuda  # noqa: PLC0415  (imports CuPy lazily)

    figures: Figures = {"gpu": str(torch.cuda.get_device_name(0)), "size": size}
    figures |= {"exchanges": EXCHANGES, "gap_us": GAP_US, "seconds_per_phase": seconds}
    log(f"{figures['gpu']}: compiling the responder and allocating {size}^3 bf16 operands")
    contexts = {design: gpu_cuda.CudaContext() for design in DESIGNS}
    try:
        responders: dict[str, RoundResponder] = {
            "armed": gpu_cuda.ArmedResponder(contexts["armed"]),
            "launch": gpu_cuda.LaunchResponder(contexts["launch"]),
        }
        figures["compiler"] = contexts["armed"].backend
        figures["responder_stream_priority"] = contexts["armed"].priority
        matmul = Matmul(torch, size)
        log("warming up the GPU (2 s of products)")
        matmul.run(2.0)
        _measure_idle(figures, responders, log)
        _measure_loaded(figures, matmul, responders, seconds, log)
    except Exception:  # keep what was measured: a GPU session is short
        log(f"failed; figures so far: {json.dumps(figures)}")
        raise
    finally:
        for context in contexts.values():
            context.close()
    _choose(figures)
    log("done")
    return figures


def main(argv: list[str] | None = None) -> int:
    """``python -m geoattest.bench.gpu [--json] [--seconds S] [--size N]``: the same
    benchmark without the CLI's imports (for a GPU machine that only has torch and CuPy)."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m geoattest.bench.gpu")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=PHASE_S)
    parser.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args(argv)
    reason = skip_reason()
    figures: Figures = {"skipped": reason} if reason else run(args.seconds, args.size)
    if args.json:
        print(json.dumps({"benchmark": "gpu", **figures}))
    else:
        for name, value in figures.items():
            print(f"{name:40} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
