"""The GPU responders, driven through CuPy: the armed resident kernel and, for comparison,
one kernel launch per challenge. Both compute z_j = SHA-256(r || c_j) from ``r`` held in
GPU memory, and exchange challenges and answers through one page of host-mapped
(zero-copy) pinned memory laid out as in ``data/responder.cu``.

Why armed: a kernel launched while the clock runs queues behind the workload's kernels;
a kernel launched before the round opens waits (if at all) off the clock, then answers
by polling the mapped page (docs/GPU.md). Everything runs on one non-blocking stream of
the highest priority, so nothing here ever waits for, or makes wait, the legacy default
stream that frameworks' kernels run on; nothing here synchronises the whole device.

Example::

    with CudaContext() as gpu:
        responder = ArmedResponder(gpu)
        responder.arm(secret)                # before Open: waits until the kernel runs
        z = responder.answer(challenge)      # on the clock: a few microseconds
        responder.close()                    # before Close reveals r
"""

from __future__ import annotations

import ctypes
import importlib
import shutil
import time
from types import ModuleType
from typing import Any

from geoattest.attestor.gpu.base import (
    ANSWER_BYTES,
    CHALLENGE_BYTES,
    GpuUnavailableError,
    ResponderError,
    check_challenge,
    check_secret,
    source_path,
)
from geoattest.errors import ConfigError, Reason
from geoattest.lifecycle import Closing

# The mailbox layout, as in data/responder.cu.
BOX_SEQ_IN = 0
BOX_STOP = 4
BOX_GENERATION = 8
BOX_CHALLENGE = 16
BOX_STATE = 64
BOX_SEQ_OUT = 68
BOX_ANSWER = 96
MAILBOX_BYTES = 4096
"""One page, so that nothing else shares its cache lines."""

STATE_ARMED = 1
STATE_CLOSED = 2
STATE_EXPIRED = 3

ARM_TIMEOUT_S = 5.0
"""How long ``arm`` waits for the kernel to be resident (off the clock)."""
ANSWER_TIMEOUT_S = 1.0
"""How long ``answer`` waits for the GPU before the round is given up."""
ROUND_TIMEOUT_S = 10.0
"""The armed kernel's own deadline: it exits by then even if the host never closes."""
MAX_ROUND_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 1.0
HIGHEST_PRIORITY = -1000
"""Out of range on purpose: CUDA clamps a stream priority to the device's highest."""
_SPIN_CHECK = 0x3FF
"""Check the deadline every 1024 polls, so the spin itself stays short."""


def _import_cupy() -> ModuleType:
    try:
        return importlib.import_module("cupy")
    except ImportError as exc:
        raise GpuUnavailableError(f"CuPy is not installed ({exc})") from exc


def skip_reason() -> str | None:
    """Why the GPU responders cannot run here, or None when they can."""
    try:
        cupy = _import_cupy()
    except GpuUnavailableError as exc:
        return exc.detail
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CuPy raises several kinds here
        return f"no CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return "no CUDA device"
    return None


