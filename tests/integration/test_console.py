"""The console over a real store, served by uvicorn on loopback and read over HTTP: the
fleet map draws every chip in its verdict's colour, a device page shows its history, the
landmark pages their states, the event stream carries a new alert, and the token
inspector checks real tokens against the verifier's published keys (over gRPC).

The browser's side of the same pages is tests/e2e/test_console_browser.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from command import GEOATTEST, assert_one_line_error, main_error, run_geoattest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgres import postgres_server, server_processes, signal_all
from starlette.routing import Route
from verifier_world import ProvisionedChip, ServerThread, VerifierWorld

from geoattest.console.app import (
    MAX_FORM_BYTES,
    MAX_TOKEN_CHARS,
    ConsoleFiles,
    console_app,
    load_console,
)
from geoattest.console.https import server_config
from geoattest.console.svg import VERDICT_COLOURS
from geoattest.crypto import KeySigner
from geoattest.errors import ConfigError, Reason
from geoattest.pki import LandmarkRecord
from geoattest.pki.keyfiles import KEY_FILE
from geoattest.pki.tls import CA_FILE, CERT_FILE, OperatorCA, Role, TlsIdentity
from geoattest.units import SECOND_NS
from geoattest.verifier.access import HttpsAccess, ServerTls
from geoattest.verifier.service import VerifierService
from geoattest.verifier.store import SCHEMA_VERSION, SqlStore, StoreNotAnsweringError

GUARD_S = 30.0
"""A failure guard only."""
CONSOLE_ROUTES = ("/", "/fleet/map.svg", "/fleet.json", "/alerts", "/events", "/devices/dev-1")
CONSOLE_ROUTES += ("/landmarks", "/landmarks/lm-fra", "/tokens", "/static/console.js")
REFUSED_ROLES = (Role.RELYING_PARTY, Role.AUDITOR, Role.LANDMARK, Role.MONITOR)


@dataclass
class Served:
    world: VerifierWorld
    service: VerifierService
    url: str
    tokens: dict[str, str]
    chips: dict[str, ProvisionedChip]
    routes: list[Route]


def start_console(
    files: ConsoleFiles, access: HttpsAccess | None = None
) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The console app on a free loopback port, served by uvicorn in a thread (HTTPS with
    ``access``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = console_app(load_console(files), access)
    server = uvicorn.Server(server_config(app, access, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    give_up = time.monotonic() + GUARD_S
    while not server.started:
        assert time.monotonic() < give_up, "the console did not start"
        time.sleep(0.01)
    scheme = "https" if access else "http"
    return f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", server, thread


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
    routes = [route for route in server.config.app.routes if isinstance(route, Route)]
    yield Served(world, service, url, tokens, chips, routes)
    server.should_exit = True
    thread.join(GUARD_S)
    grpc_server.stop()
    store.close()


def get(url: str, context: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, timeout=GUARD_S, context=context) as response:
        return response.read().decode()


def served_again(url: str) -> str:
    """The page, once the console's probe has seen the database answer again (it probes
    every second; until then pages are 503)."""
    for _ in range(600):
        try:
            return get(url)
        except urllib.error.HTTPError as refused:
            if refused.code != 503:
                raise
        time.sleep(0.1)
    raise AssertionError(f"{url} never served again")


def post(url: str, fields: dict[str, str], context: ssl.SSLContext | None = None) -> str:
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(url, data=data, timeout=GUARD_S, context=context) as response:
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


@pytest.mark.parametrize("cursor", ["-1", str(2**63), "9" * 30, "x", str(10**12)])
def test_an_event_stream_from_a_cursor_no_alert_can_have_replays_from_the_start(served, cursor):
    with urllib.request.urlopen(f"{served.url}/events?cursor={cursor}", timeout=GUARD_S) as stream:
        lines = [stream.readline().decode()]
        while lines[-1] and not any("dev-syd" in line for line in lines):
            lines.append(stream.readline().decode())
    assert any(line.startswith("event: alert") for line in lines), lines


def alert_ids_before_the_fleet(stream) -> list[int]:
    """The ids of the alert events a stream sends before its first fleet event (which
    follows the alerts stored when it opened)."""
    ids, line = [], "x"
    while line and not line.startswith("event: fleet"):
        line = stream.readline().decode()
        if line.startswith("id: "):
            ids.append(int(line[4:]))
    return ids


def test_a_reconnecting_stream_resumes_after_the_last_alert_it_received(served):
    """Each alert event's id is its cursor; a browser reconnecting sends the last one as
    Last-Event-ID, and the stream carries on after it, whatever cursor its URL names."""
    with urllib.request.urlopen(f"{served.url}/events?cursor=0", timeout=GUARD_S) as stream:
        ids = alert_ids_before_the_fleet(stream)
    assert ids
    assert ids == sorted(ids)
    request = urllib.request.Request(
        f"{served.url}/events?cursor=0", headers={"Last-Event-ID": str(ids[0])}
    )
    with urllib.request.urlopen(request, timeout=GUARD_S) as stream:
        assert alert_ids_before_the_fleet(stream) == ids[1:]


def test_a_token_nested_past_any_parser_is_shown_as_not_a_token(served):
    deep = base64.urlsafe_b64encode(b"[" * 20_000 + b"]" * 20_000).decode()
    assert "not a JWT" in post(served.url + "/tokens", {"token": f"{deep}.{deep}.c2ln"})


def answer(url: str, path: str, host: str | None = None, method: str = "GET"):
    """``method`` on ``path`` with the Host header ``host`` (None: the URL's), as a page
    elsewhere that points its own name at this address would send it."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=GUARD_S)
    headers = {"Host": host} if host is not None else {}
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    if path == "/events" and response.status == 200:
        response.fp.readline()  # the stream stays open: its first line is enough
    else:
        response.read()
    connection.close()
    return response


def assert_hardened(response) -> None:
    """The console's security headers: only its own script runs, no other site frames it."""
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.partition("script-src")[2].partition(";")[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_all("cache-control") in (["no-store"], ["no-cache"])


@pytest.mark.parametrize("route", [*CONSOLE_ROUTES, "/devices/no-such-chip", "/no-such-page"])
def test_every_response_carries_the_security_headers(served, route):
    assert_hardened(answer(served.url, route))


def test_a_page_elsewhere_cannot_be_framed_or_script_the_console_over_https(served_tls):
    operator = served_tls.context(Role.OPERATOR.value)
    for route in CONSOLE_ROUTES:
        request = urllib.request.urlopen(served_tls.url + route, timeout=GUARD_S, context=operator)
        assert_hardened(request)
        request.close()
    assert_hardened(refusal(served_tls.url + "/", served_tls.context(Role.AUDITOR.value)))


OTHER_HOSTS = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){1,3}\Z").filter(
        lambda name: not name.endswith(".localhost")
    ),
    st.ip_addresses()
    .filter(lambda ip: not ip.is_loopback)
    .map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(host=OTHER_HOSTS, port=st.integers(1, 65535), route=st.sampled_from(CONSOLE_ROUTES))
