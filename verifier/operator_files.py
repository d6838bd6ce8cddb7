"""The operator's files the verifier judges by: the landmark registry and the revocation
list, on the host of each replica (``landmark register``, ``device revoke`` and ``landmark
revoke`` edit them there).

Every worker process checks, before each batch, whether either file changed (one ``stat``
each) and, if so, judges the batch by the new contents. The revocation list is offered to
the store, which keeps the newest any replica followed; every replica judges by that one
(:meth:`~geoattest.verifier.store.SqlStore.follow_revocation_list`). The admin API does
not edit the files: its revocations and registrations are store rows, added to the files'
contents on every replica (:class:`~geoattest.verifier.store.StoredTrust`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geoattest.errors import ConfigError
from geoattest.pki import LandmarkRegistry, RevocationList


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_ino


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

    def revocations_after(self, held: RevocationList) -> RevocationList:
        """The revocation list file as it is now, if it may take the place of ``held``
        (the one in force): a later version, or the same version revoking at least what
        ``held`` does. An older version (an old copy served again), the same version
        lifting a revocation (an edit that kept the version), or no file at all where
        ``held`` revokes something would lift revocations that no newer list lifted.

        Raises:
            ConfigError: the file does not load, or may not replace ``held``.
        """
        if self.revocations is not None and not self.revocations.exists():
            if held != RevocationList():
                raise ConfigError(
                    f"revocation list {self.revocations} is gone; version {held.version} "
                    "stays in force"
                )
            return held
        loaded = self.load_revocations()
        if loaded.version < held.version or (
            loaded.version == held.version and not _revokes_all_of(loaded, held)
        ):
            raise ConfigError(
                f"revocation list {self.revocations} holds version {loaded.version}, which "
                f"lifts revocations of version {held.version} in force: refused (a rollback)"
            )
        return loaded


def _revokes_all_of(revocations: RevocationList, held: RevocationList) -> bool:
    return (
        revocations.devices >= held.devices
        and revocations.landmarks >= held.landmarks
        and revocations.landmark_keys >= held.landmark_keys
    )
