"""The live fleet map: every chip's newest feasible region in its verdict's colour.

The console keeps the fleet's positions in memory and refreshes them incrementally from
the store (:meth:`~geoattest.verifier.fleet_view.FleetView.positions_since`), so a refresh
reads only the chips that proved since the last one. The map is aggregated on the server:

- a fleet of up to :data:`DETAIL_LIMIT` chips is drawn chip by chip, each its own
  feasible region (the intersection of its landmark disks) and a marker;
- a larger one is drawn in groups: chips with the same verdict, the same tightest
  landmark and a tightest bound of the same size class share one shape and one marker
  with their count. The shape is that landmark's disk at the top of the size class, so it
  holds every member's tightest disk and with it every member's feasible region: a group
  is never drawn smaller than where its chips may be.

An ALLOWED that no longer stands (its licence withdrawn, expired or changed, the device
revoked, a landmark it rests on revoked or excluded since, or gone stale: see
:mod:`geoattest.verifier.standing`) is drawn and counted as LAPSED, never as ALLOWED; the
console's :meth:`~geoattest.console.app.Console.lapsed` finds them.

The number of groups is bounded by verdicts x landmarks x size classes, whatever the
fleet's size, so 100,000 chips are a few hundred shapes in the browser, not 100,000.

Shapes are cached (a chip's by the time of its proof, a group's disk by its landmark and
class) and the drawn map by the fleet's version (which moves when any chip proves), so a
page between two proofs costs a dictionary lookup and a proof redraws from cached shapes.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shapely.geometry.base import BaseGeometry

from geoattest.console.svg import VERDICT_COLOURS, Canvas, View
from geoattest.geo import GeoAppraiser
from geoattest.geo.countries import Countries
from geoattest.pki import LandmarkRecord
from geoattest.verdict import LandmarkBound, Verdict
from geoattest.verifier.fleet_view import FleetView, Position

REFRESH_EVERY_S = 0.5
"""Least time between two reads of the store for the fleet: pages and event streams
between them share one read."""
LAPSED_EVERY_S = 2.0
"""Longest an ALLOWED that an operator's action took away is still drawn as ALLOWED: the
whole fleet's standing is read again this often (licence changes add no proof row)."""
LAPSED = "LAPSED"
"""How an ALLOWED that no longer stands is drawn and counted."""
DETAIL_LIMIT = 500
"""Largest fleet drawn chip by chip; above it, chips are drawn in groups."""
LISTED_IDS = 12
"""Device ids a group's marker names in its tooltip (and its data attribute)."""


@dataclass(slots=True)
class Group:
    """Chips drawn as one shape: one chip (its own bounds), or many alike (a disk that
    holds all of theirs)."""

    verdict: str
    members: list[Position] = field(default_factory=list)
    bounds: tuple[LandmarkBound, ...] = ()
    cache_key: tuple[object, ...] = ()
    """Names the shape: equal keys, equal shapes."""


def size_class(bound_km: float) -> int:
    """Bounds in steps of a factor of about 1.4: class c holds bounds up to
    :func:`class_top_km` (c)."""
    return math.ceil(math.log2(1 + bound_km) * 2)


def class_top_km(size: int) -> float:
    return float(2 ** (size / 2) - 1)


@dataclass(frozen=True, slots=True)
class Landmark:
    """A landmark as the console shows it."""

    record: LandmarkRecord
    state: str
    """active, excluded (by the peer audits, in force) or revoked."""


def group_positions(
    positions: Iterable[Position], lapsed: Collection[str] = frozenset()
) -> list[Group]:
    """The shapes a fleet is drawn as: a chip each up to :data:`DETAIL_LIMIT` chips, else
    groups of alike chips (see the module docstring), in a stable order. A chip in
    ``lapsed`` is drawn as LAPSED, never as the ALLOWED that no longer stands."""

    def shown(position: Position) -> str:
        return LAPSED if position.device_id in lapsed else position.verdict.value

    listed = sorted(positions, key=lambda p: p.device_id)
    if len(listed) <= DETAIL_LIMIT:
        return [Group(shown(p), [p], p.bounds, (p.device_id, p.accepted_at_ns)) for p in listed]
    grouped: dict[tuple[str, str, int], Group] = {}
    for position in listed:
        tightest = min(position.bounds, key=lambda b: b.bound_km, default=None)
        if tightest is None:
            continue
        size = size_class(tightest.bound_km)
        key = (shown(position), tightest.landmark_id, size)
        group = grouped.get(key)
        if group is None:
            disk = LandmarkBound(
                tightest.landmark_id, tightest.latitude, tightest.longitude, 0, class_top_km(size)
            )
            group = grouped[key] = Group(key[0], [], (disk,), (key[1], size))
        group.members.append(position)
    return [grouped[key] for key in sorted(grouped)]


