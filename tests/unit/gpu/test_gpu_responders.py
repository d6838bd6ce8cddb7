"""Responders in the agent's round: the CPU path, the device code built for the host, and
on a machine with CUDA and CuPy the two GPU designs (skipped cleanly elsewhere). Self-
contained (no conftest fixtures), so the device check can run it with ``--noconftest``."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from geoattest.attestor.gpu import CpuResponder, ResponderError, RoundResponder
from geoattest.attestor.gpu import cuda as gpu_cuda
from geoattest.errors import Reason, RoundError


def protocol() -> tuple[ModuleType, Any]:
    """The round state machines and a key signer; skipped where they cannot load (a GPU
    machine without our cryptography or protobuf wheels), so the GPU checks still run."""
    try:
        rounds = importlib.import_module("geoattest.protocol.round")
        crypto = importlib.import_module("geoattest.crypto")
    except Exception as exc:  # ImportError, or protobuf's VersionError
        pytest.skip(f"protocol modules do not load here: {type(exc).__name__}: {exc}")
    return rounds, crypto.KeySigner


UNIX_NS = 1_767_225_600 * 10**9
CC = shutil.which("cc") or shutil.which("gcc")
CUDA_SKIP = gpu_cuda.skip_reason()
needs_cuda = pytest.mark.skipif(CUDA_SKIP is not None, reason=f"GPU responder: {CUDA_SKIP}")


def run_round(secret: bytes, responder: Any, exchanges: int = 8) -> tuple[Any, Any]:
    """One round in memory between the real state machines, answers from ``responder``."""
    rounds, key_signer = protocol()
    device, landmark = key_signer.generate(), key_signer.generate()
    agent = rounds.AgentRound(
        "dev-1",
        "lm-1",
        landmark.verifying_key,
        device,
        secret=secret,
        exchanges=exchanges,
        responder=responder,
    )
    lm = rounds.LandmarkRound(
        "lm-1",
        landmark,
        rounds.decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    now = 1_000_000
    to_agent: bytes | None = lm.next_challenge(now)
    while to_agent is not None:
        try:
            to_landmark = agent.receive(to_agent)
        except RoundError as exc:
            if exc.reason is not Reason.ROUND_ABORTED:
                raise
            break  # the landmark voided the round
        if to_landmark is None:
            break
        now += 10_000
        to_agent = lm.receive(to_landmark, now, UNIX_NS)
    return agent, lm


def armed_round(responder: RoundResponder) -> tuple[Any, Any]:
    """What the agent's driver does: arm before Open, close before Close reveals r."""
    secret = os.urandom(32)
    responder.arm(secret)
    try:
        return run_round(secret, responder)
    finally:
        responder.close()


def test_round_with_the_cpu_responder_gets_a_receipt() -> None:
    agent, lm = armed_round(CpuResponder())
    assert agent.state.value == "done"
    assert lm.state.value == "signed"


def test_round_without_a_responder_still_answers_on_the_cpu() -> None:
    agent, lm = run_round(os.urandom(32), None)
    assert agent.state.value == "done"
    assert lm.state.value == "signed"


class WrongResponder:
    def answer(self, challenge: bytes) -> bytes:
        return bytes(32)


def test_a_wrong_answer_voids_the_round_at_the_landmark() -> None:
    agent, lm = run_round(os.urandom(32), WrongResponder())
    assert lm.state.value == "failed"
    assert lm.failure is Reason.ROUND_BAD_RESPONSE
    assert agent.state.value == "failed"
    assert agent.receipt is None


