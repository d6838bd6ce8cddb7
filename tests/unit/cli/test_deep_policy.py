"""A region policy is read with the one JSON reader: a document nested too deeply, at its
top or in a region's ``geojson_file``, is one line naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from command import assert_one_line_error, run_geoattest

from geoattest.verifier.store import SqlStore

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def database(tmp_path: Path) -> Path:
    db = tmp_path / "v.db"
    SqlStore.open(db).close()
    return db


def apply(tmp_path: Path, database: Path, policy: Path):
    licences = tmp_path / "lic.json"
    licences.write_text(json.dumps({"licences": {}}))
    return run_geoattest(
        "verifier", "licences", "apply", "--db", str(database),
        "--policy", str(policy), "--licences", str(licences),
    )  # fmt: skip


def test_a_deeply_nested_policy_is_one_line(tmp_path, database):
    policy = tmp_path / "deep.json"
    policy.write_text(DEEP)
    assert_one_line_error(apply(tmp_path, database, policy), str(policy), "nested too deeply")


def test_a_deeply_nested_geojson_file_is_one_line(tmp_path, database):
    (tmp_path / "campus.geojson").write_text(DEEP)
    policy = tmp_path / "policy.json"
    regions = {"campus": {"geojson_file": "campus.geojson"}}
    policy.write_text(json.dumps({"id": "p", "version": 1, "regions": regions}))
    assert_one_line_error(apply(tmp_path, database, policy), "campus.geojson", "nested too deeply")
