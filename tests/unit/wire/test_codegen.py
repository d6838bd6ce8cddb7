"""The checked-in wire code never drifts from proto/geoattest/v1."""

from __future__ import annotations

import importlib
import re

import codegen  # tools/codegen.py, on the path through pytest's pythonpath
from google.protobuf import descriptor_pb2

GENERATED = codegen.GENERATED_ROOT / "geoattest" / "v1"


def test_every_proto_has_generated_modules():
    for proto in codegen.proto_files():
        assert (GENERATED / f"{proto.stem}_pb2.py").exists(), proto.name


def test_generated_descriptors_equal_the_proto_files(tmp_path):
    """Compile the .proto files afresh and compare descriptors with what is checked in."""
    written = codegen.generate(out_root=tmp_path)
    assert written
    for proto in codegen.proto_files():
        fresh_source = (tmp_path / "geoattest" / "v1" / f"{proto.stem}_pb2.py").read_text()
        match = re.search(r"AddSerializedFile\((b'.*?')\)\n", fresh_source, re.S)
        assert match, proto.name
        fresh = descriptor_pb2.FileDescriptorProto.FromString(eval(match.group(1)))
        module = importlib.import_module(f"geoattest.v1.{proto.stem}_pb2")
        checked_in = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(checked_in)
        assert checked_in == fresh, f"{proto.name}: run python tools/codegen.py"


def test_generated_files_are_byte_identical_with_the_same_generator(tmp_path):
    codegen.generate(out_root=tmp_path)
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "geoattest" / "v1").iterdir()}
    checked_in = {
        p.name: p.read_bytes() for p in GENERATED.iterdir() if p.suffix in {".py", ".pyi"}
    }
    assert fresh.keys() == checked_in.keys()
    header = re.compile(rb"# Protobuf Python Version: [0-9.]+\n")
    for name, data in fresh.items():
        assert header.sub(b"", data) == header.sub(b"", checked_in[name]), name
