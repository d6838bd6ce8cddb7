"""The verifier's Prometheus metrics: what it judged, how long it took, what went wrong.

Every label set is bounded: a verdict, a :class:`~geoattest.errors.Reason` value, an
alert kind, a store failure's reason. A device id is never a label (100,000 devices would
be 100,000 series); per-device facts are in the store and on the console.

``verifier serve --workers N`` runs N processes, so the counters use prometheus-client's
multiprocess mode: each process writes its values to files in one directory
(:func:`use_directory`, called before prometheus-client is first imported), and the
parent's endpoint (:func:`serve_metrics`) adds them up at each scrape. The device counts
by state come from the store at scrape time, so every worker's sweeps are in them.

Example::

    use_directory(Path("/tmp/geoattest-metrics"))
    metrics = VerifierMetrics()
    metrics.proofs.labels(verdict="ALLOWED", reason="none").inc()
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from threading import Lock, Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from geoattest.address import parse_address, require_loopback
from geoattest.errors import AccessError, ConfigError, GeoattestError, Reason
from geoattest.pki.tls import Role
from geoattest.verifier.access import HttpsAccess, loopback_host
from geoattest.verifier.logs import FIELDS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

log = logging.getLogger("geoattest.verifier.metrics")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
NO_REASON = "none"
"""The reason label of a verdict that has none (ALLOWED, OUTSIDE, ...)."""

APPRAISAL_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def use_directory(directory: Path) -> None:
    """Write this process's (and its forked workers') metric values under ``directory``,
    for :func:`serve_metrics` to add up. Must run before prometheus-client is imported.

    Raises:
        ConfigError: prometheus-client was imported already, in single-process mode.
    """
    if "prometheus_client.values" in sys.modules and os.environ.get(MULTIPROCESS_ENV) != str(
        directory
    ):
        raise ConfigError("metrics: prometheus-client was loaded before its directory was set")
    os.environ[MULTIPROCESS_ENV] = str(directory)


class VerifierMetrics:
    """The verifier's counters and histograms (registered nowhere: in multiprocess mode the
    values live in the directory, otherwise a test reads them off the objects)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram  # noqa: PLC0415

        self.proofs = Counter(
            "geoattest_verifier_proofs",
            "Proofs appraised, by verdict and reason (REJECTED proofs carry theirs).",
            ["verdict", "reason"],
            registry=None,
        )
        self.alerts = Counter(
            "geoattest_verifier_alerts",
            "Alerts raised and stored, by kind.",
            ["kind"],
            registry=None,
        )
        self.refusals = Counter(
            "geoattest_verifier_unauthenticated_refusals",
            "Requests and proofs refused before any enrolled key vouched for them, by reason.",
            ["reason"],
            registry=None,
        )
        self.store_errors = Counter(
            "geoattest_verifier_store_errors",
            "Store failures: store.conflict (retried) and store.unavailable (call refused).",
            ["reason"],
            registry=None,
        )
        self.appraisal_seconds = Histogram(
            "geoattest_verifier_appraisal_seconds",
            "Time to appraise and sign one batch of proofs.",
            buckets=APPRAISAL_BUCKETS_S,
            registry=None,
        )
        self.commit_seconds = Histogram(
            "geoattest_verifier_commit_seconds",
            "Time to commit one batch durably to the store.",
            buckets=APPRAISAL_BUCKETS_S,
            registry=None,
        )
        self.batch_proofs = Histogram(
            "geoattest_verifier_batch_proofs",
            "Proofs per submitted batch.",
            buckets=BATCH_BUCKETS,
            registry=None,
        )


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """A running ``/metrics`` endpoint; ``stop`` closes it."""

    host: str
    port: int
    scheme: str
    """``https`` (:class:`HttpsAccess`) or ``http`` (loopback only)."""
    server: WSGIServer

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{METRICS_PATH}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PEER_CERTIFICATE = "geoattest.peer_certificate"
"""The WSGI environ key of an HTTPS request's verified client certificate (DER)."""
SCRAPERS = frozenset({Role.MONITOR, Role.OPERATOR})
"""Who may scrape a metrics endpoint served over HTTPS."""
REQUEST_TIMEOUT_S = 30.0
"""How long one connection (its TLS handshake included) may stall a request thread."""
MAX_CONNECTIONS = 256
"""Connections an endpoint serves at once; one more is closed as it is accepted. Each
holds a thread and a descriptor of the verifier's own process from before its
certificate is checked: without a bound, anyone who reaches the port could open them until
the process could open no file or connection of its own."""
MAX_PER_HOST = 4
"""Connections one address may hold at once: a scraper needs one, so one host that holds
its share idle cannot keep the others' scrapes out."""
REASON_HEADER = "geoattest-reason"
METRICS_PATH = "/metrics"
"""The one path an endpoint serves; any other is 404 ``http.not_found``."""


