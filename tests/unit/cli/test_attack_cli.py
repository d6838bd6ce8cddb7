"""``geoattest attack``: list, run, exit status, errors; one scenario through the real console
script, the other cases in process through the same entry point (``invoke``)."""

from __future__ import annotations

import json

import pytest
from command import assert_one_line_error, invoke, main_error, run_geoattest

from geoattest.attacks.catalog import SCENARIOS


def test_list_json_names_every_scenario_with_its_description() -> None:
    result = invoke("attack", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed == [{"name": s.name, "description": s.description} for s in SCENARIOS]


def test_run_one_defended_scenario_as_json_exits_zero() -> None:
    result = run_geoattest("attack", "run", "replayed_proof", "--json")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    outcome = json.loads(line)
    assert outcome["name"] == "replayed_proof"
    assert outcome["verdict"] == "REJECTED"
    assert outcome["reason"] == "proof.replayed"
    assert outcome["expected"] == "REJECTED proof.replayed"
    assert outcome["defended"] is True
    assert outcome["detail"]


@pytest.mark.slow
def test_run_all_reports_every_scenario_defended_at_the_default_settings() -> None:
    result = run_geoattest("attack", "run", "--all", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["name"] for o in outcomes] == [s.name for s in SCENARIOS]
    assert all(o["defended"] for o in outcomes)


def test_a_heartbeat_scenario_reports_no_verdict_and_the_device_state() -> None:
    result = invoke("attack", "run", "heartbeat_firewalled", "--json")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["verdict"] is None
    assert outcome["alerts"] == ["STALE_DEVICE"]
    assert outcome["device_state"] == "STALE"
    assert outcome["licence"] == "degraded"
    assert outcome["defended"] is True


def test_run_table_has_a_row_per_scenario_and_says_what_was_defended() -> None:
    result = invoke("attack", "run", "cloned_key_forks_the_chain")
    assert result.returncode == 0, result.stderr
    header, row, *_, summary = result.stdout.splitlines()
    assert header.split()[:2] == ["scenario", "what"]
    assert row.startswith("cloned_key_forks_the_chain")
    assert "REJECTED (proof.fork)" in row
    assert "CLONE" in row
    assert row.endswith("yes")
    assert summary == "1 of 1 scenarios defended"


def test_unknown_scenario_and_missing_choice_are_one_line_errors() -> None:
    assert_one_line_error(invoke("attack", "run", "no_such_attack"), "no_such_attack")


@pytest.mark.parametrize(
    ("args", "needle"), [((), "NAME or --all"), (("replayed_proof", "--all"), "--all")]
)
def test_a_missing_or_double_choice_is_a_one_line_error(
    args: tuple[str, ...],
    needle: str,
) -> None:
    assert needle in main_error("attack", "run", *args)
