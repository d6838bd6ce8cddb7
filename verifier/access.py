"""Who may call what at the verifier: mutual TLS, a role per caller, one table per method.

With TLS, gRPC's handshake has already checked the caller's certificate chain (to the
operator's TLS CA or to a manufacturer root) and its validity period; a caller without a
certificate, or with one from any other CA, never reaches a handler. :class:`AccessInterceptor`
then names the caller (:func:`caller_of`) and checks :data:`ACCESS`, the one table of
method -> roles allowed:

* a certificate the operator CA signed is a party in the role its organizationalUnitName
  names (:mod:`geoattest.pki.tls`);
* a certificate a manufacturer root signed is a *device*: the chip whose id is its subject
  serialNumber, unless that device is revoked.

The caller is kept for the handler (:data:`current_caller`): a device may enrol only
itself and submit only proofs signed by its own key, which the servicer checks against
the request. Refusals are :class:`~geoattest.errors.AccessError` with a stable reason,
answered through the transport's one status table.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from geoattest.crypto import sha256
from geoattest.errors import AccessError, ConfigError, Reason
from geoattest.pki.keyfiles import KEY_FILE, key_passphrase
from geoattest.pki.tls import CERT_FILE, Role, TlsIdentity, issued_by, role_of, serves_tls
from geoattest.v1 import admin_service_pb2, verifier_service_pb2

_SERVICE = verifier_service_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name
_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
_OPERATOR = frozenset({Role.OPERATOR})
_EVERYONE = frozenset(r for r in Role if r is not Role.SERVER)

ACCESS: Final[Mapping[str, frozenset[Role]]] = MappingProxyType(
    {
        f"/{_SERVICE}/Enroll": frozenset({Role.DEVICE}),
        f"/{_SERVICE}/SubmitProof": frozenset({Role.DEVICE}),
        f"/{_SERVICE}/SubmitProofBatch": frozenset({Role.DEVICE}),
        f"/{_SERVICE}/GetDeviceStatus": frozenset({Role.RELYING_PARTY, Role.OPERATOR}),
        f"/{_SERVICE}/GetResultKeys": _EVERYONE,
        f"/{_SERVICE}/WatchAlerts": frozenset({Role.OPERATOR}),
        f"/{_SERVICE}/GetRejections": frozenset({Role.OPERATOR}),
        f"/{_SERVICE}/SubmitPeerReceipts": frozenset({Role.LANDMARK}),
        **{
            f"/{_ADMIN}/{method.name}": _OPERATOR
            for method in admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].methods
        },
        "/grpc.health.v1.Health/Check": _EVERYONE,
        "/grpc.health.v1.Health/Watch": _EVERYONE,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _EVERYONE,
    }
)
"""The roles that may call each method; a method not listed is refused to everyone."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: its role, its name (a device's id) and its key id."""

    role: Role
    name: str
    key_id: str


current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "current_caller", default=None
)
"""The caller of the call being handled; None on a plaintext (loopback) server."""


class CallerNames:
    """Names callers from their verified certificates; the parse is cached per certificate."""

    def __init__(
        self,
        operator_ca: x509.Certificate,
        manufacturer_roots: Sequence[x509.Certificate],
        device_revoked: Callable[[str], bool],
    ) -> None:
        self._operator_ca = operator_ca
        self._roots = tuple(manufacturer_roots)
        self._device_revoked = device_revoked
        self._parse = functools.lru_cache(maxsize=4096)(self._caller_of_pem)

    def caller_of(self, pem: bytes) -> Caller:
        """The caller a (handshake-verified) certificate names.

        Raises:
            AccessError: ``access.no_role`` (no role here) or ``device.revoked``.
        """
        caller = self._parse(pem)
        if caller.role is Role.DEVICE and self._device_revoked(caller.name):
            raise AccessError(Reason.REVOKED_DEVICE, f"device {caller.name} is revoked")
        return caller

    def admit(self, pem: bytes, allowed: frozenset[Role], what: str) -> Caller:
        """The caller a (handshake-verified) certificate names, if its role is ``allowed``
        to do ``what`` (the verifier's methods, the console, the metrics endpoints).

        Raises:
            AccessError: ``access.no_role``, ``device.revoked`` or ``access.wrong_role``.
        """
        caller = self.caller_of(pem)
        check_role(caller, allowed, what)
        return caller

    def _caller_of_pem(self, pem: bytes) -> Caller:
        certificate = x509.load_pem_x509_certificate(pem)
        spki = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        key_id = sha256(spki).hex()
        role = role_of(certificate, self._operator_ca)
        if role is not None:
            return Caller(role, _common_name(certificate), key_id)
        if any(issued_by(certificate, root) for root in self._roots):
            ids = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
            if len(ids) == 1:
                return Caller(Role.DEVICE, str(ids[0].value), key_id)
        raise AccessError(Reason.NO_ROLE, f"{certificate.subject.rfc4514_string()} has no role")


