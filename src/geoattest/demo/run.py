"""``geoattest demo``: a verifier, landmarks, an emulated Internet and a fleet of chips.

Every party is a real process on loopback (the verifier, each landmark, each chip's
agent); the network emulator runs in this process and carries every chip-to-landmark
path that crosses the Internet. Chips in a landmark's own data centre reach it directly.
Results stream from the agents (one JSON line per event on their stdout) and alerts from
the verifier's WatchAlerts stream; at the end a map of every chip's feasible region is
written, and every process is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from geoattest.address import HostPort
from geoattest.attestor.agent import agent_measurement
from geoattest.demo.scenario import ChipSite, DemoScenario
from geoattest.demo.workspace import VERIFIER_ID, Workspace, provision
from geoattest.errors import ConfigError
from geoattest.netsim.adversary import Role, Site
from geoattest.netsim.relay import Emulator
from geoattest.pki import LandmarkRegistry

_ADDRESS = re.compile(r"(\d+\.\d+\.\d+\.\d+):(\d+)")
START_TIMEOUT_S = 60.0


class Party:
    """A child process whose stdout lines are collected by a reader thread."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.lines: queue.Queue[str] = queue.Queue()
        self._log = log.open("w")
        self.process = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
            argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_address(self, timeout_s: float = START_TIMEOUT_S) -> HostPort:
        """The HOST:PORT the party prints when it is listening."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"{self.name} exited during start-up: {self.last_error()}")
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            match = _ADDRESS.search(line)
            if match and "listening" in line:
                return HostPort(match.group(1), int(match.group(2)))
        raise ConfigError(f"{self.name} did not start within {timeout_s:.0f} s")

    def last_error(self) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text().strip().splitlines()
        return text[-1] if text else f"exit status {self.process.returncode}"

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2.0)
        self._log.close()


def _geoattest(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoattest", *args]


@dataclass
class ChipView:
    """What the live table shows for one chip."""

    chip: ChipSite
    verdict: str = "…"
    reason: str = ""
    tightest_km: float | None = None
    licence: str = "grace"
    licence_until: int | None = None
    alerts: list[str] = field(default_factory=list)
    proofs: int = 0
    last_bounds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DemoFleet:
    """Everything the demo started, so that all of it is stopped."""

    workspace: Workspace
    verifier: Party
    verifier_address: str
    landmarks: dict[str, Party]
    agents: dict[str, Party]
    emulator: Emulator

    def parties(self) -> Iterator[Party]:
        yield from self.agents.values()
        yield from self.landmarks.values()
        yield self.verifier


def start_fleet(scenario: DemoScenario, root: Path, cadence_s: float | None) -> DemoFleet:
    workspace = provision(scenario, root, dt.datetime.now(dt.UTC))
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    started: list[Party] = []
    emulator: Emulator | None = None
    try:
        verifier = Party(
            "verifier",
            _geoattest(
                "verifier",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                str(workspace.database),
                "--trust-root",
                str(workspace.ca_certificate),
                "--landmarks",
                str(workspace.registry),
                "--policy",
                str(workspace.policy),
                "--licences",
                str(workspace.licences),
                "--result-key",
                str(workspace.result_key),
                "--verifier-id",
                VERIFIER_ID,
                "--quorum",
                str(scenario.quorum),
                "--measurement",
                agent_measurement().hex(),
                "--cadence-s",
                str(max(1, round(cadence_s or scenario.cadence_s))),
                "--tls",
                str(workspace.verifier_tls),
            ),
            logs / "verifier.log",
        )
        started.append(verifier)
        landmark_parties: dict[str, Party] = {}
        for site in scenario.landmarks:
            party = Party(
                site.landmark_id,
                _geoattest(
                    "landmark",
                    "serve",
                    "--key",
                    str(workspace.landmark_key(site.landmark_id)),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                ),
                logs / f"{site.landmark_id}.log",
            )
            started.append(party)
            landmark_parties[site.landmark_id] = party
        verifier_address = str(verifier.wait_for_address())
        addresses = {lid: p.wait_for_address() for lid, p in landmark_parties.items()}
        emulator = Emulator(seed=scenario.seed)
        registry = LandmarkRegistry.load(workspace.registry)
        agents: dict[str, Party] = {}
        configs = {}
        for chip in scenario.chips:
            chip_site = Site(chip.device_id, (chip.latitude, chip.longitude), Role.CHIP)
            endpoints = []
            for site in scenario.landmarks_for(chip):
                address = addresses[site.landmark_id]
                if site.landmark_id not in chip.datacentre_landmarks:
                    link = emulator.add_link(
                        chip_site,
                        Site(site.landmark_id, (site.latitude, site.longitude), Role.LANDMARK),
                        address,
                    )
                    address = HostPort(*link.address)
                record = registry.get(site.landmark_id)
                assert record is not None
                endpoints.append(
                    {
                        "id": site.landmark_id,
                        "address": str(address),
                        "public_key": record.verifying_key.der().hex(),
                    }
                )
            directory = workspace.chip_dir(chip.device_id)
            config = {
                "device_id": chip.device_id,
                "keystore": "keys",
                "outbox": "outbox",
                "verifier": verifier_address,
                "verifier_ca": str(workspace.tls_ca_certificate),
                "verifier_id": VERIFIER_ID,
                "landmarks": endpoints,
                "exchanges": scenario.exchanges,
                "cadence_s": cadence_s or scenario.cadence_s,
                "grace_s": int(3 * (cadence_s or scenario.cadence_s)),
            }
            (directory / "agent.json").write_text(json.dumps(config, indent=2) + "\n")
            configs[chip.device_id] = directory / "agent.json"
        emulator.start()
        for device_id, path in configs.items():
            party = Party(
                device_id,
                _geoattest("attestor", "run", "--config", str(path)),
                logs / f"{device_id}.log",
            )
            started.append(party)
            agents[device_id] = party
        return DemoFleet(workspace, verifier, verifier_address, landmark_parties, agents, emulator)
    except BaseException:
        for party in reversed(started):
            party.stop(grace_s=5.0)
        if emulator is not None:
            with contextlib.suppress(Exception):
                emulator.stop()
        raise


def stop_fleet(fleet: DemoFleet) -> None:
    """Agents first (they finish their cycle), then landmarks, then the verifier."""
    for party in fleet.parties():
        party.stop()
    with contextlib.suppress(ConfigError):
        fleet.emulator.stop()


class AlertWatcher:
    """Streams the verifier's alerts into a queue from a background thread."""

    def __init__(
        self, target: str, tls: Path, sink: queue.Queue[tuple[str, dict[str, Any]]]
    ) -> None:
        self._target = target
        self._tls = tls
        self._sink = sink
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._task: asyncio.Task[None] | None = None
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._watch())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)

    async def _watch(self) -> None:
        from geoattest.pki.tls import TlsIdentity  # noqa: PLC0415
        from geoattest.wire.client import (  # noqa: PLC0415
            VerifierClient,
            VerifierRefused,
            tls_credentials,
        )

        credentials = tls_credentials(TlsIdentity.load(self._tls))
        while True:
            try:
                async with VerifierClient(self._target, credentials=credentials) as client:
                    async for alert in client.watch_alerts():
                        self._sink.put(
                            (
                                "alert",
                                {
                                    "device_id": alert.device_id,
                                    "kind": alert.kind,
                                    "reason": alert.reason,
                                    "detail": alert.detail,
                                },
                            )
                        )
            except VerifierRefused:
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5.0)


