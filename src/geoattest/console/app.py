"""The operator's console as a Starlette application over a verifier's store.

It reads the store (:class:`~geoattest.verifier.fleet_view.FleetView`, read-only), the
region policy and the landmark registry the verifier judges by, and, for the token
inspector, the verifier's published keys over gRPC (mutual TLS with the operator's
certificate where the verifier has TLS). It never writes anything. Served over HTTPS
(:mod:`geoattest.console.https`), every route is for the operator role only.

Live updates are server-sent events (``/events``): the alerts table's new rows (read by
their increasing row id, so a stream resumes exactly after the last row it sent) and the
fleet's version, which moves whenever a chip proves; the page's script then fetches the
fleet map again. Blocking reads run in Starlette's thread pool.

Example::

    app = console_app(load_console(ConsoleFiles(db, policy, landmarks)))
    uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from geoattest.console import pages
from geoattest.console.fleet import (
    FleetMap,
    Group,
    Landmark,
    draw_group,
    draw_landmarks,
    feasible_shape,
)
from geoattest.console.https import REASON_HEADER, Hardened, OperatorOnly
from geoattest.console.svg import Canvas, View
from geoattest.console.tokens import inspect_token, token_device
from geoattest.errors import GeoattestError, Reason
from geoattest.geo import GeoAppraiser, load_policy
from geoattest.geo.policy import RegionPolicy
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.pki.tls import TlsIdentity
from geoattest.verdict import Verdict
from geoattest.verifier.access import HttpsAccess
from geoattest.verifier.fleet_view import FleetView, Position, ProofRow, StoredAlert
from geoattest.verifier.probe import follow_the_store
from geoattest.verifier.service import with_stored_landmarks
from geoattest.verifier.standing import Standing, standing
from geoattest.verifier.store import (
    StoreNotAnsweringError,
    StoreUnavailableError,
    StoreValueError,
)

if TYPE_CHECKING:
    from geoattest.verifier.store import StoredTrust
from geoattest.wire.client import VerifierClient, tls_credentials
from geoattest.wire.decode import INT64_MAX

ALERT_POLL_S = 0.25
"""How often an event stream looks for new alerts: well inside the two seconds an
operator may wait for one."""
FLEET_POLL_S = 1.0
STATES_EVERY_S = 5.0
RECENT_FIXES = 5
"""Accepted proofs drawn on a device's map."""
MAX_TOKEN_CHARS = 64_000
MAX_FORM_BYTES = 3 * MAX_TOKEN_CHARS + 64
"""The token inspector's form, read at most this far (a token of MAX_TOKEN_CHARS, each
character percent-encoded, and its field name): a longer body is refused 413 before the
rest is read, where reading it whole held all of it in memory."""
MAX_QUOTED_CHARS = 200
"""The most of a request's path or method that a refusal quotes."""


@dataclass(frozen=True, slots=True)
class ConsoleFiles:
    """What a console reads: the verifier's database and the files it judges by."""

    db: Path
    policy: Path
    landmarks: Path
    revocations: Path | None = None
    verifier: str | None = None
    """The verifier's gRPC address, for its published result keys (token inspector)."""
    verifier_tls: Path | None = None
    """The operator's ``tls issue --role operator`` directory for ``verifier`` (mutual
    TLS); None: plaintext, to a loopback verifier only."""


