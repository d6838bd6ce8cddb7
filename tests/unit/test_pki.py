"""Manufacturer CA, device chains, registries and revocation, with real certificates."""

from __future__ import annotations

import datetime as dt
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.crypto import Algorithm, KeySigner, generate_private_key, private_key_pem
from geoattest.errors import ConfigError, EvidenceError, Reason
from geoattest.files import write_private
from geoattest.pki import (
    LandmarkRecord,
    LandmarkRegistry,
    ManufacturerCA,
    ResultKey,
    RevocationList,
    TrustAnchors,
    load_landmark_key,
    save_landmark_key,
)
from geoattest.pki.anchors import MAX_INTERMEDIATES

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


def test_more_intermediates_than_a_chain_needs_are_refused_unread(ca):
    """Each offered intermediate is a path step the verifier tries, about a millisecond
    apiece while an enrolment holds the service's lock; an 8 MiB request held twenty
    thousand. Up to MAX_INTERMEDIATES are tried; one more is refused before any is read."""
    der, _ = device_der(ca)
    other = ManufacturerCA.create("Other", NOW).certificate.public_bytes(serialization.Encoding.DER)
    anchors = TrustAnchors([ca.certificate])
    at = NOW + dt.timedelta(days=1)
    assert anchors.verify_device(der, [other] * MAX_INTERMEDIATES, at).device_id == "dev-1"
    with pytest.raises(EvidenceError) as err:
        anchors.verify_device(der, [other] * (MAX_INTERMEDIATES + 1), at)
    assert err.value.reason is Reason.BAD_CHAIN
    assert f"at most {MAX_INTERMEDIATES}" in err.value.detail
    with pytest.raises(EvidenceError) as err:
        anchors.verify_device(der, [b"not DER"] * 20_000, at)
    assert err.value.detail == f"20000 intermediates offered, at most {MAX_INTERMEDIATES}"


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=1500))
def test_garbage_der_is_always_a_bad_chain(data):
    with pytest.raises(EvidenceError) as err:
        TrustAnchors([CA.certificate]).verify_device(data, [data], NOW)
    assert err.value.reason is Reason.BAD_CHAIN


# A flipped bit can make the serial negative, which cryptography parses with a warning;
# the signature no longer verifies, so it is a BAD_CHAIN like any other mutation.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
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


@pytest.mark.parametrize(
    "device_id", ["", "dev_1", "dév-1", "a/b", "d" * 65, "tab\there"], ids=repr
)
def test_device_id_outside_x520_serial_number_is_refused(ca, device_id):
    with pytest.raises(ConfigError, match="device id"):
        device_der(ca, device_id=device_id)


def test_longest_device_id_with_every_allowed_symbol_round_trips(ca):
    device_id = ("Az09 '()+,-.:=?" * 5)[:64]
    der, _ = device_der(ca, device_id=device_id)
    assert TrustAnchors([ca.certificate]).verify_device(der, [], NOW).device_id == device_id


@settings(max_examples=200, deadline=None)
@given(device_id=st.text(max_size=80))
def test_any_device_id_is_refused_or_round_trips(device_id):
    key = generate_private_key()
    try:
        cert = CA.issue_device_certificate(key.public_key(), device_id, "H100", NOW)
    except ConfigError:
        return
    der = cert.public_bytes(serialization.Encoding.DER)
    assert TrustAnchors([CA.certificate]).verify_device(der, [], NOW).device_id == device_id


@pytest.mark.parametrize("model", ["", "m" * 65, "line\nbreak"], ids=repr)
def test_model_outside_x520_title_is_refused(ca, model):
    key = generate_private_key()
    with pytest.raises(ConfigError, match="model"):
        ca.issue_device_certificate(key.public_key(), "dev-1", model, NOW)


@pytest.mark.parametrize("name", ["", "n" * 53])
def test_manufacturer_name_that_does_not_fit_the_root_is_refused(name):
    with pytest.raises(ConfigError, match="manufacturer name"):
        ManufacturerCA.create(name, NOW)


@pytest.mark.parametrize(
    "validity", [dt.timedelta(0), dt.timedelta(days=-1), dt.timedelta(days=999_999_999)]
)
def test_impossible_validity_is_a_config_error(ca, validity):
    with pytest.raises(ConfigError, match="validity"):
        ManufacturerCA.create("Example", NOW, validity=validity)
    with pytest.raises(ConfigError, match="validity"):
        device_der(ca, validity=validity)


@pytest.mark.parametrize("now", [NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3651)])
def test_root_outside_its_validity_issues_nothing(ca, now):
    key = generate_private_key()
    with pytest.raises(ConfigError, match="manufacturer root is valid"):
        ca.issue_device_certificate(key.public_key(), "dev-1", "H100", now)


def test_device_certificate_never_outlives_the_root():
    short = ManufacturerCA.create("Short", NOW, validity=dt.timedelta(days=30))
    key = generate_private_key()
    cert = short.issue_device_certificate(key.public_key(), "dev-1", "H100", NOW)
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_trust_anchor_files_that_are_missing_or_garbage_are_config_errors(tmp_path, ca):
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot read certificate"):
        TrustAnchors.from_pem_files([tmp_path / "missing.pem"])
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        TrustAnchors.from_pem_files([tmp_path / "garbage.pem"])
    with pytest.raises(ConfigError, match="at least one"):
        TrustAnchors.from_pem_files([])
    ca.save(tmp_path / "ca")
    anchors = TrustAnchors.from_pem_files([tmp_path / "ca" / "ca.crt"])
    der, _ = device_der(ca)
    assert anchors.verify_device(der, [], NOW).model == "H100"


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


