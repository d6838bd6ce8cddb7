"""``geoattest bench NAME``: the macro benchmarks; each prints a table or, with
``--json``, one JSON object. Implementations live in :mod:`geoattest.bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoattest.cli.outputs import png_file

app = typer.Typer(
    help="Overhead benchmarks: each figure a ratio to a baseline measured in the same run.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead.")]
LoadOption = Annotated[
    bool,
    typer.Option(
        "--load", help="Run 'stress-ng --cpu 2' beside the benchmark (stress-ng must be installed)."
    ),
]


@app.command("timing")
def timing(
    as_json: JsonOption = False,
    samples: Annotated[
        int, typer.Option(min=16, help="Echoes, and timed exchanges, to measure each.")
    ] = 4000,
    load: LoadOption = False,
) -> None:
    """p50/p99 RTT of the timed exchange vs a bare UDP echo on loopback (goal: ratio <= 1.5),
    and each receipt's rtt_min vs an echo that waits as the agent does (goal: <= 1.3)."""
    from geoattest.bench import report, timing  # noqa: PLC0415  (imports gRPC-free but slow)

    report.emit("timing", timing.run(samples, load=load), as_json=as_json)


@app.command("gpu")
def gpu(
    as_json: JsonOption = False,
    seconds: Annotated[
        float,
        typer.Option(min=0.5, max=3600, help="Seconds of matrix products per phase (7 phases)."),
    ] = 5.0,
    size: Annotated[int, typer.Option(min=256, help="Matrix side (bf16, size^3).")] = 8192,
) -> None:
    """bf16 matmul TFLOP/s with the agent attesting on the GPU (armed vs launch per
    challenge) and the timed answer's latency; skipped (exit 0) where there is no CUDA."""
    from geoattest.bench import gpu, report  # noqa: PLC0415

    reason = gpu.skip_reason()
    if reason is None:
        report.emit("gpu", gpu.run(seconds, size), as_json=as_json)
    elif as_json:
        report.emit("gpu", {"skipped": reason}, as_json=True)
    else:
        typer.echo(reason)


@app.command("verifier")
def verifier(
    as_json: JsonOption = False,
    chips: Annotated[int, typer.Option(min=2, help="Chips (one proof each per phase).")] = 400,
    batch: Annotated[int, typer.Option(min=1, help="Proofs per batch call.")] = 50,
    cores: Annotated[
        int | None, typer.Option(min=1, help="Verifier processes (default: every core).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Also serve the load from PostgreSQL, in the same run: 'postgresql' starts a "
            "temporary server of the bench's own (PostgreSQL's binaries must be installed); "
            "a postgresql:// URL names a server where this user may create databases (one "
            "per replica count, dropped after). Default: SQLite only."
        ),
    ] = None,
    replicas: Annotated[
        list[int] | None,
        typer.Option(
            min=1,
            help="With --db: separate 'verifier serve' replicas over the one database, the "
            "cores shared out as their workers (repeatable; default: 1 and 2).",
        ),
    ] = None,
) -> None:
    """Proofs/s: pipeline, gRPC unary, gRPC batch (SQLite; with --db, PostgreSQL at each
    replica count, its connections counted), each vs the crypto-only bound."""
    from geoattest.bench import report, verifier  # noqa: PLC0415

    figures = verifier.run(chips, batch, cores=cores, db=db, replicas=replicas or (1, 2))
    report.emit("verifier", figures, as_json=as_json)


@app.command("alerts")
def alerts(
    as_json: JsonOption = False,
    alerts: Annotated[int, typer.Option(min=2, help="Forked proofs, one alert each.")] = 100,
    db: Annotated[
        str,
        typer.Option(
            help="'postgresql': a temporary server of the bench's own (PostgreSQL's binaries "
            "must be installed); or a postgresql:// URL of a server where this user may "
            "create databases (one is made, and dropped after)."
        ),
    ] = "postgresql",
) -> None:
    """Alert latency p50/p99 from the replica that raises it to a subscriber at another,
    PostgreSQL and SQLite, vs the raising replica's own answer."""
    from geoattest.bench import alerts as bench_alerts  # noqa: PLC0415
    from geoattest.bench import report  # noqa: PLC0415

    report.emit("alerts", bench_alerts.run(alerts, db), as_json=as_json)


@app.command("security")
def security(
    as_json: JsonOption = False,
    chips: Annotated[int, typer.Option(min=1, help="Chips, each on its own connection.")] = 16,
    rounds: Annotated[int, typer.Option(min=1, help="Proofs per chip per batch.")] = 8,
) -> None:
    """Batch proofs/s over plaintext, mutual TLS, and mutual TLS with the audit log."""
    from geoattest.bench import report, security  # noqa: PLC0415

    report.emit("security", security.run(chips, rounds), as_json=as_json)


@app.command("agent")
def agent(
    as_json: JsonOption = False,
    proofs: Annotated[int, typer.Option(min=1, help="Proofs to build (k rounds each).")] = 100,
    load: LoadOption = False,
) -> None:
    """Agent CPU and bytes per proof (k = 4, n = 8) and its duty cycle per minute and hour."""
    from geoattest.bench import agent, report  # noqa: PLC0415

    report.emit("agent", agent.run(proofs, load=load), as_json=as_json)


@app.command("scale")
def scale(
    as_json: JsonOption = False,
    plot: Annotated[Path, typer.Option(help="Where to write the PNG.")] = Path(
        "geoattest-bench-scale.png"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="Fleets of 1k and 10k, k of 1 and 4 (~5 s).")
    ] = False,
    fleet: Annotated[
        list[int] | None,
        typer.Option(
            min=100, help="Enrolled devices per fleet, repeatable (default: 1k, 100k, 1M)."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Enrol the fleets in PostgreSQL: 'postgresql' starts a temporary server of "
            "the bench's own (PostgreSQL's binaries must be installed); a postgresql:// URL "
            "names a server where this user may create databases (one per fleet, dropped "
            "after). Default: SQLite files."
        ),
    ] = None,
) -> None:
    """Verifier µs and memory per proof as the fleet grows (1k, 100k, 1M devices in SQLite,
    or --fleet sizes in --db) and as k grows (1 to 16), vs the smallest fleet and the
    crypto-only cost; takes ~25 s at the default sizes (bulk-enrolling 1M devices is ~15 s
    of it)."""
    from geoattest.bench import report, scale  # noqa: PLC0415

    png_file(plot, "--plot")
    fleets = fleet or (scale.QUICK_FLEETS if quick else scale.FLEETS)
    if quick:
        figures = scale.run(plot, fleets=fleets, ks=scale.QUICK_KS, rounds=2, repeats=2, db=db)
    else:
        figures = scale.run(plot, fleets=fleets, db=db)
    report.emit("scale", figures, as_json=as_json)
