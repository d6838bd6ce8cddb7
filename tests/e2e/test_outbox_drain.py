"""SIGKILL the verifier while two agent processes attest, restart it on the same database:
no proof an agent was told is accepted is lost, the agents' outboxes drain, and every
device's chain in the database is contiguous (1..N, where N is the agent's own counter)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_fleet import GUARD_S, Events, LiveFleet, running_fleet, write_scenario

from geoattest.errors import ConfigError
from geoattest.verifier.store import SqlStore

CHIPS = ["chip-de-01", "chip-de-02"]
CADENCE_S = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LiveFleet]:
    scenario = write_scenario(
        tmp_path / "scenario.toml",
        landmarks=["lm-fra", "lm-zrh", "lm-ams"],
        chips=CHIPS,
        quorum=2,
        cadence_s=CADENCE_S,
    )
    with running_fleet(scenario, tmp_path / "work", CADENCE_S) as live:
        yield live


def accepted(events: Events) -> set[int]:
    return {r["counter"] for r in events.results() if r["outcome"] == "accepted"}


def pending_dir(live: LiveFleet, device_id: str) -> Path:
    return live.fleet.workspace.chip_dir(device_id) / "outbox" / "pending"


def pending_counters(live: LiveFleet, device_id: str) -> list[int]:
    return sorted(int(p.stem) for p in pending_dir(live, device_id).glob("*.proof"))


def restart_verifier(live: LiveFleet, port: int) -> bool:
    """The same command on the same database and port; if the port cannot be had, a new
    port and the agents restarted to point at it (their outboxes are on disk). Returns
    whether the agents were restarted."""
    argv = [str(a) for a in live.fleet.verifier.process.args]
    at = argv.index("--listen") + 1
    argv[at] = f"127.0.0.1:{port}"
    try:
        live.start("verifier-same-port", argv).wait_for_address()
        return False
    except ConfigError:
        argv[at] = "127.0.0.1:0"
    host, new_port = live.start("verifier-new-port", argv).wait_for_address()
    agents = {}
    for device_id, old in live.fleet.agents.items():
        old.stop()
        config_path = live.fleet.workspace.chip_dir(device_id) / "agent.json"
        config = json.loads(config_path.read_text())
        config["verifier"] = f"{host}:{new_port}"
        config_path.write_text(json.dumps(config))
        argv_agent = [str(a) for a in old.process.args]
        agents[device_id] = live.start(f"{device_id}-restarted", argv_agent)
    live.fleet.agents = agents
    return True


@pytest.mark.parametrize("port_taken", [False, True], ids=["same-port", "port-taken"])
def test_sigkilled_verifier_loses_no_acknowledged_proof_and_outboxes_drain(
    fleet: LiveFleet, port_taken: bool
):
    events = {d: fleet.events(d) for d in CHIPS}
    for e in events.values():
        e.wait_for("two accepted proofs", lambda seen: len(accepted_in(seen)) >= 2)

    verifier = fleet.fleet.verifier.process
    port = int(fleet.fleet.verifier_address.rpartition(":")[2])
    verifier.kill()  # while the agents attest: a submission may be in flight
    assert verifier.wait(timeout=30) == -signal.SIGKILL

    # While it is down the agents keep attesting into their outboxes.
    for e in events.values():
        e.wait_for(
            "a backlog while the verifier is down",
            lambda seen: any(
                x.get("event") == "unreachable" and x.get("pending", 0) >= 2 for x in seen
            ),
        )
    acked_before = {d: accepted(e) for d, e in events.items()}
    store = SqlStore.open(fleet.fleet.workspace.database)
    try:
        for device_id, acked in acked_before.items():
            lost = acked - set(store.accepted_counters(device_id))
            assert not lost, f"{device_id}: acknowledged but not in the database: {lost}"
    finally:
        store.close()
    backlog = {d: max(pending_counters(fleet, d)) for d in CHIPS}

    with contextlib.closing(socket.socket()) as squatter:
        if port_taken:  # someone else got the port first
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
        moved = restart_verifier(fleet, port)
    assert moved == port_taken
    if moved:
        events = {d: fleet.events(d) for d in CHIPS}
    for device_id, e in events.items():
        e.wait_for(
            f"the backlog up to {backlog[device_id]} accepted",
            lambda seen, n=backlog[device_id]: max(accepted_in(seen), default=0) >= n,
        )
        deadline = time.monotonic() + GUARD_S
        while pending_counters(fleet, device_id):
            assert time.monotonic() < deadline, f"{device_id}: outbox never drained"
            time.sleep(0.05)

    # A graceful stop finishes the cycle in hand, delivery included: nothing stays behind.
    for party in fleet.fleet.agents.values():
        party.stop()
        assert party.process.returncode == 0, party.last_error()
    store = SqlStore.open(fleet.fleet.workspace.database)
    try:
        for device_id in CHIPS:
            assert list(pending_dir(fleet, device_id).iterdir()) == []
            chain = json.loads(
                (fleet.fleet.workspace.chip_dir(device_id) / "outbox" / "chain.json").read_text()
            )
            stored = store.accepted_counters(device_id)
            assert stored == list(range(1, chain["counter"] + 1)), (device_id, stored)
            assert acked_before[device_id] | accepted(events[device_id]) <= set(stored)
    finally:
        store.close()


def accepted_in(seen: list[dict[str, Any]]) -> set[int]:
    return {e["counter"] for e in seen if e.get("event") == "result" and e["outcome"] == "accepted"}
