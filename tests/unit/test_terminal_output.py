"""What the commands print on a terminal: the data in a table (ids, places, scenario names,
paths in a cost file's sources) is printed as it is, never read as rich's style tags."""

from __future__ import annotations

import ast
import io

from test_errors import ROOT, project_modules


def markup_consoles(source: str) -> list[int]:
    """The lines of ``source`` that make a rich ``Console`` without ``markup=False``."""
    tree = ast.parse(source)
    rich_names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "rich.console"
        for alias in node.names
        if alias.name == "Console"
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in rich_names
        and not any(
            k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
    ]


def test_the_rule_sees_a_console_that_reads_markup():
    source = (
        "from rich.console import Console as C\n"
        "a = C()\n"
        "b = C(width=3, markup=False)\n"
        "c = C(markup=True)\n"
        "d = Console()\n"  # not rich's: the operator's web console has its own Console
    )
    assert markup_consoles(source) == [2, 4]


def test_every_rich_console_prints_text_as_it_is():
    """A ``[/x]`` in a printed value was a MarkupError traceback, and ``[b]`` set the rest
    in bold and vanished: markup is off on every console the project makes."""
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in project_modules()
        if (lines := markup_consoles(path.read_text()))
    }
    assert offenders == {}


def test_the_demo_table_shows_chips_with_and_without_a_verdict():
    """The live table of a run stopped before some chip's first verdict (the demo's
    first refresh on a terminal, or Ctrl-C in its first seconds) ended in a traceback."""
    from geoattest.demo.display import LiveTable  # noqa: PLC0415 (loads matplotlib)
    from geoattest.demo.run import ChipView  # noqa: PLC0415
    from geoattest.demo.scenario import default_scenario_path, load_scenario  # noqa: PLC0415

    scenario = load_scenario(default_scenario_path())
    first, second = scenario.chips[:2]
    views = {
        first.device_id: ChipView(first, verdict="REJECTED", reason="[proof.fork]"),
        second.device_id: ChipView(second),
    }
    out = io.StringIO()
    table = LiveTable(scenario, views, out)
    table.start()
    table.refresh()
    table.stop()
    shown = out.getvalue()
    assert "REJECTED ([proof.fork])" in shown
    assert second.device_id in shown
    assert "…" in shown
