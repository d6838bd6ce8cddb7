"""The CuPy driver's host side (mailbox, sequence numbers, generations, arm, close,
deadlines), run here against a stand-in for CuPy whose "kernels" are host threads that
follow data/responder.cu's protocol over the same mapped-memory layout, hashing with the
device code built for the host. What this cannot show (the real kernels, PCIe ordering,
the timings) the device check does on a GPU."""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from geoattest.attestor.gpu import ResponderError
from geoattest.attestor.gpu import cuda as gpu_cuda
from geoattest.attestor.gpu.host import HostAnswer, build
from geoattest.errors import ConfigError, Reason

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler to build the device hash")
SLACK_S = 30.0
"""Where an answer is expected, a busy shared machine gets all the time it needs."""


def u32(address: int) -> Any:
    return ctypes.c_uint32.from_address(address)


class FakeArray:
    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def set(self, array: Any, stream: Any = None) -> None:
        self.data[:] = bytes(array)

    def fill(self, value: int) -> None:
        self.data[:] = bytes([value]) * len(self.data)


class FakeStream:
    """In order, like a CUDA stream: one worker runs the launched "kernels" one by one."""

    current: FakeStream | None = None

    def __init__(self, non_blocking: bool = False, priority: int | None = None) -> None:
        assert non_blocking, "the responder must never use a blocking stream"
        self.priority = max(priority or 0, -5)
        self.work: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.pending = 0
        self.idle = threading.Condition()
        threading.Thread(target=self._worker, daemon=True).start()

    def _worker(self) -> None:
        while (task := self.work.get()) is not None:
            task()
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    def launch(self, task: Callable[[], None]) -> None:
        with self.idle:
            self.pending += 1
        self.work.put(task)

    def synchronize(self) -> None:
        with self.idle:
            self.idle.wait_for(lambda: self.pending == 0, timeout=10)

    def __enter__(self) -> FakeStream:
        FakeStream.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        FakeStream.current = None


def armed_kernel(hash_: HostAnswer, args: tuple[Any, ...]) -> Callable[[], None]:
    """data/responder.cu's geoattest_armed, line for line, on the host."""
    secret, box, timeout_ns, generation = (
        bytes(args[0].data),
        int(args[1]),
        int(args[2]),
        int(args[3]),
    )

    def run() -> None:
        if u32(box + gpu_cuda.BOX_GENERATION).value != generation:
            return
        last = u32(box + gpu_cuda.BOX_SEQ_IN).value
        final = gpu_cuda.STATE_EXPIRED
        start = time.monotonic_ns()
        u32(box + gpu_cuda.BOX_STATE).value = (generation << 2) | gpu_cuda.STATE_ARMED
        while True:
            seq = u32(box + gpu_cuda.BOX_SEQ_IN).value
            if seq != last:
                challenge = ctypes.string_at(box + gpu_cuda.BOX_CHALLENGE, 16)
                ctypes.memmove(box + gpu_cuda.BOX_ANSWER, hash_(secret, challenge), 32)
                u32(box + gpu_cuda.BOX_SEQ_OUT).value = seq
                last = seq
                continue
            if u32(box + gpu_cuda.BOX_STOP).value:
                final = gpu_cuda.STATE_CLOSED
                break
            if u32(box + gpu_cuda.BOX_GENERATION).value != generation:
                return
            if time.monotonic_ns() - start > timeout_ns:
                break
            time.sleep(0)
        u32(box + gpu_cuda.BOX_STATE).value = (generation << 2) | final

    return run


def once_kernel(hash_: HostAnswer, args: tuple[Any, ...]) -> Callable[[], None]:
    secret, box = bytes(args[0].data), int(args[1])
    challenge = b"".join(int(w).to_bytes(4, "little") for w in args[2:6])
    seq = int(args[6])

    def run() -> None:
        ctypes.memmove(box + gpu_cuda.BOX_ANSWER, hash_(secret, challenge), 32)
        u32(box + gpu_cuda.BOX_SEQ_OUT).value = seq

    return run


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> SimpleNamespace:
    assert CC is not None
    hash_ = HostAnswer(build(CC, tmp_path))
    buffers: dict[int, Any] = {}

    def host_alloc(size: int, flags: int) -> int:
        assert flags & 2, "the mailbox must be mapped (cudaHostAllocMapped)"
        buffer = ctypes.create_string_buffer(size)
        buffers[ctypes.addressof(buffer)] = buffer
        return ctypes.addressof(buffer)

    def kernel(make: Callable[[HostAnswer, tuple[Any, ...]], Callable[[], None]]) -> Any:
        def call(grid: tuple[int], block: tuple[int], args: tuple[Any, ...]) -> None:
            assert FakeStream.current is not None, "launched outside the responder's stream"
            FakeStream.current.launch(make(hash_, args))

        return call

    class Module:
        def __init__(self, code: str, backend: str) -> None:
            assert "geoattest_armed" in code

        def get_function(self, name: str) -> Any:
            return kernel(armed_kernel if name == "geoattest_armed" else once_kernel)

    class Device:
        def __init__(self, index: int) -> None: ...

        def __enter__(self) -> None: ...

        def __exit__(self, *exc: object) -> None: ...

    runtime = SimpleNamespace(
        hostAllocMapped=2,
        hostAllocPortable=1,
        getDeviceCount=lambda: 1,
        hostAlloc=host_alloc,
        freeHost=buffers.pop,
        pointerGetAttributes=lambda address: SimpleNamespace(devicePointer=address),
    )
    cupy = SimpleNamespace(
        cuda=SimpleNamespace(runtime=runtime, Device=Device, Stream=FakeStream),
        RawModule=Module,
        zeros=lambda size, dtype: FakeArray(size),
        uint8="uint8",
    )
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def sha(secret: bytes, challenge: bytes) -> bytes:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(secret + challenge).digest()


