"""``geoattest attack list|run``: the attack suite from the command line.

Every scenario runs the real agent and landmark rounds over the virtual network and
appraises the proof with the real verifier, so a policy reader can see each outcome::

    geoattest attack list
    geoattest attack run --all --json

``run`` exits 1 when a scenario it ran is not defended. Every scenario is played at the
verifier's default settings (a few name the option they change), and every one is
defended there: no attack in the suite is a known residual risk.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from geoattest.attacks.scenarios import AttackScenario, Outcome

app = typer.Typer(help="Adversary scenarios against the real protocol.", no_args_is_help=True)

EXIT_NOT_DEFENDED = 1


@app.command("list")
def list_scenarios(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of {name, description}.")
    ] = False,
) -> None:
    """List the scenarios and what the adversary does in each."""
    from geoattest.attacks.catalog import SCENARIOS  # noqa: PLC0415  (the verifier stack)

    if as_json:
        print(json.dumps([{"name": s.name, "description": s.description} for s in SCENARIOS]))
        return
    width = max(len(s.name) for s in SCENARIOS)
    for s in SCENARIOS:
        print(f"{s.name:<{width}}  {s.description}")


@app.command("run")
def run_scenarios(
    name: Annotated[str | None, typer.Argument(help="Scenario to run (see 'attack list').")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per scenario.")] = False,
) -> None:
    """Run one scenario or all of them; exit 1 if any is not defended."""
    from geoattest.attacks.catalog import BY_NAME, SCENARIOS  # noqa: PLC0415

    if (name is None) == (not run_all):
        raise typer.BadParameter("give one scenario NAME or --all, not both or neither")
    chosen: tuple[AttackScenario, ...]
    if run_all:
        chosen = SCENARIOS
    else:
        assert name is not None
        scenario = BY_NAME.get(name)
        if scenario is None:
            raise typer.BadParameter(f"no scenario named {name!r} (see 'geoattest attack list')")
        chosen = (scenario,)
    outcomes = []
    for scenario in chosen:
        outcome = scenario.run()
        outcomes.append(outcome)
        if as_json:
            print(json.dumps(_as_json(scenario, outcome)), flush=True)
    if not as_json:
        _table(chosen, outcomes)
    if not all(o.defended for o in outcomes):
        raise typer.Exit(EXIT_NOT_DEFENDED)


def _verdict(outcome: Outcome) -> str:
    if outcome.verdict is None:
        return f"no verdict (device {outcome.device_state})"
    return outcome.verdict.value + (f" ({outcome.reason.value})" if outcome.reason else "")


def _defended(outcome: Outcome) -> str:
    if outcome.defended:
        return "yes"
    return f"NO (expected {outcome.expected})"


def _as_json(scenario: AttackScenario, outcome: Outcome) -> dict[str, object]:
    return {
        "name": outcome.name,
        "threat": scenario.threat,
        "description": scenario.description,
        "verdict": outcome.verdict.value if outcome.verdict else None,
        "reason": outcome.reason.value if outcome.reason else None,
        "alerts": [a.value for a in outcome.alerts],
        "expected": outcome.expected,
        "defended": outcome.defended,
        "trusted_state_moved": outcome.head_moved,
        "device_state": outcome.device_state or None,
        "licence": outcome.licence or None,
        "detail": outcome.detail,
    }


def _table(scenarios: tuple[AttackScenario, ...], outcomes: list[Outcome]) -> None:
    rows = [("scenario", "what the adversary did", "verdict", "alert", "defended")]
    rows += [
        (
            o.name,
            s.description,
            _verdict(o),
            ", ".join(a.value for a in o.alerts) or "-",
            _defended(o),
        )
        for s, o in zip(scenarios, outcomes, strict=True)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)), row[4])
    defended = sum(o.defended for o in outcomes)
    print(f"\n{defended} of {len(outcomes)} scenarios defended")
