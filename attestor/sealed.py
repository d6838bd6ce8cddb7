"""Sealed, rollback-protected state: what the agent keeps must come back as it left it.

A chip's agent keeps state that the host must not be able to reset by rebooting it: its
licence and the moment it lapses. A real chip keeps such state in a tamper-resistant store:
data sealed (authenticated encryption) under a key that never leaves the chip, plus a
monotonic counter in fuses or an eMMC Replay Protected Memory Block (RPMB) that only ever
counts up. This module emulates that interface, and what an adversary who owns the host's
file system can and cannot do to it:

- A :class:`SealingKey` seals with AES-256-GCM under a key derived inside the device key
  store from the device key (:meth:`SealingKey.derive`); like the device key, it has no
  method that hands its bytes out. The host cannot read or forge a sealed file.
- A :class:`MonotonicCounter` only counts up. The emulation keeps it in a small file inside
  the device key store's folder, which stands for the chip: whoever can rewrite it can read
  the device key too, which is outside the threat model. A real chip keeps it in fuses or
  RPMB, where the host cannot move it back at all.
- A :class:`SealedSlot` is one named piece of state in a file the host *can* touch (delete,
  edit, replace with an older copy). Each write advances the slot's counter, then writes
  the file with the counter's new value in its header and, together with the slot's name,
  as associated data of the encryption. Reading refuses, with its own reason, a file that
  does not authenticate (:attr:`Reason.SEALED_EDITED`: any changed byte, a truncation,
  another slot's or another chip's file), a genuine file that is not the newest
  (:attr:`Reason.SEALED_ROLLED_BACK`) and a missing file after a write
  (:attr:`Reason.SEALED_MISSING`).

The counter is advanced *before* the file is written: a power cut between the two leaves a
file one step behind the counter, which reads as rolled back, the safe side (the agent then
waits for a fresh result; see :mod:`geoattest.attestor.licence`). The other order would let
a host that cuts the power at that instant keep the state from before the last change.

File layout::

    magic "GASEALv1" (8 bytes) | counter (8 bytes, big-endian) | nonce (12) | AES-GCM output
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from geoattest.crypto import PrivateKey
from geoattest.errors import ConfigError, Reason, SealedStateError
from geoattest.files import write_atomic

MAGIC = b"GASEALv1"
_COUNTER_BYTES = 8
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + _COUNTER_BYTES
_KEY_INFO = b"geoattest sealing key v1"


class SealingKey:
    """AES-256-GCM under a key derived from the device key; it seals and opens, and has no
    way to hand its key out (as :class:`~geoattest.attestor.keystore.DeviceKeyStore`)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def derive(cls, device_key: PrivateKey) -> SealingKey:
        """The chip's sealing key: HKDF-SHA256 over the device key, so it lives and dies
        with the device key and needs no file of its own."""
        secret = device_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO)
        return cls(hkdf.derive(secret))

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, bound to ``associated_data``."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        """The plaintext of ``sealed``.

        Raises:
            SealedStateError: ``sealed.edited``: it was not sealed by this key with this
                associated data, or a byte of it changed.
        """
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated_data)
        except (InvalidTag, ValueError):
            raise SealedStateError(
                Reason.SEALED_EDITED, "does not authenticate under the sealing key"
            ) from None


class MonotonicCounter:
    """A counter that only counts up (emulated in a file; fuses or RPMB on a real chip).

    A counter never advanced reads 0.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int:
        """The counter's value.

        Raises:
            ConfigError: the counter file is unreadable (the emulated chip is broken).
        """
        try:
            return int(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise ConfigError(f"monotonic counter {self.path} is unreadable: {exc}") from exc

    def advance(self) -> int:
        """Count up by one, durably; returns the new value.

        Raises:
            ConfigError: the counter cannot be read or written.
        """
        value = self.read() + 1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, str(value).encode())
        except OSError as exc:
            raise ConfigError(f"cannot advance monotonic counter {self.path}: {exc}") from exc
        return value


class SealedSlot:
    """One named piece of sealed state in a file on the host's storage."""

    def __init__(self, path: Path, name: str, key: SealingKey, counter: MonotonicCounter) -> None:
        self.path = path
        self.name = name
        self._key = key
        self._counter = counter

    def _associated_data(self, header: bytes) -> bytes:
        return header + b"\x00" + self.name.encode()

    def write(self, data: bytes) -> None:
        """Seal ``data`` as the slot's newest state: advance the counter, then write.

        Raises:
            ConfigError: the file (or the counter) cannot be written.
        """
        count = self._counter.advance()
        header = MAGIC + count.to_bytes(_COUNTER_BYTES, "big")
        try:
            write_atomic(self.path, header + self._key.seal(data, self._associated_data(header)))
        except OSError as exc:
            raise ConfigError(f"cannot write sealed state {self.path}: {exc}") from exc

    def read(self) -> bytes | None:
        """The slot's newest state; None if it was never written.

        Raises:
            SealedStateError: ``sealed.missing`` (the file is gone but the counter says it
                was written, or it cannot be read), ``sealed.edited`` (it does not authenticate) or
                ``sealed.rolled_back`` (a genuine state, but not the newest).
        """
        expected = self._counter.read()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if expected == 0:
                return None
            raise SealedStateError(
                Reason.SEALED_MISSING,
                f"{self.path} is gone, but slot {self.name!r} was sealed {expected} times",
            ) from None
        except OSError as exc:
            raise SealedStateError(
                Reason.SEALED_MISSING, f"{self.path} cannot be read: {exc}"
            ) from None
        header = raw[:_HEADER]
        if len(header) < _HEADER or not header.startswith(MAGIC):
            raise SealedStateError(Reason.SEALED_EDITED, f"{self.path} is not a sealed state")
        try:
            data = self._key.open(raw[_HEADER:], self._associated_data(header))
        except SealedStateError as exc:
            raise SealedStateError(exc.reason, f"{self.path} {exc.detail}") from None
        count = int.from_bytes(header[len(MAGIC) :], "big")
        if count != expected:
            raise SealedStateError(
                Reason.SEALED_ROLLED_BACK,
                f"{self.path} holds state {count} of slot {self.name!r}; the counter is at "
                f"{expected}",
            )
        return data
