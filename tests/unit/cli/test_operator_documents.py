"""Every document an operator hands geoattest (JSON or TOML), whatever its bytes, is read or
refused with a one-line error: nesting deep enough to exhaust the parser's recursion, bytes
that are not UTF-8, a folder where a file belongs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from command import assert_one_line_error, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.errors import ConfigError
from geoattest.files import read_json, read_toml

DEPTH = 100_000
"""Far past any parser's recursion limit, and still a small file."""
NESTED = {
    "json array": b"[" * DEPTH + b"]" * DEPTH,
    "json object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "json under a key": b'{"licences": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "toml array": b"a = " + b"[" * DEPTH + b"]" * DEPTH,
    "toml inline table": b"a = " + b"{b = " * DEPTH + b"1" + b"}" * DEPTH,
}


def _documents() -> st.SearchStrategy[bytes]:
    nested = st.builds(
        lambda opener, closer, depth: opener * depth + closer * depth,
        st.sampled_from([b"[", b'{"a":', b"a = [", b"a = {b = "]),
        st.sampled_from([b"]", b"}"]),
        st.integers(min_value=0, max_value=20_000),
    )
    return st.one_of(st.binary(max_size=256), nested, st.sampled_from(list(NESTED.values())))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_documents())
def test_any_bytes_are_a_document_or_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("doc") / "document"
    path.write_bytes(data)
    for read in (read_json, read_toml):
        try:
            read(path, "document")
        except ConfigError as refused:
            assert str(path) in refused.detail


@pytest.mark.parametrize("read", [read_json, read_toml])
def test_a_folder_or_nothing_is_a_config_error(tmp_path, read):
    with pytest.raises(ConfigError, match="cannot read document"):
        read(tmp_path, "document")
    with pytest.raises(ConfigError, match="does not exist"):
        read(tmp_path / "missing", "document")


COMMANDS = {
    "licences": (
        "verifier",
        "licences",
        "apply",
        "--db",
        "{dir}/v.db",
        "--policy",
        "{dir}/policy.json",
        "--licences",
        "{doc}",
    ),
    "revocations": ("device", "revoke", "--revocations", "{doc}", "--device-id", "chip-1"),
    "registry": (
        "landmark",
        "keygen",
        "--id",
        "lm-x",
        "--operator",
        "op",
        "--lat",
        "1",
        "--lon",
        "2",
        "--out",
        "{dir}/lm",
        "--registry",
        "{doc}",
    ),
    "agent config": ("attestor", "run", "--config", "{doc}"),
    "geojson": ("geo", "locate", "--landmark", "1.3,103.8,0.05", "--allow-geojson", "{doc}"),
    "scenario": ("demo", "--scenario", "{doc}", "--duration", "1"),
    "cost file": ("plan", "cost", "--costs", "{doc}"),
}


@pytest.mark.parametrize("nesting", sorted(NESTED))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_refuses_a_deeply_nested_document_in_one_line(tmp_path, command, nesting):
    circle = {"circle": {"lat": 1, "lon": 2, "radius_km": 9}}
    (tmp_path / "policy.json").write_text(
        json.dumps({"id": "p", "version": 1, "regions": {"X": circle}})
    )
    if command == "licences":
        assert invoke("verifier", "migrate", "--db", str(tmp_path / "v.db")).returncode == 0
    doc = tmp_path / "doc"
    doc.write_bytes(NESTED[nesting])
    args = [a.format(dir=tmp_path, doc=doc) for a in COMMANDS[command]]
    result = invoke(*args)
    assert result.returncode == 2, result
    assert_one_line_error(result, str(doc))


def test_the_landmark_identity_of_a_key_directory_is_read_the_same_way(tmp_path):
    registry = tmp_path / "landmarks.json"
    key = tmp_path / "lm"
    made = invoke(
        "landmark", "keygen", "--id", "lm-x", "--operator", "op", "--lat", "1", "--lon", "2",
        "--out", str(key), "--registry", str(registry),
    )  # fmt: skip
    assert made.returncode == 0, made
    identity = Path(key / "landmark.json")
    identity.write_bytes(NESTED["json object"])
    result = invoke("landmark", "register", "--key", str(key), "--registry", str(registry))
    assert_one_line_error(result, "nested too deeply")
