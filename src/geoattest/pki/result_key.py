"""The verifier's key for attestation results, and the JWKS relying parties check with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from geoattest.crypto import VerifyingKey
from geoattest.errors import ConfigError
from geoattest.files import write_new
from geoattest.pki.keyfiles import KEY_FILE, load_private_key, save_signing_key

JWKS_FILE = "jwks.json"


class ResultKey:
    """The verifier's ES256 key for attestation results, published as a JWKS.

    Stored as ``key.pem`` (0600), ``public.pem`` and ``jwks.json``; the JWK's ``kid`` is the
    key id (hex SHA-256 of the SubjectPublicKeyInfo DER).
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if key.curve.name != "secp256r1":
            raise ConfigError("the result key must be a P-256 key (ES256)")
        self.private_key = key
        self.key_id = VerifyingKey.from_public_key(key.public_key()).key_id

    @classmethod
    def generate(cls) -> ResultKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, directory: Path) -> ResultKey:
        """Open a result key directory made by :meth:`save`.

        Raises:
            ConfigError: no key file, or not a P-256 key.
        """
        key = load_private_key(directory, "result key directory")
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{directory / KEY_FILE} is not an ECDSA P-256 key")
        return cls(key)

    def save(self, directory: Path) -> None:
        """Write the key (0600), its public half and ``jwks.json`` into a new directory.

        Raises:
            ConfigError: the directory exists and is not empty.
        """
        save_signing_key(directory, self.private_key)
        write_new(directory / JWKS_FILE, json.dumps(self.jwks(), indent=2).encode() + b"\n")

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (PyJWT's encoding) with kid, use and alg set."""
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key())
        )
        jwk.update(kid=self.key_id, use="sig", alg="ES256")
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}