def test_plain_http_refuses_a_request_for_a_host_that_is_not_loopback(served, host, port, route):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 would be
    same-origin with the console's answers; they are refused, naming the reason."""
    refused = answer(served.url, route, f"{host}:{port}")
    assert refused.status == 403
    assert refused.headers["geoattest-reason"] == Reason.PLAINTEXT_NOT_LOOPBACK.value
    assert_hardened(refused)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "127.0.0.2", "[::1]"])
def test_plain_http_answers_requests_for_a_loopback_host(served, host):
    port = served.url.rpartition(":")[2]
    for named in (host, f"{host}:{port}"):
        assert answer(served.url, "/", named).status == 200
        assert answer(served.url, "/events", named).status == 200


def refused_typed(url: str, method: str, path: str) -> tuple[int, Reason, dict[str, str]]:
    """A request the console refuses: its status, the reason code its header names (which
    the page names too) and its headers; never a server error."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=GUARD_S)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert 400 <= response.status < 500, (method, path, response.status)
    reason = Reason(response.headers["geoattest-reason"])
    assert method == "HEAD" or f"<code>{reason.value}</code>" in body
    return response.status, reason, dict(response.headers)


METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def test_every_route_refuses_the_methods_it_does_not_answer_with_a_typed_405(served):
    """Walked from the console's own routes, so a new page is covered as it is added."""
    assert {route.path for route in served.routes} >= {"/", "/tokens", "/events"}
    for route in served.routes:
        path = route.path.replace("{device_id:path}", "dev-1")
        path = path.replace("{landmark_id:path}", "lm-fra")
        for method in set(METHODS) - (route.methods or set()):
            status, reason, headers = refused_typed(served.url, method, path)
            assert (status, reason) == (405, Reason.WRONG_METHOD)
            assert set(headers["allow"].split(", ")) == route.methods


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/no-such-page", Reason.NO_SUCH_PAGE),
        ("/static/..%2f..%2fapp.py", Reason.NO_SUCH_PAGE),
        ("/%2e%2e/%2e%2e/etc/passwd", Reason.NO_SUCH_PAGE),
        ("/landmarks/%3Cimg%20src%3Dx%3E", Reason.NO_SUCH_PAGE),
        ("/landmarks/", Reason.NO_SUCH_PAGE),
        ("/devices/..%2F..%2Fetc%2Fpasswd", Reason.UNKNOWN_DEVICE),
        ("/devices/%3Cscript%3Ealert(1)%3C%2Fscript%3E", Reason.UNKNOWN_DEVICE),
        ("/devices/%ff%fe%00", Reason.UNKNOWN_DEVICE),
        ("/devices/", Reason.UNKNOWN_DEVICE),
    ],
)
def test_a_page_that_is_not_there_is_a_typed_404(served, path, reason):
    assert refused_typed(served.url, "GET", path)[:2] == (404, reason)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(METHODS),
    segments=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4),
)
def test_any_path_is_a_page_or_a_typed_refusal(served, method, segments):
    """Never a server error, and never an untyped refusal, whatever the path holds."""
    path = "/" + "/".join(urllib.parse.quote(s.encode("utf-8", "surrogatepass")) for s in segments)
    if path.startswith("/events") and method in ("GET", "HEAD"):
        return  # the stream answers and stays open
    response = answer(served.url, path, method=method)
    assert response.status < 500
    if response.status >= 400:
        assert Reason(response.headers["geoattest-reason"])


