"""What the demo shows: a live table while it runs, and a map of the fleet at the end."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from geoattest.demo.run import ChipView
from geoattest.demo.scenario import DemoScenario
from geoattest.geo.render import draw_situation
from geoattest.verdict import LandmarkBound

VERDICT_STYLE = {
    "ALLOWED": "bold green",
    "OUTSIDE": "bold red",
    "INCONCLUSIVE": "yellow",
    "INCONSISTENT": "magenta",
    "REJECTED": "red",
}


class LiveTable:
    """A rich table, refreshed in place, one row per chip."""

    def __init__(self, scenario: DemoScenario, views: Mapping[str, ChipView], out: TextIO) -> None:
        self.scenario = scenario
        self.views = views
        console = Console(file=out, markup=False)
        # Not a terminal (a log, a pipe): wide enough that rows do not wrap.
        self.console = (
            console if console.is_terminal else Console(file=out, width=170, markup=False)
        )
        self._live = Live(self._table(), console=self.console, auto_refresh=False)

    def _table(self) -> Table:
        table = Table(title=f"geoattest demo: {self.scenario.name}", expand=False)
        for column in (
            "device",
            "really at",
            "licensed",
            "verdict",
            "tightest bound",
            "licence",
            "proofs",
            "alerts",
        ):
            table.add_column(column)
        for view in self.views.values():
            until = (
                dt.datetime.fromtimestamp(view.licence_until, dt.UTC).strftime("%Y-%m-%d %H:%M")
                if view.licence_until
                else "-"
            )
            table.add_row(
                view.chip.device_id,
                view.chip.place,
                view.chip.licensed_region,
                Text.assemble(
                    (view.verdict, VERDICT_STYLE.get(view.verdict, "")),
                    f" ({view.reason})" if view.reason else "",
                ),
                f"{view.tightest_km:.1f} km" if view.tightest_km is not None else "-",
                f"{view.licence} until {until}" if view.licence == "licensed" else view.licence,
                str(view.proofs),
                ", ".join(sorted(set(view.alerts))) or "-",
            )
        return table

    def start(self) -> None:
        self._live.start()

    def refresh(self) -> None:
        self._live.update(self._table(), refresh=True)

    def stop(self) -> None:
        self.refresh()
        self._live.stop()

    def final(self, summary: Mapping[str, Any], map_path: Path | None) -> None:
        self.console.print()
        counts = summary["summary"]["counts"]
        for device, by_verdict in counts.items():
            parts = ", ".join(f"{v} {n}" for v, n in sorted(by_verdict.items()))
            self.console.print(f"{device}: {parts}")
        if map_path is not None:
            self.console.print(f"map of the feasible regions: {map_path}")
        workspace = summary["summary"]["workspace"]
        if workspace is None:
            self.console.print("workspace (keys, database, logs) removed; --keep keeps it")
        else:
            self.console.print(f"workspace (keys, database, logs): {workspace}")


def render_fleet_map(path: Path, scenario: DemoScenario, views: Mapping[str, ChipView]) -> None:
    """One panel per chip: its last proof's disks, feasible region and licensed region."""
    from geoattest.geo import natural_earth  # noqa: PLC0415  (loads the dataset)

    policy = scenario.policy
    appraiser = policy.appraiser()
    countries = natural_earth()
    panels = list(views.values())
    columns = min(4, len(panels)) or 1
    rows = math.ceil(len(panels) / columns) or 1
    fig = Figure(figsize=(4.6 * columns, 4.4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for index, view in enumerate(panels):
        ax = fig.add_subplot(rows, columns, index + 1)
        bounds = [
            LandmarkBound(b["landmark_id"], b["lat"], b["lon"], int(b["rtt_us"] * 1000))
            for b in view.last_bounds
        ]
        title = f"{view.chip.device_id}: {view.verdict}\n{view.chip.place}"
        if not bounds:  # no proof judged yet (a short run, one stopped early) or none bounded
            ax.set_title(title, fontsize=9)
            ax.text(0.5, 0.5, "no bounds to draw", ha="center", va="center")
            ax.set_axis_off()
            continue
        feasible = appraiser.feasible(bounds).polygon
        region = policy.regions.get(view.chip.licensed_region)
        draw_situation(
            ax,
            bounds,
            feasible,
            region.drawing(countries) if region is not None else None,
            countries,
            title=title,
            probe=(view.chip.latitude, view.chip.longitude),
            legend=index == 0,
        )
    fig.suptitle(f"{scenario.name}: feasible regions at c in vacuum (o = where the chip really is)")
    fig.tight_layout()
    fig.savefig(path)