class Console:
    """The console's state: the store's read side, the geography and the fleet map."""

    def __init__(self, files: ConsoleFiles, view: FleetView, policy: RegionPolicy) -> None:
        self.files = files
        self.view = view
        self.policy = policy
        self.appraiser: GeoAppraiser = policy.appraiser()
        self.countries = policy.countries
        self.registry = LandmarkRegistry.load(files.landmarks)
        self.revocations = (
            RevocationList.load(files.revocations) if files.revocations else RevocationList()
        )
        regions = {name: r.drawing(self.countries) for name, r in policy.regions.items()}
        self.fleet = FleetMap(view, self.appraiser, self.countries, regions, self.lapsed)
        self.regions = regions
        self._states: tuple[float, dict[str, int]] = (-math.inf, {})
        self._verifier_credentials = (
            tls_credentials(TlsIdentity.load(files.verifier_tls)) if files.verifier_tls else None
        )
        self.store_answers = True
        """Whether the database answered the console's last probe (:func:`console_app`):
        while it does not, every request is answered 503 at once instead of waiting."""

    def landmarks(self) -> list[Landmark]:
        """The registry file's landmarks and the store's, each in its state now."""
        trust = self.view.trust()
        revoked = trust.revocations_with(self.revocations)
        found = []
        registered = with_stored_landmarks(self.registry, trust.landmarks)
        for record in sorted(registered, key=lambda r: r.landmark_id):
            if revoked.landmark_revoked(record.landmark_id, record.verifying_key.key_id):
                state = "revoked"
            elif record.landmark_id in trust.excluded:
                state = "excluded"
            else:
                state = "active"
            found.append(Landmark(record, state))
        return found

    def _revocations(self, trust: StoredTrust) -> RevocationList:
        """The files' revocations with the store's, exclusions included."""
        return trust.revocations_with(self.revocations).including(
            RevocationList(landmarks=trust.excluded)
        )

    def lapsed(self, positions: Mapping[str, Position]) -> set[str]:
        """The devices among ``positions`` whose ALLOWED no longer stands, as
        :meth:`standing` would say of each: the licence side and staleness in one read of
        the store; revocations, untrusted landmarks and the journal's revocations and
        exclusions since each verdict against the positions held (each chip's bounds name
        its landmarks)."""
        by_licence = self.view.allowed_lapsed_by_licence(time.time_ns())
        trust = self.view.trust()
        revocations = self._revocations(trust)
        landmarks = with_stored_landmarks(self.registry, trust.landmarks)
        trusted = {
            record.landmark_id
            for record in landmarks
            if not revocations.landmark_revoked(record.landmark_id, record.verifying_key.key_id)
        }
        changes = self.view.contradicting_changes()
        found: set[str] = set()
        for position in positions.values():
            if position.verdict is not Verdict.ALLOWED:
                continue  # only an ALLOWED the map holds is drawn LAPSED
            named = {bound.landmark_id for bound in position.bounds}
            since = {c.subject for c in changes if c.version > position.trust_version}
            if (
                position.device_id in by_licence
                or revocations.device_revoked(position.device_id)
                or not named <= trusted
                or position.device_id in since
                or named & since
            ):
                found.add(position.device_id)
        return found

    def standing(self, device_id: str) -> tuple[Verdict | None, Standing]:
        """The device's last verdict and whether it still stands, by the licence in force,
        the revocations and landmarks of the files and the store, and the journal of trust
        changes, as the verifier's status says it (stale as its sweep last marked it)."""
        summary = self.view.summary(device_id)
        if summary is None:
            return None, Standing.NO_VERDICT
        trust = self.view.trust()
        landmarks = with_stored_landmarks(self.registry, trust.landmarks)
        return summary.last_verdict, standing(
            summary,
            self._revocations(trust),
            landmarks,
            stale_cutoff_ns=None,
            now_ns=time.time_ns(),
        )

    def device_revoked(self, device_id: str) -> bool:
        """Revoked by the revocation list (this host's file, or a newer one a verifier
        followed) or through the admin API (the store)."""
        return self.view.trust().revocations_with(self.revocations).device_revoked(device_id)

    def device_states(self) -> dict[str, int]:
        """Devices by state, read at most once per :data:`STATES_EVERY_S` (a count over
        every device; states change at the stale sweep's pace, not the proofs')."""
        now = time.monotonic()
        if now - self._states[0] >= STATES_EVERY_S:
            self._states = (now, self.view.device_states())
        return self._states[1]

    def fleet_svg(self) -> str:
        return self.fleet.svg(self.landmarks())

    async def jwks(self) -> tuple[dict[str, Any] | None, str]:
        """The verifier's published keys, or None and why not."""
        if not self.files.verifier:
            return None, "the console was started without --verifier"
        try:
            async with VerifierClient(
                self.files.verifier, timeout_s=5.0, credentials=self._verifier_credentials
            ) as client:
                return await client.result_keys(), ""
        except GeoattestError as exc:
            return None, str(exc)