def post_raw(url: str, headers: dict[str, str], body: bytes | Iterator[bytes] = b""):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=GUARD_S)
    connection.putrequest("POST", "/tokens")
    for name, value in {"Content-Type": "application/x-www-form-urlencoded", **headers}.items():
        connection.putheader(name, value)
    connection.endheaders()
    chunked = not isinstance(body, bytes)
    for chunk in [body] if isinstance(body, bytes) else body:
        connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
    if chunked:
        connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_a_token_form_past_its_bound_is_refused_before_it_is_read(served):
    """A body past the token form's bound is 413 wire.oversized_message: by its declared
    length before any of it arrives, or as it streams in; a token of the longest length
    the inspector takes is still inspected."""
    declared = post_raw(served.url, {"Content-Length": str(10**12)})
    assert declared.status == 413
    assert declared.headers["geoattest-reason"] == Reason.OVERSIZED_MESSAGE.value
    assert_hardened(declared)
    chunks = (b"token=" + b"A" * 65_536 for _ in range(8))
    streamed = post_raw(served.url, {"Transfer-Encoding": "chunked"}, chunks)
    assert streamed.status == 413
    longest = {"token": "/" * MAX_TOKEN_CHARS}  # each character percent-encoded
    assert len(urllib.parse.urlencode(longest)) <= MAX_FORM_BYTES
    assert "not a JWT" in post(served.url + "/tokens", longest)


