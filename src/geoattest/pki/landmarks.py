"""Landmarks: who they are, where they stand and the keys their receipts carry.

The verifier reads the landmark registry (a JSON document listing every landmark); each
landmark reads its own key directory, which holds its key and its identity
(``landmark.json``) for ``geoattest landmark serve``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from geoattest.crypto import KeySigner, PrivateKey, VerifyingKey
from geoattest.errors import ConfigError, EvidenceError
from geoattest.files import read_json, write_json, write_new
from geoattest.pki.keyfiles import load_signer, save_signing_key
from geoattest.pki.names import check_identifier

LANDMARK_FILE = "landmark.json"


@dataclass(frozen=True, slots=True)
class LandmarkRecord:
    """A landmark as the registry lists it: where it is and the key its receipts carry."""

    landmark_id: str
    latitude: float
    longitude: float
    verifying_key: VerifyingKey
    name: str = ""


def check_coordinates(latitude: float, longitude: float) -> None:
    """Refuse coordinates no place has (NaN fails both comparisons).

    Raises:
        ConfigError: latitude outside -90..90 or longitude outside -180..180.
    """
    if not -90.0 <= latitude <= 90.0:
        raise ConfigError(f"latitude {latitude} is outside -90..90")
    if not -180.0 <= longitude <= 180.0:
        raise ConfigError(f"longitude {longitude} is outside -180..180")


class LandmarkRegistry:
    """Landmarks by id, stored as a JSON document.

    Format: ``{"landmarks": [{"id", "name", "lat", "lon", "public_key", "key_id"}]}`` with
    ``public_key`` the hex of the SubjectPublicKeyInfo DER; ``key_id`` is informative only
    (it is recomputed from the key on load).
    """

    def __init__(self, records: Iterable[LandmarkRecord] = ()) -> None:
        self._records: dict[str, LandmarkRecord] = {}
        for record in records:
            self.add(record)

    def add(self, record: LandmarkRecord) -> None:
        """Register a landmark.

        Raises:
            ConfigError: a bad id or coordinates, or an id already registered.
        """
        check_identifier(record.landmark_id, "landmark id")
        check_coordinates(record.latitude, record.longitude)
        if record.landmark_id in self._records:
            raise ConfigError(f"landmark {record.landmark_id} is already registered")
        self._records[record.landmark_id] = record

    def get(self, landmark_id: str) -> LandmarkRecord | None:
        return self._records.get(landmark_id)

    def __iter__(self) -> Iterator[LandmarkRecord]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def load(cls, path: Path) -> LandmarkRegistry:
        """Read a registry file.

        Raises:
            ConfigError: missing, not JSON, malformed, or a bad or duplicate entry.
        """
        document = read_json(path, "landmark registry")
        try:
            entries = document["landmarks"]
            records = [
                LandmarkRecord(
                    landmark_id=str(entry["id"]),
                    latitude=float(entry["lat"]),
                    longitude=float(entry["lon"]),
                    verifying_key=VerifyingKey.from_der(bytes.fromhex(entry["public_key"])),
                    name=str(entry.get("name", "")),
                )
                for entry in entries
            ]
        except (KeyError, TypeError, ValueError, EvidenceError) as exc:
            raise ConfigError(f"landmark registry {path} is malformed: {exc}") from exc
        return cls(records)

    def save(self, path: Path) -> None:
        """Replace the registry file atomically.

        Raises:
            ConfigError: the file cannot be written.
        """
        write_json(
            path,
            {
                "landmarks": [
                    {
                        "id": r.landmark_id,
                        "name": r.name,
                        "lat": r.latitude,
                        "lon": r.longitude,
                        "public_key": r.verifying_key.der().hex(),
                        "key_id": r.verifying_key.key_id,
                    }
                    for r in self
                ]
            },
        )


class LandmarkKey(NamedTuple):
    """A landmark's key directory, opened: its signer and who and where it is."""

    signer: KeySigner
    record: LandmarkRecord


def save_landmark_key(directory: Path, key: PrivateKey, record: LandmarkRecord) -> None:
    """A landmark's key directory: its key and who and where it is (for 'landmark serve').

    Raises:
        ConfigError: the directory exists and is not empty.
    """
    save_signing_key(directory, key)
    identity = {
        "id": record.landmark_id,
        "lat": record.latitude,
        "lon": record.longitude,
        "name": record.name,
    }
    write_new(directory / LANDMARK_FILE, json.dumps(identity).encode() + b"\n")


def load_landmark_key(directory: Path) -> LandmarkKey:
    """A landmark key directory written by :func:`save_landmark_key`.

    Raises:
        ConfigError: the directory, its key or its ``landmark.json`` is missing or malformed.
    """
    if not directory.is_dir():
        raise ConfigError(f"landmark key directory {directory} does not exist")
    signer = load_signer(directory, "landmark key directory")
    path = directory / LANDMARK_FILE
    try:
        document = json.loads(path.read_bytes())
        record = LandmarkRecord(
            str(document["id"]),
            float(document["lat"]),
            float(document["lon"]),
            signer.verifying_key,
            str(document.get("name", "")),
        )
    except FileNotFoundError:
        raise ConfigError(f"landmark key directory {directory} has no {LANDMARK_FILE}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is malformed: {exc!r}") from None
    check_coordinates(record.latitude, record.longitude)
    return LandmarkKey(signer, record)
