"""``geoattest verifier serve`` and the client commands ``enrol`` and ``status``.

Every input is checked before the server binds, and every failure (a missing file, a bad
flag value, a port in use, an unreachable verifier) is a one-line error naming it.

``serve --workers N`` forks N worker processes after loading the inputs (the geography
is shared copy-on-write); each opens its own store connection and gRPC server on the same
port (``SO_REUSEPORT``: the kernel spreads connections over them). They share one
database, whose compare-and-swap commits keep every chain correct across workers. The
parent prints the address once every worker serves, forwards SIGTERM and SIGINT, and
stops them all if one dies. Every worker runs the stale sweep; marking a device STALE is
one transaction, so it goes STALE, and alerts, once. An alert stream (``WatchAlerts``) is
served by one worker and carries that worker's alerts only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geoattest.address import parse_address
from geoattest.cli.pki import verifier_app
from geoattest.errors import ConfigError

if TYPE_CHECKING:
    from geoattest.verifier.grpc_server import VerifierServer

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_VERIFIER_ID = "geoattest-verifier"


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    return path


def _measurements(values: list[str]) -> frozenset[bytes] | None:
    try:
        digests = frozenset(bytes.fromhex(v) for v in values)
    except ValueError as exc:
        raise ConfigError(f"--measurement must be hex: {exc}") from exc
    if any(len(d) != 32 for d in digests):
        raise ConfigError("--measurement must be a SHA-256 digest (64 hex characters)")
    return digests or None


@verifier_app.command("serve")
def verifier_serve(
    db: Annotated[Path, typer.Option(help="SQLite database file (created if missing).")],
    trust_root: Annotated[
        list[Path], typer.Option(help="Manufacturer root certificate PEM (repeatable).")
    ],
    landmarks: Annotated[Path, typer.Option(help="Landmark registry JSON.")],
    policy: Annotated[Path, typer.Option(help="Region policy JSON.")],
    licences: Annotated[Path, typer.Option(help="Licences JSON (device -> region, expiry).")],
    result_key: Annotated[Path, typer.Option(help="Result key directory ('verifier keygen').")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on (port 0: any).")] = (
        DEFAULT_LISTEN
    ),
    revocations: Annotated[Path | None, typer.Option(help="Revocation list JSON.")] = None,
    verifier_id: Annotated[
        str, typer.Option(help="This verifier's id, as possession proofs must name it.")
    ] = DEFAULT_VERIFIER_ID,
    quorum: Annotated[int, typer.Option(min=1, help="Fewest landmarks a proof needs.")] = 3,
    landmark_faults: Annotated[
        int,
        typer.Option(
            min=0,
            help="Lying landmarks an ALLOWED must survive (below --quorum; each one tolerated "
            "means an honest chip needs one more close landmark).",
        ),
    ] = 0,
    measurement: Annotated[
        list[str] | None,
        typer.Option(help="Allowed agent firmware SHA-256, hex (repeatable; none: any)."),
    ] = None,
    cadence_s: Annotated[int, typer.Option(min=1, help="Expected seconds between proofs.")] = 3600,
    stale_after: Annotated[
        int, typer.Option(min=1, help="Missed cadences before a device is STALE.")
    ] = 3,
    synchronous: Annotated[
        str, typer.Option(help="SQLite synchronous: FULL (power-cut safe) or NORMAL.")
    ] = "FULL",
    grace_s: Annotated[float, typer.Option(min=0, help="Drain time at shutdown.")] = 5.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes serving one port over one database (about one per core). "
            "An alert stream sees the alerts of the worker serving it.",
        ),
    ] = 1,
) -> None:
    """Run the verifier's gRPC service until SIGTERM or SIGINT, then drain and stop."""
    # Imported here so that the other commands start without gRPC and SQLAlchemy.
    from geoattest.geo import load_policy  # noqa: PLC0415
    from geoattest.pki import LandmarkRegistry, ResultKey, RevocationList, TrustAnchors  # noqa: PLC0415
    from geoattest.verifier.grpc_server import VerifierServer  # noqa: PLC0415
    from geoattest.verifier.licences import Licences  # noqa: PLC0415
    from geoattest.verifier.pipeline import PipelineConfig, ProofAppraiser  # noqa: PLC0415
    from geoattest.verifier.results import ResultSigner  # noqa: PLC0415
    from geoattest.verifier.service import VerifierConfig, VerifierService  # noqa: PLC0415
    from geoattest.verifier.store import SqlStore, Synchronous  # noqa: PLC0415

    address = str(parse_address(listen, "--listen", any_port=True))
    if landmark_faults >= quorum:
        raise ConfigError(f"--landmark-faults {landmark_faults} must be below --quorum {quorum}")
    try:
        sync = Synchronous(synchronous.upper())
    except ValueError:
        raise ConfigError(f"--synchronous must be FULL or NORMAL, not {synchronous!r}") from None
    anchors = TrustAnchors.from_pem_files(_existing(p, "trust root") for p in trust_root)
    registry = LandmarkRegistry.load(_existing(landmarks, "landmark registry"))
    revoked = (
        RevocationList.load(_existing(revocations, "revocation list"))
        if revocations
        else (RevocationList())
    )
    region = load_policy(_existing(policy, "region policy")).appraiser()
    licensed = Licences.load(_existing(licences, "licences file"), region.has_region)
    key = ResultKey.load(_existing(result_key, "result key directory"))
    appraiser = ProofAppraiser(
        PipelineConfig(
            quorum=quorum,
            allowed_measurements=_measurements(measurement or []),
            landmark_faults=landmark_faults,
        ),
        registry,
        revoked,
        region,
    )
    SqlStore.open(db, synchronous=sync).close()  # a bad file fails here, not in N workers

    def serve(address: str, reuse_port: bool, serving: Callable[[int], None]) -> None:
        store = SqlStore.open(db, synchronous=sync)
        service = VerifierService(
            VerifierConfig(
                verifier_id,
                cadence_ns=cadence_s * 1_000_000_000,
                stale_after_cadences=stale_after,
            ),
            anchors=anchors,
            appraiser=appraiser,
            licences=licensed,
            signer=ResultSigner(key, verifier_id=verifier_id, policy_id=region.policy_id),
            store=store,
        )
        server = VerifierServer(service, sweep_every_s=cadence_s / 4)
        try:
            asyncio.run(_serve(server, address, grace_s, reuse_port, serving))
        finally:
            store.close()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The loaded inputs (the geography above all) live as long as the process: frozen, no
    # garbage collection walks them again (it cost 5 % of the batch path), and none in a
    # forked worker copies their pages.
    gc.freeze()
    host = address.rpartition(":")[0]
    if workers == 1:
        serve(address, False, lambda port: typer.echo(f"verifier listening on {host}:{port}"))
        return
    with _reserved_port(address) as port:
        _run_workers(serve, f"{host}:{port}", workers)


