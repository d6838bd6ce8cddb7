"""Files that no crash leaves half-written, and key files that are never overwritten.

A document is replaced atomically and durably (temporary file, fsync, rename, fsync of
the folder): a reader or a restart after a crash or a power cut sees the old content or
the new, never a mix. Key material is only ever written into new files, owner-only from
the moment they exist, and is read only from files that are still owner-only.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from geoattest.errors import ConfigError, KeyExposedError

PRIVATE_MODE = 0o600
"""Key files are read and written by their owner only."""
MAX_DOCUMENT_BYTES = 256 * 2**20
"""The largest document an operator's file may be (a policy with its GeoJSON borders, a
licences file for a million chips): a path to something endless (``/dev/zero``) or a
wrong file of gigabytes is refused once this much is read, not read until memory runs
out."""
MAX_KEY_BYTES = 2**20
"""The largest key or certificate file (PEM): a few kilobytes at most."""


def read_limited(path: Path, what: str, most: int) -> bytes:
    """The bytes of ``path``, refused past ``most`` bytes without reading the rest.

    Raises:
        ConfigError: the file holds more than ``most`` bytes.
        OSError: the file cannot be opened or read.
    """
    with path.open("rb") as handle:
        return _limited(handle.read(most + 1), path, what, most)


def read_pem(path: Path, what: str) -> bytes:
    """A public key's or a certificate's PEM file, at most :data:`MAX_KEY_BYTES`.

    Raises:
        ConfigError: the file holds more than that.
        OSError: the file cannot be opened or read.
    """
    return read_limited(path, what, MAX_KEY_BYTES)


def _limited(data: bytes, path: Path, what: str, most: int) -> bytes:
    if len(data) > most:
        raise ConfigError(f"{what} {path} holds more than {most:,} bytes: not a file of its kind")
    return data


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
    """Write key material readable by the owner only; never overwrite.

    The bytes go to a new owner-only temporary file first, which is then linked under
    ``path``: the name appears only once the whole key is on disk, and no moment exists at
    which another user could open the file. An existing ``path`` raises
    :class:`FileExistsError` and is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink()


def read_private(path: Path) -> bytes:
    """The bytes of a key file that only its owner can read.

    Raises:
        KeyExposedError: the file grants any access to its group or to others.
        OSError: the file cannot be opened or read.
    """
    with path.open("rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise KeyExposedError(
                f"{path} is readable by others (mode {mode:04o}); "
                f"make it owner-only with 'chmod 600 {path}' or replace the key"
            )
        return _limited(handle.read(MAX_KEY_BYTES + 1), path, "key file", MAX_KEY_BYTES)


def prepare_output_dir(directory: Path) -> None:
    """An output folder must be new or empty: provisioning never overwrites keys.

    Raises:
        ConfigError: ``directory`` exists and is not an empty folder.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} already exists and is not an empty directory")
    directory.mkdir(parents=True, exist_ok=True)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _int(text: str) -> int:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise ValueError(f"the number {text[:40]} is too large") from None
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: Python's parser keeps the last of two equal
    keys, so a licence, a region or a landmark written twice would be half ignored."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key[:64]!r} appears twice in one object")
        document[key] = value
    return document


def read_json(path: Path, what: str) -> Any:
    """A JSON document the operator wrote; ``what`` names it in errors. The parser recurses
    once per level of nesting, so a document nested thousands deep is refused as such.
    Every number is one a float holds: NaN and Infinity (which Python's parser would
    accept) and numbers past a float's range are refused here, so no reader of a
    document meets an infinite value or an integer that no float can hold. A key written
    twice in one object is refused too, never settled by taking the last.

    Raises:
        ConfigError: the file is missing, unreadable, not JSON (a number out of a float's
            range or a key twice in one object included) or nested too deeply.
    """
    data = _read(path, what)
    try:
        return json.loads(
            data,
            parse_float=_float,
            parse_int=_int,
            parse_constant=_constant,
            object_pairs_hook=_unique,
        )
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"{what} {path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be read") from None


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML document the operator wrote; ``what`` names it in errors.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML or nested too deeply.
    """
    data = _read(path, what)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except ValueError as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"{what} {path} is not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be read") from None


def _read(path: Path, what: str) -> bytes:
    """The bytes of an operator's document; a failure to read it is a ConfigError naming it."""
    try:
        return read_limited(path, what, MAX_DOCUMENT_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def write_json(path: Path, document: Any) -> None:
    """Replace a JSON document atomically and durably (indented, keys sorted).

    Raises:
        ConfigError: the file cannot be written.
    """
    try:
        write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
