"""What every benchmark prints: a table for people, or one JSON object with ``--json``."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

Figures = dict[str, float | int | str]
KM_PER_US = 0.149896229
"""Distance bound per microsecond of RTT at c (half the round trip)."""


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def quantile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def emit(title: str, figures: Figures, *, as_json: bool) -> None:
    """One JSON object on stdout, or a two-column table (progress went to stderr)."""
    figures = {"benchmark": title, "machine": machine(), **figures}
    if as_json:
        print(json.dumps(figures, sort_keys=False))
        return
    table = Table(title=f"geoattest bench {title}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
        table.add_row(name, shown)
    Console(markup=False).print(table)


@contextmanager
def progress(description: str, total: int) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr, so that ``--json`` output stays one clean object; none
    where stderr is not a terminal (a log, a pipe), which would get only its closing
    newline, ahead of any one-line error."""
    console = Console(stderr=True, markup=False)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        yield bar, bar.add_task(description, total=total)
