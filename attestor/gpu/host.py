"""The GPU responder's SHA-256, built for the host and called through ctypes.

Why: the device code's hash can be checked against hashlib on any machine with a C
compiler, GPU or not, because ``ga_answer`` in ``data/responder.cu`` is
``__host__ __device__``. :class:`HostResponder` drives that same code as a
:class:`~geoattest.attestor.gpu.base.RoundResponder` (the driver's host-side fallback, used for
checks; the agent's CPU path is :class:`~geoattest.attestor.gpu.base.CpuResponder`).
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from geoattest.attestor.gpu.base import (
    ANSWER_BYTES,
    CpuResponder,
    check_challenge,
    check_secret,
    source_path,
)
from geoattest.errors import ConfigError

HOST_SYMBOL = "geoattest_answer_host"


def compile_command(compiler: str, source: Path, output: Path) -> list[str]:
    """The shared-library build for ``gcc``/``cc`` (plain C99) or ``nvcc`` (host pass)."""
    if Path(compiler).name == "nvcc":
        flags = ["-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-fPIC", "-shared"]
        return [compiler, *flags, "-O2", "-o", str(output), str(source)]
    flags = ["-x", "c", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC"]
    return [compiler, *flags, "-O2", "-shared", "-o", str(output), str(source)]


def build(compiler: str, directory: Path) -> Path:
    """Compile the responder source into a shared library in ``directory``.

    Raises:
        ConfigError: no such compiler, or the source does not compile without warnings.
    """
    path = shutil.which(compiler)
    if path is None:
        raise ConfigError(f"{compiler} is not on PATH")
    source = source_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    output = directory / f"geoattest_responder_{Path(compiler).name}_{digest}.so"
    result = subprocess.run(  # noqa: S603  (a fixed argument list, no shell)
        compile_command(path, source, output), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ConfigError(f"{compiler} failed on {source.name}: {result.stderr.strip()[:2000]}")
    return output


class HostAnswer:
    """``ga_answer`` from the compiled source: z = SHA-256(r || c) on the host."""

    def __init__(self, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._fn = getattr(self._lib, HOST_SYMBOL)
        self._fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
        self._fn.restype = None

    def __call__(self, secret: bytes, challenge: bytes) -> bytes:
        check_secret(secret)
        check_challenge(challenge)
        out = ctypes.create_string_buffer(ANSWER_BYTES)
        self._fn(secret, challenge, out)
        return out.raw


class HostResponder(CpuResponder):
    """A :class:`RoundResponder` over the host build of the device code."""

    name = "host-build"

    def __init__(self, compiler: str = "cc", directory: Path | None = None) -> None:
        super().__init__()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory()
            directory = Path(self._tmp.name)
        try:
            self._digest = HostAnswer(build(compiler, directory))
        except ConfigError:
            self.release()
            raise

    def digest(self, secret: bytes, challenge: bytes) -> bytes:
        return self._digest(secret, challenge)

    def release(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wipe r, and drop the built library too: the ``with`` block owned it."""
        super().__exit__(exc_type, exc, tb)
        self.release()
