"""The responder's CUDA source, checked without a GPU: it compiles for sm_90 and to PTX
with nvcc and under NVRTC (what CuPy uses) without a warning, and its SHA-256, built for
the host from the same source, equals hashlib. Each check skips where its tool is absent.
No CuPy, CUDA device or conftest fixture is needed (the device check runs this file with
``--noconftest``)."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from geoattest.attestor.gpu import (
    CHALLENGE_BYTES,
    SECRET_BYTES,
    CpuResponder,
    ResponderError,
    source_path,
)
from geoattest.attestor.gpu import cuda as gpu_cuda
from geoattest.attestor.gpu.host import HostAnswer, HostResponder, build

NVCC = shutil.which("nvcc")
CC = shutil.which("cc") or shutil.which("gcc")
EDGE_CASES = [
    (bytes(32), bytes(16)),
    (b"\xff" * 32, b"\xff" * 16),
    (bytes(range(32)), bytes(range(32, 48))),
]


def random_pairs(n: int) -> list[tuple[bytes, bytes]]:
    return EDGE_CASES + [(os.urandom(SECRET_BYTES), os.urandom(CHALLENGE_BYTES)) for _ in range(n)]


def expected(secret: bytes, challenge: bytes) -> bytes:
    return hashlib.sha256(secret + challenge).digest()


def test_cpu_responder_is_the_protocol_answer() -> None:
    round_module = pytest.importorskip("geoattest.protocol.round")
    assert SECRET_BYTES == round_module.SECRET_BYTES
    assert CHALLENGE_BYTES == round_module.CHALLENGE_BYTES
    responder = CpuResponder()
    for secret, challenge in random_pairs(200):
        responder.arm(secret)
        assert responder.answer(challenge) == round_module.answer(secret, challenge)
        responder.close()


def test_cpu_responder_refuses_when_not_armed_and_wrong_lengths() -> None:
    responder = CpuResponder()
    with pytest.raises(ResponderError):
        responder.answer(bytes(16))
    with pytest.raises(ResponderError):
        responder.arm(bytes(31))
    responder.arm(bytes(32))
    with pytest.raises(ResponderError):
        responder.answer(bytes(15))
    responder.close()
    with pytest.raises(ResponderError):
        responder.answer(bytes(16))


def test_mailbox_layout_is_the_same_in_the_source_and_the_driver() -> None:
    defines = dict(re.findall(r"#define GA_BOX_(\w+) (\d+)", source_path().read_text()))
    assert {name: int(value) for name, value in defines.items()} == {
        "SEQ_IN": gpu_cuda.BOX_SEQ_IN,
        "STOP": gpu_cuda.BOX_STOP,
        "GENERATION": gpu_cuda.BOX_GENERATION,
        "CHALLENGE": gpu_cuda.BOX_CHALLENGE,
        "STATE": gpu_cuda.BOX_STATE,
        "SEQ_OUT": gpu_cuda.BOX_SEQ_OUT,
        "ANSWER": gpu_cuda.BOX_ANSWER,
    }
    assert gpu_cuda.BOX_CHALLENGE % 16 == 0  # the kernel reads it as one 16-byte vector
    assert gpu_cuda.BOX_ANSWER % 16 == 0
    assert gpu_cuda.BOX_STATE // 64 != gpu_cuda.BOX_SEQ_IN // 64  # separate cache lines


@pytest.mark.skipif(CC is None, reason="no C compiler on PATH")
def test_device_sha256_built_by_the_c_compiler_equals_hashlib() -> None:
    assert CC is not None
    with HostResponder(CC) as responder:
        for secret, challenge in random_pairs(2000):
            responder.arm(secret)
            assert responder.answer(challenge) == expected(secret, challenge)


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_device_sha256_built_by_nvcc_equals_hashlib(tmp_path: Path) -> None:
    answer = HostAnswer(build("nvcc", tmp_path))
    for secret, challenge in random_pairs(2000):
        assert answer(secret, challenge) == expected(secret, challenge)


def nvcc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert NVCC is not None
    flags = ["-arch=sm_90", "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra"]
    return subprocess.run(
        [NVCC, *flags, *args, str(source_path())],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_nvcc_builds_sm90_code_without_warnings_and_no_local_memory(tmp_path: Path) -> None:
    result = nvcc("-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "r.cubin"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower()
    # ptxas reports each kernel; the hash's message schedule must stay in registers.
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill", result.stderr)
    assert len(frames) == 2
    assert all(frame == ("0", "0") for frame in frames), result.stderr


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_nvcc_builds_ptx_with_both_kernels_and_system_scope_ordering(tmp_path: Path) -> None:
    ptx = tmp_path / "r.ptx"
    result = nvcc("--ptx", "-o", str(ptx), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = ptx.read_text()
    assert ".entry geoattest_armed(" in text
    assert ".entry geoattest_once(" in text
    assert "ld.acquire.sys" in text
    assert "fence.acq_rel.sys" in text  # the challenge is read after its number
    assert "st.release.sys" in text
    assert "%globaltimer" in text


def find_nvrtc() -> Path | None:
    """libnvrtc from the CUDA toolkit or from the pip package CuPy uses, if either is here."""
    candidates = []
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        candidates += sorted(Path(root).glob("cu*/lib/libnvrtc.so.*"))
        candidates += sorted(Path(root).glob("cuda_nvrtc/lib/libnvrtc.so.*"))
    if NVCC is not None:
        toolkit = Path(NVCC).resolve().parent.parent
        candidates += sorted(toolkit.glob("lib64/libnvrtc.so.*"))
    for candidate in candidates:
        if "alt" not in candidate.name and "builtins" not in candidate.name:
            return candidate
    return None


NVRTC = find_nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="libnvrtc is not installed")
def test_nvrtc_compiles_the_source_without_a_warning() -> None:
    assert NVRTC is not None
    for builtins in sorted(NVRTC.parent.glob("libnvrtc-builtins.so.*")):
        if "alt" not in builtins.name:  # NVRTC dlopens it by name: load it first
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(NVRTC))
    source = source_path().read_bytes()
    cupy_raw_module = [b"-ftz=true", b"-arch=sm_90", b"--device-as-default-execution-space"]
    for options in (
        [b"-arch=sm_90"],
        [b"-arch=compute_90"],
        [b"--std=c++17", b"-arch=sm_90"],
        cupy_raw_module,  # what CuPy 14's RawModule passes NVRTC 13
        [*cupy_raw_module, b"--pch"],
    ):
        program = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(program), source, b"r.cu", 0, None, None) == 0
        argv = (ctypes.c_char_p * len(options))(*options)
        status = lib.nvrtcCompileProgram(program, len(options), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        lib.nvrtcDestroyProgram(ctypes.byref(program))
        assert status == 0, log.value.decode()
        lines = log.value.decode().splitlines()
        assert [line for line in lines if line.strip() and "precompiled header" not in line] == []