def test_a_device_certificate_is_not_a_ca(tmp_path, ca):
    """A device directory's key and certificate, renamed as a CA, issue nothing."""
    key = generate_private_key()
    cert = ca.issue_device_certificate(key.public_key(), "dev-1", "H100", NOW)
    (tmp_path / "fake").mkdir()
    write_private(tmp_path / "fake" / "ca.key", private_key_pem(key))
    (tmp_path / "fake" / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match="not a CA certificate"):
        ManufacturerCA.load(tmp_path / "fake")


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
    with pytest.raises(ConfigError, match="refusing"):
        second.save(path)  # the same version again is not an update either
    assert RevocationList.load(path) == second


def test_revocation_list_in_a_missing_folder_names_the_file(tmp_path):
    path = tmp_path / "missing" / "rev.json"
    with pytest.raises(ConfigError, match=f"cannot write {path}"):
        RevocationList().with_device("dev-1").save(path)


def test_result_key_publishes_a_jwks_that_pyjwt_reads(tmp_path):
    key = ResultKey.generate()
    key.save(tmp_path / "vk")
    loaded = ResultKey.load(tmp_path / "vk")
    token = jwt.encode({"a": 1}, loaded.private_key, algorithm="ES256", headers={"kid": key.key_id})
    jwk = jwt.PyJWKSet.from_dict(key.jwks())[key.key_id]
    assert jwt.decode(token, jwk, algorithms=["ES256"]) == {"a": 1}


def test_landmark_key_directory_round_trip(tmp_path):
    key = generate_private_key()
    signer = KeySigner(key)
    record = LandmarkRecord("lm-sin", 1.3349, 103.892, signer.verifying_key, "Singapore")
    save_landmark_key(tmp_path / "lm", key, record)
    loaded_signer, loaded = load_landmark_key(tmp_path / "lm")
    assert loaded == record
    assert loaded_signer.verifying_key.key_id == signer.verifying_key.key_id


@pytest.mark.parametrize("text", ["{", '{"id": "x"}', '{"id": "x", "lat": 95, "lon": 0}', "[]"])
def test_malformed_landmark_identity_is_a_config_error(tmp_path, text):
    key = generate_private_key()
    save_landmark_key(tmp_path / "lm", key, LandmarkRecord("x", 0, 0, KeySigner(key).verifying_key))
    (tmp_path / "lm" / "landmark.json").write_text(text)
    with pytest.raises(ConfigError):
        load_landmark_key(tmp_path / "lm")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
LIST_FIELDS = st.fixed_dictionaries(
    {"version": JSON | st.integers(-(2**70), 2**70), "devices": JSON, "landmarks": JSON},
    optional={"landmark_keys": JSON},
)


@given(document=JSON | LIST_FIELDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_revocation_list_file_loads_exactly_or_not_at_all(tmp_path, document):
    """Whatever JSON a revocation list file holds: it loads as a list whose version fits
    the store's column and whose ids are the file's strings, each a valid id, or it is a
    ConfigError naming the file; never a number or null made into an id, nor a version
    rounded or read from text."""
    path = tmp_path / "revocations.json"
    path.write_text(json.dumps(document))
    try:
        loaded = RevocationList.load(path)
    except ConfigError as exc:
        assert str(path) in exc.detail
        return
    assert isinstance(document, dict)
    assert loaded.version == document["version"]
    assert type(document["version"]) is int
    assert 0 <= loaded.version < 2**63
    assert loaded.devices == frozenset(document["devices"])
    assert loaded.landmarks == frozenset(document["landmarks"])
    assert loaded.landmark_keys == frozenset(document.get("landmark_keys", []))
    for ids in (loaded.devices, loaded.landmarks, loaded.landmark_keys):
        assert all(isinstance(x, str) and x for x in ids)


LANDMARK_KEY = KeySigner.generate().verifying_key.der().hex()
ENTRY_FIELDS = st.fixed_dictionaries(
    {
        "id": JSON | st.just("lm-1"),
        "lat": JSON | st.floats(-90, 90),
        "lon": JSON | st.floats(-180, 180),
        "public_key": JSON | st.just(LANDMARK_KEY),
    },
    optional={"name": JSON, "operator": JSON | st.just("op-1")},
)


@given(entry=JSON | ENTRY_FIELDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_registry_entry_loads_exactly_or_not_at_all(tmp_path, entry):
    """Whatever a registry entry holds: it loads as a landmark whose id, name, operator and
    site are the entry's own strings and numbers, or it is a ConfigError naming the file;
    never a null or a number made into an id or an operator, nor a site read from text."""
    path = tmp_path / "landmarks.json"
    path.write_text(json.dumps({"landmarks": [entry]}))
    try:
        (record,) = LandmarkRegistry.load(path)
    except ConfigError as exc:
        assert str(path) in exc.detail
        return
    assert isinstance(entry, dict)
    assert record.landmark_id == entry["id"]
    for field_name in ("lat", "lon"):
        assert type(entry[field_name]) in (int, float)
    assert (record.latitude, record.longitude) == (entry["lat"], entry["lon"])
    assert record.name == entry.get("name", "")
    assert record.operator == (entry.get("operator") or entry["id"])