class CudaContext(Closing):
    """The compiled module, a high-priority non-blocking stream, the mapped mailbox and
    the device buffer for r: what one responder needs, made once (off the clock).

    Raises:
        GpuUnavailableError: no CuPy, no device, or the source does not compile.
    """

    def __init__(self, device: int = 0) -> None:
        self._cupy = cupy = _import_cupy()
        reason = skip_reason()
        if reason is not None:
            raise GpuUnavailableError(reason)
        self.device = cupy.cuda.Device(device)
        self._box = 0
        with self.device:
            self.backend, self.module = self._compile(cupy)
            self.armed_kernel = self.module.get_function("geoattest_armed")
            self.once_kernel = self.module.get_function("geoattest_once")
            try:
                self.stream = cupy.cuda.Stream(non_blocking=True, priority=HIGHEST_PRIORITY)
            except Exception:  # a driver that refuses the out-of-range priority
                self.stream = cupy.cuda.Stream(non_blocking=True)
            runtime = cupy.cuda.runtime
            flags = runtime.hostAllocMapped | runtime.hostAllocPortable
            self._box = int(runtime.hostAlloc(MAILBOX_BYTES, flags))
            ctypes.memset(self._box, 0, MAILBOX_BYTES)
            # With unified addressing the device pointer equals the host one; ask anyway.
            try:
                device_pointer = int(runtime.pointerGetAttributes(self._box).devicePointer)
            except Exception:  # CUDARuntimeError: keep the unified address
                device_pointer = 0
            self.box_device = device_pointer or self._box
            with self.stream:
                self.secret = cupy.zeros(32, dtype=cupy.uint8)
            self.stream.synchronize()
        self.priority = int(self.stream.priority)
        self._generation = 0
        self._seq = 0
        self.seq_in = ctypes.c_uint32.from_address(self._box + BOX_SEQ_IN)
        self.stop = ctypes.c_uint32.from_address(self._box + BOX_STOP)
        self.generation = ctypes.c_uint32.from_address(self._box + BOX_GENERATION)
        self.state = ctypes.c_uint32.from_address(self._box + BOX_STATE)
        self.seq_out = ctypes.c_uint32.from_address(self._box + BOX_SEQ_OUT)

    @staticmethod
    def _compile(cupy: ModuleType) -> tuple[str, Any]:
        """NVRTC first (what CuPy ships); nvcc if NVRTC is missing or refuses the source."""
        code = source_path().read_text()
        errors = []
        backends = ["nvrtc", "nvcc"] if shutil.which("nvcc") else ["nvrtc"]
        for backend in backends:
            try:
                module = cupy.RawModule(code=code, backend=backend)
                module.get_function("geoattest_armed")  # compiles now, off the clock
            except Exception as exc:  # CompileException, CUDADriverError, ...
                errors.append(f"{backend}: {type(exc).__name__}: {str(exc)[:500]}")
                continue
            return backend, module
        raise GpuUnavailableError("the responder source did not compile: " + "; ".join(errors))

    def next_generation(self) -> int:
        self._generation = (self._generation + 1) & 0x3FFFFFFF or 1
        return self._generation

    def next_seq(self) -> int:
        """Challenge numbers never repeat across rounds, so no stale answer can match."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def load_secret(self, secret: bytes) -> None:
        numpy = importlib.import_module("numpy")
        with self.device, self.stream:
            self.secret.set(numpy.frombuffer(secret, dtype=numpy.uint8), stream=self.stream)

    def wipe_secret(self) -> None:
        with self.device, self.stream:
            self.secret.fill(0)

    def write_challenge(self, challenge: bytes, seq: int) -> None:
        ctypes.memmove(self._box + BOX_CHALLENGE, challenge, CHALLENGE_BYTES)
        self.seq_in.value = seq  # x86 keeps store order: the challenge is visible first

    def wait_answer(self, seq: int, timeout_s: float, alive: int | None = None) -> bytes:
        """Spin on the mailbox until answer ``seq`` is there.

        ``alive``: the state word that must hold while waiting (the armed kernel's).

        Raises:
            ResponderError: ROUND_TIMEOUT, the answer did not come in time or the kernel
                stopped.
        """
        seq_out = self.seq_out
        deadline = time.perf_counter_ns() + int(timeout_s * 1e9)
        spins = 0
        while seq_out.value != seq:
            spins += 1
            if spins & _SPIN_CHECK == 0:
                if alive is not None and self.state.value != alive and seq_out.value != seq:
                    raise ResponderError(Reason.ROUND_TIMEOUT, "GPU responder is not running")
                if time.perf_counter_ns() > deadline:
                    raise ResponderError(
                        Reason.ROUND_TIMEOUT, f"no GPU answer within {timeout_s} s"
                    )
        return ctypes.string_at(self._box + BOX_ANSWER, ANSWER_BYTES)

    def wait_state(self, wanted: set[int], timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while self.state.value not in wanted:
            if time.perf_counter() > deadline:
                return False
            time.sleep(0)  # lets other threads (the workload's launcher) run
        return True

    def close(self) -> None:
        """Free the mailbox; a kernel still armed is told to stop first."""
        if self._box:
            self.stop.value = 1
            if self.state.value & 0x3 == STATE_ARMED:
                self.wait_state({self.state.value & ~0x3 | STATE_CLOSED}, CLOSE_TIMEOUT_S)
            self.wipe_secret()
            self.stream.synchronize()  # only this stream: the responder's own work
            self._cupy.cuda.runtime.freeHost(self._box)
            self._box = 0


class ArmedResponder(Closing):
    """The armed design: a resident one-thread kernel per round (the agent's GPU path).

    ``arm`` launches it and returns once the kernel reports itself running, so the time
    spent waiting for an SM is off the landmark's clock; ``answer`` only writes the
    challenge to mapped memory and spins until the answer lands there.
    """

    name = "gpu-armed"

    def __init__(
        self,
        context: CudaContext,
        *,
        arm_timeout_s: float = ARM_TIMEOUT_S,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        round_timeout_s: float = ROUND_TIMEOUT_S,
    ) -> None:
        if not 0 < round_timeout_s <= MAX_ROUND_TIMEOUT_S:
            raise ConfigError(f"round timeout must be in (0, {MAX_ROUND_TIMEOUT_S}] s")
        self.gpu = context
        self.arm_timeout_s = arm_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.round_timeout_s = round_timeout_s
        self._alive: int | None = None
        self.last_arm_ns = 0
        """How long the last ``arm`` waited for the kernel (off the clock)."""

    @property
    def armed(self) -> bool:
        return self._alive is not None

    def arm(self, secret: bytes) -> None:
        """Launch the resident kernel for one round and wait until it polls.

        Raises:
            ResponderError: already armed, a bad secret, or the kernel did not start
                within ``arm_timeout_s`` (it is told to stop, should it start later).
        """
        check_secret(secret)
        if self._alive is not None:
            raise ResponderError(Reason.ROUND_UNEXPECTED_MESSAGE, "responder already armed")
        numpy = importlib.import_module("numpy")
        gpu = self.gpu
        started = time.perf_counter_ns()
        generation = gpu.next_generation()
        gpu.stop.value = 0
        gpu.generation.value = generation
        gpu.load_secret(secret)
        with gpu.device, gpu.stream:
            gpu.armed_kernel(
                (1,),
                (1,),
                (
                    gpu.secret,
                    numpy.uint64(gpu.box_device),
                    numpy.uint64(int(self.round_timeout_s * 1e9)),
                    numpy.uint32(generation),
                ),
            )
        alive = (generation << 2) | STATE_ARMED
        if not gpu.wait_state({alive}, self.arm_timeout_s):
            gpu.stop.value = 1
            raise ResponderError(
                Reason.ROUND_TIMEOUT, f"GPU responder not running after {self.arm_timeout_s} s"
            )
        self.last_arm_ns = time.perf_counter_ns() - started
        self._alive = alive

    def answer(self, challenge: bytes) -> bytes:
        """z_j for one challenge, from the armed kernel (this is what the clock times)."""
        alive = self._alive
        if alive is None:
            raise ResponderError(Reason.ROUND_UNEXPECTED_MESSAGE, "responder is not armed")
        check_challenge(challenge)
        seq = self.gpu.next_seq()
        self.gpu.write_challenge(bytes(challenge), seq)
        return self.gpu.wait_answer(seq, self.answer_timeout_s, alive)

    def close(self) -> None:
        """Stop the kernel and wipe r from GPU memory; safe to call twice.

        Raises:
            ResponderError: ROUND_TIMEOUT if the kernel did not report its exit in time
                (r is wiped all the same once it exits: the wipe is queued behind it).
        """
        alive = self._alive
        if alive is None:
            return
        self._alive = None
        gpu = self.gpu
        gpu.stop.value = 1
        base = alive & ~0x3
        exited = gpu.wait_state({base | STATE_CLOSED, base | STATE_EXPIRED}, CLOSE_TIMEOUT_S)
        gpu.wipe_secret()
        if not exited:
            raise ResponderError(Reason.ROUND_TIMEOUT, "GPU responder did not exit")

    def expired(self) -> bool:
        """True once the kernel stopped by its own deadline (the host never closed it)."""
        alive = self._alive
        return alive is not None and self.gpu.state.value == (alive & ~0x3) | STATE_EXPIRED


class LaunchResponder(Closing):
    """The comparison design: one small kernel launched per challenge, while the clock
    runs. r is in GPU memory from ``arm``; the challenge travels as kernel arguments."""

    name = "gpu-launch"

    def __init__(self, context: CudaContext, *, answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self.gpu = context
        self.answer_timeout_s = answer_timeout_s
        self._armed = False
        self.last_arm_ns = 0

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self, secret: bytes) -> None:
        check_secret(secret)
        if self._armed:
            raise ResponderError(Reason.ROUND_UNEXPECTED_MESSAGE, "responder already armed")
        started = time.perf_counter_ns()
        self.gpu.load_secret(secret)
        self.gpu.stream.synchronize()  # only the responder's stream: r is on the GPU
        self.last_arm_ns = time.perf_counter_ns() - started
        self._armed = True

    def answer(self, challenge: bytes) -> bytes:
        if not self._armed:
            raise ResponderError(Reason.ROUND_UNEXPECTED_MESSAGE, "responder is not armed")
        check_challenge(challenge)
        numpy = importlib.import_module("numpy")
        gpu = self.gpu
        seq = gpu.next_seq()
        words = [int.from_bytes(challenge[i : i + 4], "little") for i in range(0, 16, 4)]
        with gpu.device, gpu.stream:
            gpu.once_kernel(
                (1,),
                (1,),
                (
                    gpu.secret,
                    numpy.uint64(gpu.box_device),
                    *(numpy.uint32(w) for w in words),
                    numpy.uint32(seq),
                ),
            )
        return gpu.wait_answer(seq, self.answer_timeout_s)

    def close(self) -> None:
        if self._armed:
            self._armed = False
            self.gpu.wipe_secret()