def test_armed_responder_answers_over_the_mailbox_round_after_round(fake_cupy: Any) -> None:
    with gpu_cuda.CudaContext() as gpu:
        assert gpu.priority == -5  # the highest there is
        responder = gpu_cuda.ArmedResponder(gpu, arm_timeout_s=SLACK_S, answer_timeout_s=SLACK_S)
        for _ in range(3):
            secret = os.urandom(32)
            responder.arm(secret)
            assert responder.last_arm_ns > 0
            for _ in range(16):
                challenge = os.urandom(16)
                assert responder.answer(challenge) == sha(secret, challenge)
            responder.close()
            assert gpu.state.value & 0x3 == gpu_cuda.STATE_CLOSED
            assert bytes(gpu.secret.data) == bytes(32)  # r wiped after the round


def test_armed_responder_expires_by_its_own_deadline(fake_cupy: Any) -> None:
    with gpu_cuda.CudaContext() as gpu:
        responder = gpu_cuda.ArmedResponder(
            gpu, round_timeout_s=0.02, arm_timeout_s=SLACK_S, answer_timeout_s=SLACK_S
        )
        responder.arm(os.urandom(32))
        deadline = time.monotonic() + 10
        while not responder.expired() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert responder.expired()
        with pytest.raises(ResponderError) as raised:
            responder.answer(os.urandom(16))
        assert raised.value.reason is Reason.ROUND_TIMEOUT
        responder.close()
        secret = os.urandom(32)  # and the next round arms afresh
        responder.arm(secret)
        challenge = os.urandom(16)
        assert responder.answer(challenge) == sha(secret, challenge)
        responder.close()


@pytest.mark.parametrize("round_timeout_s", [0.0, 2 * gpu_cuda.MAX_ROUND_TIMEOUT_S])
def test_an_impossible_round_timeout_is_a_config_error(
    fake_cupy: Any, round_timeout_s: float
) -> None:
    with gpu_cuda.CudaContext() as gpu, pytest.raises(ConfigError, match="round timeout"):
        gpu_cuda.ArmedResponder(gpu, round_timeout_s=round_timeout_s)


def test_arm_that_never_gets_the_gpu_times_out_and_its_kernel_stands_down(
    fake_cupy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gpu_cuda.CudaContext() as gpu:
        blocker = threading.Event()
        gpu.stream.launch(blocker.wait)  # the GPU is busy: the launch cannot start
        responder = gpu_cuda.ArmedResponder(gpu, arm_timeout_s=0.05, answer_timeout_s=SLACK_S)
        with pytest.raises(ResponderError) as raised:
            responder.arm(os.urandom(32))
        assert raised.value.reason is Reason.ROUND_TIMEOUT
        assert not responder.armed
        blocker.set()  # the stale kernel starts late, sees the stop flag and leaves
        gpu.stream.synchronize()
        assert gpu.state.value & 0x3 != gpu_cuda.STATE_ARMED
        secret = os.urandom(32)
        responder.arm(secret)
        challenge = os.urandom(16)
        assert responder.answer(challenge) == sha(secret, challenge)
        responder.close()


def test_launch_responder_answers_with_the_challenge_in_the_arguments(fake_cupy: Any) -> None:
    with gpu_cuda.CudaContext() as gpu:
        responder = gpu_cuda.LaunchResponder(gpu, answer_timeout_s=SLACK_S)
        secret = os.urandom(32)
        responder.arm(secret)
        for _ in range(16):
            challenge = os.urandom(16)
            assert responder.answer(challenge) == sha(secret, challenge)
        responder.close()
        with pytest.raises(ResponderError):
            responder.answer(os.urandom(16))


def test_answers_time_out_when_no_kernel_answers(fake_cupy: Any) -> None:
    with gpu_cuda.CudaContext() as gpu:
        responder = gpu_cuda.LaunchResponder(gpu, answer_timeout_s=0.05)
        responder.arm(os.urandom(32))
        blocker = threading.Event()
        gpu.stream.launch(blocker.wait)
        with pytest.raises(ResponderError) as raised:
            responder.answer(os.urandom(16))
        assert raised.value.reason is Reason.ROUND_TIMEOUT
        blocker.set()
        responder.close()
