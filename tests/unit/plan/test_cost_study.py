"""A whole cost study on a small deployment: coverage, load, detection, sweeps, the brief."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from plan_deployments import write_taiwan

from geoattest.errors import ConfigError
from geoattest.plan.brief import access_floor_km, near_border_share, render_brief
from geoattest.plan.cost import load_inputs
from geoattest.plan.cost_plots import plot_cadence, plot_faults, plot_landmarks
from geoattest.plan.cost_study import CostStudy, certifiable_share, study_cost
from geoattest.plan.coverage import measure
from geoattest.plan.deployment import Deployment, load_deployment
from geoattest.plan.detection import Pair, Timing, by_destination
from geoattest.plan.sensitivity import Sensitivity, sweep
from geoattest.verdict import Verdict

PNG = b"\x89PNG\r\n\x1a\n"
RESOLUTION = 0.2


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return load_deployment(write_taiwan(tmp_path_factory.mktemp("deployment")))


@pytest.fixture(scope="module")
def study(deployment: Deployment) -> CostStudy:
    inputs = load_inputs(deployment.regions, overrides={"chips": "TW=1000"})
    return study_cost(
        deployment,
        inputs,
        resolution_deg=RESOLUTION,
        detection_devices=60,
        destinations=("CN", "HK"),
    )


@pytest.fixture(scope="module")
def sensitivity(study: CostStudy) -> Sensitivity:
    return sweep(study, budget=1, cadences=(60.0, 3600.0, 86_400.0))


def test_the_certifiable_share_is_the_coverage_studys(
    deployment: Deployment, study: CostStudy
) -> None:
    coverage, _ = measure(
        deployment.policy,
        "TW",
        deployment.landmarks,
        landmarks_per_chip=3,
        resolution_deg=RESOLUTION,
        landmark_faults=study.inputs.fleet.landmark_faults,
    )
    assert study.inputs.fleet.landmark_faults == 1  # the verifier's default
    assert study.certifiable["TW"] == certifiable_share(coverage)
    # One landmark in Taiwan: at the default policy (one lying operator tolerated)
    # nothing there is certifiable; every landmark trusted, Taipei is.
    assert study.certifiable["TW"] == 0
    trusting, _ = measure(
        deployment.policy, "TW", deployment.landmarks, landmarks_per_chip=3,
        resolution_deg=RESOLUTION,
    )  # fmt: skip
    assert 0 < certifiable_share(trusting) < 1
    assert study.cost.certifiable_chips == pytest.approx(1000 * study.certifiable["TW"])


def test_every_chip_measures_k_landmarks_and_taipei_most(study: CostStudy) -> None:
    load = study.load
    assert sum(load.chips_per_landmark) == pytest.approx(1000 * 3)
    # Three landmarks, each chip measures three: every landmark serves every chip.
    assert load.chips_per_landmark == pytest.approx((1000, 1000, 1000))
    assert load.bytes_per_proof > 3 * 2000  # three rounds of datagrams and the proof


def test_detection_counts_every_diverted_chip_and_none_is_allowed(study: CostStudy) -> None:
    detection = study.detection
    assert detection is not None
    assert detection.false_allowed == 0
    assert [d.destination for d in detection.destinations] == ["CN", "HK"]
    for row in detection.destinations:
        assert row.chips == 60
        assert row.not_allowed == 1.0
        assert 0 <= row.outside <= 1
    for pair in detection.pairs:
        assert pair.sample_checked == pair.sample_matched > 0


def test_a_faults_level_at_the_quorum_is_refused(deployment: Deployment) -> None:
    inputs = load_inputs(deployment.regions, overrides={"landmark_faults": 3})
    with pytest.raises(ConfigError, match="below the deployment's quorum"):
        study_cost(deployment, inputs, resolution_deg=RESOLUTION, detection_devices=0)


def test_detection_timing_follows_the_verifier_and_the_agent() -> None:
    fleet = load_inputs(("A",), overrides={"cadence_s": 600.0, "grace_s": 120.0}).fleet
    timing = Timing.of(fleet)
    assert timing.alert_within_s == 600
    assert timing.licence_kept_s == 1800  # three cadences, the verifier's stale window
    assert timing.degraded_within_s == 1920


def test_destinations_weigh_regions_by_their_chips() -> None:
    pairs = [
        Pair("A", "CN", Counter(OUTSIDE=5, INCONCLUSIVE=5), Counter(OUTSIDE=2), 1, 1),
        Pair("B", "CN", Counter(OUTSIDE=1, INCONCLUSIVE=9), Counter(), 1, 1),
    ]
    (row,) = by_destination(pairs, {"A": 100, "B": 300}, ("CN", "RU"))
    assert row.outside == pytest.approx((100 * 0.5 + 300 * 0.1) / 400)
    assert row.not_allowed == 1.0
    assert row.outside_naive == 1.0  # only A's study had hosts that did not hide
    assert pairs[0].share(Verdict.OUTSIDE) == 0.5


def test_the_study_is_one_json_object(study: CostStudy) -> None:
    data = json.loads(json.dumps(study.to_json()))
    assert data["cost"]["chips"] == 1000
    assert data["detection"]["false_allowed"] == 0
    assert {"name", "value", "unit", "kind", "source"} == set(data["inputs"][0])
    reproduced = data["published_models"]["reproduced"]
    assert all(r["reproduced_usd"] == pytest.approx(r["published_usd"]) for r in reproduced)


def test_cadence_trades_delay_for_bytes(sensitivity: Sensitivity) -> None:
    points = sensitivity.cadence
    assert [p.timing.alert_within_s for p in points] == [60, 3600, 86_400]
    gb = [p.gb_per_year for p in points]
    assert gb[0] == pytest.approx(60 * gb[1])
    assert gb[1] == pytest.approx(24 * gb[2])
    assert points[0].verifier_replicas >= points[1].verifier_replicas >= 2


def test_landmark_sweep_adds_the_candidate_and_one_fault_certifies_less(
    sensitivity: Sensitivity, study: CostStudy
) -> None:
    (region,) = sensitivity.regions
    assert region.in_region == 1
    assert [s.landmark_id for s in region.picks] in ([], ["khh"])
    zero, one = region.shares[0], region.shares[1]
    assert list(zero) == sorted(zero)  # a pick is kept only when it helps
    assert all(b <= a for a, b in zip(zero, one, strict=True))
    assert region.doubled is not None
    assert region.doubled >= one[0]
    points = [p for p in sensitivity.landmarks if p.faults == 0]
    assert points[0].landmarks == len(study.deployment.landmarks)
    assert points[-1].total_per_year >= points[0].total_per_year


def test_plots_are_small_pngs(sensitivity: Sensitivity, tmp_path: Path) -> None:
    for draw in (plot_landmarks, plot_faults):
        path = tmp_path / f"{draw.__name__}.png"
        draw(path, sensitivity, "test")
        assert path.read_bytes().startswith(PNG)
        assert path.stat().st_size < 80_000
    plot_cadence(tmp_path / "cadence.png", sensitivity, "test", 3600.0)
    assert (tmp_path / "cadence.png").read_bytes().startswith(PNG)


def test_taiwan_is_far_from_foreign_land(study: CostStudy) -> None:
    assert 25 < access_floor_km() < 35
    # Only Kinmen, off Xiamen, is that close to China.
    assert 0 < near_border_share(study, "TW", access_floor_km()) < 0.01
    assert near_border_share(study, "TW", 1000.0) == 1.0  # Fujian is within 1,000 km


def test_the_brief_says_every_part_and_carries_its_images(
    study: CostStudy, sensitivity: Sensitivity
) -> None:
    text = render_brief(study, sensitivity, "geoattest report --brief --deployment tw.toml")
    for heading in (
        "What a verdict means",
        "Where honest chips are certifiable",
        "What it cannot prove, and why",
        "What it catches",
        "What it costs",
        "What each extra dollar buys",
        "Beside the published estimates",
        "Inputs and their sources",
    ):
        assert f"<h2>{heading}</h2>" in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4
    for figure in study.inputs.all_inputs():
        assert f"<td>{figure.name}</td>" in text
    assert "nan" not in re.sub(r'src="[^"]+"', "", text).lower().split()
    assert len(text) < 400_000
