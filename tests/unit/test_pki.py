"""Manufacturer CA, device chains, registries and revocation, with real certificates."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.crypto import Algorithm, KeySigner, generate_private_key
from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.pki import (
    LandmarkRecord,
    LandmarkRegistry,
    ManufacturerCA,
    ResultKey,
    RevocationList,
    TrustAnchors,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


CA = ManufacturerCA.create("Example", NOW)


@pytest.fixture
def ca() -> ManufacturerCA:
    return CA


def device_der(ca: ManufacturerCA, algorithm=Algorithm.ES256, **kw) -> tuple[bytes, object]:
    key = generate_private_key(algorithm)
    cert = ca.issue_device_certificate(
        key.public_key(), kw.pop("device_id", "dev-1"), "H100", NOW, **kw
    )
    return cert.public_bytes(serialization.Encoding.DER), key


@pytest.mark.parametrize("device_algorithm", list(Algorithm))
@pytest.mark.parametrize("ca_algorithm", [Algorithm.ES256, Algorithm.ES384])
def test_device_chain_verifies_for_every_algorithm(ca_algorithm, device_algorithm):
    authority = ManufacturerCA.create("Example", NOW, ca_algorithm)
    der, key = device_der(authority, device_algorithm)
    device = TrustAnchors([authority.certificate]).verify_device(
        der, [], NOW + dt.timedelta(days=1)
    )
    assert device.device_id == "dev-1"
    assert device.model == "H100"
    assert device.verifying_key.algorithm is device_algorithm
    signer = KeySigner(key)
    assert device.verifying_key.verify(signer.sign(b"m"), b"m")


def test_ed25519_ca_is_refused_with_a_reason():
    with pytest.raises(ConfigError, match="ES256 or ES384"):
        ManufacturerCA.create("Example", NOW, Algorithm.EDDSA)


def test_device_of_another_manufacturer_is_a_bad_chain(ca):
    other = ManufacturerCA.create("Other", NOW)
    der, _ = device_der(other)
    with pytest.raises(EvidenceError) as err:
        TrustAnchors([ca.certificate]).verify_device(der, [], NOW)
    assert err.value.reason is Reason.BAD_CHAIN


@pytest.mark.parametrize("at", [NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=400)])
def test_certificate_outside_its_validity_is_a_bad_chain(ca, at):
    der, _ = device_der(ca, validity=dt.timedelta(days=365))
    with pytest.raises(EvidenceError) as err:
        TrustAnchors([ca.certificate]).verify_device(der, [], at)
    assert err.value.reason is Reason.BAD_CHAIN


def test_root_presented_as_a_device_is_a_bad_chain(ca):
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    with pytest.raises(EvidenceError) as err:
        TrustAnchors([ca.certificate]).verify_device(der, [], NOW)
    assert err.value.reason is Reason.BAD_CHAIN


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=1500))
def test_garbage_der_is_always_a_bad_chain(data):
    with pytest.raises(EvidenceError) as err:
        TrustAnchors([CA.certificate]).verify_device(data, [data], NOW)
    assert err.value.reason is Reason.BAD_CHAIN


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_mutated_device_certificate_never_passes_changed(position, flip):
    der, _ = DEVICE
    mutated = bytearray(der)
    mutated[position % len(mutated)] ^= flip
    reason, device = None, None
    try:
        device = TrustAnchors([CA.certificate]).verify_device(bytes(mutated), [], NOW)
    except EvidenceError as err:
        reason = err.reason
    # Only a change outside the signed part (e.g. the outer framing) could pass.
    assert reason is Reason.BAD_CHAIN or device.device_id == "dev-1"


DEVICE = device_der(CA)


def test_ca_saves_and_loads(tmp_path, ca):
    ca.save(tmp_path / "ca")
    assert oct((tmp_path / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    loaded = ManufacturerCA.load(tmp_path / "ca")
    assert loaded.certificate == ca.certificate


def test_ca_refuses_to_overwrite(tmp_path, ca):
    ca.save(tmp_path / "ca")
    with pytest.raises(ConfigError, match="already exists"):
        ca.save(tmp_path / "ca")


def test_mismatched_ca_files_are_refused(tmp_path, ca):
    ca.save(tmp_path / "a")
    ManufacturerCA.create("B", NOW).save(tmp_path / "b")
    (tmp_path / "a" / "ca.crt").write_bytes((tmp_path / "b" / "ca.crt").read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        ManufacturerCA.load(tmp_path / "a")


def test_registry_round_trip_and_duplicates(tmp_path):
    key = KeySigner.generate().verifying_key
    registry = LandmarkRegistry([LandmarkRecord("lm-sg", 1.29, 103.85, key, "Singapore")])
    with pytest.raises(ConfigError, match="already registered"):
        registry.add(LandmarkRecord("lm-sg", 0, 0, key))
    registry.save(tmp_path / "r.json")
    loaded = LandmarkRegistry.load(tmp_path / "r.json")
    assert loaded.get("lm-sg") == registry.get("lm-sg")
    assert len(loaded) == 1


@pytest.mark.parametrize("text", ["{", '{"landmarks": [{"id": "x"}]}', '{"landmarks": 3}'])
def test_malformed_registry_is_a_config_error(tmp_path, text):
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(ConfigError):
        LandmarkRegistry.load(tmp_path / "r.json")


@pytest.mark.parametrize(("lat", "lon"), [(91, 0), (-91, 0), (0, 181), (0, -181)])
def test_registry_refuses_impossible_coordinates(lat, lon):
    with pytest.raises(ConfigError):
        LandmarkRegistry([LandmarkRecord("x", lat, lon, KeySigner.generate().verifying_key)])


def test_revocation_list_versions_only_increase(tmp_path):
    path = tmp_path / "rev.json"
    first = RevocationList().with_device("dev-1")
    first.save(path)
    second = first.with_landmark("lm-1")
    second.save(path)
    loaded = RevocationList.load(path)
    assert loaded == second
    assert loaded.device_revoked("dev-1")
    assert loaded.landmark_revoked("lm-1")
    assert not loaded.device_revoked("dev-2")
    with pytest.raises(ConfigError, match="refusing"):
        first.save(path)  # a rollback to an older list


def test_result_key_publishes_a_jwks_that_pyjwt_reads(tmp_path):
    key = ResultKey.generate()
    key.save(tmp_path / "vk")
    loaded = ResultKey.load(tmp_path / "vk")
    token = jwt.encode({"a": 1}, loaded.private_key, algorithm="ES256", headers={"kid": key.key_id})
    jwk = jwt.PyJWKSet.from_dict(key.jwks())[key.key_id]
    assert jwt.decode(token, jwk, algorithms=["ES256"]) == {"a": 1}
