"""The device key store signs and never hands its key out."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest

from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.crypto import Algorithm, Signer
from geoattest.errors import ConfigError
from geoattest.pki import ManufacturerCA, TrustAnchors

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA = ManufacturerCA.create("Example", NOW)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_provisioned_store_signs_and_chains_to_the_ca(tmp_path, algorithm):
    store = DeviceKeyStore.provision(
        tmp_path / "dev", CA, device_id="dev-7", model="H100", now=NOW, algorithm=algorithm
    )
    assert isinstance(store, Signer)
    reopened = DeviceKeyStore.open(tmp_path / "dev")
    assert reopened.verifying_key.verify(reopened.sign(b"m"), b"m")
    device = TrustAnchors([CA.certificate]).verify_device(reopened.certificate_der(), [], NOW)
    assert device.device_id == "dev-7"
    assert device.verifying_key.key_id == store.verifying_key.key_id


def test_key_file_is_owner_only(tmp_path):
    DeviceKeyStore.provision(tmp_path / "dev", CA, device_id="d", model="m", now=NOW)
    assert (tmp_path / "dev" / "device.key").stat().st_mode & 0o777 == 0o600


def test_public_api_offers_no_way_to_the_private_key(tmp_path):
    store = DeviceKeyStore.provision(tmp_path / "dev", CA, device_id="d", model="m", now=NOW)
    public = {name for name in dir(store) if not name.startswith("_")}
    assert public == {
        "certificate",
        "certificate_der",
        "device_id",
        "directory",
        "model",
        "open",
        "provision",
        "sealed_slot",
        "sign",
        "tls_credentials",  # opaque gRPC credentials: the key goes into the TLS stack
        "verifying_key",
    }
    for name in public:
        value = getattr(store, name)
        if not callable(value):
            assert "PRIVATE KEY" not in repr(value)
    assert not hasattr(store, "__dict__")  # no attribute can be bolted on to leak it
    assert "private" not in inspect.signature(store.sign).parameters


def test_store_refuses_a_certificate_for_another_key(tmp_path):
    DeviceKeyStore.provision(tmp_path / "a", CA, device_id="a", model="m", now=NOW)
    DeviceKeyStore.provision(tmp_path / "b", CA, device_id="b", model="m", now=NOW)
    (tmp_path / "a" / "device.crt").write_bytes((tmp_path / "b" / "device.crt").read_bytes())
    with pytest.raises(ConfigError, match="does not match"):
        DeviceKeyStore.open(tmp_path / "a")


def test_missing_store_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a device key store"):
        DeviceKeyStore.open(tmp_path)
