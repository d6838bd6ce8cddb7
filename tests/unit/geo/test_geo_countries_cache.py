"""The Natural Earth index kept on disk (``GEOATTEST_GEOMETRY_CACHE``) is the index built
from the dataset, byte for byte; a stale, foreign or damaged file is never used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from geoattest.geo import countries as countries_module
from geoattest.geo.countries import CACHE_ENV, Countries, cache_key, dataset_path


@pytest.fixture(scope="module")
def features() -> list[tuple[str, str, BaseGeometry]]:
    return countries_module.read_features(dataset_path())


@pytest.fixture(scope="module")
def built(features: list[tuple[str, str, BaseGeometry]]) -> Countries:
    """Built from the dataset here, whatever the session's cache holds."""
    return Countries(features)


@pytest.fixture(scope="module")
def saved(built: Countries, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("geometry") / "index.npz"
    key = cache_key(dataset_path())
    built.save(path, key)
    return path, key


def test_the_saved_index_loads_back_identical(built: Countries, saved: tuple[Path, str]) -> None:
    loaded = Countries.load(*saved)
    assert loaded is not None
    assert loaded.codes == built.codes
    assert [shapely.to_wkb(p) for p in loaded.pieces] == [shapely.to_wkb(p) for p in built.pieces]
    assert np.array_equal(loaded.piece_code, built.piece_code)
    for code in [*built.codes, countries_module.NO_CODE]:
        mine, theirs = loaded._countries[code], built._countries[code]
        assert (mine.code, mine.name) == (theirs.code, theirs.name)
        assert shapely.to_wkb(mine.shape) == shapely.to_wkb(theirs.shape)
    for lat, lon in [(1.35, 103.82), (22.52242, 114.06258), (48.85, 2.35), (0.0, -30.0)]:
        assert loaded.country_at(lat, lon) == built.country_at(lat, lon)


def test_a_file_under_another_key_is_not_used(saved: tuple[Path, str]) -> None:
    path, key = saved
    assert Countries.load(path, key + "-other") is None


def test_a_missing_or_damaged_file_is_not_used(saved: tuple[Path, str], tmp_path: Path) -> None:
    path, key = saved
    assert Countries.load(tmp_path / "missing.npz", key) is None
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert Countries.load(damaged, key) is None
    damaged.write_bytes(b"not an index")
    assert Countries.load(damaged, key) is None


def test_the_key_names_the_dataset_bytes(tmp_path: Path) -> None:
    copy = tmp_path / "copy.zip"
    copy.write_bytes(dataset_path().read_bytes())
    assert cache_key(copy) == cache_key(dataset_path())
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert cache_key(copy) != cache_key(dataset_path())


def test_natural_earth_writes_then_reads_the_cache(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    features: list[tuple[str, str, BaseGeometry]],
) -> None:
    """Through the loader itself, on a few countries so as to build quickly."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(countries_module, "read_features", lambda path: features[:12])
    load = countries_module.natural_earth.__wrapped__  # past the per-process cache
    first = load()
    (written,) = (tmp_path / "cache").iterdir()
    stamp = written.stat().st_mtime_ns
    second = load()
    assert written.stat().st_mtime_ns == stamp  # read, not built and written again
    assert first is not second
    assert first.codes == second.codes
    assert len(first.codes) >= 10
    assert [shapely.to_wkb(p) for p in second.pieces] == [shapely.to_wkb(p) for p in first.pieces]
    assert np.array_equal(second.piece_code, first.piece_code)


def test_without_the_variable_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    features: list[tuple[str, str, BaseGeometry]],
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(countries_module, "read_features", lambda path: features[:12])
    countries = countries_module.natural_earth.__wrapped__()
    assert len(countries.codes) >= 10
    assert list(tmp_path.iterdir()) == []
