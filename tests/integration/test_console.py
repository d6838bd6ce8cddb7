"""The console over a real store, served by uvicorn on loopback and read over HTTP: the
fleet map draws every chip in its verdict's colour, a device page shows its history, the
landmark pages their states, the event stream carries a new alert, and the token
inspector checks real tokens against the verifier's published keys (over gRPC).

The browser's side of the same pages is tests/e2e/test_console_browser.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from command import assert_one_line_error, run_geoattest
from verifier_world import ProvisionedChip, ServerThread, VerifierWorld

from geoattest.console.app import ConsoleFiles, console_app, load_console
from geoattest.console.svg import VERDICT_COLOURS
from geoattest.units import SECOND_NS
from geoattest.verifier.service import VerifierService
from geoattest.verifier.store import SqlStore

GUARD_S = 30.0
"""A failure guard only."""


@dataclass
class Served:
    world: VerifierWorld
    service: VerifierService
    url: str
    tokens: dict[str, str]
    chips: dict[str, ProvisionedChip]


def start_console(files: ConsoleFiles) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The console app on a free loopback port, served by uvicorn in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(console_app(load_console(files)), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    give_up = time.monotonic() + GUARD_S
    while not server.started:
        assert time.monotonic() < give_up, "the console did not start"
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    world = VerifierWorld.create(tmp_path_factory.mktemp("console"))
    world.serve_args()  # writes the registry and the policy, as an operator would
    store = SqlStore.open(world.db_path)
    service = world.service(store)
    now_ns = time.time_ns()
    tokens, chips = {}, {}
    for device_id in ("dev-1", "dev-2", "dev-syd"):
        chip = chips[device_id] = world.chip(device_id)
        service.enrol(chip.identity(), chip.possession(), now_ns)
        result = service.submit(world.proof(chip, unix_ns=now_ns - SECOND_NS), now_ns)
        tokens[device_id] = result.token
    grpc_server = ServerThread(service, clock=time.time_ns)
    target = grpc_server.start()
    files = ConsoleFiles(
        world.db_path, world.root / "policy.json", world.root / "landmarks.json", verifier=target
    )
    url, server, thread = start_console(files)
    yield Served(world, service, url, tokens, chips)
    server.should_exit = True
    thread.join(GUARD_S)
    grpc_server.stop()
    store.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=GUARD_S) as response:
        return response.read().decode()


def post(url: str, fields: dict[str, str]) -> str:
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(url, data=data, timeout=GUARD_S) as response:
        return response.read().decode()


def chips_on_map(page: str) -> dict[str, tuple[str, str]]:
    """Each chip marker's device and (verdict, fill colour)."""
    found = {}
    for attributes in re.findall(r'<g class="chip" ([^>]*)>', page):
        verdict = re.search(r'data-verdict="(\w+)"', attributes)
        devices = re.search(r'data-devices="([^"]*)"', attributes)
        fill = re.search(r'fill="(#\w+)"', attributes)
        assert verdict
        assert devices
        assert fill
        for device_id in devices.group(1).split():
            found[device_id] = (verdict.group(1), fill.group(1))
    return found


def test_the_fleet_map_draws_every_chip_in_its_verdict_colour(served):
    page = get(served.url + "/")
    assert chips_on_map(page) == {
        "dev-1": ("ALLOWED", VERDICT_COLOURS["ALLOWED"]),
        "dev-2": ("ALLOWED", VERDICT_COLOURS["ALLOWED"]),
        "dev-syd": ("OUTSIDE", VERDICT_COLOURS["OUTSIDE"]),
    }
    assert 'class="licensed"' in page
    assert page.count('class="landmark landmark-active"') == 4
    assert "https://" not in page
    assert "http://" not in page.replace('"http://www.w3.org', "")
    assert chips_on_map(get(served.url + "/fleet/map.svg")) == chips_on_map(page)
    counts = json.loads(get(served.url + "/fleet.json"))
    assert counts["verdicts"] == {"ALLOWED": 2, "OUTSIDE": 1}
    assert counts["states"]["ATTESTING"] == 3


def test_a_device_page_shows_its_licence_history_and_tokens(served):
    page = get(served.url + "/devices/dev-syd")
    assert "SYD-300" in page
    assert page.count("class='proof'") == 1
    assert "data-verdict='OUTSIDE'" in page
    assert served.tokens["dev-syd"] in page
    assert "OUTSIDE_LICENSED_REGION" in page
    assert 'id="fixes"' in page
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(served.url + "/devices/no-such-chip")
    assert missing.value.code == 404


def test_the_landmark_pages_show_sites_operators_and_states(served):
    page = get(served.url + "/landmarks")
    assert page.count("<td class='state'>active</td>") == 4
    assert "lm-fra" in get(served.url + "/landmarks/lm-fra")


def test_the_alert_feed_filters_by_kind_and_device(served):
    assert "dev-syd" in get(served.url + "/alerts?kind=OUTSIDE_LICENSED_REGION")
    assert "class='alert'" not in get(served.url + "/alerts?kind=CLONE")
    assert "class='alert'" not in get(served.url + "/alerts?device=dev-1")


def test_the_token_inspector_accepts_a_real_token_and_rejects_a_tampered_one(served):
    token = served.tokens["dev-1"]
    assert "<b>VALID</b>" in post(served.url + "/tokens", {"token": token})
    header, claims, signature = token.split(".")
    flipped = "B" if signature[10] == "A" else "A"
    tampered = ".".join((header, claims, signature[:10] + flipped + signature[11:]))
    page = post(served.url + "/tokens", {"token": tampered})
    assert "<b>INVALID</b>: the signature does not verify" in page
    assert "not a JWT" in post(served.url + "/tokens", {"token": "junk"})


def test_the_event_stream_carries_an_alert_raised_after_it_opened(served):
    rows = re.findall(r"<tr class='alert'[^>]*><td>(\d+)", get(served.url + "/alerts"))
    cursor = max(int(row) for row in rows)
    request = urllib.request.urlopen(f"{served.url}/events?cursor={cursor}", timeout=GUARD_S)
    now_ns = time.time_ns()
    chip = served.chips["dev-syd"]
    served.service.submit(served.world.proof(chip, unix_ns=now_ns - SECOND_NS // 2), now_ns)
    lines: list[str] = []
    while not any("dev-syd" in line for line in lines):
        lines.append(request.readline().decode())
    request.close()
    assert any(line.startswith("event: alert") for line in lines)


def test_a_missing_database_or_a_port_in_use_is_a_one_line_error(served, tmp_path):
    files = ["--policy", str(served.world.root / "policy.json")]
    files += ["--landmarks", str(served.world.root / "landmarks.json")]
    missing = run_geoattest("console", "--db", str(tmp_path / "none.db"), *files)
    assert_one_line_error(missing, "none.db")
    port = served.url.rpartition(":")[2]
    taken = run_geoattest(
        "console", "--db", str(served.world.db_path), *files, "--listen", f"127.0.0.1:{port}"
    )
    assert_one_line_error(taken, f"127.0.0.1:{port}")
