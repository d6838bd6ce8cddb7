"""Geography commands for analysts: ``geoattest geo locate`` and ``geoattest geo limits``.

``locate`` runs the same appraiser the verifier uses on RTTs typed in by hand::

    geoattest geo locate --landmark 1.30,103.85,0.08 --allow SG --json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geoattest.cli.outputs import png_file
from geoattest.files import read_json
from geoattest.geo.assumption import LocationAssumption
from geoattest.verdict import LandmarkBound, RegionAppraisal

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from geoattest.geo.estimate import Estimate
    from geoattest.geo.policy import LicensedRegion

app = typer.Typer(help="Feasible regions and verdicts from landmark RTTs.", no_args_is_help=True)

LICENSED = "licensed"


def _floats(text: str, count: int, what: str, usage: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise typer.BadParameter(f"{what} {text!r} must be {usage}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r} must be {usage} (numbers)") from None
    if not all(math.isfinite(v) for v in values):
        raise typer.BadParameter(f"{what} {text!r} must be finite numbers")
    return values


def _lat_lon(lat: float, lon: float, what: str) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise typer.BadParameter(f"{what} ({lat}, {lon}) is not a latitude,longitude")


def _landmarks(specs: list[str]) -> list[LandmarkBound]:
    out = []
    for i, spec in enumerate(specs):
        lat, lon, rtt_ms = _floats(spec, 3, "--landmark", "LAT,LON,RTT_MS")
        _lat_lon(lat, lon, "--landmark")
        if rtt_ms < 0 or rtt_ms > 10_000:
            raise typer.BadParameter(f"--landmark RTT {rtt_ms} ms must be in [0, 10000]")
        # Round up: a bound must never be smaller than the measurement allows.
        out.append(LandmarkBound(f"L{i + 1}", lat, lon, math.ceil(rtt_ms * 1e6)))
    return out


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def _licensed(allow: str | None, geojson: Path | None, circle: str | None) -> LicensedRegion | None:
    # The geometry libraries load with the command that needs them (the verifier extra).
    from geoattest.geo.policy import circle_region, country_region, geojson_region  # noqa: PLC0415

    given = [x for x in (allow, geojson, circle) if x is not None]
    if len(given) > 1:
        raise typer.BadParameter("give at most one of --allow, --allow-geojson, --allow-circle")
    if allow is not None:
        codes = _codes(allow)
        if not codes:
            raise typer.BadParameter("--allow needs at least one country code")
        return country_region(LICENSED, codes)
    if geojson is not None:
        return geojson_region(LICENSED, read_json(geojson, "--allow-geojson"))
    if circle is not None:
        lat, lon, km = _floats(circle, 3, "--allow-circle", "LAT,LON,KM")
        return circle_region(LICENSED, lat, lon, km)
    return None


@app.command()
def locate(
    landmark: Annotated[
        list[str],
        typer.Option(help="LAT,LON,RTT_MS of one landmark's minimum RTT; repeat per landmark."),
    ],
    allow: Annotated[
        str | None, typer.Option(help="Licensed countries, ISO 3166-1 alpha-2: CC[,CC...].")
    ] = None,
    allow_geojson: Annotated[
        Path | None, typer.Option(help="Licensed region as a GeoJSON (Multi)Polygon file.")
    ] = None,
    allow_circle: Annotated[
        str | None, typer.Option(help="Licensed site and radius: LAT,LON,KM.")
    ] = None,
    embargo: Annotated[str | None, typer.Option(help="Embargoed countries: CC[,CC...].")] = None,
    probe: Annotated[
        str | None, typer.Option(help="LAT,LON: report whether it is in the feasible region.")
    ] = None,
    location: Annotated[
        LocationAssumption, typer.Option(help="Where chips are assumed to be.")
    ] = LocationAssumption.LAND,
    margin_km: Annotated[float, typer.Option(help="Border and coastline margin in km.")] = 1.0,
    map_path: Annotated[
        Path | None, typer.Option("--map", help="Write a PNG map of the situation here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Where can the chip be, and what does that prove about its licence?"""
    bounds = _landmarks(landmark)
    if map_path is not None:
        png_file(map_path, "--map")
    region = _licensed(allow, allow_geojson, allow_circle)
    probe_at = None
    if probe is not None:
        plat, plon = _floats(probe, 2, "--probe", "LAT,LON")
        _lat_lon(plat, plon, "--probe")
        probe_at = (plat, plon)
    located = _locate(
        bounds, region, probe_at, _codes(embargo) if embargo else [], location, margin_km
    )
    report = located.report()
    if map_path is not None:
        _render(map_path, located, region)
        report["map"] = str(map_path)
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_located(located, map_path)