def load_console(files: ConsoleFiles) -> Console:
    """Load and check every input.

    Raises:
        ConfigError: naming the first input that is missing or unusable.
    """
    console = Console(files, FleetView.open(files.db), load_policy(files.policy))
    console.fleet_svg()  # the whole fleet read and drawn once, before the first page
    return console


class _Handlers:
    """One method per route, over one console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def fleet(self, _request: Request) -> Response:
        svg = await run_in_threadpool(self.console.fleet_svg)
        counts = pages.counts_table(
            self.console.fleet.counts(), await run_in_threadpool(self.console.device_states)
        )
        alerts = await run_in_threadpool(self.console.view.recent_alerts, limit=10)
        cursor = max((a.cursor for a in alerts), default=0)
        return HTMLResponse(pages.fleet_page(svg, counts, alerts, cursor))

    async def fleet_map(self, _request: Request) -> Response:
        svg = await run_in_threadpool(self.console.fleet_svg)
        return Response(svg, media_type="image/svg+xml")

    async def fleet_counts(self, _request: Request) -> Response:
        version = await run_in_threadpool(self.console.fleet.refresh)
        states = await run_in_threadpool(self.console.device_states)
        return JSONResponse(
            {"version": version, "verdicts": self.console.fleet.counts(), "states": states}
        )

    async def alerts(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "")
        device_id = request.query_params.get("device", "")
        found = await run_in_threadpool(
            lambda: self.console.view.recent_alerts(kind=kind, device_id=device_id, limit=100)
        )
        latest = await run_in_threadpool(self.console.view.recent_alerts, limit=1)
        cursor = latest[0].cursor if latest else 0
        return HTMLResponse(pages.alerts_page(found, cursor, kind, device_id))

    async def events(self, request: Request) -> Response:
        query = request.query_params
        # A browser reconnecting names the last alert it received (each alert's event id
        # is its cursor), so it gets none twice.
        cursor = _cursor(request.headers.get("last-event-id") or query.get("cursor", "0"))
        latest = await run_in_threadpool(self.console.view.recent_alerts, limit=1)
        if cursor > (latest[0].cursor if latest else 0):
            # No alert of this database had it (restored from an older backup, or another
            # deployment's): waiting past it would skip every alert stored up to it.
            cursor = 0
        alerts = functools.partial(
            self.console.view.alerts_after,
            kind=query.get("kind", ""),
            device_id=query.get("device", ""),
        )
        # The first read before the stream starts: a filter the database cannot hold (a
        # NUL, on PostgreSQL) is refused 400 and a store that is down 503, where a stream
        # that had answered 200 could only be cut off.
        first = await run_in_threadpool(alerts, cursor)
        return StreamingResponse(
            _events(self.console, request, cursor, alerts, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def devices(self, request: Request) -> Response:
        device_id = request.query_params.get("id", "").strip()
        return RedirectResponse(f"/devices/{quote(device_id)}", status_code=303)

    async def device(self, request: Request) -> Response:
        device_id = request.path_params["device_id"]
        detail = await run_in_threadpool(self.console.view.device, device_id)
        if detail is None:
            return _refused(404, Reason.UNKNOWN_DEVICE, f"no device {device_id} is enrolled")
        history = await run_in_threadpool(self.console.view.proof_history, device_id)
        alerts = await run_in_threadpool(
            lambda: self.console.view.recent_alerts(device_id=device_id, limit=20)
        )
        state = detail.state
        if await run_in_threadpool(self.console.device_revoked, device_id):
            state = "REVOKED"
        svg = await run_in_threadpool(_fixes_svg, self.console, detail.licensed_region, history)
        verdict, stands = await run_in_threadpool(self.console.standing, device_id)
        return HTMLResponse(
            pages.device_page(detail, state, history, svg, alerts, last=(verdict, stands))
        )

    async def landmarks(self, _request: Request) -> Response:
        found = await run_in_threadpool(self.console.landmarks)
        canvas = Canvas(
            View.around((lm.record.latitude, lm.record.longitude) for lm in found),
            self.console.countries,
        )
        draw_landmarks(canvas, found)
        return HTMLResponse(pages.landmarks_page(found, canvas.render()))

    async def landmark(self, request: Request) -> Response:
        landmark_id = request.path_params["landmark_id"]
        found = {
            lm.record.landmark_id: lm for lm in await run_in_threadpool(self.console.landmarks)
        }
        if landmark_id not in found:
            return _refused(404, Reason.NO_SUCH_PAGE, f"no landmark {landmark_id} is registered")
        chosen = found[landmark_id]
        audits = await run_in_threadpool(self.console.view.peer_audits, landmark_id)
        peers = {a.peer for a in audits} | {a.timer for a in audits}
        shown = [chosen, *(found[p] for p in sorted(peers) if p in found and p != landmark_id)]
        canvas = Canvas(
            View.around((lm.record.latitude, lm.record.longitude) for lm in shown),
            self.console.countries,
        )
        draw_landmarks(canvas, shown)
        return HTMLResponse(pages.landmark_page(chosen, audits, canvas.render()))

    async def tokens(self, request: Request) -> Response:
        token = ""
        if request.method == "POST":
            body = await _bounded_body(request, MAX_FORM_BYTES)
            if body is None:
                detail = f"a token form holds at most {MAX_FORM_BYTES} bytes"
                return _refused(413, Reason.OVERSIZED_MESSAGE, detail)
            token = parse_qs(body.decode(errors="replace")).get("token", [""])[0]
            token = token[:MAX_TOKEN_CHARS]
        if not token.strip():
            return HTMLResponse(pages.tokens_page(token, None))
        jwks, why = await self.console.jwks()
        inspection = inspect_token(token, jwks, keys_error=why)
        device_id = token_device(inspection.claims) if inspection.valid else ""
        now = await run_in_threadpool(self.console.standing, device_id) if device_id else None
        return HTMLResponse(pages.tokens_page(token, inspection, device_id, now))

    async def script(self, _request: Request) -> Response:
        text = resources.files("geoattest.console").joinpath("data/console.js").read_text()
        return Response(text, media_type="text/javascript")


def console_app(console: Console, access: HttpsAccess | None = None) -> Starlette:
    """The console's routes over ``console``; with ``access`` (HTTPS), every route only
    for the callers it admits; without it (plain HTTP), only for requests naming a
    loopback host. Every response carries the console's security headers."""
    h = _Handlers(console)

    async def answered(why: str | None) -> None:
        console.store_answers = why is None

    @contextlib.asynccontextmanager
    async def following_the_store(_app: Starlette) -> AsyncIterator[None]:
        """The database probed while the console serves (:mod:`geoattest.verifier.probe`):
        the reads waiting on one that stopped answering are ended, and requests refused
        at once until it answers again."""
        prober = asyncio.create_task(
            follow_the_store(console.view.probe, console.view.interrupt, answered)
        )
        try:
            yield
        finally:
            prober.cancel()

    return Starlette(
        lifespan=following_the_store,
        middleware=[
            Middleware(Hardened, loopback_only=access is None),
            *([Middleware(OperatorOnly, access=access)] if access else []),
            Middleware(StoreGate, console=console),
        ],
        exception_handlers={
            StoreUnavailableError: _store_unavailable,
            StoreValueError: _store_value_refused,
            404: _not_answered,
            405: _not_answered,
        },
        routes=[
            Route("/", h.fleet),
            Route("/fleet/map.svg", h.fleet_map),
            Route("/fleet.json", h.fleet_counts),
            Route("/alerts", h.alerts),
            Route("/events", h.events),
            Route("/devices", h.devices),
            Route("/devices/{device_id:path}", h.device),
            Route("/landmarks", h.landmarks),
            Route("/landmarks/{landmark_id:path}", h.landmark),
            Route("/tokens", h.tokens, methods=["GET", "POST"]),
            Route("/static/console.js", h.script),
        ],
    )


