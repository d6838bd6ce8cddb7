"""Alert streams that nobody misses: ``WatchAlerts`` reads the store's alerts table.

Alerts are durable rows with increasing ids (their ``cursor``) before any stream sees them.
A stream replays every alert after the cursor its subscriber gives (or starts at the
newest, given none), then follows the table as alerts commit in **any** process on the
database: this process's commits wake it at once; other processes' commits wake it through
the store's :class:`~geoattest.verifier.store.AlertListener` (PostgreSQL ``LISTEN/NOTIFY``,
or a short poll on SQLite). The table is the truth and a wake-up only says "read again",
so a notification lost with a dropped connection loses no alert, and a subscriber that
reconnects with the cursor of the last alert it got misses nothing and sees nothing twice.
A slow subscriber holds no queue: its stream reads the next page when it is ready for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, TypeVar

from geoattest.errors import Reason, WireError
from geoattest.verifier.store import Alert

PAGE = 500
"""Alerts one read of a stream fetches at most."""

_T = TypeVar("_T")


class AlertSource(Protocol):
    """Where streams read alerts (:class:`~geoattest.verifier.store.SqlStore`)."""

    def alerts_after(self, cursor: int, device_id: str = "", limit: int = PAGE) -> list[Alert]: ...

    def last_alert_cursor(self) -> int: ...


class AlertWaiter(Protocol):
    """Blocks until other processes may have committed alerts (or a timeout passed)."""

    def wait(self, timeout_s: float) -> bool: ...

    def close(self) -> None: ...


class AlertHub:
    """Serves alert streams from an :class:`AlertSource`; ``publish`` may be called from
    any thread (it only wakes the streams: the alerts are already stored)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        source: AlertSource,
        waiter: AlertWaiter,
        *,
        wait_s: float = 1.0,
    ) -> None:
        self._loop = loop
        self._source = source
        self._waiter = waiter
        self._wait_s = wait_s
        self._changed = asyncio.Event()
        self._closed = threading.Event()
        self._subscribers = 0
        self._watcher = threading.Thread(target=self._watch, name="alert-watcher", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Wake the streams after each wait: on a notification, and every ``wait_s``."""
        while not self._closed.is_set():
            self._waiter.wait(self._wait_s)
            self.publish(())

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Wake every stream to read the table again (``alerts`` were just committed)."""
        del alerts
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self, read: Callable[..., _T], *args: object) -> _T:
        return await self._loop.run_in_executor(None, read, *args)

    async def stream(self, device_id: str = "", after: int | None = None) -> AsyncIterator[Alert]:
        """Every alert after ``after`` (None: from now), for one device or (empty id) all,
        in commit order; ends when the hub closes.

        Raises:
            WireError: ``wire.out_of_range``, ``after`` is past the newest alert stored.
                Alerts are never deleted, so no alert of this database carried it (the
                database was restored from an older backup, or it is another one's): the
                alerts stored from now on would take ids up to it, and a stream that waited
                for ids past it would skip them without a word.
            StoreUnavailableError: the database failed; subscribe again with the cursor of
                the last alert received.
        """
        newest = await self._read(self._source.last_alert_cursor)
        if after is not None and after > newest:
            raise WireError(
                Reason.OUT_OF_RANGE,
                f"after {after} is past the newest alert's cursor {newest}: not a cursor of"
                " this verifier's alerts; subscribe without one, or after 0 to replay all",
            )
        cursor = newest if after is None else after
        self._subscribers += 1  # counted once its start is fixed: what commits next, it gets
        try:
            while not self._closed.is_set():
                changed = self._changed  # taken before the read: a wake during it counts
                page = await self._read(self._source.alerts_after, cursor, device_id, PAGE)
                for alert in page:
                    yield alert
                    cursor = alert.cursor
                if len(page) < PAGE:
                    await changed.wait()
        finally:
            self._subscribers -= 1

    @property
    def subscribers(self) -> int:
        return self._subscribers

    def close(self) -> None:
        """End every stream (at shutdown, so draining does not wait on them) and stop
        watching."""
        self._closed.set()
        self._waiter.close()
        self._wake()
        self._watcher.join()
