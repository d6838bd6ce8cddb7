#!/usr/bin/env bash
# The GPU checks of issue #7 in one command, for a session on a machine with an H100/H200:
#
#   bash bench/gpu_device_check.sh          (from the repository root; ~2 minutes expected,
#                                            8 at most: tests 180 s, benchmark 300 s)
#
# It installs nothing and needs no `pip install` of geoattest: PYTHONPATH=src:. runs the
# checkout as it is. What it needs there (the GPU machine's 'cuda' image has it all):
# python3 >= 3.11 (3.12 there) with torch (CUDA build), cupy-cuda13x, numpy, rich and
# pytest; nvcc is optional (the nvcc tests and CuPy's nvcc fallback use it).
#
# Our dependencies that image lacks: cryptography, cffi, pycparser, protobuf >= 7.35.1
# (round-level tests), and PyJWT, shapely, pyshp, geographiclib, SQLAlchemy (the full
# `geoattest` CLI). None is needed for the GPU responder tests or the benchmark. If the
# session carried them as wheels in .whl/ (bench/gpu_fetch_wheels.sh, run beforehand where
# PyPI is reachable), they are unpacked into a temporary folder for this run only;
# otherwise the tests that need them skip, and the benchmark runs as
# `python3 -m geoattest.bench.gpu --json`, the same code without the CLI's imports.
#
# Results: $OUT (the device tool's folder) or ./gpu-check: environment.txt, pytest.log,
# bench_gpu.json (one JSON object), bench_gpu.log (progress). Exit status: non-zero if
# the tests or the benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-$PWD/gpu-check}
mkdir -p "$RESULTS"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    SITE=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:$SITE"
fi
status=0
if nvidia-smi -L > /dev/null 2>&1; then
    export GEOATTEST_REQUIRE_GPU=1  # a GPU test that would skip here fails instead
fi

echo "== environment" | tee "$RESULTS/environment.txt"
{
    nvidia-smi -L 2>&1
    nvcc --version 2>&1 | tail -1
    "$PY" - <<'PY' 2>&1
import sys
print("python", sys.version.split()[0])
for name in ("torch", "cupy", "numpy", "cryptography", "google.protobuf"):
    try:
        module = __import__(name, fromlist=["__version__"])
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "missing:", exc)
try:
    import torch
    print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available())
except Exception as exc:
    print("torch:", exc)
from geoattest.attestor.gpu import cuda
from geoattest.bench import gpu
print("responder skip reason:", cuda.skip_reason(), "| bench skip reason:", gpu.skip_reason())
PY
} | tee -a "$RESULTS/environment.txt"

echo "== GPU tests (tests/unit/gpu)"
timeout 180 "$PY" -m pytest -q -rs -p no:cacheprovider --noconftest tests/unit/gpu 2>&1 \
    | tee "$RESULTS/pytest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== geoattest bench gpu --json"
if "$PY" -c "import geoattest.cli" 2>/dev/null; then
    BENCH=("$PY" -m geoattest bench gpu --json)
else
    BENCH=("$PY" -m geoattest.bench.gpu --json)
fi
echo "running: ${BENCH[*]}"
timeout 300 "${BENCH[@]}" > "$RESULTS/bench_gpu.json" 2> >(tee "$RESULTS/bench_gpu.log" >&2)
[ $? -eq 0 ] || status=1
cat "$RESULTS/bench_gpu.json"
if [ -n "${GEOATTEST_REQUIRE_GPU:-}" ] && grep -q '"skipped"' "$RESULTS/bench_gpu.json"; then
    echo "the benchmark skipped on a machine with a GPU: see environment.txt"
    status=1
fi
echo "== exit $status (results in $RESULTS)"
exit $status
