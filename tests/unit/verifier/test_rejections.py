"""Unauthenticated refusals: counted by reason in a table no flood can grow, logged at
most once per interval per reason."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from geoattest.errors import Reason
from geoattest.verifier.rejections import Rejections

SECOND_NS = 10**9


@given(st.lists(st.tuples(st.sampled_from(list(Reason)), st.integers(0, 10**12)), max_size=300))
def test_counts_are_exact_and_the_table_holds_one_entry_per_reason(refusals):
    rejections = Rejections()
    for reason, now_ns in refusals:
        rejections.count(reason, now_ns)
    counts = rejections.snapshot()
    assert len(counts) <= len(Reason)
    assert sum(counts.values()) == len(refusals)
    for reason in counts:
        assert counts[reason] == sum(1 for r, _ in refusals if r is reason)


def test_a_flood_is_logged_once_per_interval_with_what_it_held_back(caplog):
    rejections = Rejections(log_every_ns=60 * SECOND_NS)
    with caplog.at_level(logging.WARNING, logger="geoattest.verifier.rejections"):
        for i in range(10_000):
            rejections.count(Reason.BAD_SIGNATURE, i * 1000)  # 10 ms of flood
        rejections.count(Reason.UNKNOWN_DEVICE, 0)
        rejections.count(Reason.BAD_SIGNATURE, 61 * SECOND_NS)
    assert [r.getMessage() for r in caplog.records] == [
        "refused 1 unauthenticated message(s): envelope.bad_signature",
        "refused 1 unauthenticated message(s): device.unknown",
        "refused 10000 unauthenticated message(s): envelope.bad_signature",
    ]
    assert rejections.snapshot()[Reason.BAD_SIGNATURE] == 10_001
