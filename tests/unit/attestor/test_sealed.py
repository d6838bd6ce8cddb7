"""Sealed slots: the newest state comes back as written; any edit, any older copy and a
missing file are refused, each with its own reason."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.attestor.sealed import MonotonicCounter, SealedSlot, SealingKey
from geoattest.crypto import generate_private_key
from geoattest.errors import ConfigError, Reason, SealedStateError
from geoattest.pki import ManufacturerCA

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA = ManufacturerCA.create("Sealed Test Accelerators", NOW - dt.timedelta(days=1))
KEY = SealingKey.derive(generate_private_key())


def slot_in(directory: Path, name: str = "licence", key: SealingKey = KEY) -> SealedSlot:
    return SealedSlot(directory / f"{name}.sealed", name, key, MonotonicCounter(directory / name))


def refused(slot: SealedSlot) -> Reason:
    with pytest.raises(SealedStateError) as caught:
        slot.read()
    return caught.value.reason


def test_a_slot_never_written_reads_none_and_the_newest_state_comes_back(tmp_path):
    slot = slot_in(tmp_path)
    assert slot.read() is None
    slot.write(b"one")
    slot.write(b"two")
    assert slot.read() == b"two"
    assert slot_in(tmp_path).read() == b"two"  # as a rebooted agent opens it


def test_the_file_holds_no_plaintext(tmp_path):
    slot = slot_in(tmp_path)
    slot.write(b"licence token xyz")
    assert b"licence token xyz" not in slot.path.read_bytes()


def test_a_missing_file_after_a_write_is_refused(tmp_path):
    slot = slot_in(tmp_path)
    slot.write(b"state")
    slot.path.unlink()
    assert refused(slot) is Reason.SEALED_MISSING


def test_an_unreadable_file_is_refused_as_missing_and_an_unwritable_one_is_a_clear_error(
    tmp_path,
):
    slot = slot_in(tmp_path)
    slot.write(b"state")
    slot.path.unlink()
    slot.path.mkdir()  # in the file's place
    assert refused(slot) is Reason.SEALED_MISSING
    with pytest.raises(ConfigError, match="cannot write sealed state"):
        slot.write(b"next")


def test_another_slots_file_is_refused_as_edited(tmp_path):
    licence, other = slot_in(tmp_path, "licence"), slot_in(tmp_path, "other")
    licence.write(b"a")
    other.write(b"b")
    shutil.copyfile(other.path, licence.path)
    assert refused(licence) is Reason.SEALED_EDITED


def test_another_chips_file_is_refused_as_edited(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir(), theirs.mkdir()
    slot_in(theirs, key=SealingKey.derive(generate_private_key())).write(b"theirs")
    mine_slot = slot_in(mine)
    mine_slot.write(b"mine")
    shutil.copyfile(theirs / "licence.sealed", mine_slot.path)
    assert refused(mine_slot) is Reason.SEALED_EDITED


def test_a_counter_that_went_back_is_refused_as_rolled_back(tmp_path):
    slot = slot_in(tmp_path)
    slot.write(b"one")
    slot.write(b"two")
    (tmp_path / "licence").write_text("1")
    assert refused(slot) is Reason.SEALED_ROLLED_BACK


def test_the_key_store_seals_under_its_device_key_across_reopening(tmp_path):
    store = DeviceKeyStore.provision(tmp_path / "keys", CA, device_id="d", model="m", now=NOW)
    store.sealed_slot("licence", tmp_path / "licence.sealed").write(b"kept")
    reopened = DeviceKeyStore.open(tmp_path / "keys")
    assert reopened.sealed_slot("licence", tmp_path / "licence.sealed").read() == b"kept"
    assert (tmp_path / "keys" / "counters" / "licence").read_text() == "1"


# --- properties ---------------------------------------------------------------------------


@st.composite
def edits(draw: st.DrawFn, size: int) -> tuple[str, int, int]:
    """One edit of a file of ``size`` bytes: flip bits of a byte, truncate, or append."""
    kind = draw(st.sampled_from(["flip", "truncate", "append"]))
    if kind == "flip":
        return kind, draw(st.integers(0, size - 1)), draw(st.integers(1, 255))
    if kind == "truncate":
        return kind, draw(st.integers(0, size - 1)), 0
    return kind, 0, draw(st.integers(0, 255))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), plaintext=st.binary(max_size=200))
def test_any_edit_of_a_sealed_file_is_refused_as_edited(data, plaintext):
    with tempfile.TemporaryDirectory() as directory:
        slot = slot_in(Path(directory))
        slot.write(plaintext)
        raw = slot.path.read_bytes()
        kind, at, value = data.draw(edits(len(raw)))
        if kind == "flip":
            edited = raw[:at] + bytes([raw[at] ^ value]) + raw[at + 1 :]
        elif kind == "truncate":
            edited = raw[:at]
        else:
            edited = raw + bytes([value])
        slot.path.write_bytes(edited)
        assert refused(slot) is Reason.SEALED_EDITED


@settings(max_examples=60, deadline=None)
@given(
    states=st.lists(st.binary(max_size=40), min_size=2, max_size=8),
    data=st.data(),
)
def test_any_older_copy_is_refused_once_the_counter_advanced(states, data):
    with tempfile.TemporaryDirectory() as directory:
        slot = slot_in(Path(directory))
        copies = []
        for state in states:
            slot.write(state)
            copies.append(slot.path.read_bytes())
        older = data.draw(st.integers(0, len(copies) - 2))
        slot.path.write_bytes(copies[older])
        assert refused(slot) is Reason.SEALED_ROLLED_BACK
        slot.path.write_bytes(copies[-1])
        assert slot.read() == states[-1]
