"""A deployment report an analyst can hand on: Markdown plus the maps it points to.

For a named deployment it puts together the landmark table, per licensed region the
coverage figures and map (``geoattest plan coverage``), the landmark plan with before and
after maps (``geoattest plan landmarks``), and a fleet study (``geoattest sim fleet``:
honest and diverted chips counted by verdict, false ALLOWED stated, a sample replayed
through the real pipeline). Everything is computed afresh from the deployment file.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoattest.demo.scenario import LandmarkSite
from geoattest.errors import StudyError
from geoattest.plan.coverage import Coverage, country_codes, measure
from geoattest.plan.deployment import Deployment
from geoattest.plan.maps import render_coverage
from geoattest.plan.placement import LandmarkPlan, plan_region

Step = Callable[[str, int, int], None]
REPORT_FILE = "REPORT.md"
FLEET_DEVICES = 20_000
"""Chips in the report's fleet study (a quick one; ``geoattest sim fleet`` runs more)."""
FLEET_SAMPLE = 40


@dataclass(frozen=True)
class RegionSection:
    region: str
    coverage: Coverage
    coverage_map: str
    plan: LandmarkPlan | None
    plan_maps: tuple[str, str] | None


def write_report(
    deployment: Deployment,
    out_dir: Path,
    *,
    resolution_deg: float | None = None,
    budget: int | None = None,
    fleet_devices: int = FLEET_DEVICES,
    progress: Step | None = None,
) -> Path:
    """Compute every section and write ``REPORT.md`` and its images into ``out_dir``.

    Raises:
        ConfigError: the deployment cannot be evaluated (see the sections' functions).
        StudyError: the fleet study failed its own checks (the report is written anyway,
            saying so, for the bug report).
    """
    started = time.perf_counter()
    step = progress or (lambda _stage, _done, _total: None)
    sections = []
    spend = deployment.budget if budget is None else budget
    for region in deployment.regions:
        sections.append(
            _region_section(
                deployment, region, out_dir, resolution_deg=resolution_deg, budget=spend, step=step
            )
        )
    fleet = _fleet(deployment, fleet_devices, step) if fleet_devices else None
    text = _markdown(deployment, sections, fleet, time.perf_counter() - started)
    path = out_dir / REPORT_FILE
    path.write_text(text, encoding="utf-8")
    if fleet is not None and fleet.get("verified") is False:
        raise StudyError(f"the fleet study in {path} failed its checks: {fleet['problems']}")
    return path


def _region_section(
    deployment: Deployment,
    region: str,
    out_dir: Path,
    *,
    resolution_deg: float | None,
    budget: int,
    step: Step,
) -> RegionSection:
    policy = deployment.policy
    coverage_map = f"coverage-{region}.png"
    title = f"{deployment.name}: honest chips licensed to {region}"
    if budget == 0:
        coverage, _ = measure(
            policy,
            region,
            deployment.landmarks,
            landmarks_per_chip=deployment.landmarks_per_chip,
            resolution_deg=resolution_deg,
            progress=lambda done, total: step(f"{region}: coverage", done, total),
            landmark_faults=deployment.landmark_faults,
        )
        render_coverage(out_dir / coverage_map, coverage, policy, title=title)
        return RegionSection(region, coverage, coverage_map, None, None)
    plan = plan_region(
        deployment, region, budget=budget, resolution_deg=resolution_deg, progress=step
    )
    render_coverage(out_dir / coverage_map, plan.before, policy, title=title)
    new = [p.site.landmark_id for p in plan.picks]
    after = f"landmarks-{region}-after.png"
    render_coverage(
        out_dir / after,
        plan.after,
        policy,
        title=f"{region} after adding {len(new)}: {', '.join(new) or 'none helped'}",
        new_landmarks=set(new),
    )
    return RegionSection(region, plan.before, coverage_map, plan, (coverage_map, after))


