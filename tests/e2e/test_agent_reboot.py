"""SIGKILL a real agent process and start it again on the same files: the restarted agent
keeps its licence's lapse time (a licence that ran out while it was down stays lapsed, no
fresh grace period), and a sealed state rolled back to an older copy makes it boot
degraded with ``sealed.rolled_back``; fresh results license it again."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_fleet import Events, LiveFleet, running_fleet, write_scenario

from geoattest.attestor.licence import LICENCE_STATE_FILE

CHIP = "chip-de-01"
CADENCE_S = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LiveFleet]:
    scenario = write_scenario(
        tmp_path / "scenario.toml",
        landmarks=["lm-fra", "lm-fra-2", "lm-zrh", "lm-ams"],
        chips=[CHIP],
        quorum=2,
        cadence_s=CADENCE_S,
    )
    with running_fleet(scenario, tmp_path / "work", CADENCE_S) as live:
        yield live


def licensed(event: dict[str, Any]) -> bool:
    return event.get("event") == "result" and event["licence"] == "licensed"


def booted(events: Events) -> dict[str, Any]:
    seen = events.wait_for("a booted event", lambda s: any(e.get("event") == "booted" for e in s))
    return next(e for e in seen if e.get("event") == "booted")


def kill_and_restart(live: LiveFleet, name: str, before_restart: Any = None) -> Events:
    """SIGKILL the chip's agent (mid-cycle, as a power cut would), run ``before_restart``,
    then start the same command again; returns the new process's events."""
    old = live.fleet.agents[CHIP]
    old.process.kill()
    assert old.process.wait(timeout=30) == -signal.SIGKILL
    if before_restart is not None:
        before_restart()
    party = live.start(name, [str(a) for a in old.process.args])
    live.fleet.agents[CHIP] = party
    return Events(party)


def test_a_restarted_agent_keeps_its_lapse_time_and_refuses_a_rolled_back_state(
    fleet: LiveFleet,
):
    state = fleet.fleet.workspace.chip_dir(CHIP) / LICENCE_STATE_FILE
    events = fleet.events(CHIP)
    first = booted(events)
    assert first["refused"] is None
    events.wait_for("a licensing result", lambda seen: any(licensed(e) for e in seen))
    older_copy = state.read_bytes()
    copied_until = max(e["licence_until"] for e in events.seen if licensed(e))
    events.wait_for(
        "a newer licence sealed after the copy",
        lambda seen: any(licensed(e) and e["licence_until"] > copied_until for e in seen),
    )

    # Down for longer than the licence and its grace period: it lapses while off.
    def wait_out_the_licence() -> None:
        events.poll()
        last = [e for e in events.seen if e.get("event") == "result"][-1]
        # A power cut may land after the agent sealed a result it had not reported yet;
        # that result licensed it at most a few cadences further.
        until = last["degrades_at"] + 3 * CADENCE_S
        while time.time() < until + 1:
            time.sleep(0.1)

    events.poll()
    reported = [e for e in events.seen if e.get("event") == "result"][-1]["degrades_at"]
    restarted = kill_and_restart(fleet, f"{CHIP}-after-lapse", wait_out_the_licence)
    boot = booted(restarted)
    assert boot["refused"] is None
    assert boot["licence"] == "degraded"
    assert reported <= boot["degrades_at"] < time.time()  # not a fresh grace period
    restarted.wait_for("a fresh licence", lambda seen: any(licensed(e) for e in seen))

    # The older copy put back: the restarted agent refuses it and boots degraded.
    again = kill_and_restart(fleet, f"{CHIP}-rolled-back", lambda: state.write_bytes(older_copy))
    boot = booted(again)
    assert boot["refused"] == "sealed.rolled_back"
    assert boot["licence"] == "degraded"
    assert boot["licence_until"] is None
    again.wait_for("a fresh licence", lambda seen: any(licensed(e) for e in seen))
