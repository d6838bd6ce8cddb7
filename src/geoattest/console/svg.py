"""Maps as SVG, drawn by the server from the Natural Earth borders the verifier judges by.

No tiles and no script library: a map is an ``<svg>`` element of paths in an
equirectangular projection around the view's middle latitude (longitudes scaled by its
cosine, so shapes near the view look right). Countries are clipped to the view and
simplified to about a pixel, then cached per view, so a page costs the map's shapes once.

Example::

    view = View.around([(50.1, 8.7)], min_span_deg=4)
    canvas = Canvas(view, countries)
    canvas.shape(region, css_class="licensed")
    canvas.marker(50.1, 8.7, css_class="landmark", title="lm-fra")
    svg = canvas.render()
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoattest.geo.countries import Countries

Project = Callable[[float, float], tuple[float, float]]
"""(lon, lat) in degrees to (x, y) in the map's pixels."""

ASPECT = 1.8
"""A map's least width over its height."""
WIDTH_PX = 960
"""The map's drawing width; the browser scales it to the page."""

VERDICT_COLOURS = {
    "ALLOWED": "#2e7d32",
    "OUTSIDE": "#c62828",
    "INCONCLUSIVE": "#f9a825",
    "INCONSISTENT": "#6a1b9a",
    "REJECTED": "#616161",
    "LAPSED": "#90a4ae",
}
"""One colour per verdict, the same on every page and in the legend. LAPSED is an ALLOWED
that no longer stands (:mod:`geoattest.verifier.standing`): never drawn as ALLOWED."""


@dataclass(frozen=True, slots=True)
class View:
    """A rectangle of longitude and latitude, in degrees."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def around(cls, points: Iterable[tuple[float, float]], *, min_span_deg: float = 4.0) -> View:
        """The smallest view holding ``points`` (lat, lon) with a margin, at least
        ``min_span_deg`` wide and high, snapped to whole degrees so that it is stable while
        the fleet moves a little (and its clipped borders stay cached)."""
        pts = list(points)
        if not pts:
            return cls(-180.0, -60.0, 180.0, 80.0)
        lats = [p[0] for p in pts]
        lons = [p[1] for p in pts]
        south, north = min(lats), max(lats)
        west, east = min(lons), max(lons)
        margin = max(north - south, east - west, min_span_deg) * 0.15
        south, north = _widen(south - margin, north + margin, min_span_deg)
        x_scale = math.cos(math.radians((south + north) / 2))
        # As wide as a screen: at least ASPECT times as wide as high, on the map.
        west, east = _widen(
            west - margin, east + margin, max(min_span_deg, ASPECT * (north - south) / x_scale)
        )
        return cls(
            max(-180.0, math.floor(west)),
            max(-85.0, math.floor(south)),
            min(180.0, math.ceil(east)),
            min(85.0, math.ceil(north)),
        )

    @property
    def x_scale(self) -> float:
        return math.cos(math.radians((self.south + self.north) / 2))


def _widen(low: float, high: float, span: float) -> tuple[float, float]:
    if high - low >= span:
        return low, high
    middle = (low + high) / 2
    return middle - span / 2, middle + span / 2


class Canvas:
    """One SVG map being drawn: layers are added in order and rendered at the end."""

    def __init__(self, view: View, countries: Countries) -> None:
        self.view = view
        px = _px(view)
        self.height_px = round((view.north - view.south) * px)
        self._xy: Project = functools.partial(_project, view, px)
        self._parts: list[str] = [_land(view, countries)]

    def path_data(self, geometry: BaseGeometry) -> str:
        """``d`` of an SVG path for a polygon or multipolygon, in this view."""
        return _path_data(geometry, self._xy)

    def shape(self, geometry: BaseGeometry | None, *, css_class: str, attributes: str = "") -> None:
        """A filled shape (clipped to the view)."""
        if geometry is None or geometry.is_empty:
            return
        v = self.view
        clipped = shapely.clip_by_rect(geometry, v.west - 1, v.south - 1, v.east + 1, v.north + 1)
        if clipped.is_empty:
            return
        self._parts.append(
            f'<path class="{css_class}" d="{self.path_data(clipped)}" {attributes}/>'
        )

    def marker(
        self,
        lat: float,
        lon: float,
        *,
        css_class: str,
        title: str,
        radius_px: float = 5,
        attributes: str = "",
        label: str = "",
    ) -> None:
        """A dot of a fixed size at a point, with a tooltip and an optional label."""
        x, y = self._xy(lon, lat)
        text = f'<text x="{x + radius_px + 2}" y="{y + 4}">{html.escape(label)}</text>'
        self._parts.append(
            f'<g class="{css_class}" {attributes}><title>{html.escape(title)}</title>'
            f'<circle cx="{x}" cy="{y}" r="{radius_px}"/>{text if label else ""}</g>'
        )

    def render(self, *, element_id: str = "map") -> str:
        return (
            f'<svg id="{element_id}" class="map" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {WIDTH_PX} {self.height_px}" role="img">'
            + "".join(self._parts)
            + "</svg>"
        )


def _px(view: View) -> float:
    """Pixels per degree of (scaled) longitude in ``view``."""
    return WIDTH_PX / ((view.east - view.west) * view.x_scale)


def _path_data(geometry: BaseGeometry, to_xy: Project) -> str:
    parts = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        if polygon.geom_type == "Polygon":
            rings: Sequence[Any] = [polygon.exterior, *polygon.interiors]
        elif polygon.geom_type in {"MultiPolygon", "GeometryCollection"}:
            parts.append(_path_data(polygon, to_xy))
            continue
        else:
            continue
        for ring in rings:
            coords = list(ring.coords)
            if len(coords) < 3:
                continue
            points = " ".join(f"{px},{py}" for px, py in (to_xy(x, y) for x, y in coords))
            parts.append(f"M{points}Z")
    return "".join(parts)


@functools.lru_cache(maxsize=16)
def _land(view: View, countries: Countries) -> str:
    """The countries in ``view`` as one SVG group, clipped and simplified (cached)."""
    px = _px(view)
    tolerance = 0.6 / px
    box = shapely.box(view.west, view.south, view.east, view.north)
    paths = []
    canvas_xy: Project = functools.partial(_project, view, px)
    for code in countries.codes:
        shape = countries.get(code).shape
        if not shape.intersects(box):
            continue
        clipped = shapely.clip_by_rect(shape, view.west, view.south, view.east, view.north)
        simple = clipped.simplify(tolerance, preserve_topology=True)
        if simple.is_empty:
            continue
        d = _path_data(simple, canvas_xy)
        paths.append(f'<path class="country" d="{d}"><title>{html.escape(code)}</title></path>')
    return '<g class="land">' + "".join(paths) + "</g>"


def _project(view: View, px: float, lon: float, lat: float) -> tuple[float, float]:
    return (
        round((lon - view.west) * view.x_scale * px, 1),
        round((view.north - lat) * px, 1),
    )
