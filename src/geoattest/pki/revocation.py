"""Revoked devices and landmarks, in a list whose version only increases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from geoattest.errors import ConfigError
from geoattest.files import read_json, write_json
from geoattest.pki.names import check_identifier


@dataclass(frozen=True, slots=True)
class RevocationList:
    """Revoked devices and landmarks. The version only increases.

    Format: ``{"version": int, "devices": [id, ...], "landmarks": [id, ...]}``. A verifier
    that has seen version n refuses anything older, so an adversary cannot roll a
    revocation back by serving an old file.
    """

    version: int = 0
    devices: frozenset[str] = field(default_factory=frozenset)
    landmarks: frozenset[str] = field(default_factory=frozenset)

    def device_revoked(self, device_id: str) -> bool:
        return device_id in self.devices

    def landmark_revoked(self, landmark_id: str) -> bool:
        return landmark_id in self.landmarks

    def with_device(self, device_id: str) -> RevocationList:
        check_identifier(device_id, "device id")
        return RevocationList(self.version + 1, self.devices | {device_id}, self.landmarks)

    def with_landmark(self, landmark_id: str) -> RevocationList:
        check_identifier(landmark_id, "landmark id")
        return RevocationList(self.version + 1, self.devices, self.landmarks | {landmark_id})

    @classmethod
    def load(cls, path: Path) -> RevocationList:
        """Read a revocation list file.

        Raises:
            ConfigError: missing, not JSON, or malformed.
        """
        document = read_json(path, "revocation list")
        try:
            return cls(
                version=int(document["version"]),
                devices=frozenset(str(d) for d in document["devices"]),
                landmarks=frozenset(str(x) for x in document["landmarks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"revocation list {path} is malformed: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the list; refuse to replace a newer or equal version (rollback).

        Raises:
            ConfigError: the file holds this version or a later one, or cannot be written.
        """
        if path.exists():
            current = RevocationList.load(path)
            if current.version >= self.version:
                raise ConfigError(
                    f"{path} holds version {current.version}; refusing to write {self.version}"
                )
        write_json(
            path,
            {
                "version": self.version,
                "devices": sorted(self.devices),
                "landmarks": sorted(self.landmarks),
            },
        )
