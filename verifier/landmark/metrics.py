"""A landmark's Prometheus metrics, read from its counters at each scrape.

Nothing is added to the timed path: the UDP thread keeps its plain integer counters
(:class:`~geoattest.verifier.landmark.dispatch.Counters`) and this collector copies them
when Prometheus asks. Labels are bounded: the landmark's id appears once, in
``geoattest_landmark_info``; rejected datagrams are split by a fixed set of reasons.

Example::

    endpoint = serve_landmark_metrics(server, "127.0.0.1:9465")
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from geoattest.verifier.access import HttpsAccess
from geoattest.verifier.landmark.server import LandmarkServer
from geoattest.verifier.metrics import MetricsEndpoint, serve_metrics

PREFIX = "geoattest_landmark_"


class LandmarkCollector(Collector):
    """The landmark's counters and its measured RTT floor, as Prometheus families."""

    def __init__(self, landmark: LandmarkServer) -> None:
        self._landmark = landmark

    def collect(self) -> Iterator[InfoMetricFamily | CounterMetricFamily | GaugeMetricFamily]:
        landmark = self._landmark
        c = landmark.counters()
        yield InfoMetricFamily(
            "geoattest_landmark",  # exposed as geoattest_landmark_info
            "Who this landmark is and how it stamps arrivals.",
            value={
                "landmark_id": landmark.identity.landmark_id,
                "stamps": "kernel" if landmark.kernel_timestamps else "monotonic",
            },
        )
        for name, documentation, value in (
            ("datagrams_received", "Datagrams received.", c.datagrams_received),
            ("rounds_opened", "Timed rounds opened.", c.rounds_opened),
            ("rounds_failed", "Rounds that ended without a receipt.", c.rounds_failed),
            ("rounds_expired", "Rounds dropped at their time limit.", c.rounds_expired),
            ("receipts_signed", "Receipts signed.", c.receipts_signed),
            ("exchanges_timed", "Challenge-response exchanges timed.", c.exchanges_timed),
            (
                "datagrams_rate_limited",
                "Opens over their source host's rate, dropped.",
                c.datagrams_rate_limited,
            ),
            ("opens_retried", "Opens without a valid cookie, answered a Retry.", c.opens_retried),
            (
                "datagrams_polled",
                "Datagrams read by polling after a challenge on a short path (the rest: a "
                "blocking receive).",
                c.datagrams_polled,
            ),
            ("internal_errors", "Datagrams dropped on an internal error.", c.internal_errors),
        ):
            yield CounterMetricFamily(PREFIX + name, documentation, value=value)
        rejected = CounterMetricFamily(
            PREFIX + "datagrams_rejected",
            "Datagrams refused, by reason: malformed (not a round datagram), refused (well "
            "formed but not acceptable), table_full (an Open with no room for its round).",
            labels=["reason"],
        )
        rejected.add_metric(["malformed"], c.datagrams_malformed)
        rejected.add_metric(["refused"], c.datagrams_rejected)
        rejected.add_metric(["table_full"], c.rounds_refused)
        yield rejected
        yield GaugeMetricFamily(
            PREFIX + "open_rounds", "Rounds timing or awaiting their Close.", landmark.open_rounds
        )
        floor_ns = landmark.rtt_floor_ns
        if floor_ns is not None:
            yield GaugeMetricFamily(
                PREFIX + "rtt_floor_seconds",
                "The shortest round-trip time this landmark has timed.",
                floor_ns / 1e9,
            )


def serve_landmark_metrics(
    landmark: LandmarkServer, address: str, access: HttpsAccess | None = None
) -> MetricsEndpoint:
    """Serve ``landmark``'s metrics at ``address`` (:func:`serve_metrics`: HTTPS with
    ``access``, else loopback HTTP).

    Raises:
        PlaintextNotLoopbackError: plain HTTP off this host.
        ConfigError: the address cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(LandmarkCollector(landmark))
    return serve_metrics(address, registry, name="landmark metrics", access=access)