@dataclass(frozen=True, slots=True)
class _Located:
    """What ``locate`` found, for the report, the map and the text alike."""

    bounds: Sequence[LandmarkBound]
    verdict: str
    result: RegionAppraisal
    feasible: BaseGeometry | None
    """The outer feasible region (None: empty, or unbounded)."""
    estimate: Estimate | None
    probe: tuple[float, float] | None
    probe_inside: bool | None
    location: LocationAssumption
    licensed: bool

    @property
    def detail(self) -> str:
        return self.result.detail if self.licensed else "no licensed region given"

    def report(self) -> dict[str, Any]:
        """The ``--json`` object."""
        result, estimate = self.result, self.estimate
        return {
            "verdict": self.verdict,
            "bounds_km": [round(b.bound_km, 3) for b in self.bounds],
            "feasible_area_km2": round(result.feasible_area_km2, 1),
            "embargoed": result.embargoed,
            "probe_inside": self.probe_inside,
            "estimate": None
            if estimate is None
            else {
                "lat": round(estimate.lat, 5),
                "lon": round(estimate.lon, 5),
                "model": estimate.model,
            },
            "detail": self.detail,
            "location": self.location.value,
            "touched": list(result.extra.get("touched", [])),
            "feasible_region": result.feasible_region,
        }


def _locate(
    bounds: Sequence[LandmarkBound],
    region: LicensedRegion | None,
    probe_at: tuple[float, float] | None,
    embargo: Sequence[str],
    location: LocationAssumption,
    margin_km: float,
) -> _Located:
    """Appraise the bounds with the verifier's own appraiser, under a one-off policy."""
    from geoattest.geo.estimate import estimate_location  # noqa: PLC0415
    from geoattest.geo.feasible import contains_point  # noqa: PLC0415
    from geoattest.geo.policy import build_policy, country_region  # noqa: PLC0415

    regions = [region] if region is not None else [country_region("none", ["AQ"])]
    policy = build_policy(
        "cli", 1, regions, embargo=embargo, location=location, border_margin_km=margin_km
    )
    appraiser = policy.appraiser()
    result = appraiser.appraise(bounds, LICENSED)
    if region is None:
        # No licence given: the verdict only says whether the disks agree.
        result = appraiser.appraise(bounds, "none")
    outer = appraiser.feasible(bounds)
    verdict = result.verdict.value
    if region is None and verdict != "INCONSISTENT":
        verdict = "INCONCLUSIVE"
    probe_inside = None if probe_at is None else contains_point(outer.polygon, *probe_at)
    if probe_at is not None and outer.polygon is None and not outer.empty:
        probe_inside = True  # unbounded: cannot exclude any point
    return _Located(
        bounds=bounds,
        verdict=verdict,
        result=result,
        feasible=outer.polygon,
        # Disks that share no point (INCONSISTENT) leave no place to estimate.
        estimate=None if outer.empty else estimate_location(bounds, outer.polygon),
        probe=probe_at,
        probe_inside=probe_inside,
        location=location,
        licensed=region is not None,
    )


def _render(path: Path, located: _Located, region: LicensedRegion | None) -> None:
    from geoattest.geo.countries import natural_earth  # noqa: PLC0415
    from geoattest.geo.render import render_map  # noqa: PLC0415 (matplotlib is slow to load)

    render_map(
        path,
        located.bounds,
        located.feasible,
        region.drawing(natural_earth()) if region is not None else None,
        natural_earth(),
        title=f"{located.verdict}: feasible region {located.result.feasible_area_km2:,.0f} km²",
        probe=located.probe,
        estimate=located.estimate,
    )


def _print_located(located: _Located, map_path: Path | None) -> None:
    result, estimate, probe_at = located.result, located.estimate, located.probe
    typer.echo(f"verdict: {located.verdict}" + (" (embargoed)" if result.embargoed else ""))
    typer.echo(f"detail: {located.detail}")
    for b in located.bounds:
        typer.echo(
            f"  {b.landmark_id} at ({b.latitude}, {b.longitude}): "
            f"RTT {b.rtt_min_ns / 1e6:g} ms -> within {b.bound_km:,.1f} km"
        )
    typer.echo(f"feasible region: {result.feasible_area_km2:,.0f} km² (sound, at c in vacuum)")
    if estimate is not None:
        typer.echo(f"likely location: {estimate.lat:.4f}, {estimate.lon:.4f} ({estimate.model})")
    if probe_at is not None:
        inside = "inside" if located.probe_inside else "outside"
        typer.echo(f"probe {probe_at}: {inside} the feasible region")
    if map_path is not None:
        typer.echo(f"map: {map_path}")


@app.command()
def limits(
    out: Annotated[
        Path | None, typer.Option(help="Write the document here instead of printing it.")
    ] = None,
) -> None:
    """The know-the-limits table (docs/LIMITS.md), computed by the appraiser."""
    from geoattest.geo.limits import compute_limits, limits_markdown  # noqa: PLC0415

    text = limits_markdown(compute_limits())
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
