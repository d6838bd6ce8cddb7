"""Output paths checked before any work: a command that would fail to write its result
says so at once, not after minutes of computing it."""

from __future__ import annotations

import os
from pathlib import Path

from geoattest.errors import ConfigError


def writable_file(path: Path, what: str) -> Path:
    """Refuse an output file whose directory is missing or read-only, or that is a folder.

    Raises:
        ConfigError: the file could not be written where ``path`` says.
    """
    parent = path.parent if str(path.parent) else Path()
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory")
    if not parent.is_dir():
        raise ConfigError(f"{what} directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{what} directory {parent} is not writable")
    return path


def png_file(path: Path, what: str) -> Path:
    """A writable output file named ``*.png``. The plotting library picks the image format
    from the name, and adds ``.png`` to a name without a suffix, so any other name would
    either fail after the work or be written somewhere other than where the command says.

    Raises:
        ConfigError: ``path`` does not end in ``.png`` or cannot be written.
    """
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{what} {path} must name a .png file")
    return writable_file(path, what)


def writable_dir(path: Path, what: str) -> Path:
    """Create the output directory (its parent must exist) and check it is writable.

    Raises:
        ConfigError: ``path`` is a file, its parent is missing, or it is not writable.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} exists and is not a directory")
    if not path.exists():
        writable_file(path, what)
        path.mkdir()
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} is not writable")
    return path


def one_line(text: str) -> str:
    """Stored text as one line of a listing may print it: each unprintable character (a
    line break, a terminal's escape) written as its Python escape, so that a value stored
    before its checks (or by another tool) can neither forge the next line nor drive the
    reader's terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
