"""Reason codes are stable, unique and documented."""

from __future__ import annotations

from pathlib import Path

from geoattest.errors import ConfigError, EvidenceError, GeoattestError, Reason

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def test_reason_values_are_unique_and_namespaced():
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert all("." in v and v == v.lower() for v in values)


def test_every_reason_is_documented():
    text = DOC.read_text()
    missing = [r.value for r in Reason if f"`{r.value}`" not in text]
    assert missing == []


def test_errors_carry_their_reason_in_the_message():
    err = EvidenceError(Reason.FORK, "proof 7")
    assert isinstance(err, GeoattestError)
    assert str(err) == "proof.fork: proof 7"
    assert ConfigError("bad path").reason is Reason.BAD_CONFIG