class FleetMap:
    """The fleet's positions, refreshed from the store, and its map drawn from them."""

    def __init__(
        self,
        view: FleetView,
        appraiser: GeoAppraiser,
        countries: Countries,
        licensed_regions: Mapping[str, object],
        lapsed: Callable[[Mapping[str, Position]], set[str]] = lambda _positions: set(),
    ) -> None:
        self._view = view
        self._find_lapsed = lapsed
        """The ALLOWED positions that no longer stand, found from all of them."""
        self._lapsed: frozenset[str] = frozenset()
        self._lapsed_at = -math.inf
        self._appraiser = appraiser
        self._countries = countries
        self._licensed = licensed_regions
        self._positions: dict[str, Position] = {}
        self._version = 0
        """The newest proof row read: the fleet's version."""
        self._read_at = -math.inf
        self._counts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._drawn: tuple[tuple[int, int, tuple[str, ...], frozenset[str]], str] | None = None
        self._shapes: dict[tuple[object, ...], BaseGeometry | None] = {}

    def refresh(self) -> int:
        """Read the chips that proved since the last refresh (at most one read per
        :data:`REFRESH_EVERY_S`: every page and event stream asks), and find again which
        ALLOWED no longer stand (every :data:`LAPSED_EVERY_S`, or at once when a lapsed
        chip proved); returns the fleet's version (the newest proof row read)."""
        with self._lock:
            now = time.monotonic()
            if now - self._read_at < REFRESH_EVERY_S:
                return self._version
            self._read_at = now
            fresh = self._view.positions_since(self._version)
            for position in fresh:
                earlier = self._positions.get(position.device_id)
                if earlier is not None:
                    self._counts[earlier.verdict.value] -= 1
                self._counts[position.verdict.value] += 1
                self._positions[position.device_id] = position
                self._version = max(self._version, position.proof_row)
            reproved = any(position.device_id in self._lapsed for position in fresh)
            if reproved or now - self._lapsed_at >= LAPSED_EVERY_S:
                self._lapsed = frozenset(self._find_lapsed(self._positions))
                self._lapsed_at = now
            return self._version

    @property
    def positions(self) -> dict[str, Position]:
        with self._lock:
            return dict(self._positions)

    def counts(self) -> dict[str, int]:
        """Chips by the verdict of their newest accepted proof (kept as they are read), an
        ALLOWED that no longer stands counted as LAPSED."""
        with self._lock:
            counts = dict(self._counts)
            counts[LAPSED] = len(self._lapsed)
            counts[Verdict.ALLOWED.value] = counts.get(Verdict.ALLOWED.value, 0) - len(self._lapsed)
            return {verdict: n for verdict, n in counts.items() if n}

    def groups(self) -> list[Group]:
        with self._lock:
            lapsed = self._lapsed
        return group_positions(self.positions.values(), lapsed)

    def svg(self, landmarks: Sequence[Landmark]) -> str:
        """The fleet map (cached until the fleet or the landmarks' states change)."""
        version = self.refresh()
        states = tuple(f"{lm.record.landmark_id}:{lm.state}" for lm in landmarks)
        key = (version, len(self._positions), states, self._lapsed)
        drawn = self._drawn
        if drawn is not None and drawn[0] == key:
            return drawn[1]
        svg = self._draw(landmarks)
        self._drawn = (key, svg)
        return svg

    def _draw(self, landmarks: Sequence[Landmark]) -> str:
        groups = self.groups()
        points = [(lm.record.latitude, lm.record.longitude) for lm in landmarks]
        points += [(b.latitude, b.longitude) for g in groups for b in g.members[0].bounds[:1]]
        canvas = Canvas(View.around(points), self._countries)
        for name in sorted({p.licensed_region for g in groups for p in g.members}):
            region = self._licensed.get(name)
            if region is not None:
                canvas.shape(
                    region,  # type: ignore[arg-type]
                    css_class="licensed",
                    attributes=f'data-region="{html.escape(name)}"',
                )
        for group in groups:
            draw_group(canvas, group, self._shape(group))
        draw_landmarks(canvas, landmarks)
        return canvas.render()

    def _shape(self, group: Group) -> BaseGeometry | None:
        """The group's feasible region (cached by its key)."""
        shape = self._shapes.get(group.cache_key, _UNDRAWN)
        if shape is _UNDRAWN:
            shape = feasible_shape(self._appraiser, group.bounds)
            if len(self._shapes) > MAX_CACHED_SHAPES:
                self._shapes.clear()
            self._shapes[group.cache_key] = shape
        return shape  # type: ignore[return-value]


_UNDRAWN = object()
MAX_CACHED_SHAPES = 20_000


def feasible_shape(appraiser: GeoAppraiser, bounds: Sequence[LandmarkBound]) -> BaseGeometry | None:
    """The outer feasible region of ``bounds`` (None: none can be drawn)."""
    return appraiser.feasible(bounds).polygon if bounds else None


def draw_group(
    canvas: Canvas, group: Group, polygon: BaseGeometry | None, css: str = "chip"
) -> None:
    """A group's feasible region and a marker in its verdict's colour."""
    colour = VERDICT_COLOURS.get(group.verdict, "#000")
    bounds = group.bounds
    ids = [m.device_id for m in group.members]
    listed = " ".join(ids[:LISTED_IDS])
    attributes = (
        f'data-verdict="{group.verdict}" data-count="{len(ids)}" '
        f'data-devices="{html.escape(listed)}" fill="{colour}" stroke="{colour}"'
    )
    canvas.shape(polygon, css_class=f"{css}-region", attributes=attributes)
    if polygon is not None:
        centre = polygon.representative_point()
        lat, lon = centre.y, centre.x
    else:
        tightest = min(bounds, key=lambda b: b.bound_km)
        lat, lon = tightest.latitude, tightest.longitude
    title = f"{group.verdict}: {len(ids)} chip(s): {listed}"
    label = ids[0] if len(ids) == 1 else f"{len(ids)} chips"
    canvas.marker(
        lat, lon, css_class=css, title=title, attributes=attributes, label=label, radius_px=6
    )


def draw_landmarks(canvas: Canvas, landmarks: Sequence[Landmark]) -> None:
    for lm in landmarks:
        record = lm.record
        canvas.marker(
            record.latitude,
            record.longitude,
            css_class=f"landmark landmark-{lm.state}",
            title=f"{record.landmark_id} ({record.operator or 'own operator'}): {lm.state}",
            radius_px=4,
            attributes=f'data-landmark="{html.escape(record.landmark_id)}"',
        )
