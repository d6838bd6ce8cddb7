"""Every option that names a PNG to write: a name the command cannot write as a PNG at
exactly that path (another suffix, none, a folder, a missing folder) is refused at once,
with one line and exit 2, before any work and without writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from command import invoke, main_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PNG_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "geo locate": (("geo", "locate", "--landmark", "50.1,8.7,5", "--allow", "DE"), "--map"),
    "sim fleet": (("sim", "fleet", "--devices", "5"), "--map"),
    "plan coverage": (("plan", "coverage", "--region", "DE"), "--out"),
    "demo": (("demo",), "--map"),
    "bench scale": (("bench", "scale", "--quick"), "--plot"),
}
"""Each command with an option naming a PNG, its other arguments, and that option."""


def _refused(command: str, target: Path, *needles: str) -> None:
    args, option = PNG_OPTIONS[command]
    before = sorted(target.parent.iterdir()) if target.parent.is_dir() else None
    line = main_error(*args, option, str(target))
    assert option in line
    for needle in needles:
        assert needle in line, line
    if before is not None:
        assert sorted(target.parent.iterdir()) == before


@pytest.mark.parametrize("command", sorted(PNG_OPTIONS))
@pytest.mark.parametrize("name", ["map.txt", "map", "map.pdf", "map.png.bak"])
def test_a_name_that_is_not_a_png_is_refused(command: str, name: str, tmp_path: Path) -> None:
    _refused(command, tmp_path / name, ".png")


@pytest.mark.parametrize("command", sorted(PNG_OPTIONS))
def test_a_folder_or_a_missing_folder_is_refused(command: str, tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    _refused(command, tmp_path / "dir.png", "is a directory")
    _refused(command, tmp_path / "missing" / "map.png", "does not exist")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        max_size=8,
    )
)
def test_any_suffix_but_png_is_refused_before_work(suffix: str, tmp_path: Path) -> None:
    target = tmp_path / f"map{suffix}"
    if target.suffix.lower() == ".png" or target.exists():
        return
    _refused("geo locate", target, ".png")


def test_a_png_name_is_written_exactly_there(tmp_path: Path) -> None:
    target = tmp_path / "situation.png"
    args, option = PNG_OPTIONS["geo locate"]
    result = invoke(*args, option, str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["situation.png"]
