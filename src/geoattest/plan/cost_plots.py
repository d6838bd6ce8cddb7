"""Plots of the sensitivity sweeps: landmarks, cadence and faults against what they buy.

Each function writes one PNG, in few colours and at :data:`DPI`, small enough to embed
several in a brief.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from PIL import Image

from geoattest.plan.cost import duration, usd
from geoattest.plan.sensitivity import RegionSweep, Sensitivity

DPI = 90
PALETTE = 256
NICE_DURATIONS_S = (60, 300, 900, 3600, 3 * 3600, 12 * 3600, 86_400, 3 * 86_400, 7 * 86_400)
"""Tick marks of a delay axis: durations people name."""
FAULT_STYLE = {0: "-", 1: "--"}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    save_small_png(fig, path)


def save_small_png(fig: Figure, path: Path, dpi: int = DPI) -> None:
    """The figure as a palette PNG of :data:`PALETTE` colours: a third of the size of
    matplotlib's full-colour one, so a brief can carry several."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB").quantize(colors=PALETTE, method=Image.Quantize.FASTOCTREE)
        small.save(path, format="PNG", optimize=True)


def plot_landmarks(path: Path, sens: Sensitivity, title: str) -> None:
    """Certifiable share per region, and the cost per certifiable chip, as the greedy
    plan adds landmarks to every region (solid: 0 faults, dashed: 1)."""
    fig = _figure(10.5, 4.2)
    share_ax, cost_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colours = _colours(len(sens.regions))
    for colour, region in zip(colours, sens.regions, strict=True):
        for faults, shares in region.shares.items():
            share_ax.plot(
                range(len(shares)),
                [100 * s for s in shares],
                FAULT_STYLE[faults],
                marker="o",
                ms=4,
                color=colour,
                label=region.region if faults == 0 else None,
            )
    share_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    cost_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    share_ax.set_xlabel("landmarks added to the region (greedy plan)")
    share_ax.set_ylabel("certifiable share of the region (%)")
    share_ax.set_ylim(-2, 102)
    share_ax.legend(fontsize=8, ncol=2, title="solid: 0 faults, dashed: 1", title_fontsize=8)
    share_ax.grid(alpha=0.3)
    for faults in sorted({p.faults for p in sens.landmarks}):
        priced = [
            (p, per)
            for p in sens.landmarks
            if p.faults == faults and (per := p.per_certifiable_chip_year) is not None
        ]
        cost_ax.plot(
            [p.added for p, _ in priced],
            [per for _, per in priced],
            FAULT_STYLE[faults],
            marker="o",
            color="#1f3b73",
            label=f"{faults} fault{'s' if faults != 1 else ''}",
        )
        for p, per in priced:
            cost_ax.annotate(
                f"{p.landmarks} lm, {100 * p.certifiable_share:.0f}%",
                (p.added, per),
                xytext=(4, 4 if faults == 0 else -11),
                textcoords="offset points",
                fontsize=7,
            )
    cost_ax.set_xlabel("landmarks added to every region")
    cost_ax.set_ylabel("USD per certifiable chip per year")
    cost_ax.set_yscale("log")
    cost_ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    _label(cost_ax.yaxis, usd)
    cost_ax.legend(fontsize=8)
    cost_ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def plot_cadence(path: Path, sens: Sensitivity, title: str, deployed_s: float) -> None:
    """Detection delay, bytes, replicas and cost against the cadence of proofs; a grey
    line marks the deployment's cadence."""
    fig = _figure(10.5, 6.4)
    points = sens.cadence
    x = [p.cadence_s for p in points]
    delay, data = fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2)
    parts, money = fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)
    delay.plot(x, [p.timing.alert_within_s for p in points], "o-", label="OUTSIDE alert")
    delay.plot(x, [p.timing.degraded_within_s for p in points], "s--", label="chip degraded")
    delay.set_ylabel("after diversion, at most")
    delay.legend(fontsize=8)
    data.plot(x, [p.gb_per_year / 1e3 for p in points], "o-", color="#7b3fa0")
    data.set_ylabel("TB on the wire per year")
    parts.step(x, [p.verifier_replicas for p in points], where="mid", label="verifier replicas")
    parts.step(x, [p.landmark_servers for p in points], where="mid", label="landmark servers")
    parts.set_ylabel("machines")
    parts.legend(fontsize=8)
    money.plot(x, [p.total_per_year for p in points], "o-", color="#2e9e44")
    money.set_ylabel("USD per year")
    for ax in (delay, data, parts, money):
        ax.axvline(deployed_s, color="#999999", lw=1, zorder=0)
        ax.set_xscale("log")
        ax.set_xticks(x, [duration(c) for c in x], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time between a chip's proofs")
        ax.grid(alpha=0.3, which="both")
    for ax in (delay, data):
        ax.set_yscale("log")
    low, high = delay.get_ylim()
    delay.set_yticks([t for t in NICE_DURATIONS_S if low <= t <= high])
    _label(delay.yaxis, duration)
    _label(data.yaxis, lambda tb: f"{tb:,.0f}")
    money.set_ylim(bottom=0)
    _label(money.yaxis, usd)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def plot_faults(path: Path, sens: Sensitivity, title: str) -> None:
    """Per region: the certifiable share at 0 and 1 faults, and at 1 fault with a second
    landmark at each of the region's sites; above, the landmarks each level needs."""
    regions = [r for r in sens.regions if 1 in r.shares]
    fig = _figure(10.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.27
    bars: Sequence[tuple[str, str, Any]] = (
        ("0 faults", "#2e9e44", lambda r: r.shares[0][0]),
        ("1 fault", "#f2b33d", lambda r: r.shares[1][0]),
        ("1 fault, a second landmark at each site", "#1f3b73", lambda r: r.doubled),
    )
    for i, (label, colour, value) in enumerate(bars):
        heights = [100 * (value(r) or 0.0) for r in regions]
        drawn = ax.bar(
            [j + (i - 1) * width for j in range(len(regions))],
            heights,
            width,
            color=colour,
            label=label,
        )
        ax.bar_label(drawn, fmt="%.0f%%", fontsize=7, padding=1)
    ax.set_xticks(range(len(regions)), [_needed(r) for r in regions], fontsize=8)
    ax.set_ylabel("certifiable share (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def _needed(region: RegionSweep) -> str:
    """A region's tick label: its landmarks, and how many 1 fault needs for the same share."""
    if region.shares[0][0] <= 0:
        return f"{region.region}\nnothing certifiable\nat 0 faults"
    needed = region.needed_at_one_fault()
    at_one = (
        f"{needed} at 1 fault"
        if needed is not None
        else f"> {region.in_region + len(region.picks)} at 1 fault"
    )
    return f"{region.region}\n{region.in_region} landmark(s) at 0\n{at_one}"


def _label(axis: Any, text: Callable[[float], str]) -> None:
    """Tick labels in words people read (dollars, durations), on a log axis's minor
    ticks too, instead of powers of ten."""
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: text(value)))
    axis.set_minor_formatter(NullFormatter())


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps  # noqa: PLC0415

    palette = colormaps["tab10"]
    return [palette(i % 10) for i in range(n)]
