"""Live alert streams: the verifier's commits fan out to ``WatchAlerts`` subscribers.

Alerts are durable rows in the store before they get here; a stream only carries them to
whoever listens now. A subscriber that falls too far behind loses its stream
(:class:`AlertsOverflowError`) rather than holding the verifier's memory, and subscribes
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from geoattest.errors import GeoattestError, Reason
from geoattest.verifier.store import Alert


class AlertsOverflowError(GeoattestError):
    """A subscriber fell too far behind; its stream ends and it should resubscribe."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.ALERTS_OVERFLOW, detail)


_CLOSED = object()
_OVERFLOW = object()


class AlertHub:
    """Fans alerts out to live subscribers; ``publish`` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_queued: int = 1024) -> None:
        self._loop = loop
        self._max_queued = max_queued
        self._subscribers: dict[asyncio.Queue[object], str] = {}

    def publish(self, alerts: Sequence[Alert]) -> None:
        self._loop.call_soon_threadsafe(self._deliver, tuple(alerts))

    def _deliver(self, alerts: tuple[Alert, ...]) -> None:
        for queue, device_id in self._subscribers.items():
            for alert in alerts:
                if device_id and alert.device_id != device_id:
                    continue
                if queue.qsize() >= self._max_queued:
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(_OVERFLOW)
                    break
                queue.put_nowait(alert)

    async def stream(self, device_id: str = "") -> AsyncIterator[Alert]:
        """Alerts from now on, for one device or (empty id) all; ends when the hub closes.

        Raises:
            AlertsOverflowError: more than ``max_queued`` alerts waited for this stream.
        """
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._subscribers[queue] = device_id
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                if item is _OVERFLOW:
                    raise AlertsOverflowError(f"more than {self._max_queued} alerts queued")
                assert isinstance(item, Alert)
                yield item
        finally:
            del self._subscribers[queue]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream (at shutdown, so draining does not wait on them)."""
        for queue in self._subscribers:
            queue.put_nowait(_CLOSED)
