#!/usr/bin/env bash
# Optional, run HERE (a machine with PyPI), before a GPU session: downloads into .whl/ the
# wheels (CPython 3.12, manylinux x86_64) of our dependencies that the GPU machine's image
# lacks, so that bench/gpu_device_check.sh can also run the round-level GPU tests
# (AgentRound + LandmarkRound answered by the GPU responder) and the full `geoattest` CLI.
# Without them the device check still runs the GPU responder tests and the benchmark
# itself (python3 -m geoattest.bench.gpu needs only torch, CuPy, numpy and rich).
#
#   bash bench/gpu_fetch_wheels.sh      then name .whl in the device tool's `carry`
#
# .whl/ is added to .git/info/exclude (the tool carries only ignored paths); never commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
PY=${PYTHON:-python3}
# What the image lacks, pinned to the versions the project's tests pass with:
#   round tests: cryptography, cffi, pycparser, protobuf (our generated code needs >= 7.35.1)
#   the CLI's imports: PyJWT, shapely, pyshp, geographiclib, SQLAlchemy
WHEELS=(
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 protobuf==7.36.2
    PyJWT==2.15.1 shapely==2.2.0 pyshp==3.1.6 geographiclib==2.1 SQLAlchemy==2.1.9
)
mkdir -p .whl
for platform in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64; do
    PLATFORMS+=(--platform "$platform")
done
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
ls -la .whl