def _fleet(deployment: Deployment, devices: int, step: Step) -> dict[str, Any]:
    """A fleet study over the deployment's country regions, checked against the pipeline."""
    from geoattest.sim.fleet import FleetConfig, run_fleet  # noqa: PLC0415
    from geoattest.sim.replay import check_sample  # noqa: PLC0415

    regions = tuple(r for r in deployment.regions if deployment.policy.regions[r].is_countries)
    if not regions:
        return {"skipped": "no country region: fleet studies place chips by country"}
    config = FleetConfig(
        devices=devices,
        regions=regions,
        sample=FLEET_SAMPLE,
        landmark_faults=deployment.landmark_faults,
    )
    result = run_fleet(
        deployment.scenario,
        config,
        progress=lambda done, total: step("fleet study", done, total),
    )
    check_sample(
        deployment.scenario,
        result,
        progress=lambda done, total: step("fleet sample check", done, total),
    )
    summary: dict[str, Any] = result.to_json()
    summary["problems"] = result.problems()
    return summary


def _markdown(
    deployment: Deployment,
    sections: Sequence[RegionSection],
    fleet: dict[str, Any] | None,
    seconds: float,
) -> str:
    policy = deployment.policy
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {deployment.name}",
        "",
        f"Generated by `geoattest report` on {now} from `{deployment.source}` "
        f"in {seconds:.0f} s. Policy `{policy.policy_id}`: chips are assumed to be on "
        f"{policy.location.value.replace('_', ' ')}; border margin {policy.border_margin_km:g} "
        f"km. Each honest chip measures its {deployment.landmarks_per_chip} nearest "
        f"landmarks; a proof needs {deployment.quorum} receipts, and an ALLOWED must "
        f"survive {_faults(deployment.landmark_faults)} (`landmark_faults = "
        f"{deployment.landmark_faults}`).",
        "",
        "How to read this report: `docs/PLANNING.md` (figures, assumptions, maps).",
        "",
        "## Summary",
        "",
        "Certifiable share: the part of each licensed region where an honest chip gets "
        "ALLOWED from the verifier's own geography, at the median and the 90th-percentile "
        "Internet path stretch (no jitter).",
        "",
        "| region | area (median) | population (median) | area (p90) | population (p90) |"
        + (" population after plan (median) |" if any(s.plan for s in sections) else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if any(s.plan for s in sections) else ""),
    ]
    for s in sections:
        m, p = s.coverage.stretches["median"], s.coverage.stretches["p90"]
        row = (
            f"| {s.region} | {_pct(m.area_share)} | {_pct(m.population_share)} "
            f"| {_pct(p.area_share)} | {_pct(p.population_share)} |"
        )
        if any(x.plan for x in sections):
            after = s.plan.after.stretches["median"].population_share if s.plan else None
            row += f" {_pct(after)} |"
        lines.append(row)
    lines += ["", "## Deployment", "", *_landmark_table(deployment.landmarks, policy), ""]
    lines += [
        f"Licensed regions: {', '.join(policy.regions)}. "
        f"Embargoed: {', '.join(sorted(policy.embargo)) or 'none'}.",
        "",
    ]
    for s in sections:
        lines += _region_markdown(s)
    lines += _fleet_markdown(fleet)
    return "\n".join(lines) + "\n"


def _landmark_table(sites: Sequence[LandmarkSite], policy: Any) -> list[str]:
    import numpy as np  # noqa: PLC0415

    codes = country_codes(
        policy.countries,
        np.asarray([s.latitude for s in sites]),
        np.asarray([s.longitude for s in sites]),
    )
    rows = ["| id | name | lat | lon | country |", "|---|---|---:|---:|---|"]
    for site, code in zip(sites, codes, strict=True):
        rows.append(
            f"| `{site.landmark_id}` | {site.name} | {site.latitude:.4f} | "
            f"{site.longitude:.4f} | {code or 'at sea'} |"
        )
    return rows


