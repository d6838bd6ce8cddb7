"""A licence's expiry, from a licences file or the admin API, is any moment an operator may
write: one the store can hold is kept exactly, any other is refused with a typed error
(never an overflow from the database, a traceback, or an UNKNOWN status)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_world import NOW_NS, VerifierWorld

from geoattest.errors import ConfigError, Reason
from geoattest.units import SECOND_NS
from geoattest.verifier.admin import Admin, AdminError
from geoattest.verifier.licences import LATEST_VALID_UNTIL_NS, Licences
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.store import SqlStore

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
MOMENTS = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-12))]),
)


@pytest.fixture(scope="module")
def admin(tmp_path_factory) -> Iterator[tuple[Admin, SqlStore]]:
    world = VerifierWorld.create(tmp_path_factory.mktemp("expiry"))
    store = SqlStore.open(world.db_path)
    yield world.admin(world.service(store), store), store
    store.close()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(valid_until_s=st.one_of(INT64, st.integers(0, LATEST_VALID_UNTIL_NS // SECOND_NS + 10)))
def test_any_admin_expiry_is_kept_exactly_or_refused_as_invalid(admin, valid_until_s):
    admin_, store = admin
    valid_until_ns = valid_until_s * SECOND_NS  # as the gRPC transport hands it over
    try:
        admin_.set_licence(
            "op", device_id="dev-1", region="FRA-300", valid_until_ns=valid_until_ns,
            name="EL-1", now_ns=NOW_NS,
        )  # fmt: skip
    except AdminError as refused:
        assert refused.reason is Reason.ADMIN_INVALID
        assert not NOW_NS < valid_until_ns <= LATEST_VALID_UNTIL_NS
        return
    licence = store.licence("dev-1")
    assert licence is not None
    assert licence.valid_until_ns == valid_until_ns


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moment=MOMENTS)
def test_any_expiry_in_a_licences_file_is_stored_exactly_or_is_a_config_error(
    admin, tmp_path_factory, moment
):
    _, store = admin
    path = tmp_path_factory.mktemp("licences") / "licences.json"
    entry = {"region": "FRA-300", "valid_until": moment.isoformat()}
    path.write_text(json.dumps({"licences": {"dev-1": entry}}))
    try:
        licences = Licences.load(path, lambda region: region == "FRA-300")
    except ConfigError as refused:
        assert "2262-04-11" in refused.detail
        assert not 0 <= int(moment.timestamp()) * SECOND_NS <= LATEST_VALID_UNTIL_NS
        return
    LiveLicences(store).apply(licences, NOW_NS)  # as 'verifier licences apply' does
    licence = store.licence("dev-1")
    assert licence is not None
    assert licence.valid_until_ns == int(moment.timestamp()) * SECOND_NS
