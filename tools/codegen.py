"""Regenerate the Python wire code from ``proto/geoattest/v1``.

The generated modules live in ``src/geoattest/v1`` (the proto package path maps onto
the import path), together with ``.pyi`` stubs from mypy-protobuf. A unit test runs
:func:`generate` into a temporary folder and fails if the result differs from what is
checked in, so the generated code never drifts from the ``.proto`` files.

It is a developer's tool: it needs the repository's ``proto/`` folder and the ``dev``
extra's protoc plugins, so it lives outside the installed package.

Usage::

    python tools/codegen.py          # rewrite src/geoattest/v1
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO_ROOT / "proto"
GENERATED_ROOT = REPO_ROOT / "src"


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    return sorted((proto_root / "geoattest" / "v1").glob("*.proto"))


def generate(out_root: Path = GENERATED_ROOT, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) for every ``.proto``; return the files written.

    Exits with a one-line error when protoc fails or its tools are not installed.
    """
    try:
        import grpc_tools  # noqa: PLC0415  (a dev-only dependency)
        from grpc_tools import protoc  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the install
        sys.exit("error: grpcio-tools is missing: pip install -e '.[dev]'")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    plugins = []
    for plugin in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        # Look beside the running interpreter first: a venv's bin is often not on PATH.
        beside = Path(sys.executable).parent / plugin
        found = str(beside) if beside.exists() else shutil.which(plugin)
        if found is None:
            sys.exit(f"error: {plugin} is missing: pip install -e '.[dev]'")
        plugins.append(f"--plugin={plugin}={found}")
    target = out_root / "geoattest" / "v1"
    target.mkdir(parents=True, exist_ok=True)
    sources = [str(p.relative_to(proto_root)) for p in proto_files(proto_root)]
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        *plugins,
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        sys.exit(f"error: protoc failed for {', '.join(sources)}")
    init = target / "__init__.py"
    init.write_text('"""Code generated from proto/geoattest/v1 by tools/codegen.py."""\n')
    return sorted(p for p in target.iterdir() if p.suffix in {".py", ".pyi"})


def main() -> int:
    for path in generate():
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
