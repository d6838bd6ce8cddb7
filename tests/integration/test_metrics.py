"""Prometheus metrics, scraped over HTTP and parsed with Prometheus's own text parser: a
landmark's endpoint after real rounds and junk, and a verifier's endpoint with two worker
processes after real enrolments and proofs. The counters match what the test did."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.client
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from command import GEOATTEST, main_error
from prometheus_client.parser import text_string_to_metric_families
from verifier_world import VerifierWorld

from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.crypto import KeySigner
from geoattest.errors import PlaintextNotLoopbackError, Reason
from geoattest.pki.keyfiles import KEY_FILE
from geoattest.pki.tls import CA_FILE, CERT_FILE, OperatorCA, Role
from geoattest.protocol.round import RoundSecrets
from geoattest.units import SECOND_NS
from geoattest.verifier import metrics
from geoattest.verifier.access import HttpsAccess
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer, Limits
from geoattest.verifier.landmark.metrics import serve_landmark_metrics
from geoattest.verifier.metrics import SCRAPERS
from geoattest.wire.client import VerifierClient

OFF_HOST = ("--metrics", "0.0.0.0:9464")
VERIFIER_FILES = ("db", "trust-root", "landmarks", "policy", "licences", "result-key")
GUARD_S = 60.0
"""A failure guard only."""


def scrape(
    url: str, context: ssl.SSLContext | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample at ``url``, by name and labels."""
    with urllib.request.urlopen(url, timeout=GUARD_S, context=context) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_landmark_endpoint_counts_its_rounds_receipts_junk_and_rtt_floor():
    landmark_key, device_key = KeySigner.generate(), KeySigner.generate()
    identity = LandmarkIdentity("lm-metrics", 50.11, 8.68)
    with LandmarkServer(identity, landmark_key, limits=Limits(rate_per_s=1e6, burst=1e6)) as lm:
        endpoint = serve_landmark_metrics(lm, "127.0.0.1:0")
        host, port = lm.address[:2]
        target = LandmarkEndpoint(identity.landmark_id, host, port, landmark_key.verifying_key)
        for _ in range(3):
            run_round(
                target, "dev-1", device_key, RoundSecrets(os.urandom), RoundSettings(exchanges=4)
            )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for _ in range(5):
                junk.sendto(b"\xff not a datagram", (host, port))
        give_up = time.monotonic() + GUARD_S
        while lm.counters().datagrams_malformed < 5:
            assert time.monotonic() < give_up
            time.sleep(0.01)
        samples = scrape(f"http://127.0.0.1:{endpoint.port}/metrics")
    assert samples[("geoattest_landmark_rounds_opened_total", ())] == 3
    assert samples[("geoattest_landmark_receipts_signed_total", ())] == 3
    assert samples[("geoattest_landmark_exchanges_timed_total", ())] == 12
    rejected = "geoattest_landmark_datagrams_rejected_total"
    assert samples[(rejected, (("reason", "malformed"),))] == 5
    assert samples[("geoattest_landmark_datagrams_rate_limited_total", ())] == 0
    floor = samples[("geoattest_landmark_rtt_floor_seconds", ())]
    assert 0 < floor < 1
    info = [labels for name, labels in samples if name == "geoattest_landmark_info"]
    assert ("landmark_id", "lm-metrics") in info[0]


def test_over_https_a_metrics_endpoint_admits_monitors_and_operators_only(tmp_path):
    now = dt.datetime.now(dt.UTC)
    ca = OperatorCA.create("Metrics Operator", now - dt.timedelta(hours=1))
    ca.issue_to(tmp_path / "server", Role.SERVER, "lm-metrics", now, hosts=["127.0.0.1"])
    for role in (Role.MONITOR, Role.OPERATOR, Role.RELYING_PARTY):
        ca.issue_to(tmp_path / role.value, role, f"{role.value}-1", now)

    def client(party: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=tmp_path / "server" / CA_FILE)
        if party is not None:
            context.load_cert_chain(tmp_path / party / CERT_FILE, tmp_path / party / KEY_FILE)
        return context

    access = HttpsAccess(tmp_path / "server", SCRAPERS, "scrape the metrics")
    identity = LandmarkIdentity("lm-metrics", 50.11, 8.68)
    with LandmarkServer(identity, KeySigner.generate()) as lm:
        endpoint = serve_landmark_metrics(lm, "127.0.0.1:0", access)
        try:
            assert endpoint.url.startswith("https://127.0.0.1:")
            for role in (Role.MONITOR, Role.OPERATOR):
                samples = scrape(endpoint.url, client(role.value))
                assert samples[("geoattest_landmark_rounds_opened_total", ())] == 0
            with pytest.raises(urllib.error.HTTPError) as refused:
                scrape(endpoint.url, client(Role.RELYING_PARTY.value))
            assert refused.value.code == 403
            assert refused.value.headers["geoattest-reason"] == Reason.WRONG_ROLE.value
            with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as failed:
                scrape(endpoint.url, client(None))
            assert not isinstance(failed.value, urllib.error.HTTPError)
        finally:
            endpoint.stop()


