"""The console's HTML: small server-rendered pages, every value escaped.

No template engine: each page is a function from what the store says to a string, inside
one layout with the navigation, the stylesheet and the one vendored-free script
(``data/console.js``, a few lines of plain JavaScript for the live updates).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from geoattest.console.fleet import Landmark
from geoattest.console.svg import VERDICT_COLOURS
from geoattest.console.tokens import Inspection
from geoattest.units import SECOND_NS
from geoattest.verdict import Verdict
from geoattest.verifier.fleet_view import (
    DeviceDetail,
    PeerAudit,
    ProofRow,
    StoredAlert,
)
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.standing import Standing

ALERT_KINDS = tuple(kind.value for kind in AlertKind)
"""The alerts page's filter offers every kind the verifier raises."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
nav{background:#263238;padding:.6em 1em}nav a{color:#eceff1;margin-right:1.4em;text-decoration:none}
main{padding:1em 1.4em;max-width:1200px}
table{border-collapse:collapse;font-size:.9em}
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}
.map{width:100%;max-width:1100px;max-height:70vh;background:#cfe3f0;border:1px solid #90a4ae}
.country{fill:#f1efe8;stroke:#9e9e9e;stroke-width:.6}
.licensed{fill:#1565c0;fill-opacity:.08;stroke:#1565c0;stroke-width:2;stroke-dasharray:6 3}
.chip-region,.fix-region{fill-opacity:.25;stroke-width:1.5}
.chip,.fix{cursor:pointer}.chip circle,.fix circle{stroke:#fff;stroke-width:1.5}
.chip text,.landmark text{font-size:11px;fill:#263238}
.landmark circle{fill:#fff;stroke:#263238;stroke-width:2}
.landmark-excluded circle{fill:#ff8f00}.landmark-revoked circle{fill:#b71c1c}
.verdict{display:inline-block;padding:0 .5em;border-radius:.3em;color:#fff}
code{font-size:.85em;word-break:break-all}.ok{color:#2e7d32}.bad{color:#c62828}
textarea{width:100%;font-family:monospace}
"""


def _verdict(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#000")
    return f'<span class="verdict" style="background:{colour}">{escape(verdict)}</span>'


def at(time_ns: int) -> str:
    """A stored time (ns since the epoch) as UTC, to the second."""
    if not time_ns:
        return "never"
    moment = dt.datetime.fromtimestamp(time_ns / SECOND_NS, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def layout(title: str, body: str, *, script_data: Mapping[str, Any] | None = None) -> str:
    data = escape(json.dumps(script_data or {}))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · geoattest</title><style>{_STYLE}</style></head>"
        f"<body data-console='{data}'><nav><a href='/'>Fleet</a><a href='/alerts'>Alerts</a>"
        "<a href='/landmarks'>Landmarks</a><a href='/tokens'>Token inspector</a></nav>"
        f"<main><h1>{escape(title)}</h1>{body}</main>"
        "<script src='/static/console.js'></script></body></html>"
    )


def _legend() -> str:
    return " ".join(_verdict(v) for v in VERDICT_COLOURS)


def counts_table(counts: Mapping[str, int], states: Mapping[str, int]) -> str:
    verdicts = "".join(
        f"<tr><td>{_verdict(v)}</td><td data-count-verdict='{v}'>{counts.get(v, 0)}</td></tr>"
        for v in VERDICT_COLOURS
    )
    state_rows = "".join(
        f"<tr><td>{escape(s)}</td><td data-count-state='{escape(s)}'>{n}</td></tr>"
        for s, n in states.items()
    )
    return (
        "<div id='counts' style='display:flex;gap:3em'>"
        f"<table><tr><th>newest verdict</th><th>chips</th></tr>{verdicts}</table>"
        f"<table><tr><th>state</th><th>devices</th></tr>{state_rows}</table></div>"
    )


def fleet_page(svg: str, counts_html: str, alerts: Sequence[StoredAlert], cursor: int) -> str:
    body = (
        f"<p>Each chip's newest feasible region in its verdict's colour ({_legend()}); "
        "licensed regions dashed blue; landmarks as white dots (orange: excluded by the "
        "peer audits, red: revoked). Click a chip for its page.</p>"
        f"<div id='fleet-map'>{svg}</div>{counts_html}"
        "<form action='/devices' method='get'><label>Device <input name='id'></label>"
        " <button>Open</button></form>"
        f"<h2>Newest alerts</h2>{alerts_table(alerts)}"
    )
    return layout("Fleet", body, script_data={"page": "fleet", "cursor": cursor})


def alerts_table(alerts: Iterable[StoredAlert]) -> str:
    rows = "".join(alert_row(a) for a in sorted(alerts, key=lambda a: -a.cursor))
    return (
        "<table id='alerts'><thead><tr><th>#</th><th>time</th><th>kind</th><th>device</th>"
        f"<th>reason</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def alert_row(alert: StoredAlert) -> str:
    device = (
        f"<a href='/devices/{quote(alert.device_id)}'>{escape(alert.device_id)}</a>"
        if alert.device_id
        else ""
    )
    return (
        f"<tr class='alert' data-kind='{escape(alert.kind)}' "
        f"data-device='{escape(alert.device_id)}'><td>{alert.cursor}</td>"
        f"<td>{at(alert.time_ns)}</td><td>{escape(alert.kind)}</td><td>{device}</td>"
        f"<td>{escape(alert.reason)}</td><td>{escape(alert.detail)}</td></tr>"
    )


def alerts_page(alerts: Sequence[StoredAlert], cursor: int, kind: str, device_id: str) -> str:
    options = "".join(
        f"<option{' selected' if k == kind else ''}>{k}</option>" for k in ("", *ALERT_KINDS)
    )
    body = (
        "<form method='get'><label>Kind <select name='kind'>"
        f"{options}</select></label> <label>Device <input name='device' "
        f"value='{escape(device_id)}'></label> <button>Filter</button></form>"
        "<p>New alerts appear here as they are raised (live).</p>"
        f"{alerts_table(alerts)}"
    )
    return layout(
        "Alerts",
        body,
        script_data={"page": "alerts", "cursor": cursor, "kind": kind, "device": device_id},
    )


def device_page(
    device: DeviceDetail,
    state: str,
    history: Sequence[ProofRow],
    fixes_svg: str,
    alerts: Sequence[StoredAlert],
    *,
    last: tuple[Verdict | None, Standing],
) -> str:
    licence = (
        f"{escape(device.licence_id)} version {device.licence_version}, region "
        f"{escape(device.licence_region)}, "
        + (
            "<b class='bad'>withdrawn</b>"
            if device.licence_withdrawn
            else f"valid until {at(device.licence_valid_until_ns)}"
        )
        if device.licence_version
        else "none held"
    )
    facts = (
        "<table>"
        f"<tr><th>state</th><td id='device-state'>{escape(state)}</td></tr>"
        f"<tr><th>model</th><td>{escape(device.model)}</td></tr>"
        f"<tr><th>licence</th><td>{licence}</td></tr>"
        f"<tr><th>last verdict</th><td id='last-verdict' data-standing='{last[1].value}'>"
        f"{_standing(*last)}</td></tr>"
        f"<tr><th>enrolled</th><td>{at(device.enrolled_at_ns)}</td></tr>"
        f"<tr><th>certificate</th><td>serial {escape(device.certificate_serial)}, valid until "
        f"{at(device.certificate_not_after_ns)}</td></tr>"
        f"<tr><th>chain head</th><td>counter {device.head_counter}, "
        f"<code>{device.head_digest[:16]}</code></td></tr></table>"
    )
    rows = "".join(_proof_row(p) for p in history)
    table = (
        "<table id='history'><thead><tr><th>counter</th><th>verdict</th><th>reason</th>"
        "<th>bounds (landmark: km)</th><th>evidence time</th><th>received</th>"
        "<th>chain (digest ← previous)</th><th>result token</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    body = (
        f"{facts}<h2>Recent fixes</h2><p>The newest accepted proofs' feasible regions, "
        f"newest darkest.</p>{fixes_svg}<h2>Proof history</h2>{table}"
        f"<h2>Alerts</h2>{alerts_table(alerts)}"
    )
    return layout(f"Device {device.device_id}", body, script_data={"page": "device"})


STANDING_TEXT = {
    Standing.DEVICE_REVOKED: "the device was revoked since",
    Standing.LICENCE_WITHDRAWN: "the licence was withdrawn",
    Standing.LICENCE_EXPIRED: "the licence has expired",
    Standing.LICENCE_CHANGED: "the licence changed since (judged under another version)",
    Standing.LANDMARK_UNTRUSTED: "a landmark it rests on was revoked or excluded since",
    Standing.STALE: "its evidence is older than the stale window",
}
"""Why a last verdict no longer stands, in the operator's words."""


def _standing(verdict: Verdict | None, stands: Standing) -> str:
    """The last verdict, and whether it still stands: an ALLOWED that no longer does is
    struck through with the reason beside it, never shown as the device's standing."""
    if verdict is None:
        return "none yet"
    if stands is Standing.STANDS:
        return f"{_verdict(verdict.value)} stands"
    why = STANDING_TEXT.get(stands, stands.value)
    return f"<s>{_verdict(verdict.value)}</s> <b class='bad'>no longer stands: {escape(why)}</b>"


def _proof_row(proof: ProofRow) -> str:
    bounds = ", ".join(f"{escape(b.landmark_id)}: {b.bound_km:.1f}" for b in proof.bounds)
    token = (
        "<form method='post' action='/tokens'><input type='hidden' name='token' "
        f"value='{escape(proof.token)}'><button>inspect</button></form>"
        if proof.token
        else ""
    )
    accepted = "" if proof.accepted else " (not accepted)"
    return (
        f"<tr class='proof' data-verdict='{escape(proof.verdict)}'><td>{proof.counter}</td>"
        f"<td>{_verdict(proof.verdict)}{accepted}</td><td>{escape(proof.reason)}</td>"
        f"<td>{bounds}</td><td>{at(proof.evidence_time_ns)}</td>"
        f"<td>{at(proof.received_at_ns)}</td><td><code>{proof.digest[:12]} ← "
        f"{proof.previous_digest[:12]}</code></td><td>{token}</td></tr>"
    )


def landmarks_page(landmarks: Sequence[Landmark], svg: str) -> str:
    rows = "".join(
        f"<tr data-landmark='{escape(lm.record.landmark_id)}'><td><a href='/landmarks/"
        f"{quote(lm.record.landmark_id)}'>{escape(lm.record.landmark_id)}</a></td>"
        f"<td>{escape(lm.record.name)}</td><td>{escape(lm.record.operator)}</td>"
        f"<td>{lm.record.latitude:.4f}, {lm.record.longitude:.4f}</td>"
        f"<td class='state'>{lm.state}</td></tr>"
        for lm in landmarks
    )
    body = (
        f"{svg}<table><tr><th>landmark</th><th>name</th><th>operator</th><th>site</th>"
        f"<th>state</th></tr>{rows}</table>"
    )
    return layout("Landmarks", body)


def landmark_page(landmark: Landmark, audits: Sequence[PeerAudit], svg: str) -> str:
    record = landmark.record
    rows = "".join(
        f"<tr><td>{at(a.received_at_ns)}</td><td>{escape(a.timer)}</td><td>{escape(a.peer)}"
        f"</td><td>{a.rtt_min_ns / 1000:.1f} µs</td></tr>"
        for a in audits
    )
    body = (
        "<table>"
        f"<tr><th>state</th><td id='landmark-state'>{landmark.state}</td></tr>"
        f"<tr><th>operator</th><td>{escape(record.operator or 'its own')}</td></tr>"
        f"<tr><th>name</th><td>{escape(record.name)}</td></tr>"
        f"<tr><th>surveyed site</th><td>{record.latitude:.5f}, {record.longitude:.5f}</td></tr>"
        f"<tr><th>key</th><td><code>{escape(record.verifying_key.key_id)}</code></td></tr>"
        f"</table>{svg}<h2>Recent peer audits</h2><table><tr><th>handed in</th><th>timer</th>"
        f"<th>peer</th><th>RTT floor</th></tr>{rows}</table>"
    )
    return layout(f"Landmark {record.landmark_id}", body)


def tokens_page(
    token: str,
    inspection: Inspection | None,
    device_id: str = "",
    now: tuple[Verdict | None, Standing] | None = None,
) -> str:
    """The inspector; for a valid token, its device's last verdict as it stands now (a
    token stays valid until its ``exp`` after the licence it names was withdrawn)."""
    result = ""
    if inspection is not None:
        verdict = (
            "<p id='token-result' class='ok'><b>VALID</b>: signed by the verifier's "
            "published key and not expired.</p>"
            if inspection.valid
            else f"<p id='token-result' class='bad'><b>INVALID</b>: {escape(inspection.failure)}"
            "</p>"
        )
        if now is not None:
            verdict += (
                f"<p id='token-standing' data-standing='{now[1].value}'>Device "
                f"<a href='/devices/{quote(device_id)}'>{escape(device_id)}</a> now: "
                f"last verdict {_standing(*now)}</p>"
            )
        result = (
            f"{verdict}<h2>Header</h2><pre>{escape(json.dumps(inspection.header, indent=2))}"
            f"</pre><h2>Claims</h2><pre id='claims'>"
            f"{escape(json.dumps(inspection.claims, indent=2))}</pre>"
        )
    body = (
        "<p>Paste an EAR result token: it is decoded and checked against the verifier's "
        "published keys (its JWKS).</p><form method='post' action='/tokens'>"
        f"<textarea name='token' rows='6'>{escape(token)}</textarea><br>"
        f"<button id='inspect'>Inspect</button></form>{result}"
    )
    return layout("Token inspector", body)


def refused(title: str, reason: str, detail: str) -> str:
    """A refused request's page: what is wrong and its reason code."""
    return layout(title, f"<p>{escape(detail)}</p><p><code>{escape(reason)}</code></p>")


def unavailable(reason: str) -> str:
    return layout(
        "Store unavailable",
        f"<p>The verifier's database cannot be reached ({escape(reason)}). This page comes "
        "back by itself once it can.</p>",
    )
