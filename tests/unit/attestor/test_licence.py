"""Licence enforcement: only a valid affirming result for this chip licenses it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.attestor.sealed import MonotonicCounter, SealedSlot, SealingKey
from geoattest.crypto import generate_private_key
from geoattest.errors import Reason

NOW = 1_767_225_600
SEALING_KEY = SealingKey.derive(generate_private_key())


@pytest.fixture
def result_key():
    return ec.generate_private_key(ec.SECP256R1())


def jwks_for(key) -> dict:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="ES256")
    return {"keys": [jwk]}


def token(key, *, status="affirming", device="dev-1", exp=NOW + 3600, kid="k1", iat=NOW) -> str:
    claims = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": iat,
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


def test_an_older_affirming_result_replayed_after_a_newer_refusal_never_licenses(
    licence, result_key
):
    """The host keeps an earlier affirming token and offers it again once a newer result
    has ended the licence: it is older news, and the chip stays in its grace period."""
    older = token(result_key, exp=NOW + 86400, iat=NOW)
    assert licence.offer(older, NOW)
    assert not licence.offer(token(result_key, status="contraindicated", iat=NOW + 100), NOW + 100)
    assert not licence.offer(older, NOW + 101)
    assert licence.status(NOW + 102) is LicenceStatus.GRACE
    assert licence.offer(token(result_key, exp=NOW + 86400, iat=NOW + 200), NOW + 200)
    assert licence.status(NOW + 201) is LicenceStatus.LICENSED


def test_a_forged_contraindication_does_not_end_the_licence(licence, result_key):
    forger = ec.generate_private_key(ec.SECP256R1())
    assert licence.offer(token(result_key), NOW)
    assert not licence.offer(token(forger, status="contraindicated"), NOW + 1)
    assert licence.status(NOW + 2) is LicenceStatus.LICENSED


# --- sealed across reboots --------------------------------------------------------------


def sealed_slot(directory: Path) -> SealedSlot:
    return SealedSlot(
        directory / "licence.sealed", "licence", SEALING_KEY, MonotonicCounter(directory / "ctr")
    )


def boot(directory: Path, jwks: dict, now: int, grace_s: int = 600) -> AgentLicence:
    """The agent starting on ``directory``'s sealed state at ``now``."""
    return AgentLicence(
        "dev-1", jwks, grace_s=grace_s, booted_at_s=now, slot=sealed_slot(directory)
    )


def test_first_boot_starts_the_grace_period_and_an_honest_reboot_keeps_it(tmp_path, result_key):
    jwks = jwks_for(result_key)
    first = boot(tmp_path, jwks, NOW)
    assert first.refused is None
    assert first.state.degrades_at_s == NOW + 600
    again = boot(tmp_path, jwks, NOW + 500)
    assert again.refused is None
    assert again.state.degrades_at_s == NOW + 600  # not NOW + 500 + 600
    assert again.status(NOW + 600) is LicenceStatus.DEGRADED


def test_the_licence_survives_a_reboot(tmp_path, result_key):
    jwks = jwks_for(result_key)
    assert boot(tmp_path, jwks, NOW).offer(token(result_key, exp=NOW + 3600), NOW)
    again = boot(tmp_path, jwks, NOW + 100)
    assert again.status(NOW + 100) is LicenceStatus.LICENSED
    assert again.current is not None
    assert again.current.expires_at_s == NOW + 3600
    assert again.status(NOW + 3600 + 600) is LicenceStatus.DEGRADED


def test_an_ended_licence_stays_ended_across_a_reboot(tmp_path, result_key):
    jwks = jwks_for(result_key)
    licence = boot(tmp_path, jwks, NOW)
    assert licence.offer(token(result_key, exp=NOW + 86400), NOW)
    assert not licence.offer(token(result_key, status="contraindicated"), NOW + 10)
    again = boot(tmp_path, jwks, NOW + 20)
    assert again.status(NOW + 20) is LicenceStatus.GRACE
    assert again.state.degrades_at_s == NOW + 10 + 600


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("delete", Reason.SEALED_MISSING),
        ("edit", Reason.SEALED_EDITED),
        ("roll back", Reason.SEALED_ROLLED_BACK),
    ],
)
def test_a_tampered_state_boots_lapsed_until_a_fresh_result(tmp_path, result_key, tamper, reason):
    jwks = jwks_for(result_key)
    licence = boot(tmp_path, jwks, NOW)
    older = sealed_slot(tmp_path).path.read_bytes()
    assert licence.offer(token(result_key, exp=NOW + 3600), NOW)
    path = sealed_slot(tmp_path).path
    if tamper == "delete":
        path.unlink()
    elif tamper == "edit":
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        path.write_bytes(bytes(raw))
    else:
        path.write_bytes(older)
    lapsed = boot(tmp_path, jwks, NOW + 5)
    assert lapsed.refused is not None
    assert lapsed.refused.reason is reason
    assert lapsed.status(NOW + 5) is LicenceStatus.DEGRADED
    # Rebooting again does not help: the lapsed state is what is sealed now.
    assert boot(tmp_path, jwks, NOW + 6).status(NOW + 6) is LicenceStatus.DEGRADED
    # A fresh verified result licenses the chip again.
    assert lapsed.offer(token(result_key, exp=NOW + 3600), NOW + 7)
    assert boot(tmp_path, jwks, NOW + 8).status(NOW + 8) is LicenceStatus.LICENSED


def test_a_longer_configured_grace_does_not_lengthen_a_sealed_one(tmp_path, result_key):
    jwks = jwks_for(result_key)
    boot(tmp_path, jwks, NOW, grace_s=600)
    assert boot(tmp_path, jwks, NOW + 1, grace_s=10**9).state.degrades_at_s == NOW + 600
    shorter = boot(tmp_path, jwks, NOW + 2, grace_s=60)
    assert shorter.state.grace_s == 60
    assert boot(tmp_path, jwks, NOW + 3, grace_s=600).state.grace_s == 60


Step = tuple[str, int]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(0, 4000)),
        st.tuples(st.just("affirm"), st.integers(-100, 4000)),
        st.tuples(st.just("contraindicate"), st.just(0)),
        st.tuples(st.just("reboot"), st.integers(0, 2000)),
    ),
    max_size=12,
)
RANK = {LicenceStatus.DEGRADED: 0, LicenceStatus.GRACE: 1, LicenceStatus.LICENSED: 2}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_reboots_never_extend_the_lapse_time(plan: list[Step]):
    """Whatever results arrived and however much time passed, a reboot (with any
    configured grace period) leaves the chip degrading no later, and no better off."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = jwks_for(key)
    with tempfile.TemporaryDirectory() as directory:
        now = NOW
        licence = boot(Path(directory), jwks, now)
        for action, value in plan:
            if action == "wait":
                now += value
            elif action == "affirm":
                licence.offer(token(key, exp=now + value), now)
            elif action == "contraindicate":
                licence.offer(token(key, status="contraindicated"), now)
            else:
                before = licence.state
                licence = boot(Path(directory), jwks, now, grace_s=value)
                assert licence.refused is None
                assert licence.state.degrades_at_s <= before.degrades_at_s
                assert RANK[licence.status(now)] <= RANK[before.status(now)]
                assert licence.current == before.licence
