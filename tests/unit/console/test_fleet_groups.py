"""The fleet map's aggregation: a large fleet becomes a bounded number of shapes, and a
group's shape holds every member's feasible region (a group is never drawn smaller than
where its chips may be)."""

from __future__ import annotations

import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from verifier_world import region_appraiser

from geoattest.console.fleet import DETAIL_LIMIT, feasible_shape, group_positions
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.fleet_view import Position

SITES = {"lm-fra": (50.11, 8.68), "lm-sin": (1.33, 103.89), "lm-iad": (39.04, -77.49)}
MS = 1_000_000


def position(i: int, site: str, rtt_ns: int, verdict: Verdict) -> Position:
    lat, lon = SITES[site]
    bounds = (
        LandmarkBound(site, lat, lon, rtt_ns),
        LandmarkBound(site + "-2", lat + 0.05, lon, rtt_ns + MS // 10),
    )
    return Position(f"dev-{i:06d}", verdict, "R", "ATTESTING", i, i, bounds)


def test_a_large_fleet_is_a_bounded_number_of_groups():
    verdicts = list(Verdict)
    fleet = [
        position(i, list(SITES)[i % 3], 20_000 + (i * 7919) % 4 * MS, verdicts[i % 5])
        for i in range(20_000)
    ]
    groups = group_positions(fleet)
    assert len(groups) <= 3 * 5 * 30
    assert sum(len(g.members) for g in groups) == 20_000
    assert all(len(g.bounds) == 1 for g in groups)
    assert len(group_positions(fleet[:DETAIL_LIMIT])) == DETAIL_LIMIT


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(10_000, 5 * MS), min_size=DETAIL_LIMIT + 1, max_size=DETAIL_LIMIT + 40))
def test_a_group_shape_holds_each_member_feasible_region(rtts):
    fleet = [position(i, "lm-fra", rtt, Verdict.ALLOWED) for i, rtt in enumerate(rtts)]
    appraiser = region_appraiser()
    for group in group_positions(fleet):
        shape = feasible_shape(appraiser, group.bounds)
        assert shape is not None
        for member in group.members[:: max(1, len(group.members) // 5)]:
            own = feasible_shape(appraiser, member.bounds)
            assert own is not None
            assert shapely.covers(shape, own), member.device_id
