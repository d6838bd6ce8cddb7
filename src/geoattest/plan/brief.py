"""A brief for people who decide, not build: one HTML file with its maps and plots inside.

For a deployment it says what a verdict means, where honest chips can be certified (a
map), what cannot be proven and why, what share of diverted chips is caught and how
soon, what it costs, what each extra landmark or proof buys (the sensitivity plots), and
how that compares with published estimates, ending with every input and its source.
Everything is computed afresh (:func:`geoattest.plan.cost_study.study_cost`,
:func:`geoattest.plan.sensitivity.sweep`); the images are PNGs embedded as data URIs so
the file can be mailed or printed on its own.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from geoattest.netsim.latency import LatencyModel, PathClass, haversine_km
from geoattest.plan.cost import RENTED, CostInputs, duration, percent, usd
from geoattest.plan.cost_plots import plot_cadence, plot_faults, plot_landmarks, save_small_png
from geoattest.plan.cost_study import CostStudy, study_cost, where_chips_sit
from geoattest.plan.coverage import VERDICTS as VERDICTS_DRAWN
from geoattest.plan.coverage import Coverage
from geoattest.plan.deployment import Deployment
from geoattest.plan.detection import DEVICES
from geoattest.plan.maps import COLOURS, MEANING, draw_coverage
from geoattest.plan.sensitivity import BUDGET, Sensitivity, sweep
from geoattest.verdict import KM_PER_NS_OF_RTT, Verdict

BRIEF_FILE = "BRIEF.html"
MAP_DPI = 80
MAP_COLUMNS = 3

Step = Callable[[str, int, int], None]

VERDICTS = (
    (
        Verdict.ALLOWED,
        "Every place the chip could physically be lies inside its licensed country.",
        "Licensed: it runs at full speed until its next proof is due.",
    ),
    (
        Verdict.OUTSIDE,
        "The chip is provably somewhere else: no place it could be touches the licence.",
        "An alert to the compliance team; the chip loses its licence.",
    ),
    (
        Verdict.INCONCLUSIVE,
        "The measurements leave places both inside and outside the licence possible "
        "(a border too close, or landmarks too far).",
        "Not licensed, without saying where it is; no alert.",
    ),
    (
        Verdict.INCONSISTENT,
        "The measurements contradict physics: a landmark is faulty or lying.",
        "Not licensed; an alert about the landmarks.",
    ),
    (
        Verdict.REJECTED,
        "The evidence failed a cryptographic, identity or freshness check.",
        "Not licensed; tampering is reported with its reason.",
    ),
)

CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 58rem; margin: 2rem auto;
       padding: 0 1.2rem; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.meta { color: #555; font-size: 0.9rem; }
.summary { background: #f4f7f2; border-left: 4px solid #2e9e44; padding: 0.6rem 1.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.88rem; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.45rem; vertical-align: top; }
td:last-child { overflow-wrap: anywhere; }
tr { break-inside: avoid; }
table.fixed { table-layout: fixed; font-size: 0.8rem; }
table.fixed td { overflow-wrap: anywhere; }
th { background: #eef0f3; text-align: left; }
td.n { text-align: right; }
img { max-width: 100%; display: block; margin: 0.6rem auto; }
.note { color: #555; font-size: 0.85rem; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem; }
@media print { body { max-width: none; } h2 { break-after: avoid; } img { break-inside: avoid; } }
"""


def write_brief(
    deployment: Deployment,
    inputs: CostInputs,
    out_dir: Path,
    *,
    resolution_deg: float | None = None,
    detection_devices: int = DEVICES,
    budget: int = BUDGET,
    command: str = "geoattest report --brief",
    progress: Step | None = None,
) -> Path:
    """Compute the studies and write :data:`BRIEF_FILE` into ``out_dir``; ``command`` is
    the command line that reproduces the brief, printed at its end.

    Raises:
        ConfigError: the deployment or the inputs cannot be studied.
        StudyError: a fleet study failed its own checks.
    """
    step = progress or (lambda _stage, _done, _total: None)
    study = study_cost(
        deployment,
        inputs,
        resolution_deg=resolution_deg,
        detection_devices=detection_devices,
        progress=step,
    )
    sens = sweep(study, budget=budget, progress=step)
    step("drawing the maps and plots", 0, 1)
    path = out_dir / BRIEF_FILE
    path.write_text(render_brief(study, sens, command), encoding="utf-8")
    return path


