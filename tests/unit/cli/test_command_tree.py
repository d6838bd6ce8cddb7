"""Properties of every command, walked from the command line's own definitions, so a command
or an option added later is covered as it is added."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from command import assert_one_line_error, invoke
from typer.core import TyperArgument, TyperGroup, TyperOption

from geoattest.cli import app


def commands() -> Iterator[tuple[tuple[str, ...], typer.core.TyperCommand]]:
    """Every command that runs, by its words on the command line."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    todo: list[tuple[tuple[str, ...], object]] = [
        ((name,), root.get_command(None, name))
        for name in root.list_commands(None)  # type: ignore[arg-type]
    ]
    while todo:
        words, command = todo.pop()
        if isinstance(command, TyperGroup):
            todo += [((*words, name), sub) for name, sub in command.commands.items()]
        else:
            assert isinstance(command, typer.core.TyperCommand), words
            yield words, command


NUMBER_OPTIONS = sorted(
    (words, param.opts[0])
    for words, command in commands()
    for param in command.params
    if isinstance(param, TyperOption | TyperArgument)
    and param.type_descriptor.annotation is float
    and param.opts[0].startswith("--")
)


def test_the_walk_reaches_every_command_and_its_number_options() -> None:
    found = {words for words, _ in commands()}
    assert {("demo",), ("geo", "locate"), ("verifier", "licences", "apply")} <= found
    assert (("geo", "locate"), "--margin-km") in NUMBER_OPTIONS
    assert (("landmark", "keygen"), "--lat") in NUMBER_OPTIONS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e309"])
@pytest.mark.parametrize(
    ("words", "option"), NUMBER_OPTIONS, ids=[f"{' '.join(w)} {o}" for w, o in NUMBER_OPTIONS]
)
def test_no_number_option_takes_a_value_that_is_not_finite(
    words: tuple[str, ...], option: str, value: str
) -> None:
    """Refused as the command line is parsed, naming the option: a range check lets NaN
    through (every comparison with it is false), and so would a check made later."""
    result = invoke(*words, option, value)
    assert result.returncode == 2
    assert_one_line_error(result, f"'{option}'")
