"""The precise timer: never early, in order, and it stops cleanly."""

from __future__ import annotations

import threading
import time

import pytest

from geoattest.errors import ConfigError
from geoattest.netsim.timer import PreciseTimer


def wait_for(done: threading.Event) -> None:
    assert done.wait(30), "the timer never fired"


def test_callbacks_never_fire_early_and_keep_due_order() -> None:
    fired: list[tuple[int, int]] = []
    done = threading.Event()
    with PreciseTimer() as timer:
        start = timer.now_ns()
        offsets = [3_000_000, 100_000, 1_000_000, 1_000_000, 250_000, 0]
        for i, offset in enumerate(offsets):
            timer.schedule(start + offset, lambda i=i: fired.append((i, time.monotonic_ns())))
        timer.schedule(start + 3_000_001, done.set)
        wait_for(done)
    assert [i for i, _ in fired] == [5, 1, 4, 2, 3, 0]
    for i, at in fired:
        assert at >= start + offsets[i]


def test_an_instant_in_the_past_fires_at_once() -> None:
    done = threading.Event()
    with PreciseTimer() as timer:
        timer.schedule(timer.now_ns() - 10**9, done.set)
        wait_for(done)
        assert timer.fired == 1


def test_stop_joins_the_thread_and_drops_pending_callbacks() -> None:
    fired: list[int] = []
    timer = PreciseTimer()
    timer.start()
    timer.schedule(timer.now_ns() + 3600 * 10**9, lambda: fired.append(1))
    assert timer.pending == 1
    timer.stop()
    assert not any(t.name == "netsim-timer" for t in threading.enumerate())
    assert fired == []
    assert timer.pending == 0


def test_a_failing_callback_surfaces_at_stop_and_the_rest_still_run() -> None:
    done = threading.Event()
    timer = PreciseTimer()
    timer.start()
    now = timer.now_ns()
    timer.schedule(now, lambda: print(1 / 0))
    timer.schedule(now + 1000, done.set)
    wait_for(done)
    with pytest.raises(ZeroDivisionError):
        timer.stop()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        PreciseTimer(spin_ns=-1)
    timer = PreciseTimer()
    timer.start()
    with pytest.raises(ConfigError, match="already started"):
        timer.start()
    timer.stop()
