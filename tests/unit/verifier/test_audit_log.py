"""The audit log: RFC 6962 hashing, tampering found and named, checkpoints, inclusion proofs,
and appends from several processes at once."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.cli import main
from geoattest.crypto import KeySigner, sha256
from geoattest.errors import Reason
from geoattest.pki import ResultKey
from geoattest.verifier.audit_log import (
    AuditLog,
    AuditLogError,
    encode_entry,
    inclusion_path,
    leaf_hash,
    prove_token,
    read_checkpoints,
    read_entries,
    root_from_path,
    tree_root,
    verify_log,
)

S = 10**9
# Certificate Transparency's reference vectors (RFC 6962 trees of these leaves).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]


def test_the_tree_matches_rfc_6962_reference_roots():
    leaves = [leaf_hash(d) for d in CT_LEAVES]
    assert tree_root([]).hex() == sha256(b"").hex()
    assert leaves[0].hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert (
        tree_root(leaves).hex()
        == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_every_inclusion_path_leads_to_the_root(data, draw):
    leaves = [leaf_hash(d) for d in data]
    index = draw.draw(st.integers(0, len(leaves) - 1))
    path = inclusion_path(leaves, index)
    assert root_from_path(leaves[index], index, len(leaves), path) == tree_root(leaves)
    other = leaf_hash(b"not in the log")
    assert root_from_path(other, index, len(leaves), path) != tree_root(leaves)


@pytest.fixture(scope="module")
def result_key() -> ResultKey:
    return ResultKey.generate()


def signer_of(key: ResultKey) -> KeySigner:
    return KeySigner(key.private_key)


def write_log(tmp_path, key: ResultKey, entries: int = 10) -> AuditLog:
    """A log of ``entries`` appraisals, checkpointed after the 6th and at the end."""
    log = AuditLog(
        tmp_path / "audit.log", signer_of(key), origin="test/verifier", checkpoint_every_ns=S
    )
    for i in range(entries):
        record = {"kind": "appraisal", "device_id": f"dev-{i}", "token_digest": f"{i:064x}"}
        log.append([record], now_ns=(100 + (5 if i >= 5 else 0)) * S + i)
    log.checkpoint(200 * S)
    log.close()
    return log


def verify(log: AuditLog, key: ResultKey):
    checkpoints = read_checkpoints(log.checkpoints_path, signer_of(key).verifying_key)
    return verify_log(read_entries(log.path), checkpoints)


def test_an_untouched_log_verifies_with_its_checkpoints(tmp_path, result_key):
    log = write_log(tmp_path, result_key)
    verified = verify(log, result_key)
    assert (verified.entries, verified.checkpoints) == (10, 3)  # first append, 6th, close


def rewrite(log: AuditLog, change) -> None:
    lines = log.path.read_bytes().split(b"\n")[:-1]
    log.path.write_bytes(b"".join(line + b"\n" for line in change(lines)))


def flip(position: int):
    def change(lines):
        line = bytearray(lines[3])
        line[position] ^= 0x01
        lines[3] = bytes(line)
        return lines

    return change


def drop(lines):
    return lines[:3] + lines[4:]


def swap(lines):
    return [*lines[:3], lines[4], lines[3], *lines[5:]]


def truncate(lines):
    return lines[:4]


def edit_value(lines):
    lines[3] = lines[3].replace(b'"dev-3"', b'"dev-X"')
    return lines


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (flip(0), "entry 3 was altered"),  # no longer JSON
        (edit_value, "entry 3 was altered"),  # still JSON: the next entry's link breaks
        (flip(-3), "entry 3 was altered"),
        (drop, "entry 3 was removed"),
        (swap, "entry 3 was reordered"),
        (truncate, "entries 4 to 9 were removed"),
    ],
    ids=["flip-syntax", "edit-value", "flip-digest", "drop", "swap", "truncate"],
)
def test_tampering_is_found_and_its_spot_named(tmp_path, result_key, change, needle):
    log = write_log(tmp_path, result_key)
    rewrite(log, change)
    with pytest.raises(AuditLogError) as found:
        verify(log, result_key)
    assert found.value.reason is Reason.AUDIT_TAMPERED
    assert needle in found.value.detail


LINES = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    st.integers(1_000, 50_000).map(lambda n: b"[" * n + b"]" * n),  # past the parser's depth
    st.integers(1_000, 50_000).map(lambda n: b'{"note":' * n + b"1" + b"}" * n),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=LINES, where=st.sampled_from(["entry", "checkpoint"]))
def test_any_bytes_in_place_of_a_line_are_found_and_named(
    tmp_path_factory, result_key, line, where
):
    log = write_log(tmp_path_factory.mktemp("log"), result_key)
    path = log.path if where == "entry" else log.checkpoints_path
    lines = path.read_bytes().split(b"\n")
    lines[1] = line
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditLogError) as found:
        verify(log, result_key)
    expected = Reason.AUDIT_TAMPERED if where == "entry" else Reason.AUDIT_BAD_CHECKPOINT
    assert found.value.reason is expected


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
"""What a tampered entry's ``seq`` or ``prev`` may hold."""


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["seq", "prev"]),
    value=JSON_VALUES,
    raw=st.sampled_from(["", "1e400", "-1e400", "NaN", "Infinity", "3.0", "true"]),
)
def test_an_entry_whose_seq_or_prev_was_rewritten_is_named_never_a_crash(
    tmp_path_factory, result_key, field, value, raw
):
    log = write_log(tmp_path_factory.mktemp("log"), result_key)
    lines = log.path.read_bytes().split(b"\n")[:-1]
    document = json.loads(lines[3])
    if raw:  # a number literal the writer never writes (1e400 parses as infinity)
        lines[3] = lines[3].replace(
            f'"{field}":{json.dumps(document[field])}'.encode(), f'"{field}":{raw}'.encode()
        )
    else:
        document[field] = value
        lines[3] = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    if lines[3] == log.path.read_bytes().split(b"\n")[3]:
        return  # the same entry
    log.path.write_bytes(b"".join(line + b"\n" for line in lines))
    with pytest.raises(AuditLogError) as found:
        verify(log, result_key)
    assert found.value.reason is Reason.AUDIT_TAMPERED
    # a rewritten prev may as well be its predecessor's change: either is named
    assert found.value.detail.startswith(("entry 3 was altered", "entry 2 was altered"))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(0.0, 1.0, exclude_max=True), garbled=st.booleans())