def test_a_missing_database_or_a_port_in_use_is_a_one_line_error(served, tmp_path):
    files = ["--plaintext", "--policy", str(served.world.root / "policy.json")]
    files += ["--landmarks", str(served.world.root / "landmarks.json")]
    missing = run_geoattest("console", "--db", str(tmp_path / "none.db"), *files)
    assert_one_line_error(missing, "none.db")
    port = served.url.rpartition(":")[2]
    taken = run_geoattest(
        "console", "--db", str(served.world.db_path), *files, "--listen", f"127.0.0.1:{port}"
    )
    assert_one_line_error(taken, f"127.0.0.1:{port}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_console_command_stops_on_a_signal_and_exits_0(served, signum):
    """A serving command asked to stop drains and exits 0, as ``verifier serve`` and
    ``landmark serve`` do (a service manager counts 130 or 143 as a failure)."""
    root = served.world.root
    process = subprocess.Popen(
        [
            GEOATTEST, "console", "--db", str(served.world.db_path),
            "--policy", str(root / "policy.json"), "--landmarks", str(root / "landmarks.json"),
            "--listen", "127.0.0.1:0", "--plaintext",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("console on http://"), line
        assert "Fleet" in get(line.split()[-1])
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=GUARD_S)
    finally:
        process.kill()
        process.wait()
    assert (process.returncode, stderr) == (0, "")


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        (None, "holds no verifier's data"),
        (SCHEMA_VERSION - 1, "run 'geoattest verifier migrate' first"),
        (SCHEMA_VERSION + 1, "a newer verifier wrote it"),
    ],
    ids=["empty", "older", "newer"],
)
def test_the_console_reads_only_a_database_of_its_verifiers_schema(
    served, tmp_path, schema, needle
):
    """A database of another schema version is refused as the verifier refuses it: its
    tables would not mean what the console reads them as (whether an ALLOWED still stands
    above all); an older one was served, and an empty file failed on its first page."""
    db = tmp_path / "v.db"
    db.write_bytes(b"")
    if schema is not None:
        with sqlite3.connect(served.world.db_path) as source, sqlite3.connect(db) as copy:
            source.backup(copy)
            copy.execute("UPDATE schema_version SET version = ?", (schema,))
    root = served.world.root
    result = run_geoattest(
        "console", "--db", str(db), "--policy", str(root / "policy.json"),
        "--landmarks", str(root / "landmarks.json"), "--listen", "127.0.0.1:0", "--plaintext",
        timeout=GUARD_S,
    )  # fmt: skip
    assert_one_line_error(result, needle)


def test_revocations_and_registrations_in_the_store_show_as_the_verifier_judges_them(tmp_path):
    """Made through the admin API of any replica, they are the store's: the console adds
    them to its files' registry and revocation list, as every verifier does."""
    world = VerifierWorld.create(tmp_path)
    world.serve_args()
    store = SqlStore.open(world.db_path)
    chip = world.chip("dev-1")
    world.service(store).enrol(chip.identity(), chip.possession(), time.time_ns())
    new = LandmarkRecord("lm-new", 50.0, 8.5, KeySigner.generate().verifying_key, "", "op-new")
    store.register_landmark(new, 1, by="operator-1")
    han = world.landmarks["lm-han"].verifying_key.key_id
    store.revoke_landmark("lm-han", han, 1, by="operator-1", why="key leaked")
    store.revoke_device("dev-1", 1, by="operator-1", why="stolen")
    files = ConsoleFiles(world.db_path, world.root / "policy.json", world.root / "landmarks.json")
    url, server, thread = start_console(files)
    try:
        rows = re.findall(
            r"<tr data-landmark='([^']+)'>.*?<td class='state'>(\w+)</td>", get(url + "/landmarks")
        )
        device = get(url + "/devices/dev-1")
    finally:
        server.should_exit = True
        thread.join(GUARD_S)
        store.close()
    assert dict(rows) == {
        "lm-dar": "active",
        "lm-fra": "active",
        "lm-han": "revoked",
        "lm-new": "active",
        "lm-wie": "active",
    }
    assert "REVOKED" in device


