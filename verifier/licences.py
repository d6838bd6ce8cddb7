"""Export licences: which region each device is licensed for, and until when.

The operator writes them; the verifier only reads them. A device with no licence is not
enrolled, because there would be nothing to check its location against. The file::

    {
      "licences": {
        "dev-1": {"region": "DE", "valid_until": "2027-01-01T00:00:00Z"}
      }
    }

Every region must be one the region policy defines (checked at load: a typo is a
configuration error, never a device that can never be ALLOWED).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.files import read_json
from geoattest.units import SECOND_NS


@dataclass(frozen=True, slots=True)
class ExportLicence:
    """The operator's licence for one device: the region it may run in, and until when."""

    device_id: str
    region: str
    """A region name the region policy defines."""
    valid_until_ns: int


class Licences:
    """Licences by device id."""

    def __init__(self, licences: Mapping[str, ExportLicence]) -> None:
        self._licences = dict(licences)

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
                    device_id=str(device_id),
                    region=str(entry["region"]),
                    valid_until_ns=_timestamp_ns(str(entry["valid_until"])),
                )
                for device_id, entry in entries.items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"licences file {path} is malformed: {exc}") from exc
        for licence in licences.values():
            if not has_region(licence.region):
                raise ConfigError(
                    f"licences file {path}: region {licence.region!r} of {licence.device_id} "
                    "is not defined by the region policy"
                )
        return cls(licences)

    def licence_for(self, device_id: str, now_ns: int) -> ExportLicence:
        """The device's licence in force at ``now_ns``.

        Raises:
            EvidenceError: NO_LICENCE or LICENCE_EXPIRED.
        """
        licence = self._licences.get(device_id)
        if licence is None:
            raise EvidenceError(Reason.NO_LICENCE, f"no licence names {device_id[:128]}")
        if licence.valid_until_ns <= now_ns:
            raise EvidenceError(Reason.LICENCE_EXPIRED, f"licence of {device_id} has expired")
        return licence


def _timestamp_ns(text: str) -> int:
    """An RFC 3339 timestamp with a zone; a naive one is refused (ambiguous expiry)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"valid_until {text!r} has no time zone")
    return int(moment.timestamp()) * SECOND_NS