def check_role(caller: Caller, allowed: frozenset[Role], what: str) -> None:
    """Raises: AccessError: ``access.wrong_role``, when ``caller``'s role is not allowed."""
    if caller.role not in allowed:
        raise AccessError(Reason.WRONG_ROLE, f"role {caller.role} may not {what}")


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def check_own_device(device_id: str) -> None:
    """A device caller may act only for itself; other roles are checked by the table.

    Raises:
        AccessError: ``access.other_device``.
    """
    caller = current_caller.get()
    if caller is not None and caller.role is Role.DEVICE and caller.name != device_id:
        raise AccessError(
            Reason.OTHER_DEVICE, f"device {caller.name} may not act for device {device_id}"
        )


def own_proof_key() -> str | None:
    """The key id every proof of this call must be signed with: a device caller's own;
    None when any enrolled device's proof may pass (no TLS)."""
    caller = current_caller.get()
    return caller.key_id if caller is not None and caller.role is Role.DEVICE else None


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks every call's caller against :data:`ACCESS` before its handler runs."""

    def __init__(
        self,
        names: CallerNames,
        refuse: Callable[[grpc.aio.ServicerContext[Any, Any], AccessError], Awaitable[None]],
    ) -> None:
        self._names = names
        self._refuse = refuse

    def _admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        """The caller, if ``method`` admits its role.

        Raises:
            AccessError: no role, revoked, or a role the table does not allow.
        """
        certificates = list(context.auth_context().get("x509_pem_cert") or ())
        if not certificates:
            raise AccessError(Reason.NO_ROLE, "no client certificate")
        caller = self._names.caller_of(bytes(certificates[0]))
        current_caller.set(caller)  # the request log names it, a refused caller too
        check_role(caller, ACCESS.get(method, frozenset()), f"call {method.rpartition('/')[2]}")
        return caller

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED
            return handler  # type: ignore[unreachable]
        if handler.unary_unary is not None:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    current_caller.set(self._admit(method, context))
                except AccessError as refused:
                    await self._refuse(context, refused)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def streamed(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    current_caller.set(self._admit(method, context))
                except AccessError as refused:
                    await self._refuse(context, refused)
                produced = stream(request, context)
                if inspect.isawaitable(produced):  # a handler that writes to its context
                    await produced
                    return
                async for item in produced:
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                streamed,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            bidi: Any = handler.stream_stream

            async def both(
                requests: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    current_caller.set(self._admit(method, context))
                except AccessError as refused:
                    await self._refuse(context, refused)
                async for item in bidi(requests, context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(
                both,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The verifier's TLS: its key and certificate, and the CAs its callers may come from
    (the operator CA for parties, the manufacturer roots for devices)."""

    identity: TlsIdentity
    manufacturer_roots: tuple[x509.Certificate, ...]

    def credentials(self) -> grpc.ServerCredentials:
        roots = self.identity.ca_pem + b"".join(
            root.public_bytes(Encoding.PEM) for root in self.manufacturer_roots
        )
        return grpc.ssl_server_credentials(
            [(self.identity.key_pem, self.identity.cert_pem)],
            root_certificates=roots,
            require_client_auth=True,
        )

    def caller_names(self, device_revoked: Callable[[str], bool]) -> CallerNames:
        return CallerNames(
            x509.load_pem_x509_certificate(self.identity.ca_pem),
            self.manufacturer_roots,
            device_revoked,
        )


def loopback_host(host: str) -> bool:
    """Whether a Host header (``name[:port]``, ``[v6]:port``) names this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HttpsAccess:
    """An HTTPS endpoint beside the verifier (the console, a metrics endpoint) over mutual
    TLS: the server's ``tls issue --role server`` directory, a client certificate of the
    same operator CA required at the handshake, and the roles ``allowed`` checked on each
    request with the verifier's own role reading (:meth:`CallerNames.admit`)."""

    def __init__(self, directory: Path, allowed: frozenset[Role], what: str) -> None:
        """Raises: KeyExposedError, ConfigError: the directory is not a usable server
        identity (a client's, from ``tls issue --role operator`` say, is refused)."""
        self.directory = directory
        self.identity = TlsIdentity.load(directory)
        if not serves_tls(x509.load_pem_x509_certificate(self.identity.cert_pem)):
            raise ConfigError(
                f"{directory} holds a client certificate; serving needs a server's "
                "('geoattest tls issue --role server')"
            )
        self.allowed = allowed
        self.what = what
        self._names = ServerTls(self.identity, ()).caller_names(lambda _device: False)

    def ssl_context(self) -> ssl.SSLContext:
        """A server context: this identity, TLS 1.2 or newer, client certificates required
        and checked against the operator CA only."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(
            self.directory / CERT_FILE, self.directory / KEY_FILE, password=key_passphrase()
        )
        context.load_verify_locations(cadata=self.identity.ca_pem.decode())
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def admit(self, der: bytes | None) -> Caller:
        """The caller a handshake-verified client certificate (DER) names, if its role
        is allowed here.

        Raises:
            AccessError: ``access.no_role`` (none, or no role) or ``access.wrong_role``.
        """
        if not der:
            raise AccessError(Reason.NO_ROLE, "no client certificate")
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        return self._names.admit(pem, self.allowed, self.what)