def test_an_allowed_an_operator_took_away_is_never_shown_as_standing(tmp_path):
    """The device page reads the standing as the verifier's status does; the fleet map and
    counts draw an ALLOWED whose licence was withdrawn, or whose device was revoked and
    restored since, as LAPSED (within a refresh), never as ALLOWED; the token inspector
    calls the withdrawn device's token valid (it is, until its exp) and says its last
    verdict no longer stands."""
    world = VerifierWorld.create(tmp_path)
    world.serve_args()
    store = SqlStore.open(world.db_path)
    service = world.service(store)
    now_ns = time.time_ns()
    tokens = {}
    for device_id in ("dev-1", "dev-2", "dev-3"):
        chip = world.chip(device_id)
        service.enrol(chip.identity(), chip.possession(), now_ns)
        tokens[device_id] = service.submit(
            world.proof(chip, unix_ns=now_ns - SECOND_NS), now_ns
        ).token
    grpc_server = ServerThread(service, clock=time.time_ns)
    files = ConsoleFiles(
        world.db_path,
        world.root / "policy.json",
        world.root / "landmarks.json",
        verifier=grpc_server.start(),
    )
    url, server, thread = start_console(files)
    try:
        before = get(url + "/devices/dev-1")
        inspected_before = post(url + "/tokens", {"token": tokens["dev-1"]})
        service.licences.withdraw("dev-1", time.time_ns())
        store.revoke_device("dev-2", time.time_ns(), by="op", why="stolen")
        store.restore_device("dev-2", time.time_ns(), by="op", why="found")
        after = get(url + "/devices/dev-1")
        give_up = time.monotonic() + GUARD_S
        while json.loads(get(url + "/fleet.json"))["verdicts"] != {"ALLOWED": 1, "LAPSED": 2}:
            assert time.monotonic() < give_up, get(url + "/fleet.json")
            time.sleep(0.2)
        drawn = chips_on_map(get(url + "/"))
        inspected = post(url + "/tokens", {"token": tokens["dev-1"]})
    finally:
        server.should_exit = True
        thread.join(GUARD_S)
        grpc_server.stop()
        store.close()
    assert "<b>VALID</b>" in inspected_before
    assert "data-standing='STANDS'" in inspected_before
    assert "<b>VALID</b>" in inspected
    assert "data-standing='LICENCE_WITHDRAWN'" in inspected
    assert "data-standing='STANDS'" in before
    assert "data-standing='LICENCE_WITHDRAWN'" in after
    assert "no longer stands: the licence was withdrawn" in after
    assert drawn == {
        "dev-1": ("LAPSED", VERDICT_COLOURS["LAPSED"]),
        "dev-2": ("LAPSED", VERDICT_COLOURS["LAPSED"]),
        "dev-3": ("ALLOWED", VERDICT_COLOURS["ALLOWED"]),
    }


# --- over HTTPS, for the operator only --------------------------------------------------


@dataclass
class ServedTls:
    url: str
    parties: Path
    """One ``tls issue`` directory per role, by its name, and ``foreign`` (another CA)."""

    def context(self, party: str | None) -> ssl.SSLContext:
        """A client that checks the console against the operator CA and presents
        ``party``'s certificate (none: no certificate)."""
        context = ssl.create_default_context(cafile=self.parties / "server" / CA_FILE)
        if party is not None:
            directory = self.parties / party
            context.load_cert_chain(directory / CERT_FILE, directory / KEY_FILE)
        return context


