"""Counts of evidence refused before anything authenticated it: junk speaks for nobody.

A proof whose signature does not verify under an enrolled device's key (or a request too
malformed or too large to look at) is no device's doing, so it is not stored, names no
device and raises no alert. What remains of it is one count per reason, in a table whose
size is the number of reasons, and a log line per reason at most once per interval that
says how many were refused since the last one: a flood of junk costs the verifier neither
disk nor log volume.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

from geoattest.errors import Reason
from geoattest.units import SECOND_NS

log = logging.getLogger("geoattest.verifier.rejections")

LOG_EVERY_NS = 60 * SECOND_NS
"""Fewest nanoseconds between two log lines about one reason."""


class Rejections:
    """Unauthenticated refusals, counted by reason; safe to call from any thread."""

    def __init__(
        self,
        log_every_ns: int = LOG_EVERY_NS,
        on_count: Callable[[Reason, int], None] = lambda _reason, _refused: None,
    ) -> None:
        self._log_every_ns = log_every_ns
        self._on_count = on_count
        """Told of every count too (the metrics' counter)."""
        self._lock = threading.Lock()
        self._counts: dict[Reason, int] = {}
        self._unlogged: dict[Reason, int] = {}
        self._logged_at_ns: dict[Reason, int] = {}

    def count(self, reason: Reason, now_ns: int, refused: int = 1) -> None:
        """Count ``refused`` refusals for ``reason``; log them if the reason's interval
        has passed since its last line (the first one is logged at once)."""
        self._on_count(reason, refused)
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + refused
            unlogged = self._unlogged.get(reason, 0) + refused
            last_ns = self._logged_at_ns.get(reason)
            if last_ns is not None and now_ns - last_ns < self._log_every_ns:
                self._unlogged[reason] = unlogged
                return
            self._unlogged[reason] = 0
            self._logged_at_ns[reason] = now_ns
        log.warning("refused %d unauthenticated message(s): %s", unlogged, reason.value)

    def snapshot(self) -> Mapping[Reason, int]:
        """Refusals so far, by reason (only reasons seen at least once)."""
        with self._lock:
            return MappingProxyType(dict(self._counts))