class _MetricsServer(ThreadingMixIn, WSGIServer):
    """A thread per connection; over HTTPS the TLS handshake runs in that thread too, so
    a slow or silent client never holds up the others."""

    daemon_threads = True

    def __init__(self, host: str, port: int, access: HttpsAccess | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.context = access.ssl_context() if access else None
        self._most, self._most_per_host = MAX_CONNECTIONS, MAX_PER_HOST
        self._held: Counter[str] = Counter()
        self._held_lock = Lock()
        super().__init__((host, port), _MetricsHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own within :data:`MAX_CONNECTIONS` and
        :data:`MAX_PER_HOST`; close it at once beyond either."""
        host = str(client_address[0])
        with self._held_lock:
            admitted = self._held.total() < self._most and self._held[host] < self._most_per_host
            if admitted:
                self._held[host] += 1
        if not admitted:
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(host)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]))

    def _release(self, host: str) -> None:
        with self._held_lock:
            self._held[host] -= 1
            if self._held[host] <= 0:
                del self._held[host]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, peer = super().get_request()
        if self.context is not None:
            connection = self.context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, peer

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        """A failed handshake or a dropped connection: one log line, no traceback."""
        fields = {"peer": str(client_address), "error": str(sys.exc_info()[1])}
        log.info("metrics request failed", extra={FIELDS: fields})


class _MetricsHandler(WSGIRequestHandler):
    """Completes the TLS handshake in the request's thread and hands the client
    certificate to the application."""

    timeout = REQUEST_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        if isinstance(self.connection, ssl.SSLSocket):
            environ[PEER_CERTIFICATE] = self.connection.getpeercert(binary_form=True)
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one every few seconds from the same scraper."""


METRICS_METHODS = ("GET",)


def _refuse(
    start_response: StartResponse,
    status: HTTPStatus,
    refused: GeoattestError,
    *headers: tuple[str, str],
) -> list[bytes]:
    """Answer ``status`` with the refusal's reason in the body and the header."""
    start_response(
        f"{status.value} {status.phrase}",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            (REASON_HEADER, refused.reason.value),
            *headers,
        ],
    )
    return [f"{refused}\n".encode()]


def serve_metrics(
    address: str,
    registry: CollectorRegistry,
    *,
    name: str = "metrics",
    access: HttpsAccess | None = None,
) -> MetricsEndpoint:
    """Serve ``registry`` at ``/metrics`` from a daemon thread: over HTTPS for the roles
    ``access`` admits (others: 403 with the reason), or plain HTTP on a loopback address.

    Raises:
        PlaintextNotLoopbackError: plain HTTP asked for off this host.
        ConfigError: the address cannot be bound.
    """
    from prometheus_client import make_wsgi_app  # noqa: PLC0415

    if access is None:
        require_loopback(address, f"{name} address (without TLS)")
    host, port = parse_address(address, name, any_port=True)
    exposition = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            if access is not None:
                access.admit(environ.get(PEER_CERTIFICATE))
            elif not loopback_host(environ.get("HTTP_HOST", "localhost")):
                # A page elsewhere that points its name at 127.0.0.1 (DNS rebinding).
                raise AccessError(
                    Reason.PLAINTEXT_NOT_LOOPBACK,
                    "plain HTTP answers requests for a loopback host only",
                )
        except AccessError as refused:
            return _refuse(start_response, HTTPStatus.FORBIDDEN, refused)
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path != METRICS_PATH:
            detail = f"nothing is served at {path[:200]}; the metrics are at {METRICS_PATH}"
            return _refuse(
                start_response, HTTPStatus.NOT_FOUND, GeoattestError(Reason.NO_SUCH_PAGE, detail)
            )
        if method not in METRICS_METHODS:
            detail = f"{method[:200]} is not answered at {METRICS_PATH}"
            wrong = GeoattestError(Reason.WRONG_METHOD, detail)
            allow = ("Allow", ", ".join(METRICS_METHODS))
            return _refuse(start_response, HTTPStatus.METHOD_NOT_ALLOWED, wrong, allow)
        return exposition(environ, start_response)  # type: ignore[no-any-return]

    try:
        server = _MetricsServer(host.strip("[]"), port, access)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot listen on {address}: {exc.strerror or exc}") from exc
    server.set_app(app)
    Thread(target=server.serve_forever, name=name, daemon=True).start()
    scheme = "https" if access else "http"
    return MetricsEndpoint(host, int(server.server_address[1]), scheme, server)


def verifier_registry(
    directory: Path,
    device_states: Callable[[], Mapping[str, int]],
    allowed_lapsed: Callable[[], int] = lambda: 0,
) -> CollectorRegistry:
    """The registry a verifier's endpoint serves: every process's values in ``directory``
    added up, the enrolled devices by state as ``device_states`` reads them, and how many
    devices' last ALLOWED a licence change or staleness took away (``allowed_lapsed``)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_DeviceStates(device_states, allowed_lapsed))
    return registry


class _DeviceStates:
    """``geoattest_verifier_devices{state}`` and
    ``geoattest_verifier_allowed_lapsed_devices``, read from the store at each scrape."""

    def __init__(
        self, read: Callable[[], Mapping[str, int]], allowed_lapsed: Callable[[], int]
    ) -> None:
        self._read = read
        self._allowed_lapsed = allowed_lapsed

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        family = GaugeMetricFamily(
            "geoattest_verifier_devices",
            "Enrolled devices by state (STALE: no accepted evidence for several cadences).",
            labels=["state"],
        )
        for state, count in sorted(self._read().items()):
            family.add_metric([state], count)
        yield family
        yield GaugeMetricFamily(
            "geoattest_verifier_allowed_lapsed_devices",
            "Devices whose last verdict is ALLOWED but no longer stands by their licence "
            "(withdrawn, expired, changed since) or went STALE; a revocation or exclusion "
            "since is in each device's status.",
            value=self._allowed_lapsed(),
        )
