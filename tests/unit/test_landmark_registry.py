"""The landmark registry holds each public key once, whatever sequence of adds, saves
and loads built it, and an entry written before operators were recorded is its own
operator."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError, LandmarkKeyReusedError, Reason
from geoattest.pki import LandmarkRecord, LandmarkRegistry

KEYS = [KeySigner.generate().verifying_key for _ in range(4)]

adds = st.lists(
    st.tuples(st.sampled_from(["lm-a", "lm-b", "lm-c", "lm-d", "lm-e"]), st.integers(0, 3)),
    max_size=12,
)


@settings(max_examples=80)
@given(adds, st.integers(0, 12))
def test_no_sequence_of_adds_and_reloads_registers_a_key_twice(
    steps: list[tuple[str, int]], reload_at: int
) -> None:
    registry = LandmarkRegistry()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "landmarks.json"
        for n, (landmark_id, key) in enumerate(steps):
            if n == reload_at:
                registry.save(path)
                registry = LandmarkRegistry.load(path)
            record = LandmarkRecord(landmark_id, 1.0, 2.0, KEYS[key], operator=f"op-{key}")
            held = {r.verifying_key.key_id for r in registry}
            ids = {r.landmark_id for r in registry}
            try:
                registry.add(record)
            except LandmarkKeyReusedError:
                assert KEYS[key].key_id in held
                assert landmark_id not in ids
            except ConfigError:
                assert landmark_id in ids
            else:
                assert KEYS[key].key_id not in held
                assert landmark_id not in ids
            keys = [r.verifying_key.key_id for r in registry]
            assert len(keys) == len(set(keys))


def _write(path: Path, entries: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"landmarks": entries}))


def _entry(landmark_id: str, key: int, **extra: object) -> dict[str, object]:
    der = KEYS[key].der().hex()
    return {"id": landmark_id, "lat": 1.0, "lon": 2.0, "public_key": der, **extra}


def test_a_file_holding_one_key_under_two_ids_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "landmarks.json"
    _write(path, [_entry("lm-a", 0, operator="x"), _entry("lm-b", 0, operator="y")])
    with pytest.raises(LandmarkKeyReusedError) as refused:
        LandmarkRegistry.load(path)
    assert refused.value.reason is Reason.LANDMARK_KEY_REUSED
    assert "already registered as landmark lm-a" in refused.value.detail


def test_an_entry_without_an_operator_is_its_own_operator(tmp_path: Path) -> None:
    path = tmp_path / "landmarks.json"
    _write(path, [_entry("lm-a", 0), _entry("lm-b", 1, operator="carrier")])
    registry = LandmarkRegistry.load(path)
    assert [r.operator for r in registry] == ["lm-a", "carrier"]
    registry.save(path)
    assert [e["operator"] for e in json.loads(path.read_text())["landmarks"]] == [
        "lm-a",
        "carrier",
    ]
