"""``geoattest bench gpu``: GPU throughput with and without the agent, where CUDA exists.

Not measured yet: no machine with a GPU has been available, so this benchmark only
reports why it skips, and succeeds, so that CI (never a GPU) can always run it.
"""

from __future__ import annotations

import ctypes.util
import shutil

PENDING = "GPU figures are pending a machine with a GPU (see BENCHMARKS.md)"


def skip_reason() -> str:
    """Why the GPU benchmark does not run here."""
    if shutil.which("nvidia-smi") is None or ctypes.util.find_library("cuda") is None:
        return f"no CUDA device here (no nvidia-smi or libcuda): skipped; {PENDING}"
    return f"CUDA found, but the GPU workload is not written yet: skipped; {PENDING}"