def test_a_responder_error_leaves_the_round_as_it_was() -> None:
    rounds, key_signer = protocol()
    device, landmark = key_signer.generate(), key_signer.generate()
    agent = rounds.AgentRound(
        "dev-1",
        "lm-1",
        landmark.verifying_key,
        device,
        secret=os.urandom(32),
        exchanges=2,
        responder=CpuResponder(),  # never armed
    )
    lm = rounds.LandmarkRound(
        "lm-1",
        landmark,
        rounds.decode_datagram(agent.open()).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    with pytest.raises(RoundError) as raised:
        agent.receive(lm.next_challenge(1))
    assert isinstance(raised.value, ResponderError)
    assert agent.state.value == "opened"
    assert agent.round_id is None


@pytest.mark.skipif(CC is None, reason="no C compiler on PATH")
def test_round_answered_by_the_device_code_built_for_the_host() -> None:
    from geoattest.attestor.gpu.host import HostResponder  # noqa: PLC0415

    assert CC is not None
    with HostResponder(CC) as responder:
        agent, lm = armed_round(responder)
    assert agent.state.value == "done"
    assert lm.state.value == "signed"


def test_gpu_responders_refuse_cleanly_without_cuda() -> None:
    if CUDA_SKIP is None:
        pytest.skip("CUDA is here")
    with pytest.raises(gpu_cuda.GpuUnavailableError):
        gpu_cuda.CudaContext()


# --- on a machine with CUDA and CuPy --------------------------------------------------


def test_gpu_is_usable_where_the_device_check_requires_it() -> None:
    """bench/gpu_device_check.sh sets GEOATTEST_REQUIRE_GPU on a GPU machine, so that the
    tests below cannot all skip there unnoticed."""
    if not os.environ.get("GEOATTEST_REQUIRE_GPU"):
        pytest.skip("GEOATTEST_REQUIRE_GPU is not set")
    assert CUDA_SKIP is None, CUDA_SKIP


@pytest.fixture(scope="module")
def gpu() -> Iterator[gpu_cuda.CudaContext]:
    with gpu_cuda.CudaContext() as context:
        yield context


@needs_cuda
def test_armed_kernel_answers_equal_hashlib_over_several_rounds(
    gpu: gpu_cuda.CudaContext,
) -> None:
    responder = gpu_cuda.ArmedResponder(gpu)
    for _ in range(5):
        secret = os.urandom(32)
        responder.arm(secret)
        assert responder.armed
        for _ in range(64):
            challenge = os.urandom(16)
            assert responder.answer(challenge) == hashlib.sha256(secret + challenge).digest()
        responder.close()
        assert not responder.armed
        assert gpu.state.value & 0x3 == gpu_cuda.STATE_CLOSED
    with pytest.raises(ResponderError):
        responder.answer(os.urandom(16))


@needs_cuda
def test_armed_kernel_refuses_a_second_arm_and_exits_by_its_deadline(
    gpu: gpu_cuda.CudaContext,
) -> None:
    responder = gpu_cuda.ArmedResponder(gpu, round_timeout_s=0.05, answer_timeout_s=0.2)
    responder.arm(os.urandom(32))
    with pytest.raises(ResponderError):
        responder.arm(os.urandom(32))
    deadline = time.monotonic() + 10
    while not responder.expired() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert responder.expired()  # the host never closed it: it stopped by itself
    with pytest.raises(ResponderError) as raised:
        responder.answer(os.urandom(16))
    assert raised.value.reason is Reason.ROUND_TIMEOUT
    responder.close()
    assert not responder.armed


@needs_cuda
def test_launch_per_challenge_answers_equal_hashlib(gpu: gpu_cuda.CudaContext) -> None:
    responder = gpu_cuda.LaunchResponder(gpu)
    secret = os.urandom(32)
    responder.arm(secret)
    for _ in range(64):
        challenge = os.urandom(16)
        assert responder.answer(challenge) == hashlib.sha256(secret + challenge).digest()
    responder.close()


@needs_cuda
@pytest.mark.parametrize("design", ["armed", "launch"])
def test_round_answered_on_the_gpu_gets_a_receipt(gpu: gpu_cuda.CudaContext, design: str) -> None:
    responder: RoundResponder = (
        gpu_cuda.ArmedResponder(gpu) if design == "armed" else gpu_cuda.LaunchResponder(gpu)
    )
    agent, lm = armed_round(responder)
    assert agent.state.value == "done"
    assert lm.state.value == "signed"
