"""Revoked devices, landmarks and landmark keys, in a list whose version only increases."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from geoattest.errors import ConfigError
from geoattest.files import read_json, write_json
from geoattest.pki.names import check_identifier

_KEY_ID = re.compile("[0-9a-f]{64}")
MAX_VERSION = 2**63 - 1
"""The largest version a list may hold: what every store keeps in a signed 64-bit column."""


def check_key_id(key_id: str) -> str:
    """A key id is the lower-case hex SHA-256 of a public key's DER.

    Raises:
        ConfigError: anything else.
    """
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigError(f"key id {key_id[:80]!r} must be 64 lower-case hex digits")
    return key_id


@dataclass(frozen=True, slots=True)
class RevocationList:
    """Revoked devices, landmarks and landmark keys. The version only increases.

    Format: ``{"version": int, "devices": [id, ...], "landmarks": [id, ...],
    "landmark_keys": [key id, ...]}`` (a file without ``landmark_keys`` revokes no key).
    A revoked landmark key is untrusted under every id it was or will be registered under;
    a revoked landmark id is untrusted whatever key it holds. A verifier that has seen
    version n refuses anything older, so an adversary cannot roll a revocation back by
    serving an old file.
    """

    version: int = 0
    devices: frozenset[str] = field(default_factory=frozenset)
    landmarks: frozenset[str] = field(default_factory=frozenset)
    landmark_keys: frozenset[str] = field(default_factory=frozenset)
    """Key ids (:attr:`geoattest.crypto.VerifyingKey.key_id`) of revoked landmark keys."""

    def device_revoked(self, device_id: str) -> bool:
        return device_id in self.devices

    def landmark_revoked(self, landmark_id: str, key_id: str = "") -> bool:
        """Whether the landmark is revoked by its id or (given ``key_id``) by its key."""
        return landmark_id in self.landmarks or key_id in self.landmark_keys

    def including(self, other: RevocationList) -> RevocationList:
        """Everything this list or ``other`` revokes, at this list's version (the files'
        revocations with the store's, say)."""
        return replace(
            self,
            devices=self.devices | other.devices,
            landmarks=self.landmarks | other.landmarks,
            landmark_keys=self.landmark_keys | other.landmark_keys,
        )

    def merged_with(self, other: RevocationList) -> RevocationList:
        """The list to hold once ``other`` is seen beside this one: the newer of the two,
        and of one version everything either revokes (a list lifts a revocation only at a
        newer version)."""
        if other.version != self.version:
            return other if other.version > self.version else self
        return self.including(other)

    def with_device(self, device_id: str) -> RevocationList:
        check_identifier(device_id, "device id")
        return replace(self, version=self.version + 1, devices=self.devices | {device_id})

    def without_device(self, device_id: str) -> RevocationList:
        """The list with ``device_id`` restored (a revocation made in error, say)."""
        return replace(self, version=self.version + 1, devices=self.devices - {device_id})

    def with_landmark(self, landmark_id: str, key_id: str = "") -> RevocationList:
        """The list with ``landmark_id`` revoked, and its key too when ``key_id`` is given
        (so the key stays untrusted if it is ever registered under another id)."""
        check_identifier(landmark_id, "landmark id")
        keys = self.landmark_keys | {key_id} if key_id else self.landmark_keys
        return replace(
            self,
            version=self.version + 1,
            landmarks=self.landmarks | {landmark_id},
            landmark_keys=keys,
        )

    def with_landmark_key(self, key_id: str) -> RevocationList:
        """The list with a landmark key revoked, under whatever id it is registered.

        Raises:
            ConfigError: ``key_id`` is not the hex SHA-256 of a key.
        """
        check_key_id(key_id)
        return replace(self, version=self.version + 1, landmark_keys=self.landmark_keys | {key_id})

    @classmethod
    def load(cls, path: Path) -> RevocationList:
        """Read a revocation list file.

        Raises:
            ConfigError: missing, not JSON, or malformed.
        """
        document = read_json(path, "revocation list")
        try:
            if not isinstance(document, dict):
                raise TypeError("not a JSON object")
            version = document["version"]
            if type(version) is not int or not 0 <= version <= MAX_VERSION:
                raise ValueError(f"version {str(version)[:40]} is not an integer 0..{MAX_VERSION}")
            return cls(
                version=version,
                devices=_ids(document["devices"], "device id", check_identifier),
                landmarks=_ids(document["landmarks"], "landmark id", check_identifier),
                landmark_keys=_ids(
                    document.get("landmark_keys", []), "key id", lambda k, _: check_key_id(k)
                ),
            )
        except ConfigError as exc:
            raise ConfigError(f"revocation list {path} is malformed: {exc.detail}") from exc
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
                "landmark_keys": sorted(self.landmark_keys),
            },
        )


def _ids(listed: object, what: str, check: Callable[[str, str], str]) -> frozenset[str]:
    """A list's ids of one kind, each as ``check`` accepts it (never a number or null made
    into text, nor a string read as its characters).

    Raises:
        TypeError: not a list of strings.
        ConfigError: an id ``check`` refuses.
    """
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise TypeError(f"the {what}s must be a list of strings")
    return frozenset(check(x, what) for x in listed)
