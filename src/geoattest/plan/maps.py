"""Coverage maps: where an honest chip is ALLOWED, INCONCLUSIVE or OUTSIDE, one panel per
path stretch, over Natural Earth land and borders (drawn by :mod:`geoattest.geo.render`).

Each grid cell is coloured by the verdict at its centre; sea is left blank (chips are on
land). The licensed region is outlined, landmarks are triangles (new ones from a plan are
stars), and landmarks outside the view are listed in a box with their distance.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from geoattest.geo.policy import RegionPolicy
from geoattest.geo.render import draw_land, draw_shape, frame_axes
from geoattest.geo.sphere import wrap_lon
from geoattest.netsim.latency import haversine_km
from geoattest.plan.coverage import VERDICTS, Coverage, StretchCoverage
from geoattest.verdict import Verdict

COLOURS = {
    Verdict.ALLOWED: "#2e9e44",
    Verdict.INCONCLUSIVE: "#f2b33d",
    Verdict.OUTSIDE: "#c8553d",
    Verdict.INCONSISTENT: "#7b3fa0",
    Verdict.REJECTED: "#555555",
}
MEANING = {
    Verdict.ALLOWED: "ALLOWED (certifiable)",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE (disks cross a border)",
    Verdict.OUTSIDE: "OUTSIDE (provably elsewhere)",
    Verdict.INCONSISTENT: "INCONSISTENT",
    Verdict.REJECTED: "REJECTED",
}
LANDMARK = "#1f3b73"
NEW_LANDMARK = "#d6336c"
REGION_EDGE = "#0b5d1e"
TOWNS_SHOWN = 250
"""Largest towns drawn (the shares count every town; more would hide the cells)."""


def render_coverage(
    path: Path,
    coverage: Coverage,
    policy: RegionPolicy,
    *,
    title: str,
    new_landmarks: Collection[str] = (),
) -> None:
    """Write a PNG with one panel per stretch of the coverage (median, then p90)."""
    panels = list(coverage.stretches.items())
    west, south, east, north = coverage.grid.extent
    aspect = (east - west) * math.cos(math.radians((south + north) / 2)) / max(north - south, 1e-6)
    width = 6.4 if aspect < 1.6 else 8.0
    height = min(9.0, max(3.6, width / max(aspect, 0.3))) + 1.4
    fig = Figure(figsize=(width * len(panels), height), dpi=100)
    FigureCanvasAgg(fig)
    for i, (name, stretch) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        draw_coverage(ax, coverage, stretch, policy, stretch_name=name, new_landmarks=new_landmarks)
    faults = coverage.landmark_faults
    fig.suptitle(
        f"{title}\nALLOWED survives {faults} lying landmark operator{'' if faults == 1 else 's'}",
        fontsize=12,
    )
    handles: list[Any] = [
        Patch(facecolor=COLOURS[v], alpha=0.75, label=MEANING[v])
        for v in VERDICTS
        if any((s.cells == VERDICTS.index(v) + 1).any() for s in coverage.stretches.values())
    ]
    handles += [
        Patch(facecolor="none", edgecolor=REGION_EDGE, lw=1.6, label="licensed region"),
        Patch(facecolor="#efeae0", edgecolor="#7a7a7a", label="land, borders (Natural Earth)"),
        Line2D([], [], marker="^", ls="none", color=LANDMARK, ms=8, label="landmark"),
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            mfc="white",
            mec="black",
            ms=6,
            label=f"town, {TOWNS_SHOWN} largest (size: people; fill: verdict)",
        ),
    ]
    if new_landmarks:
        handles.append(
            Line2D([], [], marker="*", ls="none", color=NEW_LANDMARK, ms=12, label="new landmark")
        )
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8.5)
    # Keep about 0.9 inch at the bottom for the legend and 0.75 inch at the top for the
    # title's two lines.
    fig.tight_layout(rect=(0, 0.9 / height, 1, 1 - 0.75 / height))
    fig.savefig(path)


def draw_coverage(
    ax: Any,
    coverage: Coverage,
    stretch: StretchCoverage,
    policy: RegionPolicy,
    *,
    stretch_name: str,
    new_landmarks: Collection[str] = (),
    list_off_view: bool = True,
) -> None:
    """One panel: verdict cells, land and borders, the region's outline, the landmarks;
    ``list_off_view`` adds a box naming the landmarks out of view (small panels leave it
    out, as it would hide the corner it sits in)."""
    grid = coverage.grid
    west, south, east, north = grid.extent
    window = shapely.box(west, south, east, north)
    draw_land(ax, policy.countries, window, border_zorder=3)
    cmap = ListedColormap([COLOURS[v] for v in VERDICTS])
    norm = BoundaryNorm(np.arange(0.5, len(VERDICTS) + 1.0), cmap.N)
    cells = np.ma.masked_equal(stretch.cells, 0)
    ax.imshow(
        cells,
        cmap=cmap,
        norm=norm,
        origin="lower",
        extent=(west, east, south, north),
        interpolation="nearest",
        alpha=0.75,
        zorder=2,
    )
    towns = coverage.towns
    shown = np.argsort(-towns.population, kind="stable")[:TOWNS_SHOWN]
    if len(towns):
        size = 3 + 40 * np.sqrt(towns.population[shown] / max(float(towns.population.max()), 1.0))
        ax.scatter(
            wrap_lon(towns.lon[shown], (west + east) / 2),
            towns.lat[shown],
            s=size,
            c=[COLOURS[VERDICTS[code - 1]] for code in stretch.towns[shown]],
            edgecolors="black",
            linewidths=0.4,
            alpha=0.9,
            zorder=5,
        )
    licensed = policy.regions[coverage.region].drawing(policy.countries)
    draw_shape(ax, licensed, window, facecolor="none", edgecolor=REGION_EDGE, lw=1.6, zorder=4)
    centre_lon = (west + east) / 2
    off_view = []
    for site in coverage.sites:
        lon = float(wrap_lon(site.longitude, centre_lon))
        new = site.landmark_id in new_landmarks
        if west <= lon <= east and south <= site.latitude <= north:
            ax.plot(
                lon,
                site.latitude,
                marker="*" if new else "^",
                color=NEW_LANDMARK if new else LANDMARK,
                mec="white",
                ms=13 if new else 9,
                zorder=6,
            )
            ax.annotate(
                site.landmark_id,
                (lon, site.latitude),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=8,
                zorder=7,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )
        else:
            km = float(haversine_km((south + north) / 2, centre_lon, site.latitude, site.longitude))
            off_view.append((km, site.landmark_id))
    if off_view and list_off_view:
        lines = [f"{lid}: {km:,.0f} km" for km, lid in sorted(off_view)[:6]]
        if len(off_view) > 6:
            lines.append(f"... and {len(off_view) - 6} more")
        ax.text(
            0.99,
            0.99,
            "landmarks out of view\n" + "\n".join(lines),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7.5,
            zorder=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.85},
        )
    population = stretch.population_share
    people = "no towns" if population is None else f"{population:.1%} of population"
    ax.set_title(
        f"{stretch_name} path stretch (q={stretch.quantile:g}): certifiable "
        f"{stretch.area_share:.1%} of area, {people}",
        fontsize=9.5,
    )
    frame_axes(ax, grid.extent)
