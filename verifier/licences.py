"""Export licences: which region each device is licensed for, until when, and whether the
licence still stands.

The operator writes them in a file; the verifier applies the file to its store
(:class:`~geoattest.verifier.live_licences.LiveLicences`), where each change makes a new
version that the next proof is judged against. The file::

    {
      "licences": {
        "dev-1": {"region": "DE", "valid_until": "2027-01-01T00:00:00Z"},
        "dev-2": {"id": "EL-2026-0042", "region": "SG", "valid_until": "2027-01-01T00:00:00Z",
                  "withdrawn": true}
      }
    }

``id`` names the licence (default: the device id); ``withdrawn`` (default false) withdraws
it. Every region must be one the region policy defines (checked at load: a typo is a
configuration error, never a device that can never be ALLOWED). Device ids and licence ids
obey the admin API's rules (a device id a certificate can carry; an id of at most 128
printable characters, as text): a result names the licence id, so a ``null`` or a number is
refused, never turned into the text ``None`` or ``42``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.files import read_json
from geoattest.pki.names import MAX_ID_LENGTH, check_device_id, check_note
from geoattest.units import SECOND_NS
from geoattest.wire.decode import INT64_MAX


@dataclass(frozen=True, slots=True)
class ExportLicence:
    """The operator's licence for one device: the region it may run in, until when, and
    whether it has been withdrawn; ``version`` counts its changes in the verifier's store
    (0: a licence not stored yet, or none at all)."""

    device_id: str
    region: str
    """A region name the region policy defines."""
    valid_until_ns: int
    licence_id: str = ""
    """The licence's own name; empty: the device id."""
    version: int = 0
    withdrawn: bool = False

    @property
    def name(self) -> str:
        return self.licence_id or self.device_id

    def same_terms(self, other: ExportLicence) -> bool:
        """Whether ``other`` says the same (its version aside)."""
        return (self.name, self.region, self.valid_until_ns, self.withdrawn) == (
            other.name,
            other.region,
            other.valid_until_ns,
            other.withdrawn,
        )

    def check_in_force(self, now_ns: int) -> None:
        """Raise unless this licence licenses its device at ``now_ns``.

        Raises:
            EvidenceError: NO_LICENCE (version 0: the verifier holds none),
                LICENCE_WITHDRAWN or LICENCE_EXPIRED.
        """
        if self.version == 0:
            raise EvidenceError(Reason.NO_LICENCE, f"no licence names {self.device_id[:128]}")
        if self.withdrawn:
            raise EvidenceError(
                Reason.LICENCE_WITHDRAWN,
                f"licence {self.name} v{self.version} of {self.device_id} is withdrawn",
            )
        if self.valid_until_ns <= now_ns:
            raise EvidenceError(
                Reason.LICENCE_EXPIRED,
                f"licence {self.name} v{self.version} of {self.device_id} has expired",
            )


class Licences:
    """The licences of one licences file, by device id (unversioned: the store versions
    them)."""

    def __init__(self, licences: Mapping[str, ExportLicence]) -> None:
        self.by_device = dict(licences)

    def digest(self) -> str:
        """SHA-256 (hex) of the terms, device by device: the same for any file that says
        the same, however it is laid out."""
        terms = sorted(
            (device_id, licence.name, licence.region, licence.valid_until_ns, licence.withdrawn)
            for device_id, licence in self.by_device.items()
        )
        return hashlib.sha256(json.dumps(terms).encode()).hexdigest()

    @classmethod
    def load(cls, path: Path, has_region: Callable[[str], bool]) -> Licences:
        """Read a licences file, checking every region against the policy.

        Raises:
            ConfigError: the file is missing, malformed, or names an undefined region.
        """
        document = read_json(path, "licences file")
        try:
            entries = document["licences"]
            licences = {
                str(device_id): ExportLicence(
                    device_id=check_device_id(str(device_id)),
                    region=str(entry["region"]),
                    valid_until_ns=_timestamp_ns(str(entry["valid_until"])),
                    licence_id=_licence_id(entry.get("id", "")),
                    withdrawn=_flag(entry.get("withdrawn", False)),
                )
                for device_id, entry in entries.items()
            }
        except ConfigError as exc:
            raise ConfigError(f"licences file {path} is malformed: {exc.detail}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"licences file {path} is malformed: {exc}") from exc
        for licence in licences.values():
            if not has_region(licence.region):
                raise ConfigError(
                    f"licences file {path}: region {licence.region!r} of {licence.device_id} "
                    "is not defined by the region policy"
                )
        return cls(licences)


def _licence_id(value: object) -> str:
    """A licence id as the admin API takes it: text (a ``null`` or a number is refused,
    never guessed), at most 128 printable characters.

    Raises:
        TypeError: not text.
        ConfigError: too long, or a line break or another unprintable character.
    """
    if not isinstance(value, str):
        raise TypeError(f"id must be text, not {value!r}")
    return check_note(value, "a licence id", MAX_ID_LENGTH)


def _flag(value: object) -> bool:
    """A JSON boolean; anything else (a string "false", say) is refused, never guessed."""
    if not isinstance(value, bool):
        raise TypeError(f"withdrawn must be true or false, not {value!r}")
    return value


LATEST_VALID_UNTIL_NS = INT64_MAX
"""The latest expiry a licence can hold: nanoseconds since 1970 in the signed 64 bits the
store keeps them in (2262-04-11)."""


def check_valid_until(valid_until_ns: int) -> None:
    """Refuse an expiry the store cannot hold (before 1970 or after 2262).

    Raises:
        ConfigError: the expiry is out of range.
    """
    if not 0 <= valid_until_ns <= LATEST_VALID_UNTIL_NS:
        raise ConfigError("an expiry must lie between 1970-01-01 and 2262-04-11")


def _timestamp_ns(text: str) -> int:
    """An RFC 3339 timestamp with a zone; a naive one is refused (ambiguous expiry)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"valid_until {text!r} has no time zone")
    valid_until_ns = int(moment.timestamp()) * SECOND_NS
    try:
        check_valid_until(valid_until_ns)
    except ConfigError as exc:
        raise ValueError(f"valid_until {text!r}: {exc.detail}") from None
    return valid_until_ns