def test_a_checkpoint_line_torn_or_garbled_at_its_end_never_stops_the_writer(
    tmp_path_factory, result_key, cut, garbled
):
    """A crash mid-write leaves part of a checkpoint line: the next append (a checkpoint
    due) drops it and appends whole lines after it, and the log verifies; a whole last
    line that does not read does not stop the writer either (audit verify names it)."""
    log = write_log(tmp_path_factory.mktemp("log"), result_key)
    lines = log.checkpoints_path.read_bytes().split(b"\n")[:-1]
    tail = b'{"note": "\n' if garbled else lines[-1][: int(cut * len(lines[-1]))]
    log.checkpoints_path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    writer = AuditLog(
        log.path, signer_of(result_key), origin="test/verifier", checkpoint_every_ns=S
    )
    writer.append([{"kind": "appraisal", "device_id": "dev-10"}], now_ns=300 * S)
    writer.close()
    if garbled:
        with pytest.raises(AuditLogError) as found:
            verify(log, result_key)
        assert found.value.reason is Reason.AUDIT_BAD_CHECKPOINT
        return
    verified = verify(log, result_key)
    assert (verified.entries, verified.checkpoints, verified.signed) == (11, 4, 11)


def test_a_first_entry_chained_to_anything_is_named_as_entry_0(tmp_path, result_key):
    log = write_log(tmp_path, result_key)
    rewrite(log, lambda lines: [lines[0].replace(b'"prev":""', b'"prev":"00"'), *lines[1:]])
    with pytest.raises(AuditLogError) as found:
        verify(log, result_key)
    assert found.value.detail.startswith("entry 0 was altered")


def test_a_log_whose_checkpoints_were_all_removed_does_not_verify(tmp_path, result_key):
    log = write_log(tmp_path, result_key)
    log.checkpoints_path.write_bytes(b"")
    with pytest.raises(AuditLogError) as found:
        verify(log, result_key)
    assert found.value.reason is Reason.AUDIT_TAMPERED
    assert "no signed checkpoint vouches for the log's 10 entries" in found.value.detail


