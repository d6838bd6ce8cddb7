"""The operator's files the verifier judges by and the admin API edits: the landmark
registry and the revocation list.

Every worker process checks, before each batch, whether either file changed (one ``stat``
each) and, if so, judges the batch by the new contents; so an admin change made through
any worker holds for the next proof on all of them. Edits are made under an exclusive
lock on a ``.lock`` file beside each file, read-modify-write, and replace the file
atomically (:func:`geoattest.files.write_json`): two operators editing at once are
serialised, and a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from geoattest.errors import ConfigError
from geoattest.pki import LandmarkRegistry, RevocationList

T = TypeVar("T")


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_ino


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


@dataclass
class OperatorFiles:
    """The registry and (optional) revocation list of one verifier, as files."""

    registry: Path
    revocations: Path | None = None

    def __post_init__(self) -> None:
        self._seen = (_stamp(self.registry), _stamp(self.revocations))

    def changed(self) -> bool:
        """Whether either file changed since the last call that said so (or since load)."""
        now = (_stamp(self.registry), _stamp(self.revocations))
        if now == self._seen:
            return False
        self._seen = now
        return True

    def load_registry(self) -> LandmarkRegistry:
        return LandmarkRegistry.load(self.registry)

    def load_revocations(self) -> RevocationList:
        """The revocation list; an empty one when there is no file (yet)."""
        if self.revocations is None or not self.revocations.exists():
            return RevocationList()
        return RevocationList.load(self.revocations)

    def edit_registry(self, change: Callable[[LandmarkRegistry], T]) -> T:
        """Apply ``change`` to the registry and save it, under the registry's lock."""
        with _locked(self.registry):
            registry = self.load_registry()
            outcome = change(registry)
            registry.save(self.registry)
        return outcome

    def edit_revocations(self, change: Callable[[RevocationList], RevocationList]) -> None:
        """Replace the revocation list with ``change`` of it, under its lock.

        Raises:
            ConfigError: this verifier has no revocation list file.
        """
        if self.revocations is None:
            raise ConfigError("this verifier runs without --revocations: nothing to edit")
        with _locked(self.revocations):
            change(self.load_revocations()).save(self.revocations)