def _pump(fleet: DemoFleet, sink: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
    for device_id, party in fleet.agents.items():
        while True:
            try:
                line = party.lines.get_nowait()
            except queue.Empty:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                event.setdefault("device_id", device_id)
                sink.put(("agent", event))


def run_demo(
    scenario: DemoScenario,
    *,
    duration_s: float,
    root: Path,
    out: TextIO,
    as_json: bool,
    map_path: Path | None,
    cadence_s: float | None = None,
    workspace_kept: bool = True,
) -> dict[str, Any]:
    """Run the demo; return the summary. ``duration_s`` 0 runs until interrupted.
    ``workspace_kept`` says whether ``root`` outlives the run (the summary names it only
    then; the caller removes it otherwise)."""
    from geoattest.demo.display import LiveTable, render_fleet_map  # noqa: PLC0415

    views = {chip.device_id: ChipView(chip) for chip in scenario.chips}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    fleet = start_fleet(scenario, root, cadence_s)
    watcher = AlertWatcher(fleet.verifier_address, fleet.workspace.operator_tls, events)
    table = None if as_json else LiveTable(scenario, views, out)
    deadline = time.monotonic() + duration_s if duration_s > 0 else None
    try:
        if table is not None:
            table.start()
        while deadline is None or time.monotonic() < deadline:
            _pump(fleet, events)
            _drain(events, views, counts, out if as_json else None)
            if table is not None:
                table.refresh()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if table is not None:
                table.stop()  # its last render: it can fail (stdout closed, a full disk)
        finally:
            stop_fleet(fleet)  # however the table ends, nothing the demo started outlives it
            watcher.stop()
        _pump(fleet, events)
        _drain(events, views, counts, out if as_json else None)
    jwks = json.loads((fleet.workspace.result_key / "jwks.json").read_text())
    summary = {
        "summary": {
            "scenario": scenario.name,
            "workspace": str(root) if workspace_kept else None,
            "counts": {device: dict(c) for device, c in counts.items()},
            "alerts": {d: v.alerts for d, v in views.items() if v.alerts},
        },
        "jwks": jwks,
    }
    if map_path is not None:
        render_fleet_map(map_path, scenario, views)
        summary["summary"]["map"] = str(map_path)
    if as_json:
        out.write(json.dumps(summary) + "\n")
    elif table is not None:
        table.final(summary, map_path)
    return summary


def _drain(
    events: queue.Queue[tuple[str, dict[str, Any]]],
    views: dict[str, ChipView],
    counts: dict[str, Counter[str]],
    json_out: TextIO | None,
) -> None:
    while True:
        try:
            kind, event = events.get_nowait()
        except queue.Empty:
            return
        view = views.get(str(event.get("device_id", "")))
        if view is None:
            continue
        if kind == "alert":
            view.alerts.append(str(event["kind"]))
            if json_out is not None:
                json_out.write(json.dumps({"alert": event}) + "\n")
            continue
        if event.get("event") != "result":
            continue
        verdict = str(event.get("verdict", ""))
        counts[view.chip.device_id][verdict] += 1
        view.verdict = verdict
        view.reason = str(event.get("reason", ""))
        view.proofs += 1
        bounds = event.get("bounds") or []
        view.last_bounds = bounds or view.last_bounds
        radii = [b["bound_km"] for b in bounds]
        view.tightest_km = min(radii) if radii else None
        view.licence = str(event.get("licence", ""))
        view.licence_until = event.get("licence_until")
        if json_out is not None:
            json_out.write(
                json.dumps(
                    {
                        "device_id": view.chip.device_id,
                        "true_location": {
                            "lat": view.chip.latitude,
                            "lon": view.chip.longitude,
                            "name": view.chip.place,
                        },
                        "licensed_region": view.chip.licensed_region,
                        "verdict": verdict,
                        "reason": view.reason,
                        "counter": event.get("counter"),
                        "bounds_km": radii,
                        "licence": view.licence,
                        "result_token": event.get("result_token", ""),
                    }
                )
                + "\n"
            )
            json_out.flush()


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="geoattest-demo-"))
