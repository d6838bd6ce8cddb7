"""A timer precise to tens of microseconds, for delivering datagrams on time.

asyncio's timers (and a plain ``time.sleep``) wake up to a millisecond late, which at c
is 150 km of distance bound; the relay needs better. :class:`PreciseTimer` keeps a heap
of due instants on ``time.monotonic_ns()`` in one thread. It sleeps on a condition until
``spin_ns`` before the earliest instant, then polls the clock (yielding the GIL every
turn) until the instant arrives, so it burns CPU only in the last ``spin_ns`` before a
delivery and none at all when nothing is due.

Callbacks run on the timer's thread, in due order (ties in scheduling order), and must be
short (a ``sendto``). Example::

    with PreciseTimer() as timer:
        timer.schedule(timer.now_ns() + 250_000, lambda: sock.sendto(data, addr))
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

from geoattest.errors import ConfigError
from geoattest.lifecycle import Running

DEFAULT_SPIN_NS = 200_000
"""How long before a due instant the timer stops sleeping and starts polling: larger
than a coarse sleep's usual oversleep on Linux (timer slack plus wake-up latency)."""


class PreciseTimer(Running):
    """Runs callbacks at ``time.monotonic_ns()`` instants from a dedicated thread."""

    def __init__(self, *, spin_ns: int = DEFAULT_SPIN_NS) -> None:
        """Raises ConfigError if ``spin_ns`` is negative."""
        if spin_ns < 0:
            raise ConfigError(f"spin window {spin_ns} ns is negative")
        self._spin_ns = spin_ns
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.fired = 0
        """Callbacks run so far."""

    @staticmethod
    def now_ns() -> int:
        """The timer's clock: the monotonic clock landmarks time rounds with."""
        return time.monotonic_ns()

    def schedule(self, at_ns: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` at ``at_ns`` (at once if that has passed). Thread-safe."""
        with self._wake:
            heapq.heappush(self._heap, (at_ns, next(self._order), callback))
            if self._heap[0][0] == at_ns:
                self._wake.notify()

    @property
    def pending(self) -> int:
        """Callbacks scheduled and not yet run."""
        return len(self._heap)

    def start(self) -> None:
        """Start the timer thread."""
        if self._thread is not None:
            raise ConfigError("timer already started")
        self._thread = threading.Thread(target=self._run, name="netsim-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread; callbacks still pending never run.

        Raises:
            Exception: the first exception a callback raised, if any.
        """
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        self._heap.clear()
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        heap, clock = self._heap, time.monotonic_ns
        while True:
            with self._wake:
                if self._stopping:
                    return
                if not heap:
                    self._wake.wait()
                    continue
                sleep_ns = heap[0][0] - clock() - self._spin_ns
                if sleep_ns > 0:
                    self._wake.wait(sleep_ns / 1e9)
                    continue
            # heap[0] only ever moves earlier while we poll (only this thread pops).
            while not self._stopping and clock() < heap[0][0]:
                os.sched_yield()
            self._fire_due(clock())

    def _fire_due(self, now_ns: int) -> None:
        due = []
        with self._wake:
            while self._heap and self._heap[0][0] <= now_ns:
                due.append(heapq.heappop(self._heap)[2])
        for callback in due:
            try:
                callback()
            except Exception as e:  # a failing callback must not stop the deliveries
                self._failure = self._failure or e
            self.fired += 1
