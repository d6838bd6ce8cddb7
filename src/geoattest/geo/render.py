"""A map a person can read: disks, the feasible region, the licensed region, borders.

Rendered with matplotlib's Agg canvas directly (no pyplot, no global state, no display).
Longitudes are unwrapped around the view's centre so a view across the antimeridian is
drawn in one piece; country shapes are shifted by a whole turn where needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.affinity
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from shapely.geometry.base import BaseGeometry

from geoattest.geo.countries import Countries
from geoattest.geo.estimate import Estimate
from geoattest.geo.feasible import cap_rings
from geoattest.geo.sphere import EARTH_RADIUS_KM, grow, wrap_lon
from geoattest.verdict import LandmarkBound


def render_map(
    path: Path,
    bounds: Sequence[LandmarkBound],
    feasible: BaseGeometry | None,
    licensed: BaseGeometry | None,
    countries: Countries,
    *,
    title: str,
    probe: tuple[float, float] | None = None,
    estimate: Estimate | None = None,
) -> None:
    """Write a PNG of the situation to ``path``."""
    fig = Figure(figsize=(9, 8), dpi=110)
    FigureCanvasAgg(fig)
    draw_situation(
        fig.add_subplot(),
        bounds,
        feasible,
        licensed,
        countries,
        title=title,
        probe=probe,
        estimate=estimate,
    )
    fig.savefig(path)


def draw_situation(
    ax: Any,
    bounds: Sequence[LandmarkBound],
    feasible: BaseGeometry | None,
    licensed: BaseGeometry | None,
    countries: Countries,
    *,
    title: str,
    probe: tuple[float, float] | None = None,
    estimate: Estimate | None = None,
    legend: bool = True,
) -> None:
    """Draw disks, feasible region, licensed region and borders on one matplotlib axes."""
    centre_lon = _centre_lon(bounds, feasible)
    view = _view(bounds, feasible, centre_lon)
    x0, y0, x1, y1 = view
    window = shapely.box(x0, y0, x1, y1)

    draw_land(ax, countries, window)
    if licensed is not None:
        draw_shape(
            ax, licensed, window, facecolor="#9fd39f", edgecolor="#2e7d32", alpha=0.55, zorder=3
        )

    lam_ref = math.radians(centre_lon)
    for b in bounds:
        rho = grow(b.bound_km) / EARTH_RADIUS_KM
        rings, ok = cap_rings(
            np.radians([b.latitude]), np.radians([b.longitude]), np.array([rho]), lam_ref, 180
        )
        if ok[0]:
            ring = np.vstack([rings[0], rings[0][:1]])
            ax.plot(ring[:, 0], ring[:, 1], color="#1f77b4", lw=1.0, zorder=4)

    if feasible is not None:
        _fill(ax, feasible, facecolor="#d62728", edgecolor="#8b0000", alpha=0.25, zorder=5)
    if licensed is not None:
        # Outline the licensed region again on top, so it shows through the feasible region.
        draw_shape(ax, licensed, window, facecolor="none", edgecolor="#2e7d32", lw=1.2, zorder=5.5)

    for b in bounds:
        lon = float(wrap_lon(b.longitude, centre_lon))
        ax.plot(lon, b.latitude, marker="^", color="#1f3b73", ms=8, zorder=6)
        ax.annotate(b.landmark_id, (lon, b.latitude), xytext=(4, 4), textcoords="offset points")
    if estimate is not None:
        ax.plot(float(wrap_lon(estimate.lon, centre_lon)), estimate.lat, "x", color="k", ms=9)
    if probe is not None:
        ax.plot(float(wrap_lon(probe[1], centre_lon)), probe[0], "o", mfc="none", mec="k", ms=9)

    handles = [
        Line2D([], [], color="#1f77b4", label="landmark disk (c in vacuum)"),
        Line2D([], [], marker="^", ls="none", color="#1f3b73", label="landmark"),
        Patch(facecolor="#d62728", alpha=0.25, edgecolor="#8b0000", label="feasible region"),
        Patch(facecolor="#9fd39f", alpha=0.55, edgecolor="#2e7d32", label="licensed region"),
        Patch(facecolor="#efeae0", edgecolor="#7a7a7a", label="land, borders (Natural Earth)"),
    ]
    if estimate is not None:
        handles.append(Line2D([], [], marker="x", ls="none", color="k", label="likely (estimate)"))
    if probe is not None:
        handles.append(Line2D([], [], marker="o", ls="none", mfc="none", mec="k", label="probe"))
    if legend:
        ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.9)
    frame_axes(ax, view)
    ax.set_title(title)


def frame_axes(ax: Any, view: tuple[float, float, float, float]) -> None:
    """Limits (west, south, east, north), a local equal-distance aspect, labels, the sea."""
    x0, y0, x1, y1 = view
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 / max(0.05, math.cos(math.radians((y0 + y1) / 2))))
    # Views across the antimeridian use unwrapped longitudes; label them as usual.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{float(wrap_lon(x)):g}"))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_facecolor("#dbe9f6")


_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)


def draw_land(
    ax: Any, countries: Countries, window: BaseGeometry, *, border_zorder: float = 2
) -> None:
    """Land (filled) and country borders and coastlines (lines) inside ``window``.

    The window is in unwrapped longitudes (it may leave [-180, 180]); land is shifted by
    whole turns to meet it. Borders go at ``border_zorder``, so a caller can lay its own
    layer between the land and the borders.
    """
    for shift in (-360.0, 0.0, 360.0):
        moved = shapely.affinity.translate(window, xoff=-shift)
        for i in countries.tree.query(moved):
            piece = shapely.affinity.translate(countries.pieces[i], xoff=shift)
            _fill(ax, piece, facecolor="#efeae0", edgecolor="none", zorder=1)
        for code in countries.touching(moved) if moved.intersects(_WORLD) else ():
            if code == "-99":
                continue
            outline = shapely.affinity.translate(countries.get(code).shape, xoff=shift).boundary
            _line(
                ax,
                shapely.intersection(outline, window),
                color="#7a7a7a",
                lw=0.6,
                zorder=border_zorder,
            )


def draw_shape(ax: Any, shape: BaseGeometry, window: BaseGeometry, **style: object) -> None:
    """A region (longitudes in [-180, 180]) filled or outlined inside an unwrapped window."""
    for shift in (-360.0, 0.0, 360.0):
        part = shapely.intersection(shapely.affinity.translate(shape, xoff=shift), window)
        _fill(ax, part, **style)


def _centre_lon(bounds: Sequence[LandmarkBound], feasible: BaseGeometry | None) -> float:
    if feasible is not None and not feasible.is_empty:
        return float(feasible.centroid.x)
    nearest = min(bounds, key=lambda b: b.bound_km)
    return nearest.longitude


def _view(
    bounds: Sequence[LandmarkBound], feasible: BaseGeometry | None, centre_lon: float
) -> tuple[float, float, float, float]:
    if feasible is not None and not feasible.is_empty:
        x0, y0, x1, y1 = feasible.bounds
    else:
        nearest = min(bounds, key=lambda b: b.bound_km)
        deg = min(nearest.bound_km / 111.0, 80.0)
        lon = float(wrap_lon(nearest.longitude, centre_lon))
        x0, y0, x1, y1 = lon - deg, nearest.latitude - deg, lon + deg, nearest.latitude + deg
    pad = max(x1 - x0, y1 - y0) * 0.35 + 0.05
    return x0 - pad, max(-90.0, y0 - pad), x1 + pad, min(90.0, y1 + pad)


def _fill(ax: object, geom: BaseGeometry, **style: object) -> None:
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        xy = np.asarray(poly.exterior.coords)
        ax.fill(xy[:, 0], xy[:, 1], **style)  # type: ignore[attr-defined]


def _line(ax: object, geom: BaseGeometry, **style: object) -> None:
    for line in shapely.get_parts(geom):
        if line.geom_type not in ("LineString", "LinearRing") or line.is_empty:
            continue
        xy = np.asarray(line.coords)
        ax.plot(xy[:, 0], xy[:, 1], **style)  # type: ignore[attr-defined]
