"""The honest-path latency model: calibration, reproducibility, parameter checks."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.errors import ConfigError
from geoattest.netsim.latency import (
    LatencyModel,
    PathClass,
    great_circle_km,
    haversine_km,
    light_floor_s,
)
from geoattest.verdict import SPEED_OF_LIGHT_KM_PER_S

FRANKFURT = (50.11, 8.68)
TOKYO = (35.68, 139.69)
SHANGHAI = (31.23, 121.47)
MODEL = LatencyModel.default()


def shipped_doc() -> dict[str, Any]:
    path = Path(__file__).parents[3] / "src/geoattest/netsim/data/latency_model.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.mark.parametrize(
    ("distance_km", "path_class", "median", "p90"),
    [
        (3000.0, PathClass.CLOUD, 1.7, 3.0),
        (9000.0, PathClass.CLOUD, 1.7, 3.0),
        (200.0, PathClass.CLOUD, 3.0, 5.0),
        (3000.0, PathClass.CN_CONSUMER, 2.9, 5.0),
    ],
)
def test_quantile_helpers_match_the_configured_anchors(
    distance_km: float, path_class: PathClass, median: float, p90: float
) -> None:
    assert MODEL.median_stretch(distance_km, path_class) == pytest.approx(median)
    assert MODEL.p90_stretch(distance_km, path_class) == pytest.approx(p90)


def test_long_haul_low_tail_matches_the_published_minimum() -> None:
    # Published min ~1.1: the shifted lognormal's 1st percentile lands there.
    assert MODEL.stretch_quantile(5000.0, 0.01) == pytest.approx(1.1, abs=0.02)


@pytest.mark.parametrize(
    ("distance_km", "path_class"),
    [(4000.0, PathClass.CLOUD), (300.0, PathClass.CLOUD), (4000.0, PathClass.CN_CONSUMER)],
)
def test_sampled_stretches_have_the_configured_median_and_p90(
    distance_km: float, path_class: PathClass
) -> None:
    rng = random.Random(11)
    scalar = np.array([MODEL.sample_stretch(distance_km, rng, path_class) for _ in range(20_000)])
    vector = MODEL.sample_stretches(
        np.full(20_000, distance_km), np.random.default_rng(11), path_class
    )
    for sample in (scalar, vector):
        assert np.median(sample) == pytest.approx(
            MODEL.median_stretch(distance_km, path_class), rel=0.03
        )
        assert np.quantile(sample, 0.9) == pytest.approx(
            MODEL.p90_stretch(distance_km, path_class), rel=0.05
        )
        assert sample.min() >= MODEL.stretch_floor


def test_expected_delay_grows_with_distance_despite_worse_short_hops() -> None:
    distances = np.linspace(1.0, 5000.0, 500)
    medians = [MODEL.base_delay_s(d, MODEL.median_stretch(d)) for d in distances]
    assert all(b >= a for a, b in itertools.pairwise(medians))


def test_honest_delay_is_never_faster_than_straight_fibre() -> None:
    rng = random.Random(5)
    fibre_s = great_circle_km(FRANKFURT, TOKYO) / (SPEED_OF_LIGHT_KM_PER_S / 1.5)
    for _ in range(1000):
        assert MODEL.one_way_delay_s(FRANKFURT, TOKYO, rng) >= fibre_s
    vector = MODEL.one_way_delays_s(np.full(1000, 9000.0), np.random.default_rng(5))
    assert vector.min() >= 9000.0 / (SPEED_OF_LIGHT_KM_PER_S / 1.5)


def test_same_seed_same_delays() -> None:
    def draw(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [MODEL.one_way_delay_s(SHANGHAI, TOKYO, rng) for _ in range(50)]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    a = MODEL.one_way_delays_s(np.arange(1.0, 100.0), np.random.default_rng(3))
    b = MODEL.one_way_delays_s(np.arange(1.0, 100.0), np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_fixed_stretch_gives_fixed_base_delay_plus_non_negative_jitter() -> None:
    rng = random.Random(2)
    d = great_circle_km(FRANKFURT, TOKYO)
    base = MODEL.base_delay_s(d, 2.0)
    assert base == pytest.approx(d * 2.0 / MODEL.fibre_speed_km_per_s + 2 * 50e-6)
    for _ in range(100):
        assert MODEL.one_way_delay_s(FRANKFURT, TOKYO, rng, stretch=2.0) >= base


def test_distances_are_symmetric_and_the_haversine_is_close() -> None:
    assert great_circle_km(FRANKFURT, TOKYO) == great_circle_km(TOKYO, FRANKFURT)
    assert light_floor_s(great_circle_km(FRANKFURT, TOKYO)) == pytest.approx(0.0312, abs=1e-3)
    rng = np.random.default_rng(0)
    lat1, lat2 = rng.uniform(-80, 80, (2, 200))
    lon1, lon2 = rng.uniform(-180, 180, (2, 200))
    fast = haversine_km(lat1, lon1, lat2, lon2)
    exact = np.array(
        [great_circle_km((a, b), (c, d)) for a, b, c, d in zip(lat1, lon1, lat2, lon2, strict=True)]
    )
    assert np.allclose(fast, exact, rtol=0.006)


def test_model_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(shipped_doc()))
    loaded = LatencyModel.from_file(path)
    assert loaded.median_stretch(2500.0) == MODEL.median_stretch(2500.0)
    assert loaded.parameters(PathClass.CLOUD) == MODEL.parameters(PathClass.CLOUD)


def _without_cn(doc: dict[str, Any]) -> None:
    del doc["path_classes"]["cn_consumer"]


def _set_anchor(field: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        doc["path_classes"]["cloud"]["stretch_anchors"][0][field] = value

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _without_cn,
        _set_anchor("median", 0.9),
        _set_anchor("p90", 2.0),
        _set_anchor("distance_km", 5000.0),
        _set_anchor("median", "fast"),
        lambda doc: doc.update(fibre_refractive_index=0.9),
        lambda doc: doc.update(stretch_floor=0.5),
        lambda doc: doc.update(schema="other/v9"),
        lambda doc: doc["path_classes"]["cloud"].update(access_delay_ms=-1),
        lambda doc: doc["path_classes"]["cloud"].pop("jitter_mean_ms"),
        lambda doc: doc["path_classes"].update(satellite=doc["path_classes"]["cloud"]),
    ],
)
def test_bad_model_documents_are_config_errors(edit: Any) -> None:
    doc = shipped_doc()
    edit(doc)
    with pytest.raises(ConfigError):
        LatencyModel.from_mapping(doc)


def test_unreadable_model_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LatencyModel.from_file(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        LatencyModel.from_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        LatencyModel.from_file(tmp_path / "list.json")
    (tmp_path / "latin1.json").write_bytes(b'{"fibre_speed_km_per_s": "\xe9"}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        LatencyModel.from_file(tmp_path / "latin1.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        LatencyModel.from_file(tmp_path / "deep.json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a parsed JSON document."""
    if isinstance(doc, dict):
        items: Any = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return []
    found = []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_model_file_loads_or_is_a_config_error(tmp_path: Path, data: st.DataObject) -> None:
    """Whatever the file holds (any bytes, any JSON, the shipped model with any one value
    replaced by any JSON value): a model, or a ConfigError; nothing else escapes."""
    doc = shipped_doc()
    path_in_doc = data.draw(st.sampled_from(_paths(doc)))
    parent = doc
    for key in path_in_doc[:-1]:
        parent = parent[key]
    parent[path_in_doc[-1]] = data.draw(JSON_VALUES)
    contents = data.draw(
        st.one_of(
            st.binary(max_size=200),
            JSON_VALUES.map(lambda value: json.dumps(value).encode()),
            st.just(json.dumps(doc).encode()),
        )
    )
    path = tmp_path / "model.json"
    path.write_bytes(contents)
    with contextlib.suppress(ConfigError):
        LatencyModel.from_file(path)


def test_quantile_outside_zero_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        MODEL.stretch_quantile(1000.0, 1.0)
