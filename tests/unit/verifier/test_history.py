"""The history fix against the brute force it replaces: every pair of fixes, checked.

The pipeline checks each proof's disks against the device's history fix and then extends
it (``ProofAppraiser._judge``); :func:`appraise_sequence` does the same with the history
module alone, so hypothesis can try many sequences of fixes (landmark sites, disk radii,
times) per second.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import example, given, settings
from hypothesis import strategies as st

from geoattest.geo.sphere import grow
from geoattest.verdict import LandmarkBound
from geoattest.verifier import history
from geoattest.verifier.history import HALF_CIRCUMFERENCE_KM, Fix

KM_PER_NS = 1000.0 / 1e12
"""The pipeline's default fastest chip: 1,000 m/s."""
HOUR_NS = 3600 * 10**9
EPSILON_KM = 1e-6
SITES = {
    "lm-sin": (1.33, 103.89),
    "lm-kul": (3.14, 101.69),
    "lm-hkg": (22.32, 114.17),
    "lm-tpe": (25.03, 121.57),
    "lm-fra": (50.11, 8.68),
    "lm-scl": (-33.45, -70.67),
    "lm-akl": (-36.85, 174.76),
    "lm-yvr": (49.28, -123.12),
}

disks = st.builds(
    lambda site, rtt_ns, motion: LandmarkBound(site, *SITES[site], rtt_ns, motion),
    st.sampled_from(sorted(SITES)),
    st.integers(10_000, 150_000_000),  # 1.5 km to 22,500 km
    st.sampled_from([0.0, 0.0, 5.0, 300.0]),
)
fixes = st.lists(disks, min_size=1, max_size=4).map(tuple)
gaps_ns = st.integers(0, 8 * HOUR_NS)
sequences = st.lists(st.tuples(fixes, gaps_ns), min_size=2, max_size=12)
vague = st.lists(
    st.builds(
        lambda site, rtt_ns: LandmarkBound(site, *SITES[site], rtt_ns),
        st.sampled_from(sorted(SITES)),
        st.integers(50_000_000, 200_000_000),  # 7,500 km and more
    ),
    min_size=1,
    max_size=4,
).map(tuple)


def timed(sequence: Sequence[tuple[Fix, int]]) -> list[tuple[Fix, int]]:
    """Fixes with absolute times from gaps (evidence time never goes back)."""
    out, now = [], 0
    for fix, gap in sequence:
        now += gap
        out.append((fix, now))
    return out


def appraise_sequence(sequence: Sequence[tuple[Fix, int]]) -> tuple[list[float], Fix, int]:
    """Each fix's travel gap against the history before it, and the history at the end."""
    held: Fix = ()
    held_ns = 0
    gaps = []
    for fix, time_ns in sequence:
        gaps.append(history.travel_gap_km(held, held_ns, fix, time_ns, KM_PER_NS))
        held, held_ns = history.extend(held, held_ns, fix, time_ns, KM_PER_NS)
    return gaps, held, held_ns


def pair_gap(earlier: tuple[Fix, int], later: tuple[Fix, int]) -> float:
    return history.travel_gap_km(*earlier, *later, KM_PER_NS)


@settings(max_examples=200)
@given(sequences)
@example(  # Frankfurt's disk grows to cover the earth and is forgotten: no alarm either way
    [
        ((LandmarkBound("lm-fra", *SITES["lm-fra"], 10_000),), 0),
        ((LandmarkBound("lm-akl", *SITES["lm-akl"], 12_248_360),), 19_894_191_337_945),
        ((LandmarkBound("lm-akl", *SITES["lm-akl"], 10_000),), 0),
    ]
)
def test_a_proof_is_caught_exactly_when_some_earlier_fix_is_too_far(raw) -> None:
    """Never accepts a sequence with a pair of fixes further apart than the speed allows,
    and raises nothing that no pair of fixes raises.

    Exact where it matters: an alarm (a gap above zero) is the worst pair's gap. Below zero
    the history may report less than the worst pair, having forgotten a disk that grew to
    cover the earth: such a disk's pairs are all below zero and can raise no alarm."""
    sequence = timed(raw)
    gaps, _, _ = appraise_sequence(sequence)
    for j in range(1, len(sequence)):
        worst = max(pair_gap(sequence[i], sequence[j]) for i in range(j))
        assert max(gaps[j], 0.0) >= worst - EPSILON_KM
        assert gaps[j] <= max(worst, 0.0) + EPSILON_KM
        if worst > EPSILON_KM:
            assert gaps[j] > 0


