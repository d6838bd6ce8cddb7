"""Documents are replaced whole and durably; key files are never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from command import assert_one_line_error, invoke

from geoattest import files
from geoattest.errors import ConfigError
from geoattest.files import (
    prepare_output_dir,
    read_json,
    read_private,
    read_toml,
    write_atomic,
    write_json,
    write_new,
    write_private,
)
from geoattest.pki.keyfiles import load_certificate_pem


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "chain.json"
    path.write_bytes(b"old")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["chain.json"]
    assert len(synced) == 2  # the file, then the folder that names it


def test_json_round_trip(tmp_path):
    path = tmp_path / "doc.json"
    write_json(path, {"b": 1, "a": [2]})
    assert path.read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    assert read_json(path, "document") == {"a": [2], "b": 1}


def test_json_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=f"registry {tmp_path / 'no.json'} does not exist"):
        read_json(tmp_path / "no.json", "registry")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_json(tmp_path / "bad.json", "registry")
    with pytest.raises(ConfigError, match=f"cannot read registry {tmp_path}"):
        read_json(tmp_path, "registry")
    with pytest.raises(ConfigError, match=f"cannot write {tmp_path / 'no' / 'doc.json'}"):
        write_json(tmp_path / "no" / "doc.json", {})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"lat": NaN}', "NaN is not a JSON number"),
        ('{"lat": Infinity}', "Infinity is not a JSON number"),
        ('{"lat": -Infinity}', "-Infinity is not a JSON number"),
        ('{"lat": 1e999}', "the number 1e999 is too large"),
        ('{"lat": -1e999}', "the number -1e999 is too large"),
        ('{"lat": ' + "9" * 400 + "}", "is too large"),
    ],
)
def test_json_numbers_no_float_holds_are_refused(tmp_path, text, needle):
    """Every reader of an operator's file (policies, registries, licences, candidates) gets
    numbers a float holds: a huge integer once reached float() or math.isfinite() in the
    readers as an OverflowError and a traceback."""
    path = tmp_path / "doc.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="is not valid JSON") as refused:
        read_json(path, "document")
    assert needle in refused.value.detail


def test_json_numbers_a_float_holds_are_read(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(f"[{2**64}, -{2**63}, 1.5e308, -0.0, 5e-324, {'9' * 300}]")
    assert read_json(path, "document") == [2**64, -(2**63), 1.5e308, -0.0, 5e-324, int("9" * 300)]


@pytest.mark.parametrize(
    "text",
    [
        '{"licences": {"dev-1": {"region": "SG"}, "dev-1": {"region": "CN"}}}',
        '{"a": 1, "b": 2, "a": 1}',
        '[{"x": [{"k": 1, "k": 2}]}]',
    ],
)
def test_json_keys_written_twice_in_one_object_are_refused(tmp_path, text):
    """Python's parser keeps the last of two equal keys: a licence, a region or a landmark
    written twice would be half ignored, silently."""
    path = tmp_path / "twice.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="appears twice in one object"):
        read_json(path, "document")


def test_json_equal_keys_in_different_objects_are_read(tmp_path):
    path = tmp_path / "apart.json"
    path.write_text('{"a": {"k": 1}, "b": {"k": 2}}')
    assert read_json(path, "document") == {"a": {"k": 1}, "b": {"k": 2}}


def test_key_files_are_new_and_private(tmp_path):
    write_private(tmp_path / "key.pem", b"k")
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_private(tmp_path / "key.pem", b"other")
    write_new(tmp_path / "cert.pem", b"c")
    with pytest.raises(FileExistsError):
        write_new(tmp_path / "cert.pem", b"other")
    with pytest.raises(ConfigError, match="not an empty directory"):
        prepare_output_dir(tmp_path)
    prepare_output_dir(tmp_path / "new" / "keys")
    assert (tmp_path / "new" / "keys").is_dir()


READERS = {
    "json": (read_json, "MAX_DOCUMENT_BYTES", b" " * 8 + b"{}"),
    "toml": (read_toml, "MAX_DOCUMENT_BYTES", b"\n" * 8 + b"a = 1"),
    "key": (lambda path, _what: read_private(path), "MAX_KEY_BYTES", b"k" * 10),
    "certificate": (lambda path, _what: load_certificate_pem(path), "MAX_KEY_BYTES", b"c" * 10),
}


@pytest.mark.parametrize("kind", READERS)
def test_a_file_past_its_kinds_bound_is_refused_before_the_rest_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Every file a user names is read up to a bound: past it, a typed error naming the
    file, never the whole of it in memory (``/dev/zero`` read until memory ran out)."""
    read, bound, content = READERS[kind]
    monkeypatch.setattr(files, bound, len(content) - 1)
    path = tmp_path / "file"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=f"{path} holds more than {len(content) - 1:,} bytes"):
        read(path, kind)
    monkeypatch.setattr(files, bound, len(content))
    if kind in ("json", "toml"):
        assert read(path, kind) in ({}, {"a": 1})


@pytest.mark.parametrize(
    "args",
    [
        ("geo", "locate", "--landmark", "1,2,3", "--allow-geojson", "/dev/zero"),
        ("audit", "verify", "--log", "/dev/null", "--public-key", "/dev/zero"),
    ],
    ids=["document", "public-key"],
)
def test_an_endless_file_is_a_one_line_error(args: tuple[str, ...]) -> None:
    assert_one_line_error(invoke(*args), "/dev/zero holds more than")
