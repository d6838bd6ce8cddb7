"""Running the verifier's server as processes: one until a signal, or N forked workers.

``serve(..., workers=N)`` forks N worker processes after the inputs are loaded (the
geography is shared copy-on-write); each opens its own store connection and gRPC server on
the same port (``SO_REUSEPORT``: the kernel spreads connections over them). They share one
database, whose compare-and-swap commits keep every chain correct across workers. The
parent prints the address once every worker serves, forwards SIGTERM and SIGINT, and
stops them all if one dies. SIGHUP reloads (``reload``: the licences file, applied to the
shared database, so every worker judges the next proof by it): in the one process, or in the
parent, while the workers ignore it. Every worker runs the stale sweep; marking a device STALE is
one transaction, so it goes STALE, and alerts, once. An alert stream (``WatchAlerts``) is
served by one worker and carries that worker's alerts only.

The address line on stdout (``verifier listening on HOST:PORT``) is what whoever started
the verifier waits for; the rest goes to the log (JSON lines on stderr,
:mod:`geoattest.verifier.logs`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from geoattest.errors import ConfigError
from geoattest.verifier.grpc_server import VerifierServer, check_bindable

log = logging.getLogger("geoattest.verifier")

OpenServer = Callable[[], AbstractContextManager[VerifierServer]]
"""Builds this process's server over a store of its own, and closes the store after."""
Serve = Callable[[str, bool, Callable[[int], None]], None]
"""Runs one verifier process on an address until a signal: (address, reuse_port, serving)."""


def _say(line: str) -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    log.info(line)


def serve(
    open_server: OpenServer,
    address: str,
    *,
    workers: int,
    grace_s: float,
    reload: Callable[[], None] = lambda: None,
) -> None:
    """Serve on ``address`` until SIGTERM or SIGINT, then drain (up to ``grace_s``) and stop:
    in this process, or in ``workers`` forked ones sharing the port. SIGHUP calls
    ``reload`` (which reports its own failures) and serving goes on.

    Raises:
        ConfigError: the address cannot be bound, or a worker failed to start or died.
    """
    # The loaded inputs (the geography above all) live as long as the process: frozen, no
    # garbage collection walks them again (it cost 5 % of the batch path), and none in a
    # forked worker copies their pages.
    gc.freeze()
    host = address.rpartition(":")[0]
    if workers == 1:
        _serve_one(
            open_server,
            grace_s,
            address,
            False,
            lambda port: _say(f"verifier listening on {host}:{port}"),
            reload=reload,
        )
        return
    one: Serve = functools.partial(_serve_one, open_server, grace_s, reload=_ignored)
    with _reserved_port(address) as port:
        _run_workers(one, f"{host}:{port}", workers, reload)


def _ignored() -> None:
    """A worker's SIGHUP: the parent reloads, for all of them."""


def _serve_one(
    open_server: OpenServer,
    grace_s: float,
    address: str,
    reuse_port: bool,
    serving: Callable[[int], None],
    *,
    reload: Callable[[], None],
) -> None:
    with open_server() as server:
        asyncio.run(_until_signalled(server, address, grace_s, reuse_port, serving, reload=reload))


async def _until_signalled(
    server: VerifierServer,
    address: str,
    grace_s: float,
    reuse_port: bool,
    serving: Callable[[int], None],
    *,
    reload: Callable[[], None],
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    serving(await server.start(address, reuse_port=reuse_port))
    await stopping.wait()
    _note("verifier draining")
    await server.stop(grace_s)


@contextmanager
def _reserved_port(address: str) -> Iterator[int]:
    """Hold ``address``'s port (port 0: a free one) for the workers to share.

    The socket is bound with ``SO_REUSEPORT`` but never listens, so it takes no
    connections; a port another server listens on is refused first, by a plain probe.

    Raises:
        ConfigError: the address cannot be bound.
    """
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
            raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from exc
        yield int(holder.getsockname()[1])


def _worker(serve: Serve, address: str, ready: multiprocessing.connection.Connection) -> None:
    """One worker process: serve until signalled; a start-up failure goes to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's forwarding handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent reloads for every worker
    try:
        serve(address, True, lambda _port: ready.send(None))
    except (ConfigError, OSError) as exc:
        ready.send(exc.detail if isinstance(exc, ConfigError) else str(exc))
        raise SystemExit(2) from None


def _run_workers(serve: Serve, address: str, count: int, reload: Callable[[], None]) -> None:
    """Fork ``count`` workers on ``address``, calling ``reload`` on SIGHUP; return when all
    have stopped.

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
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload())
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
            _say(f"verifier listening on {address}")
            _note(f"verifier: {count} worker processes")
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
            _note("verifier stopped")
