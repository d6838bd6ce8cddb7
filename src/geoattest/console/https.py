"""The console over HTTPS for the operator only.

uvicorn terminates TLS with the console's server certificate and requires a client
certificate of the deployment's operator CA (a caller without one, or with one from another
CA, fails the handshake). It does not hand the client certificate to the application, so
:class:`ClientCertificateH11` puts it in each request's scope the way the ASGI TLS
extension names it (``scope["extensions"]["tls"]["client_cert_chain"]``), and
:class:`OperatorOnly` admits a request only when that certificate's role is the operator's,
read exactly as the verifier reads it (:class:`~geoattest.verifier.access.HttpsAccess`).
A refusal is HTTP 403 with the reason code, in the body and in the ``geoattest-reason``
header, for every route: pages, the JSON endpoints and the event stream alike.
"""

from __future__ import annotations

import ssl
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from geoattest.errors import AccessError, Reason
from geoattest.verifier.access import HttpsAccess, loopback_host

REASON_HEADER = b"geoattest-reason"
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
"""On every response: no script but the console's own file runs (a value that escaped
its escaping still cannot script the page), no other site may frame a page (clickjacking),
no response is read as another type, and no address of the console leaves in a Referer."""
NO_STORE = (b"cache-control", b"no-store")
"""On every response that sets no caching of its own (the event stream's is
``no-cache``): where every chip is stays out of the browser's and any proxy's disk cache."""


async def _refuse(send: Send, status: int, reason: Reason, detail: str) -> None:
    """Answer ``status`` with the reason code in the body and the header."""
    body = f"{reason.value}: {detail}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (REASON_HEADER, reason.value.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Hardened:
    """ASGI middleware, outermost: :data:`SECURITY_HEADERS` on every response; with
    ``loopback_only`` (plain HTTP), a request whose Host is not a loopback name is refused
    403 ``access.plaintext_not_loopback``: a page elsewhere that points its own name at
    127.0.0.1 (DNS rebinding) is same-origin with what it reads there, and the console
    would otherwise answer it."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def hardened(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *SECURITY_HEADERS]
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        host = dict(scope.get("headers", ())).get(b"host")
        if self.loopback_only and host is not None:
            named = host.decode("latin-1")
            if not loopback_host(named):
                detail = (
                    f"plain HTTP answers requests for a loopback host only, not {named[:100]!r}"
                )
                await _refuse(hardened, 403, Reason.PLAINTEXT_NOT_LOOPBACK, detail)
                return
        await self.app(scope, receive, hardened)


class ClientCertificateH11(H11Protocol):
    """uvicorn's h11 protocol, with the connection's client certificate in every scope."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        tls: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
        inner = self.app

        async def with_certificate(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions["tls"] = {"client_cert_chain": chain}
            await inner(scope, receive, send)

        self.app = with_certificate


class OperatorOnly:
    """ASGI middleware: every HTTP request needs a client certificate whose role
    :class:`HttpsAccess` admits; any other is answered 403 with the reason."""

    def __init__(self, app: ASGIApp, access: HttpsAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
        try:
            der = ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None
            self.access.admit(der)
        except AccessError as refused:
            await _refuse(send, 403, refused.reason, refused.detail)
            return
        await self.app(scope, receive, send)


def server_config(app: ASGIApp, access: HttpsAccess | None, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: plain HTTP without ``access``; with it, HTTPS
    with its context and the client certificate passed on to :class:`OperatorOnly`."""
    if access is None:
        return uvicorn.Config(app, **options)
    return uvicorn.Config(
        app,
        http=ClientCertificateH11,
        ssl_context_factory=lambda _config, _default: access.ssl_context(),
        **options,
    )
