"""``geoattest plan cost``'s fleet values on the command line: a bad one is refused naming
the option the user typed, in process through the console script's entry point."""

from __future__ import annotations

import pytest
import typer
from command import assert_one_line_error, invoke

from geoattest.cli.plan import app
from geoattest.cli.plan_cost import FLEET_OPTIONS

BAD_VALUES = {
    "--chips": "abc",
    "--cadence": "-5",
    "--grace": "-1",
    "--years": "0",
    "--landmark-faults": "-1",
    "--landmarks": "leased",
}


def test_every_fleet_option_is_an_option_of_the_command_and_tried_here() -> None:
    command = typer.main.get_group(app).commands["cost"]
    options = {name for param in command.params for name in param.opts}
    assert set(FLEET_OPTIONS.values()) <= options
    assert set(BAD_VALUES) == set(FLEET_OPTIONS.values())


@pytest.mark.parametrize("option", sorted(BAD_VALUES))
def test_a_bad_fleet_value_is_refused_naming_its_option(option: str) -> None:
    """The cost file's names differ (``cadence_s`` is ``--cadence``): the error names the
    option, not an option that does not exist."""
    assert_one_line_error(invoke("plan", "cost", option, BAD_VALUES[option]), f"({option})")