@settings(max_examples=100)
@given(fixes, fixes, st.integers(0, 2 * HOUR_NS), sequences)
@example(  # a Frankfurt disk grown to cover the earth is forgotten: no alarm either way
    (LandmarkBound("lm-akl", *SITES["lm-akl"], 10_000),),
    (LandmarkBound("lm-fra", *SITES["lm-fra"], 10_000),),
    0,
    [
        ((LandmarkBound("lm-akl", *SITES["lm-akl"], 10_000),), 0),
        ((LandmarkBound("lm-fra", *SITES["lm-fra"], 12_248_360),), 19_894_191_337_945),
    ],
)
def test_inserting_proofs_never_hides_a_jump(first, last, gap_ns, inserted) -> None:
    """Whatever proofs come between two fixes, the later one is checked at least as
    hard as against the earlier fix alone: an alarm against the earlier fix is still one
    (below zero the history may report less, as in the test above)."""
    between = timed(inserted)
    span = between[-1][1] + gap_ns
    sequence = [(first, 0), *((fix, t) for fix, t in between), (last, span)]
    gaps, _, _ = appraise_sequence(sequence)
    assert max(gaps[-1], 0.0) >= pair_gap((first, 0), (last, span)) - EPSILON_KM


@settings(max_examples=100)
@given(sequences, vague, gaps_ns, fixes, gaps_ns)
@example(  # Auckland's disk grows to cover the earth and is forgotten: no alarm either way
    raw=[((LandmarkBound("lm-akl", *SITES["lm-akl"], 132_729_759),), 0)] * 2,
    blur=(LandmarkBound("lm-akl", *SITES["lm-akl"], 50_000_000),),
    blur_after=0,
    probe=(LandmarkBound("lm-akl", *SITES["lm-akl"], 10_000),),
    probe_after=0,
)
def test_a_vague_proof_never_loosens_the_history(raw, blur, blur_after, probe, probe_after):
    """Every later proof is checked at least as hard after the vague proof as before it,
    where it matters: an alarm (a gap above zero) stays one at least as large. Below zero
    the history may forget a disk that grew to cover the earth, as in the example."""
    _, held, held_ns = appraise_sequence(timed(raw))
    blurred, blurred_ns = history.extend(held, held_ns, blur, held_ns + blur_after, KM_PER_NS)
    probe_ns = blurred_ns + probe_after
    before = history.travel_gap_km(held, held_ns, probe, probe_ns, KM_PER_NS)
    after = history.travel_gap_km(blurred, blurred_ns, probe, probe_ns, KM_PER_NS)
    assert max(after, 0.0) >= before - EPSILON_KM


@settings(max_examples=100)
@given(sequences)
def test_the_history_holds_at_most_one_disk_per_site_and_none_that_covers_the_earth(raw):
    _, held, _ = appraise_sequence(timed(raw))
    assert len(held) == len({(disk.latitude, disk.longitude) for disk in held})
    assert all(grow(disk.bound_km) < HALF_CIRCUMFERENCE_KM for disk in held)


