"""``geoattest landmark serve``: run a landmark's UDP timing server until stopped.

The landmark is a key directory from ``geoattest landmark keygen`` (``key.pem`` and
``landmark.json`` with its id and surveyed coordinates). With ``--registry`` the landmark
must be registered there under the same key, so a landmark never serves receipts the
verifier would refuse. Every input is checked before the socket is bound, and every
failure (a missing or bad key directory, a bad host, a port in use) is a one-line error.

With ``--audit-peer ID=HOST:PORT`` (repeatable), ``--registry`` and ``--verifier`` the
landmark also audits its registered peers every ``--audit-every-s`` seconds
(:mod:`geoattest.verifier.landmark.audit`): a timed round with each, answered with its own
key, and the peers' receipts handed to the verifier, which excludes a landmark the audits
show to be lying or misregistered.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geoattest import priorities
from geoattest.cli.pki import landmark_app
from geoattest.cli.tls import (
    METRICS_TLS_HELP,
    check_transport,
    checked_metrics_address,
    metrics_access,
    party_credentials,
)
from geoattest.errors import ConfigError

if TYPE_CHECKING:
    from geoattest.crypto import KeySigner
    from geoattest.verifier.landmark import LandmarkIdentity
    from geoattest.wire.rounds import LandmarkEndpoint


def _load_landmark(directory: Path, registry: Path | None) -> tuple[LandmarkIdentity, KeySigner]:
    from geoattest.pki import LandmarkRegistry, load_landmark_key  # noqa: PLC0415
    from geoattest.verifier.landmark import LandmarkIdentity  # noqa: PLC0415

    signer, own = load_landmark_key(directory)
    identity = LandmarkIdentity(own.landmark_id, own.latitude, own.longitude)
    if registry is not None:
        record = LandmarkRegistry.load(registry).get(identity.landmark_id)
        if record is None:
            raise ConfigError(f"landmark {identity.landmark_id} is not in {registry}")
        if record.verifying_key.key_id != signer.verifying_key.key_id:
            raise ConfigError(f"{registry} lists another key for {identity.landmark_id}")
        identity = LandmarkIdentity(record.landmark_id, record.latitude, record.longitude)
    return identity, signer


def _audit_peers(
    values: list[str], own_id: str, registry: Path | None, verifier: str | None
) -> list[LandmarkEndpoint]:
    """The peers to audit, ``ID=HOST:PORT`` each, with their keys from the registry."""
    from geoattest.address import parse_address  # noqa: PLC0415
    from geoattest.pki import LandmarkRegistry  # noqa: PLC0415
    from geoattest.wire.rounds import LandmarkEndpoint  # noqa: PLC0415

    if not values:
        return []
    if registry is None or verifier is None:
        raise ConfigError("--audit-peer needs --registry (the peers' keys) and --verifier")
    parse_address(verifier, "--verifier")
    records = LandmarkRegistry.load(registry)
    peers = []
    for value in values:
        peer_id, sep, address = value.partition("=")
        if not sep:
            raise ConfigError(f"--audit-peer {value!r} is not LANDMARK_ID=HOST:PORT")
        record = records.get(peer_id)
        if record is None:
            raise ConfigError(f"--audit-peer: landmark {peer_id} is not in {registry}")
        if peer_id == own_id:
            raise ConfigError(f"--audit-peer: landmark {peer_id} is this landmark")
        host, port = parse_address(address, f"--audit-peer {peer_id}")
        peers.append(LandmarkEndpoint(peer_id, host, port, record.verifying_key))
    return peers


@landmark_app.command("serve")
def landmark_serve(
    key: Annotated[Path, typer.Option(help="Landmark key directory ('landmark keygen').")],
    registry: Annotated[
        Path | None, typer.Option(help="Landmark registry JSON that must list this key.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="UDP port (0: any).")] = 0,
    exchanges_max: Annotated[
        int, typer.Option(min=1, max=32, help="Most exchanges a round may ask for.")
    ] = 32,
    max_rounds: Annotated[int, typer.Option(min=1, help="Rounds open at once.")] = 1024,
    rate: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=1e6,
            help="Rounds a source host may open per second (a round's own datagrams are "
            "never limited).",
        ),
    ] = 5000.0,
    burst: Annotated[
        float, typer.Option(min=1.0, max=1e6, help="Rounds a source host may open at once.")
    ] = 1000.0,
    challenge_timeout_ms: Annotated[
        int, typer.Option(min=1, help="Silence before a challenge is replaced.")
    ] = 250,
    grpc_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Also serve GetInfo/GetCounters over gRPC here."),
    ] = None,
    audit_peer: Annotated[
        list[str] | None,
        typer.Option(
            help="A registered peer to audit, LANDMARK_ID=HOST:PORT of its UDP server "
            "(repeatable; needs --registry and --verifier)."
        ),
    ] = None,
    verifier: Annotated[
        str | None, typer.Option(help="Verifier HOST:PORT that receives the audits.")
    ] = None,
    audit_every_s: Annotated[
        float, typer.Option(min=0.1, max=86400, help="Seconds between audits of the peers.")
    ] = 600.0,
    grpc_tls: Annotated[
        Path | None,
        typer.Option(
            help="TLS directory ('tls issue --role server') for --grpc-port: mutual TLS, "
            "callers with certificates of the same operator CA. Without it the gRPC "
            "endpoint is plaintext and must be on a loopback --host."
        ),
    ] = None,
    verifier_tls: Annotated[
        Path | None,
        typer.Option(
            help="This landmark's TLS directory ('tls issue --role landmark') for --verifier."
        ),
    ] = None,
    verifier_plaintext: Annotated[
        bool, typer.Option(help="Reach --verifier without TLS (a loopback verifier only).")
    ] = False,
    metrics: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT for Prometheus metrics at /metrics (port 0: any; printed first)."
        ),
    ] = None,
    metrics_tls: Annotated[Path | None, typer.Option(help=METRICS_TLS_HELP)] = None,
    realtime_priority: Annotated[
        int,
        typer.Option(
            min=0,
            max=99,
            help="SCHED_FIFO priority of the thread that serves rounds, where the process may "
            "(CAP_SYS_NICE): it then sends each next challenge without waiting behind the "
            "host's other work. 0: normal priority.",
        ),
    ] = priorities.LANDMARK,
    spin_us: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="After a round's challenge on a path whose last exchange took at most this "
            "many microseconds, poll for the answer that long before blocking, where the host "
            "has a core to spare (or the thread its real-time priority and a second CPU): a "
            "data centre's answer is then read as it lands, and the next challenge leaves "
            "without the landmark's wake-up, which a spinning agent would spin through. "
            "0: never.",
        ),
    ] = priorities.LANDMARK_POLL_US,
) -> None:
    """Serve timed rounds and sign receipts until SIGTERM or SIGINT; audit peers if asked."""
    from geoattest.verifier.landmark import LandmarkServer, Limits  # noqa: PLC0415
    from geoattest.verifier.landmark.audit import PeerAuditor, verifier_submitter  # noqa: PLC0415
    from geoattest.verifier.logs import FIELDS, configure_json_logs  # noqa: PLC0415

    metrics_address = checked_metrics_address(metrics, metrics_tls)
    identity, signer = _load_landmark(key, registry)
    peers = _audit_peers(audit_peer or [], identity.landmark_id, registry, verifier)
    credentials = None
    if peers and verifier is not None:
        check_transport(
            verifier,
            "--verifier",
            verifier_tls,
            plaintext=verifier_plaintext,
            flag="--verifier-tls",
        )
        credentials = party_credentials(verifier_tls)
    limits = Limits(
        max_rounds=max_rounds,
        max_exchanges=exchanges_max,
        rate_per_s=rate,
        burst=burst,
        challenge_timeout_ns=challenge_timeout_ms * 1_000_000,
    )
    configure_json_logs()
    server = LandmarkServer(
        identity,
        signer,
        host=host,
        port=port,
        limits=limits,
        realtime_priority=realtime_priority,
        spin_s=spin_us / 1e6,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    info = None
    auditor = None
    try:
        if grpc_port is not None:
            from geoattest.pki.tls import TlsIdentity  # noqa: PLC0415
            from geoattest.verifier.landmark.service import start_info_service  # noqa: PLC0415

            info_tls = TlsIdentity.load(grpc_tls) if grpc_tls else None
            info = start_info_service(server, host, grpc_port, info_tls)
        if metrics_address is not None:
            from geoattest.verifier.landmark.metrics import serve_landmark_metrics  # noqa: PLC0415

            endpoint = serve_landmark_metrics(server, metrics_address, metrics_access(metrics_tls))
            typer.echo(f"landmark metrics on {endpoint.url}")
        server.start()
        if peers and verifier is not None:
            auditor = PeerAuditor(
                identity.landmark_id,
                signer,
                peers,
                verifier_submitter(verifier, credentials=credentials),
                every_s=audit_every_s,
            )
            auditor.start()
        bound_host, bound_port = server.address[:2]
        stamps = "kernel receive stamps" if server.kernel_timestamps else "monotonic stamps"
        stamps += f", {server.landmark_io} timed I/O"
        grpc_note = f", gRPC on {host}:{info.port}" if info else ""
        audit_note = f", auditing {len(peers)} peers" if auditor else ""
        typer.echo(
            f"landmark {identity.landmark_id} listening on udp {bound_host}:{bound_port} "
            f"({stamps}{grpc_note}{audit_note})"
        )
        while not stopping.wait(1.0):  # a timed wait, so a signal is seen within a second
            continue
    finally:
        if auditor is not None:
            auditor.stop()
        if info is not None:
            info.server.stop(grace=1.0)
        server.stop()
    counters = server.counters()
    fields = {
        "landmark_id": identity.landmark_id,
        "rounds_opened": counters.rounds_opened,
        "receipts_signed": counters.receipts_signed,
        "rounds_failed": counters.rounds_failed,
        "datagrams_polled": counters.datagrams_polled,
    }
    logging.getLogger("geoattest.landmark").info("stopped", extra={FIELDS: fields})