def _region_markdown(s: RegionSection) -> list[str]:
    cov = s.coverage
    grid = cov.grid
    lines = [
        f"## Region {s.region}",
        "",
        f"Grid: {int(grid.inside.sum()):,} cells of {grid.resolution_deg:g} degrees on the "
        f"region's land; {len(cov.towns):,} towns of 15,000+ "
        f"({float(cov.towns.population.sum()):,.0f} people).",
        "",
        "| path stretch | certifiable area | certifiable population | inconclusive area "
        "| outside area |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, st in cov.stretches.items():
        lines.append(
            f"| {name} (q={st.quantile:g}) | {_pct(st.area_share)} | "
            f"{_pct(st.population_share)} | {_pct(st.area_by_verdict['INCONCLUSIVE'])} | "
            f"{_pct(st.area_by_verdict['OUTSIDE'])} |"
        )
    lines += ["", f"![coverage of {s.region}]({s.coverage_map})", ""]
    plan = s.plan
    if plan is None or s.plan_maps is None:
        return lines
    lines += [
        f"### Landmark plan for {s.region}",
        "",
        f"Greedy search over {len(plan.candidates)} candidate sites on a "
        f"{plan.search_resolution_deg:g}-degree grid ({plan.search_seconds:.1f} s); gains "
        "are on the search sample at median stretch.",
        "",
    ]
    if plan.picks:
        lines += [
            "| # | site | lat, lon | population share | gain | area share | gain |",
            "|---:|---|---|---:|---:|---:|---:|",
        ]
        for i, p in enumerate(plan.picks, 1):
            lines.append(
                f"| {i} | `{p.site.landmark_id}` {p.site.name} | {p.site.latitude:.3f}, "
                f"{p.site.longitude:.3f} | {_pct(p.population_share)} | "
                f"{_pct(p.population_gain)} | {_pct(p.area_share)} | {_pct(p.area_gain)} |"
            )
        lines.append("")
    if plan.stopped_early:
        lines += [
            "The search stopped early: no remaining candidate raises the certifiable share. "
            "Either the region lies too close to its borders for any honest chip to be "
            "certified, or the candidates are too far from its people"
            + (
                f", or no two of them are close enough together to outvote "
                f"{_faults(plan.before.landmark_faults)}"
                if plan.before.landmark_faults
                else ""
            )
            + " (see docs/PLANNING.md).",
            "",
        ]
    before, after = plan.before.stretches, plan.after.stretches
    lines += [
        "| path stretch | population before | after | area before | after |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in before:
        lines.append(
            f"| {name} | {_pct(before[name].population_share)} | "
            f"{_pct(after[name].population_share)} | {_pct(before[name].area_share)} | "
            f"{_pct(after[name].area_share)} |"
        )
    lines += ["", f"![{s.region} after the plan]({s.plan_maps[1]})", ""]
    return lines


def _fleet_markdown(fleet: dict[str, Any] | None) -> list[str]:
    if fleet is None:
        return []
    lines = ["## Fleet study", ""]
    if "skipped" in fleet:
        return [*lines, f"Skipped: {fleet['skipped']}.", ""]
    check = fleet.get("sample_check", {})
    if not fleet["verified"]:
        lines += [
            f"**This study failed its own checks ({fleet['problems']}): a bug in the study, "
            "not a property of the deployment. Do not use its figures.**",
            "",
        ]
    lines += [
        f"{fleet['devices']:,} simulated chips (`geoattest sim fleet`, seed {fleet['seed']}, "
        f"placement {fleet['placement']}), one proof each. Licensed chips sit in their "
        "region; diverted ones sit abroad and play the attack toolkit's strategies.",
        "",
        f"- honest chips ALLOWED: {_pct(fleet['honest_allowed_rate'])}, INCONCLUSIVE: "
        f"{_pct(fleet['honest_inconclusive_rate'])}, OUTSIDE: "
        f"{_pct(fleet['honest_outside_rate'])}",
        f"- **false ALLOWED (a diverted chip certified): {fleet['false_allowed']}**",
        f"- checks on every chip: {fleet['audit']['chips_outside_a_disk']} outside one of "
        f"its disks, {fleet['audit']['table_contradictions']} contradicting the study's "
        "distance tables (both must be 0)",
        f"- sample replayed through real rounds and the real pipeline: "
        f"{check.get('matched')} of {check.get('checked')} verdicts identical",
        "",
        "Licensed chips here sit at towns weighted by population and draw each path's "
        "stretch at random, so their ALLOWED rates should come close to the certifiable "
        "population shares above (which fix the stretch at its median).",
        "",
        "| truth | chips | ALLOWED | INCONCLUSIVE | OUTSIDE | INCONSISTENT |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for truth, row in fleet["counts"].items():
        n = sum(row.values())
        cells = " | ".join(
            _pct(row.get(v, 0) / n if n else None)
            for v in ("ALLOWED", "INCONCLUSIVE", "OUTSIDE", "INCONSISTENT")
        )
        lines.append(f"| {truth} | {n:,} | {cells} |")
    return [*lines, ""]


def _faults(level: int) -> str:
    """A fault level in words, as the report and the maps' titles say it."""
    if level == 0:
        return "no lying landmark operator (every landmark trusted)"
    return f"{level} lying landmark operator{'s' if level > 1 else ''}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