def render_brief(study: CostStudy, sens: Sensitivity, command: str) -> str:
    """The brief's HTML for finished studies, its images drawn and embedded."""
    with tempfile.TemporaryDirectory() as tmp:
        return _html(study, sens, _images(Path(tmp), study, sens), command)


def _images(directory: Path, study: CostStudy, sens: Sensitivity) -> dict[str, str]:
    """Every image of the brief as a data URI."""
    name = study.deployment.name
    paths = {
        "map": directory / "map.png",
        "landmarks": directory / "landmarks.png",
        "cadence": directory / "cadence.png",
        "faults": directory / "faults.png",
    }
    render_certifiable_map(paths["map"], study)
    plot_landmarks(paths["landmarks"], sens, f"{name}: what extra landmarks buy")
    plot_cadence(
        paths["cadence"], sens, f"{name}: what cadence costs and buys", study.inputs.fleet.cadence_s
    )
    plot_faults(paths["faults"], sens, f"{name}: tolerating one lying landmark")
    return {
        key: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        for key, path in paths.items()
    }


def render_certifiable_map(path: Path, study: CostStudy) -> None:
    """One small map per region with chips: verdicts of honest chips at median stretch."""
    regions = list(study.coverage.items())
    columns = min(MAP_COLUMNS, len(regions))
    rows = math.ceil(len(regions) / columns)
    fig = Figure(figsize=(4.3 * columns, 3.9 * rows + 0.6), dpi=MAP_DPI)
    FigureCanvasAgg(fig)
    policy = study.deployment.policy
    for i, (region, coverage) in enumerate(regions):
        ax = fig.add_subplot(rows, columns, i + 1)
        draw_coverage(
            ax,
            coverage,
            coverage.stretches["median"],
            policy,
            stretch_name="median",
            list_off_view=False,
        )
        ax.set_title(f"{region}: {study.certifiable[region]:.0%} of chips certifiable", fontsize=10)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("")
        ax.set_ylabel("")
    shown = {
        VERDICTS_DRAWN[code - 1]
        for coverage in study.coverage.values()
        for code in np.unique(coverage.stretches["median"].cells).tolist()
        if code
    }
    fig.legend(
        handles=[
            Patch(facecolor=COLOURS[v], alpha=0.75, label=MEANING[v])
            for v in VERDICTS_DRAWN
            if v in shown
        ],
        loc="lower center",
        ncol=3,
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.6 / (3.9 * rows + 0.6), 1, 1))
    save_small_png(fig, path, MAP_DPI)


def access_floor_km() -> float:
    """The smallest disk an honest chip gets over the Internet, even next to a landmark:
    the access delay at both ends, both ways, at the speed of light."""
    access_s = LatencyModel.default().parameters(PathClass.CLOUD).access_delay_s
    return 4 * access_s * 1e9 * KM_PER_NS_OF_RTT


def median_landmark_km(study: CostStudy, region: str) -> float:
    """The distance from a region's people (towns by population; land cells by area
    without towns) to their nearest landmark that half of them are within."""
    lat, lon, weight = where_chips_sit(study.coverage[region])
    sites = study.deployment.landmarks
    d = haversine_km(
        lat[:, None],
        lon[:, None],
        np.asarray([s.latitude for s in sites])[None, :],
        np.asarray([s.longitude for s in sites])[None, :],
    ).min(axis=1)
    order = np.argsort(d)
    cumulative = np.cumsum(weight[order]) / weight.sum()
    return float(d[order][np.searchsorted(cumulative, 0.5)])


