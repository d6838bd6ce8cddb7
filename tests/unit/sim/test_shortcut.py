"""The fleet shortcuts decide only what the real appraiser would decide.

Each shortcut is an implication of the appraiser's rules; these tests put that claim to
the real :class:`GeoAppraiser` over bounds that a real chip could produce (every disk
holds the chip), with chips placed on both sides of tight borders.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from geoattest.demo.scenario import LandmarkSite, default_scenario_path, load_scenario
from geoattest.geo.sphere import distance_km
from geoattest.sim.shortcut import FleetVerdicts, Shortcut
from geoattest.verdict import LandmarkBound, Verdict

EXTRA_SITES = (
    LandmarkSite("lm-jhb", "Johor Bahru", 1.4927, 103.7414),
    LandmarkSite("lm-szx", "Shenzhen", 22.5431, 114.0579),
    LandmarkSite("lm-bsl", "Basel", 47.5596, 7.5886),
    LandmarkSite("lm-yqg", "Windsor", 42.3149, -83.0364),
    LandmarkSite("lm-tij", "Tijuana", 32.5149, -117.0382),
    LandmarkSite("lm-xmn", "Xiamen", 24.4798, 118.0894),
)
"""Landmarks just across the licensed regions' borders (Johor Bahru, Shenzhen, Basel,
Windsor, Tijuana, Xiamen), so that disks cut the borders in every way."""

PLACES = (
    (1.3521, 103.8198, "SG"),  # Singapore
    (1.4655, 103.7578, "MY"),  # Johor Bahru
    (22.3193, 114.1694, "HK"),  # Hong Kong
    (22.5431, 114.0579, "CN"),  # Shenzhen
    (47.9990, 7.8421, "DE"),  # Freiburg
    (47.5596, 7.5886, "CH"),  # Basel
    (48.1351, 11.5820, "DE"),  # Munich
    (42.3314, -83.0458, "US"),  # Detroit
    (42.3149, -83.0364, "CA"),  # Windsor
    (32.7157, -117.1611, "US"),  # San Diego
    (24.4361, 118.3186, "TW"),  # Kinmen
    (25.0330, 121.5654, "TW"),  # Taipei
    (35.6762, 139.6503, "JP"),  # Tokyo
    (28.6139, 77.2090, "IN"),  # Delhi
    (39.0438, -77.4874, "US"),  # Ashburn
    (19.0760, 72.8777, "IN"),  # Mumbai
    (50.1109, 8.6821, "DE"),  # Frankfurt
    (34.6937, 135.5023, "JP"),  # Osaka
    (22.6273, 120.3014, "TW"),  # Kaohsiung
)


SITES = load_scenario(default_scenario_path()).landmarks + EXTRA_SITES


@functools.cache
def world(faults: int = 0) -> tuple[FleetVerdicts, tuple[LandmarkSite, ...]]:
    """The demo's landmarks (two operators' in each licensed data centre) and the extra
    ones, judged at ``faults`` lying operators."""
    scenario = load_scenario(default_scenario_path())
    regions = tuple(sorted(scenario.policy.regions))
    appraiser = scenario.policy.appraiser()
    return FleetVerdicts(appraiser, SITES, regions, landmark_faults=faults), SITES


def site(landmark_id: str) -> int:
    """The index of a landmark in the world's sites."""
    return [s.landmark_id for s in SITES].index(landmark_id)


def judge(
    place: int, region: int, landmarks: list[int], slack: list[float], faults: int = 0
) -> tuple[int, Verdict]:
    """The shortcut's rule and the real appraiser's verdict for one proof."""
    verdicts, sites = world(faults)
    lat, lon, code = PLACES[place]
    name = verdicts.regions[region]
    licensed = code in verdicts.appraiser.policy.regions[name].countries
    lm = np.asarray([landmarks])
    lm_lat = np.asarray([sites[i].latitude for i in landmarks])
    lm_lon = np.asarray([sites[i].longitude for i in landmarks])
    # At least the distance to the chip: the chip is inside every disk, as with real RTTs.
    radius = distance_km(lat, lon, lm_lat, lm_lon) + np.asarray(slack)
    bound = radius[None, :]
    rule = int(verdicts.by_reach(np.asarray([region]), lm, bound, np.asarray([licensed]))[0])
    if rule == Shortcut.UNDECIDED:
        qlat, qlon = verdicts.probes(
            np.asarray([lat]), np.asarray([lon]), region, np.asarray([licensed])
        )
        covered = verdicts.by_probe(
            np.asarray([region]), lm, bound, np.asarray([licensed]), qlat, qlon
        )
        if covered[0]:
            rule = Shortcut.INCONCLUSIVE_BY_PROBE
    bounds = [
        LandmarkBound(sites[i].landmark_id, sites[i].latitude, sites[i].longitude, 0, motion_km=r)
        for i, r in zip(landmarks, radius.tolist(), strict=True)
    ]
    return rule, verdicts.exact(bounds, name)


IMPLIED = {
    Shortcut.ALLOWED_BY_REACH: Verdict.ALLOWED,
    Shortcut.OUTSIDE_BY_REACH: Verdict.OUTSIDE,
    Shortcut.INCONCLUSIVE_BY_PROBE: Verdict.INCONCLUSIVE,
    Shortcut.INCONCLUSIVE_UNBOUNDED: Verdict.INCONCLUSIVE,
}