def served(connection: socket.socket) -> bool:
    """Whether the endpoint serves ``connection``: it answers a TLS ClientHello (and then
    waits for the rest of a handshake that never comes), where a refused one is closed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    connection.settimeout(GUARD_S)
    try:
        connection.sendall(outgoing.read())
        return connection.recv(1) != b""
    except ConnectionError:
        return False


def scrape_from(source: str, port: int, context: ssl.SSLContext) -> int:
    """A scrape's HTTP status, from the loopback address ``source``."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=GUARD_S, source_address=(source, 0)
    )
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().status
    finally:
        connection.close()


def test_connections_that_never_handshake_hold_a_bounded_number_of_threads(tmp_path, monkeypatch):
    """Anyone who reaches the port holds a connection before any certificate is checked:
    however many idle ones it opens, the endpoint serves at most MAX_PER_HOST of one
    address and MAX_CONNECTIONS in all (a thread and a descriptor each, held until the
    handshake times out) and closes the others as it accepts them; another address's
    scrape is answered meanwhile."""
    monkeypatch.setattr(metrics, "MAX_CONNECTIONS", 6)
    monkeypatch.setattr(metrics, "MAX_PER_HOST", 2)
    now = dt.datetime.now(dt.UTC)
    ca = OperatorCA.create("Metrics Operator", now - dt.timedelta(hours=1))
    ca.issue_to(tmp_path / "server", Role.SERVER, "lm-metrics", now, hosts=["127.0.0.1"])
    ca.issue_to(tmp_path / "monitor", Role.MONITOR, "prometheus", now)
    monitor = ssl.create_default_context(cafile=tmp_path / "server" / CA_FILE)
    monitor.load_cert_chain(tmp_path / "monitor" / CERT_FILE, tmp_path / "monitor" / KEY_FILE)
    access = HttpsAccess(tmp_path / "server", SCRAPERS, "scrape the metrics")
    with LandmarkServer(LandmarkIdentity("lm-metrics", 50.11, 8.68), KeySigner.generate()) as lm:
        endpoint = serve_landmark_metrics(lm, "127.0.0.1:0", access)
        idle: list[socket.socket] = []

        def hold(source: str, tries: int) -> int:
            """Open ``tries`` idle connections from ``source``; how many were served."""
            count = 0
            for _ in range(tries):
                connection = socket.create_connection(
                    ("127.0.0.1", endpoint.port), source_address=(source, 0)
                )
                idle.append(connection)
                count += served(connection)
            return count

        try:
            assert hold("127.0.0.1", 8) == 2
            assert scrape_from("127.0.0.9", endpoint.port, monitor) == 200
            assert hold("127.0.0.2", 3) == 2
            assert hold("127.0.0.3", 3) == 2
            assert hold("127.0.0.4", 2) == 0  # six held in all
        finally:
            for connection in idle:
                connection.close()
        give_up = time.monotonic() + GUARD_S
        while True:  # the held slots free as their handshakes fail
            try:
                assert scrape_from("127.0.0.4", endpoint.port, monitor) == 200
                break
            except (ssl.SSLError, ConnectionError):
                assert time.monotonic() < give_up, "no slot came free"
                time.sleep(0.05)
        endpoint.stop()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example:9464", 403),
        ("10.0.0.7", 403),
        ("[2001:db8::1]:9464", 403),
        ("127.0.0.1:9464", 200),
        ("localhost", 200),
        ("[::1]:9464", 200),
    ],
)
def test_plain_http_metrics_answer_only_requests_for_a_loopback_host(host, status):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 would read
    the loopback endpoint through the operator's browser; it is refused with the reason."""
    with LandmarkServer(LandmarkIdentity("lm-x", 50.11, 8.68), KeySigner.generate()) as lm:
        endpoint = serve_landmark_metrics(lm, "127.0.0.1:0")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=GUARD_S)
            connection.request("GET", "/metrics", headers={"Host": host})
            response = connection.getresponse()
            body = response.read().decode()
            connection.close()
        finally:
            endpoint.stop()
    assert response.status == status
    if status == 403:
        assert response.headers["geoattest-reason"] == Reason.PLAINTEXT_NOT_LOOPBACK.value
        assert "geoattest_landmark" not in body


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/metrics", 200, None),
        ("HEAD", "/metrics", 405, Reason.WRONG_METHOD),
        ("GET", "/", 404, Reason.NO_SUCH_PAGE),
        ("GET", "/metrics/", 404, Reason.NO_SUCH_PAGE),
        ("GET", "/%2e%2e/metrics", 404, Reason.NO_SUCH_PAGE),
        ("POST", "/metrics", 405, Reason.WRONG_METHOD),
        ("DELETE", "/metrics", 405, Reason.WRONG_METHOD),
        ("OPTIONS", "/metrics", 405, Reason.WRONG_METHOD),
    ],
)
def test_metrics_are_at_their_path_for_get_and_every_other_request_is_a_typed_refusal(
    method, path, status, reason
):
    """A scraper pointed at the wrong path learns so (it read the metrics at any path, so a
    typo in a scrape configuration went unseen); a wrong method is 405 with ``Allow``."""
    with LandmarkServer(LandmarkIdentity("lm-x", 50.11, 8.68), KeySigner.generate()) as lm:
        endpoint = serve_landmark_metrics(lm, "127.0.0.1:0")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=GUARD_S)
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read().decode()
            connection.close()
        finally:
            endpoint.stop()
    assert response.status == status
    if reason is None:
        assert response.headers.get("geoattest-reason") is None
        assert "geoattest_landmark" in body
    else:
        assert response.headers["geoattest-reason"] == reason.value
        assert method == "HEAD" or body.startswith(f"{reason.value}: ")
        assert "geoattest_landmark" not in body
    if status == 405:
        assert response.headers["allow"] == "GET"