@pytest.fixture(scope="module")
def served_tls(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedTls]:
    """The console over HTTPS, and the verifier it asks for keys over mutual TLS, with
    certificates made as ``geoattest tls init`` and ``tls issue`` make them."""
    root = tmp_path_factory.mktemp("console-tls")
    now = dt.datetime.now(dt.UTC)
    ca = OperatorCA.create("Console Operator", now - dt.timedelta(hours=1))
    ca.save(root / "ca")
    ca.issue_to(root / "server", Role.SERVER, "console", now, hosts=["127.0.0.1"])
    for role in (Role.OPERATOR, *REFUSED_ROLES):
        ca.issue_to(root / role.value, role, f"{role.value}-1", now)
    foreign = OperatorCA.create("Other Operator", now - dt.timedelta(hours=1))
    foreign.issue_to(root / "foreign", Role.OPERATOR, "intruder", now)
    server_tls = ServerTls(TlsIdentity.load(root / "server"), ())
    grpc_server = ServerThread(served.service, clock=time.time_ns, tls=server_tls)
    target = grpc_server.start()
    world = served.world
    files = ConsoleFiles(
        world.db_path,
        world.root / "policy.json",
        world.root / "landmarks.json",
        verifier=target,
        verifier_tls=root / Role.OPERATOR.value,
    )
    access = HttpsAccess(root / "server", frozenset({Role.OPERATOR}), "use the console")
    url, server, thread = start_console(files, access)
    yield ServedTls(url, root)
    server.should_exit = True
    thread.join(GUARD_S)
    grpc_server.stop()


def refusal(url: str, context: ssl.SSLContext) -> urllib.error.HTTPError:
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(url, context)
    return refused.value


def test_over_https_the_operator_sees_every_page(served_tls):
    operator = served_tls.context(Role.OPERATOR.value)
    assert "dev-syd" in get(served_tls.url + "/", operator)
    assert "SYD-300" in get(served_tls.url + "/devices/dev-syd", operator)
    stream = urllib.request.urlopen(served_tls.url + "/events", timeout=GUARD_S, context=operator)
    assert stream.readline().decode().startswith(": connected")
    stream.close()


@pytest.mark.parametrize("role", REFUSED_ROLES, ids=str)
def test_over_https_every_other_role_is_refused_on_every_route(served_tls, role):
    context = served_tls.context(role.value)
    for route in CONSOLE_ROUTES:
        refused = refusal(served_tls.url + route, context)
        assert refused.code == 403, route
        assert refused.headers["geoattest-reason"] == Reason.WRONG_ROLE.value
        assert refused.read().decode().startswith(f"{Reason.WRONG_ROLE.value}: role {role}")


@pytest.mark.parametrize("party", [None, "foreign"], ids=["no-certificate", "another-ca"])
def test_over_https_a_caller_without_an_operator_ca_certificate_fails_the_handshake(
    served_tls, party
):
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as failed:
        get(served_tls.url + "/", served_tls.context(party))
    assert not isinstance(failed.value, urllib.error.HTTPError)


def test_the_token_inspector_checks_tokens_with_the_keys_of_a_tls_verifier(served, served_tls):
    operator = served_tls.context(Role.OPERATOR.value)
    page = post(served_tls.url + "/tokens", {"token": served.tokens["dev-1"]}, operator)
    assert "<b>VALID</b>" in page


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--listen", "0.0.0.0:0", "--plaintext"], "plaintext is only for loopback"),
        (["--listen", "127.0.0.1:0"], "give --tls (TLS) or --plaintext (loopback only)"),
        (
            ["--plaintext", "--verifier", "10.0.0.1:50051", "--verifier-plaintext"],
            "plaintext is only for loopback",
        ),
        (["--plaintext", "--verifier", "127.0.0.1:50051"], "give --verifier-tls (TLS)"),
    ],
    ids=["console-off-loopback", "neither", "verifier-off-loopback", "verifier-neither"],
)
def test_plain_http_is_for_loopback_only_and_asked_for(tmp_path, flags, needle):
    files = ["--db", str(tmp_path / "v.db"), "--policy", str(tmp_path / "p.json")]
    line = main_error("console", *files, "--landmarks", "l.json", *flags)
    assert needle in line


