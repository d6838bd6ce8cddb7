"""Units of time: every clock and timestamp in geoattest counts integer nanoseconds."""

from __future__ import annotations

SECOND_NS = 1_000_000_000
"""Nanoseconds in a second."""