def test_plain_http_metrics_are_for_loopback_only():
    identity = LandmarkIdentity("lm-x", 50.11, 8.68)
    with (
        LandmarkServer(identity, KeySigner.generate()) as lm,
        pytest.raises(PlaintextNotLoopbackError),
    ):
        serve_landmark_metrics(lm, "0.0.0.0:0")
    line = main_error("landmark", "serve", "--key", "none", *OFF_HOST)
    assert "plaintext is only for loopback" in line
    files = [f"--{name}=none" for name in VERIFIER_FILES]
    line = main_error("verifier", "serve", "--plaintext", *files, *OFF_HOST)
    assert "plaintext is only for loopback" in line


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[tuple[VerifierWorld, str, str]]:
    world = VerifierWorld.create(tmp_path)
    process = subprocess.Popen(
        [GEOATTEST, *world.serve_args(), "--workers", "2", "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        metrics_line = process.stdout.readline()
        assert metrics_line.startswith("verifier metrics on http://"), metrics_line
        listening = process.stdout.readline()
        assert listening.startswith("verifier listening on "), listening
        yield world, listening.split()[-1], metrics_line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=GUARD_S)


@pytest.mark.slow
def test_a_verifier_endpoint_adds_up_its_workers_counters(verifier):
    world, target, url = verifier
    chips = [world.chip(f"dev-{i}") for i in range(1, 4)] + [world.chip("dev-syd")]
    now_ns = time.time_ns()

    async def run() -> None:
        for chip in chips:
            async with VerifierClient(target) as client:  # a connection each: both workers
                await client.enroll(chip.enroll_request())
                await client.submit(world.proof(chip, unix_ns=now_ns - 2 * SECOND_NS))
                await client.submit_batch([world.proof(chip, unix_ns=now_ns - SECOND_NS)])

    asyncio.run(run())
    samples = scrape(url)
    proofs = "geoattest_verifier_proofs_total"
    # Three chips ALLOWED twice in FRA-300; the one licensed to SYD-300 is OUTSIDE twice.
    assert samples[(proofs, (("reason", "none"), ("verdict", "ALLOWED")))] == 6
    assert samples[(proofs, (("reason", "none"), ("verdict", "OUTSIDE")))] == 2
    alerts = "geoattest_verifier_alerts_total"
    assert samples[(alerts, (("kind", "OUTSIDE_LICENSED_REGION"),))] == 2
    assert samples[("geoattest_verifier_batch_proofs_count", ())] == 8
    assert samples[("geoattest_verifier_appraisal_seconds_count", ())] == 8
    assert samples[("geoattest_verifier_commit_seconds_count", ())] == 8
    assert samples[("geoattest_verifier_devices", (("state", "ATTESTING"),))] == 4
    assert samples[("geoattest_verifier_devices", (("state", "STALE"),))] == 0
    assert samples[("geoattest_verifier_allowed_lapsed_devices", ())] == 0
