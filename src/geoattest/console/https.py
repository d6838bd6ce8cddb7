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

from geoattest.errors import AccessError
from geoattest.verifier.access import HttpsAccess

REASON_HEADER = b"geoattest-reason"


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
            body = f"{refused}\n".encode()
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (REASON_HEADER, refused.reason.value.encode()),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
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
