"""Every failure is one line of bounded length, whatever value it quotes."""

from __future__ import annotations

from pathlib import Path

from command import assert_one_line_error, run_geoattest
from hypothesis import given
from hypothesis import strategies as st

from geoattest.cli import MAX_ERROR_CHARS, error_line


@given(st.text(max_size=3 * MAX_ERROR_CHARS))
def test_an_error_is_one_bounded_line_that_keeps_its_start(message: str) -> None:
    line = error_line(message)
    assert "\n" not in line
    assert "\r" not in line
    assert len(line) <= MAX_ERROR_CHARS
    folded = "error: " + " ".join(message.split())
    kept = line if len(folded) <= MAX_ERROR_CHARS else line.rpartition("… (")[0]
    assert folded.startswith(kept)


def test_a_refused_name_of_a_hundred_thousand_characters_is_quoted_in_part(
    tmp_path: Path,
) -> None:
    result = run_geoattest("ca", "init", "--out", str(tmp_path / "ca"), "--name", "x" * 100_000)
    assert_one_line_error(result, "more characters)")
    assert len(result.stderr.strip()) <= MAX_ERROR_CHARS