async def _store_unavailable(_request: Request, exc: Exception) -> Response:
    """The store cannot be reached: 503 with the reason (as the verifier answers
    UNAVAILABLE), not a server error; each page reads the store afresh, so it comes back
    once the store does."""
    assert isinstance(exc, StoreUnavailableError)
    return _unavailable(exc)


def _unavailable(exc: StoreUnavailableError) -> Response:
    return HTMLResponse(
        pages.unavailable(exc.detail),
        503,
        headers={REASON_HEADER.decode(): exc.reason.value, "retry-after": "5"},
    )


class StoreGate:
    """ASGI middleware: while the database does not answer the console's probe, every
    request is answered 503 ``store.unavailable`` at once, as the verifier answers its
    calls, instead of waiting on the database with a thread of the console's."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.console.store_answers:
            await _unavailable(StoreNotAnsweringError())(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _store_value_refused(_request: Request, exc: Exception) -> Response:
    """A value in the request the database cannot hold (a NUL in a device id, on
    PostgreSQL): 400 with the reason, the request's fault, not a server error."""
    assert isinstance(exc, StoreValueError)
    return _refused(400, exc.reason, exc.detail)


async def _not_answered(request: Request, exc: Exception) -> Response:
    """The router's refusals, typed as every other: no route at the path (404), or a
    route that does not answer the method (405, with the methods it does in ``Allow``)."""
    assert isinstance(exc, HTTPException)
    path = request.url.path[:MAX_QUOTED_CHARS]
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        detail = f"{request.method[:MAX_QUOTED_CHARS]} is not answered at {path}"
        return _refused(exc.status_code, Reason.WRONG_METHOD, detail, exc.headers)
    return _refused(exc.status_code, Reason.NO_SUCH_PAGE, f"no page at {path}")


