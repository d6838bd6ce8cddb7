"""A small fleet of real processes (verifier, landmarks, agents) for e2e tests.

It is the demo's own machinery (``provision`` and ``start_fleet``) driven by a scenario the
test writes, plus what a test needs on top: the agents' JSON event lines, waiting for an
event with a failure guard, and a guarantee that every process started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoattest.demo.run import DemoFleet, Party, start_fleet, stop_fleet
from geoattest.demo.scenario import DemoScenario, load_scenario

GUARD_S = 90.0
"""A failure guard only: on a loaded machine things are slow, never wrong."""

# Surveyed sites (lat, lon). Frankfurt is ~150 km from the nearest foreign land, the others
# are 300-500 km from it: without a landmark in Frankfurt's data centre no bound is tight
# enough to prove a Frankfurt chip is in Germany. The data centre holds two, of
# independent operators 500 m apart, as the default policy (one lying operator) needs.
SITES = {
    "lm-fra": (50.1109, 8.6821),
    "lm-fra-2": (50.1154, 8.6821),
    "lm-zrh": (47.3769, 8.5417),
    "lm-ams": (52.3676, 4.9041),
    "lm-cdg": (48.8566, 2.3522),
}


def write_scenario(
    path: Path,
    *,
    landmarks: list[str],
    chips: list[str],
    quorum: int,
    cadence_s: float = 1.0,
    exchanges: int = 4,
) -> DemoScenario:
    """Chips in Frankfurt's data centre (landmarks lm-fra and lm-fra-2, where listed),
    licensed to Germany; each landmark is its own operator."""
    lines = [
        'name = "e2e"',
        f"cadence_s = {cadence_s}",
        f"exchanges = {exchanges}",
        f"landmarks_per_chip = {len(landmarks)}",
        f"quorum = {quorum}",
        "seed = 11",
        "[policy]",
        'id = "e2e"',
        "version = 1",
        'location = "land"',
        "[policy.regions]",
        'DE = { countries = ["DE"] }',
    ]
    for lid in landmarks:
        lat, lon = SITES[lid]
        lines += ["[[landmarks]]", f'id = "{lid}"', f'name = "{lid}"', f"lat = {lat}"]
        lines += [f"lon = {lon}"]
    lat, lon = SITES["lm-fra"]
    for device_id in chips:
        lines += ["[[chips]]", f'id = "{device_id}"', 'place = "Frankfurt data centre"']
        lines += [f"lat = {lat}", f"lon = {lon}", 'licensed_region = "DE"']
        datacentre = [lid for lid in ("lm-fra", "lm-fra-2") if lid in landmarks]
        lines += [f"datacentre_landmarks = {json.dumps(datacentre)}"]
    path.write_text("\n".join(lines) + "\n")
    return load_scenario(path)


@dataclass
class Events:
    """One agent's JSON event lines, as read so far."""

    party: Party
    seen: list[dict[str, Any]] = field(default_factory=list)

    def poll(self) -> None:
        while True:
            try:
                line = self.party.lines.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.seen.append(event)

    def results(self) -> list[dict[str, Any]]:
        self.poll()
        return [e for e in self.seen if e.get("event") == "result"]

    def wait_for(
        self, what: str, done: Callable[[list[dict[str, Any]]], bool], guard_s: float = GUARD_S
    ) -> list[dict[str, Any]]:
        """Poll until ``done(events so far)``; fail (with the agent's log) past the guard."""
        deadline = time.monotonic() + guard_s
        while True:
            self.poll()
            if done(self.seen):
                return self.seen
            if self.party.process.poll() is not None:
                raise AssertionError(f"{self.party.name} exited: {self.party.last_error()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.party.name}: no {what} within {guard_s:.0f} s")
            time.sleep(0.05)


@dataclass
class LiveFleet:
    fleet: DemoFleet
    extra: list[Party] = field(default_factory=list)
    """Parties the test started itself (a restarted verifier); stopped with the fleet."""

    def events(self, device_id: str) -> Events:
        return Events(self.fleet.agents[device_id])

    def start(self, name: str, argv: list[str]) -> Party:
        party = Party(name, argv, self.fleet.workspace.root / "logs" / f"{name}.log")
        self.extra.append(party)
        return party


@contextlib.contextmanager
def running_fleet(scenario: DemoScenario, root: Path, cadence_s: float) -> Iterator[LiveFleet]:
    """Start the fleet; stop every process, the test's own included, however it ends."""
    live = LiveFleet(start_fleet(scenario, root, cadence_s))
    try:
        yield live
    finally:
        try:
            stop_fleet(live.fleet)
        finally:
            for party in reversed(live.extra):
                party.stop()