@settings(max_examples=200, deadline=None)
@given(
    place=st.integers(0, len(PLACES) - 1),
    own_region=st.booleans(),
    landmarks=st.lists(st.integers(0, len(SITES) - 1), min_size=1, max_size=5, unique=True),
    faults=st.integers(0, 2),
    data=st.data(),
)
def test_a_decided_shortcut_is_the_appraisers_verdict(
    place: int, own_region: bool, landmarks: list[int], faults: int, data: st.DataObject
) -> None:
    """At any number of lying operators: the ALLOWED rule must then hold for every base
    a left-out domain could leave (the demo's data centres hold two operators each)."""
    verdicts, _ = world(faults)
    code = PLACES[place][2]
    if own_region and code in verdicts.regions:
        region = verdicts.regions.index(code)  # a licensed chip: the ALLOWED rule can fire
    else:
        region = data.draw(st.integers(0, len(verdicts.regions) - 1))
    slack = data.draw(
        st.lists(
            st.one_of(
                st.floats(0.0, 5.0),
                st.floats(0.0, 60.0),
                st.floats(0.0, 60.0),
                st.floats(0.0, 3000.0),
                st.floats(0.0, 12_000.0),
            ),
            min_size=len(landmarks),
            max_size=len(landmarks),
        )
    )
    rule, verdict = judge(place, region, landmarks, slack, faults)
    event(f"faults {faults}: {Shortcut(rule).name} -> {verdict.value}")
    if rule != Shortcut.UNDECIDED:
        assert IMPLIED[Shortcut(rule)] is verdict


def test_a_chip_across_the_strait_is_never_allowed_by_reach() -> None:
    # Johor Bahru licensed to Singapore, measured by a landmark in Singapore itself with a
    # disk that just reaches it: Malaysian land is in the disk, so no ALLOWED shortcut.
    verdicts, _ = world()
    rule, verdict = judge(1, verdicts.regions.index("SG"), [site("lm-sin")], [0.5])
    assert rule != Shortcut.ALLOWED_BY_REACH
    assert verdict is not Verdict.ALLOWED


def test_every_shortcut_fires_somewhere() -> None:
    # The property above is vacuous for a rule that never decides anything.
    verdicts, _ = world()
    sg, jp = verdicts.regions.index("SG"), verdicts.regions.index("JP")
    tokyo = [site("lm-tyo"), site("lm-tyo-2")]
    tokyo_tight = judge(12, jp, tokyo[:1], [5.0])
    tokyo_two_operators = judge(12, jp, tokyo, [5.0, 5.0], faults=1)
    tokyo_one_operator = judge(12, jp, tokyo[:1], [5.0], faults=1)
    shenzhen_for_sg = judge(3, sg, [site("lm-hkg")], [2.0])
    singapore_wide = judge(0, sg, [site("lm-sin"), site("lm-kul")], [40.0, 40.0])
    anywhere = judge(0, sg, [site("lm-fra"), site("lm-iad")], [9000.0, 9000.0])
    assert tokyo_tight == (Shortcut.ALLOWED_BY_REACH, Verdict.ALLOWED)
    assert tokyo_two_operators == (Shortcut.ALLOWED_BY_REACH, Verdict.ALLOWED)
    assert tokyo_one_operator[0] != Shortcut.ALLOWED_BY_REACH
    assert tokyo_one_operator[1] is Verdict.INCONCLUSIVE
    assert shenzhen_for_sg == (Shortcut.OUTSIDE_BY_REACH, Verdict.OUTSIDE)
    assert singapore_wide == (Shortcut.INCONCLUSIVE_BY_PROBE, Verdict.INCONCLUSIVE)
    assert anywhere == (Shortcut.INCONCLUSIVE_UNBOUNDED, Verdict.INCONCLUSIVE)


def largest(fires: Callable[[float], bool], high: float) -> float | None:
    """The largest radius in [0, high] at which ``fires`` holds (it holds below some
    threshold and not above), to within a metre; None if it never holds."""
    if not fires(0.0):
        return None
    low = 0.0
    while high - low > 0.001:
        mid = (low + high) / 2
        low, high = (mid, high) if fires(mid) else (low, mid)
    return low


def test_reach_rules_hold_at_their_thresholds() -> None:
    # The riskiest place for the reach rules is the largest disk they still decide: a chip
    # at a landmark, one disk of exactly that radius. The real appraiser must agree there,
    # for every landmark and region (ALLOWED from licensed land, OUTSIDE from elsewhere).
    verdicts, sites = world()
    countries = verdicts.appraiser.policy.countries
    checked = Counter[Verdict]()
    for i, site in enumerate(sites):
        code = countries.country_at(site.latitude, site.longitude)
        if code is None:
            continue
        for r, name in enumerate(verdicts.regions):
            licensed = code in verdicts.appraiser.policy.regions[name].countries
            rule, want = (
                (Shortcut.ALLOWED_BY_REACH, Verdict.ALLOWED)
                if licensed
                else (Shortcut.OUTSIDE_BY_REACH, Verdict.OUTSIDE)
            )

            def fires(
                radius: float,
                i: int = i,
                r: int = r,
                licensed: bool = licensed,
                rule: Shortcut = rule,
            ) -> bool:
                got = verdicts.by_reach(
                    np.asarray([r]),
                    np.asarray([[i]]),
                    np.asarray([[radius]]),
                    np.asarray([licensed]),
                )
                return bool(got[0] == rule)

            radius = largest(fires, 9000.0)
            if radius is None:
                continue
            bound = LandmarkBound(
                site.landmark_id, site.latitude, site.longitude, 0, motion_km=radius
            )
            assert verdicts.exact([bound], name) is want, (site.landmark_id, name, radius)
            checked[want] += 1
    assert checked[Verdict.ALLOWED] >= 5
    assert checked[Verdict.OUTSIDE] >= 20