def _refused(
    status: int, reason: Reason, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A request refused for its own fault: ``status``, a page that names what is wrong
    and the reason code, and the code in the ``geoattest-reason`` header too."""
    title = HTTPStatus(status).phrase
    return HTMLResponse(
        pages.refused(title, reason.value, detail),
        status,
        headers={**(headers or {}), REASON_HEADER.decode(): reason.value},
    )


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it is longer than ``limit`` bytes (by its
    Content-Length, or as it arrives): no more of it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _cursor(text: str) -> int:
    """An event stream's cursor from its query string: anything but an alert id the store
    can hold (not a number, negative, past 64 bits) starts from the beginning."""
    try:
        cursor = int(text)
    except ValueError:
        return 0
    return cursor if 0 <= cursor <= INT64_MAX else 0


async def _events(
    console: Console,
    request: Request,
    cursor: int,
    alerts: Callable[[int], list[StoredAlert]],
    found: list[StoredAlert],
) -> AsyncIterator[str]:
    """The event stream: ``found``, then each new alert after the last (``alerts`` reads
    them, filtered), and the fleet's version whenever it moves."""
    yield ": connected\n\n"
    version = -1
    polls_per_fleet = max(1, round(FLEET_POLL_S / ALERT_POLL_S))
    poll = 0
    try:
        while not await request.is_disconnected():
            for alert in found:
                cursor = alert.cursor
                html = json.dumps({"html": pages.alert_row(alert)})
                yield f"event: alert\nid: {cursor}\ndata: {html}\n\n"
            if poll % polls_per_fleet == 0:
                current = await run_in_threadpool(console.fleet.refresh)
                if current != version:
                    version = current
                    yield f"event: fleet\ndata: {json.dumps({'version': version})}\n\n"
            poll += 1
            await asyncio.sleep(ALERT_POLL_S)
            found = await run_in_threadpool(alerts, cursor)
    except StoreUnavailableError as exc:
        # The stream ends; the browser's EventSource reconnects by itself, from its cursor.
        yield f"event: unavailable\ndata: {json.dumps({'reason': exc.reason.value})}\n\n"


def _fixes_svg(console: Console, licensed_region: str, history: list[ProofRow]) -> str:
    """A device's newest accepted proofs' feasible regions on a map, newest on top."""
    accepted = [p for p in history if p.accepted and p.bounds][:RECENT_FIXES]
    points = [(b.latitude, b.longitude) for p in accepted for b in p.bounds]
    canvas = Canvas(View.around(points), console.countries)
    region = console.regions.get(licensed_region)
    canvas.shape(region, css_class="licensed")
    for proof in reversed(accepted):
        position = Position("", Verdict(proof.verdict), "", "", 0, 0, proof.bounds)
        group = Group(proof.verdict, [position], proof.bounds)
        draw_group(canvas, group, feasible_shape(console.appraiser, proof.bounds), css="fix")
    return canvas.render(element_id="fixes")
