"""Keys, signatures and hashing with one signing context per purpose.

Every signature in geoattest is made over ``PAE(payload_type, payload)`` (see
:mod:`geoattest.wire.envelope`); the payload type is the signing context, so a
signature made for one purpose can never verify as another (as Roughtime's
context strings do). This module holds the algorithms and key handling; it never
sees a socket or a clock.

Three algorithms are supported: ECDSA P-256 (``ES256``, the default, chosen by the
benchmark in ``bench/test_bench_crypto.py`` and explained in ``docs/CRYPTO.md``),
Ed25519 and ECDSA P-384.

Example:

>>> signer = KeySigner.generate(Algorithm.EDDSA)
>>> signature = signer.sign(b"message")
>>> signer.verifying_key.verify(signature, b"message")
True
>>> signer.verifying_key.verify(signature, b"another message")
False
>>> published = VerifyingKey.from_der(signer.verifying_key.der())  # as a registry holds it
>>> published.key_id == signer.verifying_key.key_id  # hex SHA-256 of the public key's DER
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from geoattest.errors import ConfigError, EvidenceError, Reason

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class Algorithm(StrEnum):
    """Signature algorithms, named as JOSE names them."""

    ES256 = "ES256"
    """ECDSA over P-256 with SHA-256: the default (fastest verify here; see docs/CRYPTO.md)."""
    EDDSA = "EdDSA"
    """Ed25519: deterministic signatures, small keys."""
    ES384 = "ES384"
    """ECDSA over P-384 with SHA-384, as GPU vendors' attestation reports use."""


DEFAULT_ALGORITHM = Algorithm.ES256

_CURVES: dict[Algorithm, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    Algorithm.ES256: (ec.SECP256R1(), hashes.SHA256()),
    Algorithm.ES384: (ec.SECP384R1(), hashes.SHA384()),
}


_ECDSA = {algorithm: ec.ECDSA(digest) for algorithm, (_, digest) in _CURVES.items()}
"""The signature algorithms, built once: immutable, and built per signature or check they
cost a few per cent beside the signature itself (about 10 µs of a 50 µs ES256 signature)."""


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def generate_private_key(algorithm: Algorithm = DEFAULT_ALGORITHM) -> PrivateKey:
    if algorithm is Algorithm.EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[algorithm][0])


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    """The algorithm a key is used with; unsupported curves are a config error."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return Algorithm.EDDSA
    for algorithm, (curve, _) in _CURVES.items():
        if key.curve.name == curve.name:
            return algorithm
    raise ConfigError(f"unsupported elliptic curve {key.curve.name}")


def public_key_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER."""
    return sha256(public_key_der(key)).hex()


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key that checks signatures of one algorithm, with its key id."""

    public_key: PublicKey
    algorithm: Algorithm
    key_id: str

    @classmethod
    def from_public_key(cls, public_key: PublicKey) -> VerifyingKey:
        return cls(public_key, algorithm_of(public_key), key_id(public_key))

    @classmethod
    def from_der(cls, der: bytes) -> VerifyingKey:
        """Load a SubjectPublicKeyInfo; anything else is an evidence error, not a crash."""
        try:
            loaded = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise EvidenceError(Reason.UNKNOWN_KEY, "public key is not a valid SPKI") from exc
        if not isinstance(loaded, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise EvidenceError(Reason.UNKNOWN_KEY, "public key type is not supported")
        try:
            return cls.from_public_key(loaded)
        except ConfigError as exc:
            raise EvidenceError(Reason.UNKNOWN_KEY, exc.detail) from exc

    def der(self) -> bytes:
        return public_key_der(self.public_key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, message)
            else:
                self.public_key.verify(signature, message, _ECDSA[self.algorithm])
        except InvalidSignature:
            return False
        return True


@runtime_checkable
class Signer(Protocol):
    """Anything that can sign: an in-memory key, the agent's key store, an HSM."""

    @property
    def verifying_key(self) -> VerifyingKey: ...

    def sign(self, message: bytes) -> bytes: ...


class KeySigner:
    """A :class:`Signer` over a private key held in memory."""

    __slots__ = ("_key", "_verifying_key")

    def __init__(self, private_key: PrivateKey) -> None:
        self._key = private_key
        self._verifying_key = VerifyingKey.from_public_key(private_key.public_key())

    @classmethod
    def generate(cls, algorithm: Algorithm = DEFAULT_ALGORITHM) -> KeySigner:
        return cls(generate_private_key(algorithm))

    @property
    def verifying_key(self) -> VerifyingKey:
        return self._verifying_key

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        return self._key.sign(message, _ECDSA[self._verifying_key.algorithm])


ENCRYPTED_PEM_LABEL = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def load_private_key_pem(data: bytes, *, what: str, passphrase: bytes | None = None) -> PrivateKey:
    """Parse a PKCS#8 PEM private key, plain or encrypted under ``passphrase``; a bad file,
    a missing or a wrong passphrase is a one-line config error."""
    encrypted = ENCRYPTED_PEM_LABEL in data
    if encrypted and passphrase is None:
        raise ConfigError(
            f"{what} is encrypted: give its passphrase in GEOATTEST_KEY_PASSPHRASE "
            "or in a file named by GEOATTEST_KEY_PASSPHRASE_FILE"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if encrypted:
            raise ConfigError(f"{what}: wrong passphrase or a damaged key") from exc
        raise ConfigError(f"{what} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{what} holds an unsupported key type")
    algorithm_of(key)
    return key


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted under ``passphrase`` when one is given (PBES2, AES-256)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