def test_a_fix_older_than_half_the_earth_at_top_speed_constrains_nothing() -> None:
    singapore = (LandmarkBound("lm-sin", *SITES["lm-sin"], 10_000),)
    chile = (LandmarkBound("lm-scl", *SITES["lm-scl"], 10_000),)
    horizon_ns = int(HALF_CIRCUMFERENCE_KM / KM_PER_NS * 1.001)
    assert history.travel_gap_km(singapore, 0, chile, horizon_ns - 2 * HOUR_NS, KM_PER_NS) > 0
    held, held_ns = history.extend(singapore, 0, chile, horizon_ns, KM_PER_NS)
    assert (held, held_ns) == (chile, horizon_ns)


def test_a_chip_proving_the_same_disks_again_keeps_exactly_those() -> None:
    fix = tuple(LandmarkBound(site, *SITES[site], 50_000) for site in ("lm-sin", "lm-kul"))
    assert history.extend(fix, 0, fix, 600 * 10**9, KM_PER_NS) == (fix, 600 * 10**9)


def _reference_gap(fix: Fix, fix_ns: int, bounds: Fix, time_ns: int) -> float:
    """:func:`history.travel_gap_km` as its docstring defines it, every pair in full."""
    if not fix or not bounds:
        return 0.0
    gap_km = max(
        history.sites_apart_km(old.latitude, old.longitude, new.latitude, new.longitude)
        - grow(old.bound_km)
        - grow(new.bound_km)
        for old in fix
        for new in bounds
    )
    return gap_km / (1.0 + history.ELLIPSOID_MARGIN) - max(0, time_ns - fix_ns) * KM_PER_NS


def _reference_inside(inner: LandmarkBound, outer: LandmarkBound) -> bool:
    apart = history.sites_apart_km(inner.latitude, inner.longitude, outer.latitude, outer.longitude)
    slack = 1e-6 if apart else 0.0
    return apart + slack + grow(inner.bound_km) <= grow(outer.bound_km)


def _reference_extend(fix: Fix, fix_ns: int, bounds: Fix, time_ns: int) -> tuple[Fix, int]:
    """:func:`history.extend` as its docstring defines it: the old disks grown by the
    travel since, then every disk against every kept one."""
    elapsed_ns = max(0, time_ns - fix_ns)
    grown = tuple(
        LandmarkBound(b.landmark_id, b.latitude, b.longitude, b.rtt_min_ns, motion_km=motion)
        for b in fix
        for motion in (b.motion_km + elapsed_ns * KM_PER_NS,)
    )
    kept: list[LandmarkBound] = []
    for disk in (*bounds, *grown):
        if grow(disk.bound_km) >= HALF_CIRCUMFERENCE_KM or any(
            _reference_inside(k, disk) for k in kept
        ):
            continue
        kept = [k for k in kept if not _reference_inside(disk, k)]
        kept.append(disk)
    return tuple(kept), time_ns


@settings(max_examples=300)
@given(sequences, fixes, gaps_ns)
@example(  # one site, the wider disk first: the narrower one replaces it
    raw=[((LandmarkBound("lm-fra", *SITES["lm-fra"], 90_000),), 0)],
    probe=(LandmarkBound("lm-fra", *SITES["lm-fra"], 20_000),),
    probe_after=0,
)
@example(  # the same disk again: equal radii at one site, one of them kept
    raw=[((LandmarkBound("lm-fra", *SITES["lm-fra"], 50_000),), 0)],
    probe=(LandmarkBound("lm-fra", *SITES["lm-fra"], 50_000),),
    probe_after=0,
)
def test_the_gap_and_the_history_equal_their_definitions_exactly(raw, probe, probe_after):
    """Radii read once per disk, and dominance not looked up where the inner cap is the
    wider, give the very floats and disks of the definitions, pair by pair."""
    _, held, held_ns = appraise_sequence(timed(raw))
    probe_ns = held_ns + probe_after
    assert history.travel_gap_km(held, held_ns, probe, probe_ns, KM_PER_NS) == _reference_gap(
        held, held_ns, probe, probe_ns
    )
    assert history.extend(held, held_ns, probe, probe_ns, KM_PER_NS) == _reference_extend(
        held, held_ns, probe, probe_ns
    )
