"""The agent's configuration is checked where it is loaded: every value is either in its
range or a ConfigError naming it, never an agent that starts on it or another exception."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.address import parse_address
from geoattest.attestor.runner import MAX_CADENCE_S, MAX_GRACE_S, AgentConfig
from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError
from geoattest.protocol.round import MAX_EXCHANGES

KEY_HEX = KeySigner.generate().verifying_key.der().hex()
NOT_SET = object()

NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 32, 33, 86_400, 86_401, MAX_GRACE_S, 10**9, True, False]),
    st.text(max_size=4),
    st.none(),
    st.just(NOT_SET),
)
ADDRESSES = st.one_of(
    st.sampled_from(
        [
            "127.0.0.1:50051",
            "localhost:7",
            "[::1]:9",
            "127.0.0.1",
            ":50051",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:x",
            "nohost",
            "",
            "127.0.0.1:-1",
        ]
    ),
    st.text(max_size=12),
)


def whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def seconds(value: Any, high: float) -> bool:
    return type(value) in (int, float) and 0 < value <= high


def load(document: dict[str, Any]) -> AgentConfig:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "agent.json"
        path.write_text(json.dumps(document))
        return AgentConfig.load(path)


@settings(max_examples=300, deadline=None)
@given(
    cadence_s=NUMBERS,
    exchanges=NUMBERS,
    grace_s=NUMBERS,
    landmark_ids=st.lists(st.sampled_from(["lm-a", "lm-b", "lm-c"]), max_size=3),
    verifier=ADDRESSES,
)
def test_a_config_loads_only_with_every_value_in_range(
    cadence_s, exchanges, grace_s, landmark_ids, verifier
):
    document: dict[str, Any] = {
        "device_id": "dev-1",
        "keystore": "keys",
        "outbox": "outbox",
        "verifier": verifier,
        "plaintext": True,
        "verifier_id": "v",
        "landmarks": [
            {"id": lid, "address": "127.0.0.1:40001", "public_key": KEY_HEX} for lid in landmark_ids
        ],
    }
    for key, value in (("cadence_s", cadence_s), ("exchanges", exchanges), ("grace_s", grace_s)):
        if value is not NOT_SET:
            document[key] = value
    valid_numbers = (
        (cadence_s is NOT_SET or seconds(cadence_s, MAX_CADENCE_S))
        and (exchanges is NOT_SET or whole(exchanges, 1, MAX_EXCHANGES))
        and (grace_s is NOT_SET or whole(grace_s, 0, MAX_GRACE_S))
    )
    valid_landmarks = bool(landmark_ids) and len(set(landmark_ids)) == len(landmark_ids)
    try:
        config = load(document)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert not (valid_numbers and valid_landmarks) or verifier != "127.0.0.1:50051"
        return
    assert valid_numbers
    assert valid_landmarks
    assert math.isfinite(config.cadence_s)
    assert 0 < config.cadence_s <= MAX_CADENCE_S
    assert 1 <= config.exchanges <= MAX_EXCHANGES
    assert 0 <= config.grace_s <= MAX_GRACE_S
    parse_address(config.verifier, "verifier")


def test_a_document_that_is_not_an_object_is_refused():
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "agent.json"
        path.write_text("[1, 2]")
        with pytest.raises(ConfigError, match="not a JSON object"):
            AgentConfig.load(path)
