"""Landmarks: who they are, who runs them, where they stand and the keys their receipts carry.

The verifier reads the landmark registry (a JSON document listing every landmark); each
landmark reads its own key directory, which holds its key and its identity
(``landmark.json``) for ``geoattest landmark serve``.

A landmark is its key, its operator and its surveyed site, not its id: the registry holds
each public key once (a key under two ids would count twice towards a quorum), and the
verifier counts landmarks by fault domain (one operator, or one site), never by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from geoattest.crypto import KeySigner, PrivateKey, VerifyingKey
from geoattest.errors import ConfigError, EvidenceError, LandmarkKeyReusedError
from geoattest.files import read_json, write_json, write_new
from geoattest.pki.keyfiles import load_signer, save_signing_key
from geoattest.pki.names import check_identifier

LANDMARK_FILE = "landmark.json"


@dataclass(frozen=True, slots=True)
class LandmarkRecord:
    """A landmark as the registry lists it: where it is, who runs it and the key its
    receipts carry."""

    landmark_id: str
    latitude: float
    longitude: float
    verifying_key: VerifyingKey
    name: str = ""
    operator: str = ""
    """Who runs the landmark (holds its key and its host). Empty: the landmark is its own
    operator, which is how an entry written before operators were recorded loads."""

    def __post_init__(self) -> None:
        if not self.operator:
            object.__setattr__(self, "operator", self.landmark_id)


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
    """Landmarks by id, each public key at most once, stored as a JSON document.

    Format: ``{"landmarks": [{"id", "name", "operator", "lat", "lon", "public_key",
    "key_id"}]}`` with ``public_key`` the hex of the SubjectPublicKeyInfo DER; ``key_id`` is
    informative only (it is recomputed from the key on load). An entry without
    ``operator`` (a file written before operators were recorded) is its own operator.
    """

    def __init__(self, records: Iterable[LandmarkRecord] = ()) -> None:
        self._records: dict[str, LandmarkRecord] = {}
        self._ids_by_key: dict[str, str] = {}
        for record in records:
            self.add(record)

    def add(self, record: LandmarkRecord) -> None:
        """Register a landmark.

        Raises:
            LandmarkKeyReusedError: its public key is already registered under another id.
            ConfigError: a bad id, operator or coordinates, or an id already registered.
        """
        check_identifier(record.landmark_id, "landmark id")
        check_identifier(record.operator, "landmark operator")
        check_coordinates(record.latitude, record.longitude)
        if record.landmark_id in self._records:
            raise ConfigError(f"landmark {record.landmark_id} is already registered")
        holder = self._ids_by_key.get(record.verifying_key.key_id)
        if holder is not None:
            raise LandmarkKeyReusedError(
                f"landmark {record.landmark_id}: public key {record.verifying_key.key_id[:16]}"
                f" is already registered as landmark {holder}"
            )
        self._records[record.landmark_id] = record
        self._ids_by_key[record.verifying_key.key_id] = record.landmark_id

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
            LandmarkKeyReusedError: two entries hold the same public key.
            ConfigError: missing, not JSON, malformed, or a bad or duplicate entry.
        """
        document = read_json(path, "landmark registry")
        try:
            entries = document["landmarks"]
            if not isinstance(entries, list):
                raise TypeError("'landmarks' is not a list")
            records = [
                _record(
                    entry,
                    VerifyingKey.from_der(bytes.fromhex(_text(entry, "public_key"))),
                )
                for entry in entries
            ]
        except (KeyError, TypeError, ValueError, EvidenceError) as exc:
            raise ConfigError(f"landmark registry {path} is malformed: {exc}") from exc
        # An entry refused as it is registered (a site off the globe, an id that is not
        # one, a key held twice) is named with the file it came from.
        try:
            return cls(records)
        except LandmarkKeyReusedError as exc:
            raise LandmarkKeyReusedError(f"landmark registry {path}: {exc.detail}") from exc
        except ConfigError as exc:
            raise ConfigError(f"landmark registry {path} is malformed: {exc.detail}") from exc

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
                        "operator": r.operator,
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
        "operator": record.operator,
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
    document = read_json(path, "landmark identity")
    try:
        record = _record(document, signer.verifying_key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is malformed: {exc!r}") from None
    check_coordinates(record.latitude, record.longitude)
    return LandmarkKey(signer, record)


def _record(entry: object, key: VerifyingKey) -> LandmarkRecord:
    """A registry entry or a landmark's identity, as written: the id, name and operator
    strings, the site numbers (never a null or a number made into an id or an operator,
    nor a site read from text).

    Raises:
        KeyError: the id or a coordinate is missing.
        TypeError: the entry is not an object, or a field is not of its type.
    """
    return LandmarkRecord(
        landmark_id=_text(entry, "id"),
        latitude=_number(entry, "lat"),
        longitude=_number(entry, "lon"),
        verifying_key=key,
        name=_text(entry, "name", ""),
        operator=_text(entry, "operator", ""),
    )


def _field(entry: object, name: str, default: object) -> object:
    if not isinstance(entry, dict):
        raise TypeError("a landmark entry is not a JSON object")
    if default is None:
        return entry[name]
    return entry.get(name, default)


def _text(entry: object, name: str, default: str | None = None) -> str:
    value = _field(entry, name, default)
    if not isinstance(value, str):
        raise TypeError(f"{name!r} is not a string")
    return value


def _number(entry: object, name: str) -> float:
    value = _field(entry, name, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name!r} is not a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name!r} is no coordinate") from None
