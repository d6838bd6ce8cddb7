"""Licence enforcement: only a valid affirming result for this chip licenses it."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from geoattest.attestor.licence import AgentLicence, LicenceStatus

NOW = 1_767_225_600


@pytest.fixture
def result_key():
    return ec.generate_private_key(ec.SECP256R1())


def jwks_for(key) -> dict:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="ES256")
    return {"keys": [jwk]}


def token(key, *, status="affirming", device="dev-1", exp=NOW + 3600, kid="k1") -> str:
    claims = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": NOW,
        "exp": exp,
        "submods": {f"chip-{device}": {"ear.status": status}},
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def licence(result_key):
    return AgentLicence("dev-1", jwks_for(result_key), grace_s=600, booted_at_s=NOW)


def test_affirming_result_licenses_until_it_expires(licence, result_key):
    assert licence.offer(token(result_key), NOW)
    assert licence.status(NOW + 10) is LicenceStatus.LICENSED
    assert licence.status(NOW + 3600 + 1) is LicenceStatus.GRACE
    assert licence.status(NOW + 3600 + 601) is LicenceStatus.DEGRADED


def test_without_any_result_the_chip_degrades_after_grace_from_boot(licence):
    assert licence.status(NOW + 599) is LicenceStatus.GRACE
    assert licence.status(NOW + 600) is LicenceStatus.DEGRADED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "warning"},
        {"status": "contraindicated"},
        {"device": "dev-2"},
        {"exp": NOW - 1},
        {"kid": "unknown"},
    ],
    ids=["warning", "contraindicated", "other-chip", "expired", "unknown-kid"],
)
def test_results_that_do_not_license_this_chip_are_refused(licence, result_key, kwargs):
    assert not licence.offer(token(result_key, **kwargs), NOW)
    assert licence.status(NOW + 601) is LicenceStatus.DEGRADED


def test_result_signed_by_another_key_is_refused(licence):
    forger = ec.generate_private_key(ec.SECP256R1())
    assert not licence.offer(token(forger), NOW)


def test_garbage_token_is_refused(licence):
    assert not licence.offer("not.a.jwt", NOW)
    assert not licence.offer("", NOW)


def test_an_older_licence_never_shortens_the_current_one(licence, result_key):
    assert licence.offer(token(result_key, exp=NOW + 7200), NOW)
    assert licence.offer(token(result_key, exp=NOW + 3600), NOW)
    assert licence.status(NOW + 5000) is LicenceStatus.LICENSED


def test_a_newer_result_that_does_not_affirm_ends_the_licence(licence, result_key):
    assert licence.offer(token(result_key, exp=NOW + 86400), NOW)
    assert not licence.offer(token(result_key, status="contraindicated"), NOW + 100)
    assert licence.status(NOW + 101) is LicenceStatus.GRACE
    assert licence.status(NOW + 100 + 600) is LicenceStatus.DEGRADED


def test_a_forged_contraindication_does_not_end_the_licence(licence, result_key):
    forger = ec.generate_private_key(ec.SECP256R1())
    assert licence.offer(token(result_key), NOW)
    assert not licence.offer(token(forger, status="contraindicated"), NOW + 1)
    assert licence.status(NOW + 2) is LicenceStatus.LICENSED