def console_over_a_proven_chip(
    world: VerifierWorld, url: str
) -> tuple[str, uvicorn.Server, threading.Thread]:
    """A console over the database ``url``, where chip dev-1 is enrolled and has one
    proof stored."""
    store = SqlStore.open(url)
    chip = world.chip("dev-1")
    now_ns = time.time_ns()
    service = world.service(store)
    service.enrol(chip.identity(), chip.possession(), now_ns)
    service.submit(world.proof(chip, unix_ns=now_ns - SECOND_NS), now_ns)
    store.close()
    return start_console(
        ConsoleFiles(url, world.root / "policy.json", world.root / "landmarks.json")
    )


@pytest.mark.slow
def test_a_database_that_stops_answering_is_503_and_the_console_recovers(tmp_path):
    """The verifier's PostgreSQL server is frozen (SIGSTOP: connections stay open, nothing
    answers): a page read as it froze, which waited on it, is 503 ``store.unavailable``,
    and pages after the console's probe gave up are refused 503 without waiting on it;
    once the server answers, the pages are served again by themselves."""
    world = VerifierWorld.create(tmp_path)
    world.serve_args()
    with postgres_server() as own_server:
        console_url, server, thread = console_over_a_proven_chip(world, own_server.database())
        frozen = server_processes(own_server)
        try:
            assert "dev-1" in get(console_url + "/devices/dev-1")
            signal_all(frozen, signal.SIGSTOP)
            try:
                with pytest.raises(urllib.error.HTTPError) as waited:
                    get(console_url + "/devices/dev-1")
                with pytest.raises(urllib.error.HTTPError) as refused:
                    get(console_url + "/alerts")
            finally:
                signal_all(frozen, signal.SIGCONT)
            for refusal in (waited.value, refused.value):
                assert refusal.code == 503
                assert refusal.headers["geoattest-reason"] == Reason.STORE_UNAVAILABLE.value
            assert StoreNotAnsweringError.DETAIL in refused.value.read().decode()
            assert "dev-1" in served_again(console_url + "/devices/dev-1")
        finally:
            server.should_exit = True
            thread.join(GUARD_S)


def test_a_client_certificate_cannot_serve_the_console(served_tls):
    with pytest.raises(ConfigError, match="holds a client certificate"):
        HttpsAccess(served_tls.parties / Role.OPERATOR.value, frozenset({Role.OPERATOR}), "x")


def test_a_store_that_cannot_be_reached_is_503_with_its_reason_and_the_console_recovers(
    postgres, tmp_path
):
    """While the verifier's PostgreSQL database cannot be reached every page answers 503
    with ``store.unavailable`` (no server error, no traceback), the event stream ends
    with an ``unavailable`` event, and the pages come back by themselves once it can. A
    device id or a filter the database cannot hold is the request's fault: 400, not a
    server error, and not an event stream answered 200 and then cut off."""
    world = VerifierWorld.create(tmp_path)
    world.serve_args()
    url = postgres.database()
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    console_url, server, thread = console_over_a_proven_chip(world, url)
    try:
        assert "dev-1" in get(console_url + "/devices/dev-1")
        for path in ("/devices/dev%001", "/alerts?kind=x%00", "/events?device=dev%001"):
            with pytest.raises(urllib.error.HTTPError) as malformed:
                get(console_url + path)  # PostgreSQL holds no NUL in text
            assert malformed.value.code == 400, path
            assert malformed.value.headers["geoattest-reason"] == Reason.MALFORMED_MESSAGE.value
        stream = urllib.request.urlopen(console_url + "/events", timeout=GUARD_S)
        postgres.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        postgres.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        for path in ("/", "/alerts", "/fleet.json", "/devices/dev-1", "/landmarks"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                get(console_url + path)
            assert refused.value.code == 503, path
            assert refused.value.headers["geoattest-reason"] == Reason.STORE_UNAVAILABLE.value
        lines = [stream.readline().decode()]
        while lines[-1] and not lines[-1].startswith("event: unavailable"):
            lines.append(stream.readline().decode())
        assert lines[-1].startswith("event: unavailable")
        stream.close()
        postgres.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        assert "dev-1" in served_again(console_url + "/devices/dev-1")
    finally:
        server.should_exit = True
        thread.join(GUARD_S)