def near_border_share(study: CostStudy, region: str, km: float) -> float | None:
    """Share of a region's town population within ``km`` of foreign land (None for a
    region drawn as a shape, or without towns). Distances run to the nearest foreign
    piece of land in longitude/latitude, so the figure is approximate."""
    policy = study.deployment.policy
    licensed = policy.regions[region]
    towns = study.coverage[region].towns
    if not licensed.is_countries or not len(towns):
        return None
    countries = policy.countries
    own = [countries.code_index(c) for c in sorted(licensed.countries) if countries.has(c)]
    foreign = countries.pieces[~np.isin(countries.piece_code, own)]
    points = shapely.points(towns.lon, towns.lat)
    _, nearest = shapely.STRtree(foreign).query_nearest(points, all_matches=False)
    ends = shapely.get_coordinates(shapely.shortest_line(points, foreign[nearest]))
    d = haversine_km(towns.lat, towns.lon, ends[1::2, 1], ends[1::2, 0])
    weight = towns.population
    return float(weight[d <= km].sum() / weight.sum())


# --- the document ---------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric: Sequence[int],
    widths: Sequence[int] = (),
) -> str:
    """An HTML table; columns in ``numeric`` are right-aligned. ``widths`` (percent per
    column) fix the layout, so a column of long sources gets room instead of the
    browser's guess."""
    columns = "".join(f'<col style="width: {w}%">' for w in widths)
    layout = ' class="fixed"' if widths else ""
    out = [f"<table{layout}>{columns}<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    return "\n".join([*out, "</table>"])


def _html(study: CostStudy, sens: Sensitivity, images: dict[str, str], command: str) -> str:
    d = study.deployment
    fleet = study.inputs.fleet
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    body = [
        f"<h1>{_e(d.name)}: what chip location attestation proves, where, and at what cost</h1>",
        f'<p class="meta">A brief generated by <code>geoattest report --brief</code> on {now} '
        f"from <code>{_e(Path(d.source).name)}</code>: {study.cost.chips:,} chips in "
        f"{len(study.coverage)} licensed regions, {len(d.landmarks)} landmark servers "
        f"({_e(fleet.ownership)}), a proof from every chip every "
        f"{_e(duration(fleet.cadence_s))}, costed over {fleet.years} years. Every figure "
        "below is computed from the deployment; the inputs and their sources close the "
        "brief.</p>",
        _summary(study, sens),
        _verdicts(),
        _where(study, images["map"]),
        _limits(study),
        _catches(study),
        _costs(study),
        _buys(sens, images),
        _published(study),
        _inputs(study, command),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(d.name)}: location attestation brief</title><style>{CSS}</style>"
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _summary(study: CostStudy, sens: Sensitivity) -> str:
    cost, fleet = study.cost, study.inputs.fleet
    per = cost.per_certifiable_chip_year
    setup = f"after {usd(cost.setup)} of set-up" if cost.setup else "with no set-up cost"
    items = [
        f"<b>Cost.</b> {usd(cost.total)} over {cost.years} years ({usd(cost.yearly)} a year "
        f"{setup}): {usd(cost.per_chip_year)} per chip per year, "
        + (
            f"{usd(per)} per <i>certifiable</i> chip per year."
            if per is not None
            else "and no chip is certifiable: the money buys denial, not certification."
        ),
        f"<b>What it proves.</b> {study.certifiable_share:.0%} of honest chips can be proven "
        "inside their licensed country with these landmarks ("
        + ", ".join(f"{_e(r)} {s:.0%}" for r, s in study.certifiable.items())
        + "). The rest get INCONCLUSIVE: never a wrong answer, but no certificate either.",
    ]
    detection = study.detection
    if detection is not None:
        timing = detection.timing
        items.append(
            f"<b>What it catches.</b> Of {detection.diverted:,} simulated diverted chips, "
            f"{detection.false_allowed} kept a licence. {detection.outside:.0%} were proven "
            "to be abroad (an alert); the rest were denied without being located. A diverted "
            f"chip is licensed at most {duration(timing.licence_kept_s)} after its last proof "
            f"at home and runs degraded within {duration(timing.degraded_within_s)}."
        )
    blind = [r for r, s in study.certifiable.items() if s == 0]
    if blind:
        items.append(
            f"<b>What it cannot prove.</b> Nothing in {_e(', '.join(blind))} is certifiable "
            "from landmarks reached over the Internet: see why below."
        )
    best = _best_addition(sens, fleet.landmark_faults)
    if best is not None:
        items.append(f"<b>What more buys.</b> {best}")
    items.append(f"<b>Beside published estimates.</b> {_against_published(study)}")
    items.append(
        f"<b>The chip's own cost.</b> Proving takes {percent(cost.duty_cycle)} of one host "
        f"CPU core at a proof every {duration(fleet.cadence_s)}; the GPU's throughput loss "
        "has not been measured yet."
    )
    return (
        '<div class="summary"><h2>In short</h2><ul>'
        + "".join(f"<li>{i}</li>" for i in items)
        + "</ul></div>"
    )


def _against_published(study: CostStudy) -> str:
    c = study.comparison
    model, scale = c.model, c.at_scale
    low, high = model.totals[RENTED]
    per = scale.per_certifiable_chip_year
    return (
        f"A published ping-based model prices {model.chips:,} chips at {usd(low)} to "
        f"{usd(high)} with rented landmarks and assumes {model.missed_diversion_share:.0%} "
        f"of diverted chips are missed. The same fleet on these landmarks costs "
        f"{usd(scale.total)} over {scale.years} years here"
        + (f", {usd(per)} per certifiable chip per year" if per is not None else "")
        + "; no simulated diverted chip kept a licence, but only the certifiable share of "
        "honest chips gets one."
    )


def _best_addition(sens: Sensitivity, faults: int) -> str | None:
    """What one more landmark per region buys, judged at the fleet's ``landmark_faults``
    (the policy the rest of the summary states)."""
    points = [p for p in sens.landmarks if p.faults == faults]
    if len(points) < 2:
        return None
    base, more = points[0], points[1]
    if more.certifiable_share <= base.certifiable_share:
        return (
            f"One more landmark in each region ({more.landmarks} in all) leaves the "
            f"certifiable share at {base.certifiable_share:.0%}: with "
            f"<code>landmark_faults = {faults}</code> a new landmark counts only beside "
            "another of an independent operator (see the sensitivity plots)."
        )
    per = more.per_certifiable_chip_year
    return (
        f"One more landmark in each region ({more.landmarks} in all) takes the certifiable "
        f"share from {base.certifiable_share:.0%} to {more.certifiable_share:.0%} for "
        f"{usd(more.total_per_year - base.total_per_year)} a year more"
        + (f", {usd(per)} per certifiable chip per year." if per is not None else ".")
    )


def _verdicts() -> str:
    swatch = '<span class="swatch" style="background:{}"></span>'
    rows = "".join(
        f'<tr><td style="white-space: nowrap">{swatch.format(COLOURS[v])}<b>{v.value}</b>'
        f"</td><td>{_e(m)}</td>"
        f"<td>{_e(a)}</td></tr>"
        for v, m, a in VERDICTS
    )
    return (
        "<h2>What a verdict means</h2>"
        "<p>Every chip proves where it is on a schedule. Landmark servers at known places "
        "time a challenge and answer with their own clocks; nothing travels faster than "
        "light, so each time bounds how far away the chip can be. A host can add delay but "
        "never remove it, so the chip is always inside every bound. The verifier intersects "
        "the bounds and signs one of these verdicts:</p>"
        "<table><tr><th>verdict</th><th>what it means</th><th>what follows</th></tr>"
        f"{rows}</table>"
        '<p class="note">ALLOWED is given only when every place the chip could be lies '
        "inside the licence; bounds use the speed of light in vacuum, so no faster cable, "
        "microwave link or relay can make a diverted chip look licensed.</p>"
    )


def _where(study: CostStudy, image: str) -> str:
    d = study.deployment
    rows = []
    for region, coverage in study.coverage.items():
        rows.append(
            (
                region,
                f"{study.inputs.fleet.chips[region]:,}",
                f"{study.certifiable[region]:.1%}",
                f"{study.certifiable_p90[region]:.1%}",
                _landmarks_on(study, coverage),
            )
        )
    return (
        "<h2>Where honest chips are certifiable</h2>"
        f"<p>Each map shows what an honest chip at each place would get from the verifier "
        f"when it measures its {d.landmarks_per_chip} nearest landmarks over a typical "
        "Internet path (median path stretch; circles are the largest towns). Green places "
        "are certifiable; amber ones are near enough a border, or far enough from a "
        "landmark, that the bounds reach foreign land. Chips sit where people live, so the "
        "certifiable share counts towns of 15,000 or more by population.</p>"
        f'<img alt="map of where honest chips are certifiable" src="{image}">'
        + _table(
            ("region", "chips", "certifiable, typical path", "slow path (90th pct.)", "landmarks"),
            rows,
            (1, 2, 3),
        )
    )


def _landmarks_on(study: CostStudy, coverage: Coverage) -> str:
    """The deployment's landmarks on the region's land, by name."""
    from geoattest.plan.coverage import land_and_inside  # noqa: PLC0415

    sites = study.deployment.landmarks
    _, inside = land_and_inside(
        study.deployment.policy,
        coverage.region,
        np.asarray([s.latitude for s in sites]),
        np.asarray([s.longitude for s in sites]),
    )
    names = [s.name for s, here in zip(sites, inside.tolist(), strict=True) if here]
    return ", ".join(names) or "none on its land"


def _limits(study: CostStudy) -> str:
    floor = access_floor_km()
    rows = []
    for region in study.coverage:
        near = near_border_share(study, region, floor)
        rows.append(
            (
                region,
                f"{study.certifiable[region]:.1%}",
                "n/a" if near is None else f"{near:.0%}",
                f"{median_landmark_km(study, region):,.0f} km",
            )
        )
    return (
        "<h2>What it cannot prove, and why</h2>"
        "<p>Timing proves distance, not place. Even a chip next to a landmark, reached "
        "over the Internet, shows a round trip of at least the network's access delay at "
        f"both ends, which at the speed of light is a disk of about {floor:.0f} km radius; "
        "every further kilometre of cable adds several more, because Internet "
        "paths wind and light in fibre is slower than in vacuum. A chip is certified only "
        "when all of its disk stays clear of foreign land. So:</p><ul>"
        f"<li>places within about {floor:.0f} km of a border can never be certified from "
        "landmarks reached over the Internet, whatever their number;</li>"
        "<li>a small state next to a border (Singapore is 2 km from Johor Bahru) needs a "
        "landmark <i>in the chip's own data centre</i>, reached without crossing the "
        "Internet; then its bound shrinks to a few kilometres and the chip is "
        "certifiable;</li>"
        "<li>a region far from every landmark gets huge disks: honest chips there are "
        "INCONCLUSIVE, and diverted chips far from every landmark are denied, not located."
        "</li></ul>"
        "<p>Per region: the certifiable share, the share of its town population within "
        f"{floor:.0f} km of foreign land (approximate), and how far half its people are "
        "from their nearest landmark (an honest disk is typically 2.5 to 3 times that):</p>"
        + _table(
            (
                "region",
                "certifiable",
                f"people within {floor:.0f} km of a border",
                "median distance to the nearest landmark",
            ),
            rows,
            (1, 2, 3),
        )
        + '<p class="note">These shares are for chips in towns measuring landmarks over '
        "the Internet; a landmark in the chip's data centre changes them, and the coverage "
        "study does not model one (docs/PLANNING.md).</p>"
    )


def _catches(study: CostStudy) -> str:
    detection = study.detection
    if detection is None:
        return "<h2>What it catches</h2><p>The detection study was left out of this brief.</p>"
    timing = detection.timing
    rows = [
        (
            row.destination,
            f"{row.chips:,}",
            f"{row.not_allowed:.1%}",
            f"{row.outside:.1%}",
            "n/a" if row.outside_naive is None else f"{row.outside_naive:.1%}",
        )
        for row in detection.destinations
    ]
    notes = "".join(f"<li>{_e(n)}</li>" for n in detection.notes)
    rarely = [row.destination for row in detection.destinations if row.outside < 0.05]
    return (
        "<h2>What it catches</h2>"
        "<p>Simulated diversions: chips licensed to each region, moved to towns of each "
        "destination, their hosts trying every evasion of the attack suite in equal shares "
        "(doing nothing, adding delay, relaying through a helper back home, a private "
        "link faster than fibre). Verdicts come from the verifier's own geography; a "
        "sample of every study is replayed through real rounds, signatures and the real "
        f"pipeline. False ALLOWED (a diverted chip licensed): <b>{detection.false_allowed}"
        f"</b> of {detection.diverted:,}.</p>"
        + _table(
            (
                "destination",
                "diverted chips",
                "denied the licence",
                "proven OUTSIDE (alert)",
                "OUTSIDE if the host does not hide",
            ),
            rows,
            (1, 2, 3, 4),
        )
        + "<p>How soon, from the verifier's and the chip's own rules:</p><ul>"
        f"<li>a proof from abroad that is OUTSIDE raises an alert at once: within "
        f"{duration(timing.alert_within_s)} (one cadence) of the chip proving there;</li>"
        f"<li>a chip's licence lasts {duration(timing.licence_kept_s)} (the stale window) "
        "after its last proof at home, and any proof from abroad ends it sooner; a chip "
        "that stops proving is reported STALE then;</li>"
        f"<li>without a licence the chip runs degraded after a grace period of "
        f"{duration(timing.grace_s)}: at most {duration(timing.degraded_within_s)} after "
        "its last proof at home.</li></ul>"
        '<p class="note">A host that adds delay turns OUTSIDE into INCONCLUSIVE: the chip '
        "still loses its licence, but no alert names its place."
        + (
            f" Chips diverted to {_e(', '.join(rarely))} are rarely located (under 5 % "
            "OUTSIDE): they are far from every landmark, so their disks reach licensed land."
            if rarely
            else ""
        )
        + "</p>"
        + (f'<ul class="note">{notes}</ul>' if notes else "")
    )


def _costs(study: CostStudy) -> str:
    cost = study.cost
    rows = [(p.name, usd(p.setup), usd(p.yearly), p.quantity) for p in cost.parts]
    rows.append(("total", usd(cost.setup), usd(cost.yearly), ""))
    per = cost.per_certifiable_chip_year
    unpriced = "".join(f"<li>{_e(u)}</li>" for u in cost.unpriced)
    return (
        "<h2>What it costs</h2>"
        + _table(("part", "set-up", "per year", "what is bought"), rows, (1, 2))
        + "<p>By year: "
        + "; ".join(f"year {i + 1} {usd(v)}" for i, v in enumerate(cost.by_year))
        + f". In all {usd(cost.total)}: <b>{usd(cost.per_chip_year)} per chip per year</b>, "
        + (
            f"<b>{usd(per)} per certifiable chip per year</b> ({cost.certifiable_chips:,.0f} "
            f"of {cost.chips:,} chips certifiable)."
            if per is not None
            else "and no certifiable chip."
        )
        + "</p>"
        + (f'<p class="note">Not priced:</p><ul class="note">{unpriced}</ul>' if unpriced else "")
    )


def _buys(sens: Sensitivity, images: dict[str, str]) -> str:
    needed = []
    for r in sens.regions:
        n = r.needed_at_one_fault()
        if r.shares[0][0] > 0:
            needed.append(f"{_e(r.region)} {r.in_region} → {n if n is not None else 'more'}")
    return (
        "<h2>What each extra dollar buys</h2>"
        "<p><b>Landmarks.</b> The landmark planner adds the sites that certify the most "
        "people first. Left: each region's certifiable share as landmarks are added; right: "
        "the cost per certifiable chip with that many added to every region (labels: "
        "landmarks in all, certifiable share). Shares here are judged on a coarser grid than "
        "the map.</p>"
        f'<img alt="landmarks against certifiable share and cost" src="{images["landmarks"]}">'
        "<p><b>Cadence.</b> Proving more often catches a diversion sooner and costs bytes, "
        "verifier replicas and landmark servers; the grey line is this deployment.</p>"
        f'<img alt="cadence against detection delay and cost" src="{images["cadence"]}">'
        "<p><b>A lying landmark.</b> A policy that tolerates one lying landmark "
        "(<code>landmark_faults = 1</code>) certifies a chip only if the verdict holds with "
        "any one bound left out, so each chip needs two close landmarks. Landmarks each "
        "region needs for the share it has at 0 faults, at 0 and at 1 fault (a second "
        "landmark, run by another operator, at a site counts as one more; 'more': the "
        "sweep did not get there): "
        + (", ".join(needed) or "nothing is certifiable at 0 faults")
        + ".</p>"
        f'<img alt="landmark faults against certifiable share" src="{images["faults"]}">'
    )


def _published(study: CostStudy) -> str:
    c = study.comparison
    reproduced = [
        (
            f"{r.landmarks} {r.option}",
            usd(r.published_usd),
            usd(r.reproduced_usd),
            usd(r.reproduced_usd / r.chips),
        )
        for r in c.reproduced
    ]
    lines = "; ".join(
        f"{o}: {usd(line.fixed)} fixed plus {usd(line.per_landmark)} per landmark"
        for o, line in c.lines.items()
    )
    crossing = (
        f" Owning becomes cheaper than renting above about {c.break_even:.0f} landmarks."
        if c.break_even is not None
        else ""
    )
    return (
        "<h2>Beside the published estimates</h2>"
        f"<p>A published ping-based model assumes {c.model.chips:,} chips and "
        f"{c.model.landmarks[0]} to {c.model.landmarks[1]} landmark servers, and a "
        f"{c.model.missed_diversion_share:.0%} chance of missing a diverted chip. Its "
        "per-unit inputs could not be read, so geoattest derives the two its totals allow "
        f"(<i>derived</i>: {lines}) and reproduces its totals with its own arithmetic."
        f"{crossing}</p>"
        + _table(
            ("landmarks", "published total", "geoattest arithmetic", "per chip"),
            reproduced,
            (1, 2, 3),
        )
        + "<p>What geoattest's measurements change:</p>"
        + _table(
            ("quantity", "published", "geoattest", "effect"),
            [(r.quantity, r.published, r.geoattest, r.effect) for r in c.rows],
            (),
            (16, 20, 32, 32),
        )
        + f'<p class="note">Sources: {_e(c.model.source)}. {_e(c.software.source)}.</p>'
    )


def _inputs(study: CostStudy, command: str) -> str:
    rows = [
        (
            f.name,
            f.value if isinstance(f.value, str) else f"{f.value:,.10g}",
            f.unit,
            f.kind,
            f.source,
        )
        for f in study.inputs.all_inputs()
    ]
    return (
        "<h2>Inputs and their sources</h2>"
        "<p>Measured: geoattest's own benchmarks, with their machine. Quoted: a published "
        "figure. Derived: arithmetic shown in the source. Assumption: a choice with no "
        "public figure behind it. Given: this deployment's own. Override any of them with "
        "<code>--costs FILE</code> (docs/COST.md).</p>"
        + _table(("input", "value", "unit", "kind", "source"), rows, (1,), (20, 12, 15, 13, 40))
        + f'<p class="note">Reproduce: <code>{_e(command)}</code></p>'
    )