async def _serve(
    server: VerifierServer,
    address: str,
    grace_s: float,
    reuse_port: bool,
    serving: Callable[[int], None],
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    serving(await server.start(address, reuse_port=reuse_port))
    await stopping.wait()
    typer.echo("verifier draining", err=True)
    await server.stop(grace_s)


Serve = Callable[[str, bool, Callable[[int], None]], None]
"""Runs one verifier process on an address until a signal: (address, reuse_port, serving)."""


@contextmanager
def _reserved_port(address: str) -> Iterator[int]:
    """Hold ``address``'s port (port 0: a free one) for the workers to share.

    The socket is bound with ``SO_REUSEPORT`` but never listens, so it takes no
    connections; a port another server listens on is refused first, by a plain probe.

    Raises:
        OSError: the address cannot be bound.
    """
    from geoattest.verifier.grpc_server import check_bindable  # noqa: PLC0415

    check_bindable(address)
    host, _, port = address.rpartition(":")
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host.strip("[]"), int(port), type=socket.SOCK_STREAM
    )[0]
    with socket.socket(family, kind, proto) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind(sockaddr)
        except OSError as exc:
            raise OSError(f"cannot listen on {address}: {exc.strerror}") from exc
        yield int(holder.getsockname()[1])


def _worker(serve: Serve, address: str, ready: multiprocessing.connection.Connection) -> None:
    """One worker process: serve until signalled; a start-up failure goes to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's forwarding handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        serve(address, True, lambda _port: ready.send(None))
    except (ConfigError, OSError) as exc:
        ready.send(exc.detail if isinstance(exc, ConfigError) else str(exc))
        raise SystemExit(2) from None


def _run_workers(serve: Serve, address: str, count: int) -> None:
    """Fork ``count`` workers on ``address``; return when all have stopped.

    Raises:
        ConfigError: a worker failed to start or died while serving.
    """
    # Forked, not spawned: workers inherit the loaded inputs. gRPC is started only in them.
    context = multiprocessing.get_context("fork")
    processes: list[multiprocessing.process.BaseProcess] = []
    stopping = False

    def stop(_signum: int = 0, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        readiness = []
        for i in range(count):
            receiver, sender = context.Pipe(duplex=False)
            processes.append(
                context.Process(target=_worker, args=(serve, address, sender), name=f"worker-{i}")
            )
            processes[-1].start()
            sender.close()  # so that a worker dying before it answers reads as EOF
            readiness.append(receiver)
        for receiver, process in zip(readiness, processes, strict=True):
            try:
                failure: str | None = receiver.recv()
            except EOFError:
                process.join()
                failure = f"exited with status {process.exitcode}"
            if failure is not None and not stopping:
                raise ConfigError(f"verifier {process.name}: {failure}")
        if not stopping:
            typer.echo(f"verifier listening on {address}")
            typer.echo(f"verifier: {count} worker processes", err=True)
        ended = multiprocessing.connection.wait([p.sentinel for p in processes])
        if not stopping:
            died = next(p for p in processes if p.sentinel in ended)
            died.join()
            raise ConfigError(f"verifier {died.name} exited with status {died.exitcode}")
    finally:
        asked = stopping
        stop()
        for process in processes:
            process.join()
        if asked:
            typer.echo("verifier stopped", err=True)


TargetOption = Annotated[str, typer.Option(help="Verifier address HOST:PORT.")]


def _call_verifier(target: str, call: Coroutine[Any, Any, str]) -> str:
    """Run one client call; an unreachable or refusing verifier is a one-line error."""
    from geoattest.wire.client import VerifierRefused  # noqa: PLC0415

    try:
        return asyncio.run(call)
    except VerifierRefused as exc:
        raise ConfigError(f"verifier at {target}: {exc.code.name} {exc.detail}") from exc


@verifier_app.command("status")
def verifier_status(
    device_id: Annotated[str, typer.Option(help="Device id.")],
    target: TargetOption = DEFAULT_LISTEN,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="Deadline in seconds.")] = 5.0,
) -> None:
    """Print a device's state, last counter and last verdict."""
    from geoattest.wire.client import VerifierClient  # noqa: PLC0415

    parse_address(target, "--target")

    async def status() -> str:
        async with VerifierClient(target, timeout_s=timeout_s) as client:
            reply = await client.device_status(device_id)
        return (
            f"{reply.device_id} {reply.state} region={reply.licensed_region} "
            f"counter={reply.last_counter} verdict={reply.last_verdict}"
        )

    typer.echo(_call_verifier(target, status()))


@verifier_app.command("enrol")
def verifier_enrol(
    keystore: Annotated[Path, typer.Option(help="Device key store ('device provision').")],
    target: TargetOption = DEFAULT_LISTEN,
    verifier_id: Annotated[str, typer.Option(help="The verifier's id.")] = DEFAULT_VERIFIER_ID,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="Deadline in seconds.")] = 5.0,
) -> None:
    """Enrol a provisioned device with a verifier (proof of possession by its key store)."""
    from geoattest.attestor.keystore import DeviceKeyStore  # noqa: PLC0415
    from geoattest.wire.client import VerifierClient, enrolment_request  # noqa: PLC0415

    parse_address(target, "--target")
    device = DeviceKeyStore.open(_existing(keystore, "key store"))
    request = enrolment_request(device, device.device_id, device.certificate_der(), (), verifier_id)

    async def enrol() -> str:
        async with VerifierClient(target, timeout_s=timeout_s) as client:
            reply = await client.enroll(request)
        return f"device {reply.device_id} enrolled, licensed for {reply.licensed_region}"

    typer.echo(_call_verifier(target, enrol()))
