"""What an id or a name may hold, checked before it reaches a certificate or a file.

Ids travel in datagrams and file names. Device ids and models also go into X.520
attributes, so they obey X.520: a device id is 1..64 PrintableString characters (letters,
digits, space and ``'()+,-.:=?``; no ``_``), a model 1..64 printable characters. Bad names
are refused with a :class:`~geoattest.errors.ConfigError` before any file is written.
"""

from __future__ import annotations

import string

from geoattest.errors import ConfigError

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 64  # X.520 upper bound for commonName, serialNumber, title, organizationName
MAX_NOTE_LENGTH = 500
PRINTABLE_STRING = frozenset(string.ascii_letters + string.digits + " '()+,-.:=?")
"""The ASN.1 PrintableString alphabet (X.680), less '/', which ids may not hold."""


def check_identifier(value: str, what: str) -> str:
    """Ids travel in datagrams and file names: short, printable, no separators.

    Raises:
        ConfigError: the id is empty, too long, unprintable or holds '/'.
    """
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable() or "/" in value:
        raise ConfigError(f"{what} must be 1..{MAX_ID_LENGTH} printable characters without '/'")
    return value


def check_device_id(device_id: str) -> str:
    """A device id is a certificate's X.520 serialNumber: at most 64 PrintableString characters.

    Raises:
        ConfigError: the id does not fit that attribute (or holds '/').
    """
    if not 1 <= len(device_id) <= MAX_NAME_LENGTH or not set(device_id) <= PRINTABLE_STRING:
        raise ConfigError(
            f"device id {device_id!r} must be 1..{MAX_NAME_LENGTH} characters of letters, "
            "digits, space and '()+,-.:=? (an X.520 serialNumber)"
        )
    return device_id


def check_name(value: str, what: str, limit: int = MAX_NAME_LENGTH) -> str:
    """A name for an X.520 attribute (a model, a manufacturer): short and printable.

    Raises:
        ConfigError: the name is empty, longer than ``limit`` or unprintable.
    """
    if not 1 <= len(value) <= limit or not value.isprintable():
        raise ConfigError(f"{what} {value!r} must be 1..{limit} printable characters")
    return value


def check_note(value: str, what: str, limit: int = MAX_NOTE_LENGTH) -> str:
    """Free text kept beside a record and listed later (why an operator acted, a
    landmark's or a licence's name): at most ``limit`` printable characters, empty
    allowed, so that it can neither split the line it is listed on into a forged one nor
    carry a terminal's control sequences.

    Raises:
        ConfigError: too long, or a line break or another unprintable character.
    """
    if len(value) > limit or not value.isprintable():
        raise ConfigError(
            f"{what} must be at most {limit} printable characters (no line break or "
            "control character)"
        )
    return value