def test_an_empty_log_without_checkpoints_verifies(tmp_path, result_key):
    (tmp_path / "audit.log").write_bytes(b"")
    assert verify_log(read_entries(tmp_path / "audit.log"), []).entries == 0


def test_the_last_entry_is_held_by_its_checkpoint(tmp_path, result_key):
    log = write_log(tmp_path, result_key)
    rewrite(log, lambda lines: [*lines[:-1], lines[-1].replace(b"dev-9", b"dev-8")])
    with pytest.raises(AuditLogError, match="entry 9 or an earlier one was altered"):
        verify(log, result_key)


def test_a_checkpoint_under_another_key_is_refused(tmp_path, result_key):
    log = write_log(tmp_path, result_key)
    with pytest.raises(AuditLogError) as refused:
        read_checkpoints(log.checkpoints_path, KeySigner.generate().verifying_key)
    assert refused.value.reason is Reason.AUDIT_BAD_CHECKPOINT


def test_a_token_has_an_inclusion_proof_at_a_checkpoint(tmp_path, result_key):
    log = write_log(tmp_path, result_key, entries=0)
    writer = AuditLog(log.path, signer_of(result_key), origin="o", checkpoint_every_ns=S)
    tokens = [f"token-{i}" for i in range(7)]
    for i, token in enumerate(tokens):
        writer.append([{"kind": "appraisal", "token_digest": sha256(token.encode()).hex()}], i)
    checkpoint = writer.checkpoint(100 * S)
    writer.close()
    proof = prove_token(read_entries(log.path), checkpoint, "token-5")
    assert proof.index == 5
    assert proof.size == 7
    assert proof.check()
    with pytest.raises(AuditLogError) as missing:
        prove_token(read_entries(log.path), checkpoint, "token-unknown")
    assert missing.value.reason is Reason.AUDIT_NOT_FOUND


def _append_many(path: str, pem: bytes, worker: int) -> None:
    from geoattest.crypto import load_private_key_pem  # noqa: PLC0415

    log = AuditLog(
        __import__("pathlib").Path(path),
        KeySigner(load_private_key_pem(pem, what="key")),
        origin="o",
        checkpoint_every_ns=10**6,
    )
    for i in range(40):
        log.append([{"kind": "admin", "who": f"w{worker}", "i": i}] * 2, now_ns=i * 10**6)
    log.close()


def test_worker_processes_append_to_one_chain(tmp_path, result_key):
    from geoattest.crypto import private_key_pem  # noqa: PLC0415

    path = tmp_path / "audit.log"
    pem = private_key_pem(result_key.private_key)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), pem, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    checkpoints = read_checkpoints(
        path.with_name("audit.log.checkpoints"), signer_of(result_key).verifying_key
    )
    assert verify_log(read_entries(path), checkpoints).entries == 3 * 40 * 2
    who = [json.loads(e)["who"] for e in read_entries(path)]
    assert sorted(set(who)) == ["w0", "w1", "w2"]


def test_audit_verify_and_prove_on_the_command_line(tmp_path, result_key, monkeypatch, capsys):
    result_key.save(tmp_path / "key")
    log = write_log(tmp_path, result_key)
    public = str(tmp_path / "key" / "public.pem")

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.argv", ["geoattest", "audit", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("verify", "--log", str(log.path), "--public-key", public)
    assert code == 0
    assert "10 entries chained, 3 signed checkpoints match" in out
    assert "signed by no checkpoint" not in out
    with log.path.open("ab") as tail:  # an entry after the newest checkpoint
        tail.write(encode_entry(10, leaf_hash(read_entries(log.path)[-1]), 300 * S, {}) + b"\n")
    code, out, _ = run("verify", "--log", str(log.path), "--public-key", public)
    assert code == 0
    assert "11 entries chained" in out
    assert "entries 10 to 10 are signed by no checkpoint yet" in out
    rewrite(log, lambda lines: lines[:-1])
    rewrite(log, drop)
    code, _, err = run("verify", "--log", str(log.path), "--public-key", public)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: audit.tampered: entry 3 was removed (found entry 4 in its place)"
    ]
