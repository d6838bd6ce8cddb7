"""The fleet study on a map: one panel per licensed region, each town coloured by the
share of its honest chips that were ALLOWED."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from geoattest.demo.scenario import DemoScenario
from geoattest.geo.render import draw_land, draw_shape
from geoattest.sim.fleet import FleetResult

CMAP = colormaps["RdYlGn"]


def render_fleet_map(path: Path, result: FleetResult, scenario: DemoScenario) -> None:
    """Write a PNG: per region, where honest chips were certifiable and where not."""
    places = result.places
    policy = scenario.policy
    countries = policy.countries
    regions = places.regions
    columns = min(3, len(regions))
    rows = math.ceil(len(regions) / columns)
    fig = Figure(figsize=(5.2 * columns, 4.6 * rows + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    norm = Normalize(0.0, 1.0)
    share = places.allowed_share()
    chips = places.counts.sum(axis=1)
    lm_lat = np.asarray([s.latitude for s in scenario.landmarks])
    lm_lon = np.asarray([s.longitude for s in scenario.landmarks])
    for n, name in enumerate(regions):
        ax = fig.add_subplot(rows, columns, n + 1)
        region = policy.regions[name]
        here = np.isin(places.code, sorted(region.countries)) & (chips > 0)
        shape = region.drawing(countries)
        if here.any():
            x0, y0, x1, y1 = _view(places.lon[here], places.lat[here])
        else:  # no chip of a small study landed in this region: frame the region itself
            bx0, by0, bx1, by1 = shape.bounds
            x0, y0, x1, y1 = _view(np.array([bx0, bx1]), np.array([by0, by1]))
        window = shapely.box(x0, y0, x1, y1)
        draw_land(ax, countries, window)
        draw_shape(ax, shape, window, facecolor="none", edgecolor="#2e7d32", lw=1.0)
        order = np.argsort(chips[here])[::-1]  # big towns first, small ones stay visible
        ax.scatter(
            places.lon[here][order],
            places.lat[here][order],
            s=4 + 60 * np.sqrt(chips[here][order] / chips[here].max(initial=1)),
            c=share[here][order],
            cmap=CMAP,
            norm=norm,
            edgecolors="#333333",
            linewidths=0.3,
            zorder=4,
        )
        seen = (lm_lon >= x0) & (lm_lon <= x1) & (lm_lat >= y0) & (lm_lat <= y1)
        ax.plot(lm_lon[seen], lm_lat[seen], "^", color="#1f3b73", ms=8, zorder=5)
        total = places.counts[here].sum()
        allowed = share[here] * chips[here]
        rate = float(np.nansum(allowed) / total) if total else 0.0
        ax.set_title(f"{name}: {rate:.1%} of {int(total):,} honest chips ALLOWED", fontsize=10)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect(1.0 / max(0.05, math.cos(math.radians((y0 + y1) / 2))))
        ax.set_facecolor("#dbe9f6")
        ax.tick_params(labelsize=7)
    colourbar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=CMAP),
        ax=fig.axes,
        shrink=0.6,
        location="right",
    )
    colourbar.set_label("share of a town's honest chips ALLOWED")
    fig.legend(
        handles=[
            Line2D([], [], marker="^", ls="none", color="#1f3b73", label="landmark"),
            Line2D([], [], color="#2e7d32", label="licensed region"),
            Line2D(
                [],
                [],
                marker="o",
                ls="none",
                mfc="#cccccc",
                mec="#333333",
                label="town (size: chips)",
            ),
        ],
        loc="lower center",
        ncol=3,
        fontsize=9,
    )
    fig.suptitle(
        f"{result.devices:,} chips, {result.scenario}: false ALLOWED {result.false_allowed}",
        fontsize=12,
    )
    fig.savefig(path)


def _view(
    lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> tuple[float, float, float, float]:
    """A square box around the places, padded, never less than three degrees across."""
    x0, x1 = float(lon.min()), float(lon.max())
    y0, y1 = float(lat.min()), float(lat.max())
    half = max(x1 - x0, y1 - y0, 3.0) * 0.65
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - half, max(-90.0, cy - half), cx + half, min(90.0, cy + half)
