"""Files that no crash leaves half-written, and key files that are never overwritten.

A document is replaced atomically and durably (temporary file, fsync, rename, fsync of
the folder): a reader or a restart after a crash or a power cut sees the old content or
the new, never a mix. Key material is only ever written into new files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geoattest.errors import ConfigError


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, durably once this returns.

    Raises:
        OSError: the file or its folder cannot be written.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_new(path: Path, data: bytes) -> None:
    """Create ``path``; an existing file is an error, never overwritten."""
    with path.open("xb") as handle:
        handle.write(data)


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def prepare_output_dir(directory: Path) -> None:
    """An output folder must be new or empty: provisioning never overwrites keys.

    Raises:
        ConfigError: ``directory`` exists and is not an empty folder.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} already exists and is not an empty directory")
    directory.mkdir(parents=True, exist_ok=True)


def read_json(path: Path, what: str) -> Any:
    """A JSON document the operator wrote; ``what`` names it in errors.

    Raises:
        ConfigError: the file is missing, unreadable or not JSON.
    """
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON ({exc})") from exc


def write_json(path: Path, document: Any) -> None:
    """Replace a JSON document atomically and durably (indented, keys sorted).

    Raises:
        ConfigError: the file cannot be written.
    """
    try:
        write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
