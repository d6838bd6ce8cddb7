"""The landmark's timed receive and send in C against the Python reference path, side by
side on real loopback sockets: the same data and sources, kernel stamps on both, readings in
order, transmit stamps matched to their own send, and the same errors.

Elsewhere these tests skip where the extension did not build; in CI (``GEOATTEST_CI``,
``.ci/run``) a missing extension fails them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer
from geoattest.verifier.landmark import server as landmark_server
from geoattest.verifier.landmark.clock import (
    ANCILLARY_BYTES,
    SO_TIMESTAMPNS,
    TRANSMIT_STAMP_REQUEST,
    Bracket,
    kernel_stamp,
    read_bracket,
)
from geoattest.verifier.landmark.dispatch import Outgoing
from geoattest.verifier.landmark.server import RECEIVE_BYTES

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux socket timestamps")

IDENTITY = LandmarkIdentity("lm-io", 0.0, 0.0)
PATIENCE_NS = 30_000_000_000
"""How long a poll here may wait for a datagram already sent (it comes at once)."""


def require_native() -> None:
    """Skip without the built extension, except in CI, where it must have built."""
    if not landmark_server.NATIVE_IO:
        if os.environ.get("GEOATTEST_CI"):
            pytest.fail("the landmark's native timed I/O did not build in CI")
        pytest.skip("the landmark's native timed I/O is not built here")


@pytest.fixture(autouse=True)
def native() -> None:
    require_native()


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


FAMILIES = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param(
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback"),
    ),
]


@pytest.fixture(scope="module")
def signer() -> KeySigner:
    return KeySigner.generate()


@dataclass
class Landing:
    """A landmark's socket (the server constructed, its thread never started) and a peer's."""

    server: LandmarkServer
    peer: socket.socket

    @property
    def sock(self) -> socket.socket:
        return self.server._sock

    def send_in(self, data: bytes) -> None:
        self.peer.sendto(data, self.server.address)


@pytest.fixture(params=FAMILIES)
def landing(request: pytest.FixtureRequest, signer: KeySigner) -> Iterator[Landing]:
    host: str = request.param
    server = LandmarkServer(IDENTITY, signer, host=host, port=0)
    peer = socket.socket(server._sock.family, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    try:
        yield Landing(server, peer)
    finally:
        peer.close()
        server.stop()


def native_receive(
    fd: int, until_ns: int = 0
) -> tuple[bytes, tuple[object, ...], Bracket, int | None] | None:
    return landmark_server._timed_io.receive(fd, RECEIVE_BYTES, until_ns)


def python_receive(sock: socket.socket) -> tuple[bytes, tuple[object, ...], Bracket, int | None]:
    data, ancillary, _, source = sock.recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES)
    return data, source, read_bracket(), kernel_stamp(ancillary)


def soon() -> int:
    return time.monotonic_ns() + PATIENCE_NS


def test_the_landmark_runs_the_native_path_where_it_built(landing: Landing, signer: KeySigner):
    assert landing.server.landmark_io == "native"
    reference = LandmarkServer(IDENTITY, signer, native=False)
    try:
        assert reference.landmark_io == "python"
    finally:
        reference.stop()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=0, max_size=RECEIVE_BYTES + 64))
def test_datagrams_come_through_both_receive_paths_alike(landing: Landing, data: bytes):
    """Any datagram, up to beyond the longest the protocol allows (cut alike): the same
    bytes and source, a kernel stamp on both, readings in order after the stamp."""
    for until_ns in (0, soon()):
        landing.send_in(data)
        landing.send_in(data)
        got = native_receive(landing.server._fd, until_ns)
        assert got is not None
        reference = python_receive(landing.sock)
        assert got[:2] == reference[:2]
        assert got[0] == data[:RECEIVE_BYTES]
        for _, _, bracket, stamp in (got, reference):
            assert type(bracket) is Bracket
            assert bracket.before <= bracket.after
            assert stamp is not None
            assert stamp <= bracket.realtime


def test_one_peer_s_datagrams_share_one_source_tuple(landing: Landing):
    """A round's answers from one peer: one source object, equal to the socket module's."""
    landing.send_in(b"a")
    landing.send_in(b"b")
    first = native_receive(landing.server._fd)
    second = native_receive(landing.server._fd)
    assert first is not None
    assert second is not None
    assert first[1] is second[1]
    assert first[1] == landing.peer.getsockname()


def test_without_kernel_stamps_both_paths_give_none(landing: Landing):
    landing.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 0)
    landing.send_in(b"x")
    landing.send_in(b"x")
    got = native_receive(landing.server._fd)
    assert got is not None
    assert got[3] is None
    assert python_receive(landing.sock)[3] is None


def test_a_poll_that_finds_nothing_returns_none_at_its_deadline(landing: Landing):
    assert native_receive(landing.server._fd, time.monotonic_ns() + 200_000) is None
    assert native_receive(landing.server._fd, 1) is None  # long past: one read, then none


def test_a_blocking_receive_times_out_as_the_socket_module_s_does(landing: Landing):
    """The server's receive timeout (``SO_RCVTIMEO``): BlockingIOError from both."""
    with pytest.raises(BlockingIOError) as reference:
        landing.sock.recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES)
    with pytest.raises(BlockingIOError) as native:
        native_receive(landing.server._fd)
    assert native.value.errno == reference.value.errno


def test_a_closed_socket_fails_both_receive_paths_alike(signer: KeySigner):
    server = LandmarkServer(IDENTITY, signer)
    server.stop()
    with pytest.raises(OSError, match="Bad file descriptor") as reference:
        server._sock.recvmsg(RECEIVE_BYTES, ANCILLARY_BYTES)
    with pytest.raises(OSError, match="Bad file descriptor") as native:
        native_receive(server._sock.fileno())
    assert type(native.value) is type(reference.value)
    assert native.value.errno == reference.value.errno == errno.EBADF


@dataclass
class TimerRecorder:
    """Stands in for a round's entry: records each timer start ``_send`` makes."""

    starts: list[tuple[Bracket, int]] = field(default_factory=list)

    def start_timer(self, sent: Bracket, departed_ns: int = 0) -> None:
        self.starts.append((sent, departed_ns))


def timed_send(server: LandmarkServer, datagram: bytes, peer: tuple[object, ...]) -> TimerRecorder:
    recorder = TimerRecorder()
    server._send(Outgoing(datagram, peer, recorder))  # type: ignore[arg-type]
    return recorder


@pytest.fixture(params=FAMILIES)
def pair(request: pytest.FixtureRequest, signer: KeySigner) -> Iterator[dict[str, Landing]]:
    """The same landing twice, once per path."""
    host: str = request.param
    landings = {}
    for path, native in (("native", True), ("python", False)):
        server = LandmarkServer(IDENTITY, signer, host=host, port=0, native=native)
        peer = socket.socket(server._sock.family, socket.SOCK_DGRAM)
        peer.bind((host, 0))
        landings[path] = Landing(server, peer)
    yield landings
    for landing in landings.values():
        landing.peer.close()
        landing.server.stop()


def queue_stamped_sends(landing: Landing, count: int) -> None:
    """Sends whose transmit stamps are left queued (read back late, as a slow landmark's);
    on loopback the kernel queues each stamp before its send returns."""
    for _ in range(count):
        landing.sock.sendmsg([b"early"], TRANSMIT_STAMP_REQUEST, 0, landing.peer.getsockname())
        assert landing.peer.recv(64) == b"early"


@pytest.mark.parametrize(
    ("queued", "key_offset", "stamped"),
    [
        (0, 0, True),  # the send's own stamp, nothing before it
        (3, 0, True),  # three earlier stamps queued: dropped, this send's read
        (3, 2, False),  # key ahead of the queue: the queue read empty, no stamp
        # key behind the queue: an earlier send's stamp is found under it, and the conversion
        # refuses it (it left before this send's reading)
        (3, -1, False),
    ],
)
def test_a_challenge_s_send_reads_its_own_transmit_stamp_as_the_reference_does(
    pair: dict[str, Landing], queued: int, key_offset: int, stamped: bool
):
    """Both paths, the same queue: the same next key, a stamp (a departure after the
    reading before the send) exactly where the reference finds one, else none (0)."""
    for landing in pair.values():
        assert landing.server.transmit_timestamps
        queue_stamped_sends(landing, queued)
        # The kernel's key for the send below is ``queued``; the server expects another.
        landing.server._stamped_sends = queued + key_offset
    starts = {}
    for path, landing in pair.items():
        recorder = timed_send(landing.server, b"challenge", landing.peer.getsockname())
        [(sent, departed_ns)] = recorder.starts
        starts[path] = departed_ns
        assert landing.peer.recv(64) == b"challenge"
        assert landing.server.counters().send_errors == 0
        if departed_ns:
            assert sent.after < departed_ns <= time.monotonic_ns()
    assert pair["native"].server._stamped_sends == pair["python"].server._stamped_sends
    assert bool(starts["native"]) == bool(starts["python"]) == stamped
    for landing in pair.values():
        assert landing.server.counters().challenges_transmit_stamped == int(stamped)


def test_without_transmit_stamps_a_send_starts_its_timer_at_the_reading_before(
    pair: dict[str, Landing],
):
    for landing in pair.values():
        landing.server.transmit_timestamps = False
        recorder = timed_send(landing.server, b"challenge", landing.peer.getsockname())
        [(sent, departed_ns)] = recorder.starts
        assert departed_ns == 0
        assert sent.before <= sent.after
        assert landing.peer.recv(64) == b"challenge"
        assert landing.server._stamped_sends == 0


def test_a_failed_send_is_counted_and_times_from_the_reading_before(pair: dict[str, Landing]):
    """A datagram too long to send: the socket module's error on the reference path, the
    same errno from the native call; on both the send is counted as failed."""
    too_long = b"x" * 70_000
    for landing in pair.values():
        destination = landing.peer.getsockname()
        with pytest.raises(OSError, match="too long") as reference:
            landing.sock.sendmsg([too_long], TRANSMIT_STAMP_REQUEST, 0, destination)
        sent, error, key, stamp, after = landmark_server._timed_io.send_timed(
            landing.server._fd, landing.sock.family, too_long, destination, 5, True
        )
        assert error == reference.value.errno == errno.EMSGSIZE
        assert (key, stamp, after) == (5, 0, None)
        assert sent.before <= sent.after
        recorder = timed_send(landing.server, too_long, destination)
        [(_, departed_ns)] = recorder.starts
        assert departed_ns == 0
        assert landing.server.counters().send_errors == 1


def test_a_peer_the_socket_module_refuses_is_refused_alike(landing: Landing):
    family = landing.sock.family
    for peer in [("127.0.0.1",), ("::1", 70_000), "not a tuple", ("::1", -1)]:
        with pytest.raises(Exception) as reference:  # noqa: PT011 - compared below
            landing.sock.sendto(b"x", peer)
        with pytest.raises(Exception) as native:  # noqa: PT011
            landmark_server._timed_io.send_timed(landing.server._fd, family, b"x", peer, 0, False)
        assert isinstance(native.value, type(reference.value)) or isinstance(
            reference.value, type(native.value)
        ), (peer, native.value, reference.value)


def test_the_extension_compiles_without_warnings(tmp_path):
    """The C as the install builds it, with every warning an error (Linux's C compiler)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        if os.environ.get("GEOATTEST_CI"):
            pytest.fail("no C compiler in CI")
        pytest.skip("no C compiler")
    source = Path(landmark_server.__file__).with_name("_timed_io.c")
    include = sysconfig.get_paths()["include"]
    result = subprocess.run(
        [compiler, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{include}", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


class Probe:
    """An argument whose conversion runs Python code, and counts each time it ran."""

    def __init__(self) -> None:
        self.ran = 0

    def __index__(self) -> int:
        self.ran += 1
        return 0

    def __bool__(self) -> bool:
        self.ran += 1
        return False


def test_a_refused_argument_ends_the_call_before_the_next_is_converted(landing: Landing):
    """No conversion runs with an exception set (Python code it called would see it): the
    first argument refused raises its TypeError, and the later ones are never read."""
    probe = Probe()
    with pytest.raises(TypeError):
        landmark_server._timed_io.receive("not a descriptor", RECEIVE_BYTES, probe)
    with pytest.raises(TypeError):
        landmark_server._timed_io.send_timed(
            "not a descriptor", probe, b"x", landing.peer.getsockname(), 0, probe
        )
    assert probe.ran == 0


OUT_OF_MEMORY = """
import socket
import _testcapi
from geoattest.verifier.landmark import server
from geoattest.verifier.landmark.clock import enable_transmit_timestamps

timed_io = server._timed_io
family = socket.AF_INET
landmark = socket.socket(family, socket.SOCK_DGRAM)
landmark.bind(("127.0.0.1", 0))
enable_transmit_timestamps(landmark)
peer = socket.socket(family, socket.SOCK_DGRAM)
peer.bind(("127.0.0.1", 0))
destination = peer.getsockname()
failed = 0
for start in range(24):
    peer.sendto(b"", landmark.getsockname())
    for call in (
        lambda: timed_io.receive(landmark.fileno(), 64, 0),
        lambda: timed_io.send_timed(landmark.fileno(), family, b"", destination, 0, True),
    ):
        try:
            _testcapi.set_nomemory(start, start + 1)
            try:
                call()
            finally:
                _testcapi.remove_mem_hooks()
        except MemoryError:
            failed += 1
# Each value below is a fresh allocation of an int's size, from the allocator's free list.
kept = [start * 10**12 + i for i in range(200_000)]
print(failed, len(kept))
"""


def test_a_call_whose_allocations_fail_one_by_one_leaves_the_heap_whole():
    """Each allocation of a receive and of a send failing in turn (CPython's own test
    hooks): MemoryError or the result, and no reference released twice, which the system
    allocator (``PYTHONMALLOC=malloc``) detects as a corrupt free list within the
    allocations that follow."""
    pytest.importorskip("_testcapi")
    result = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONMALLOC": "malloc"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    failed, kept = map(int, result.stdout.split())
    assert failed > 0
    assert kept == 200_000


class InterruptedBySignalError(Exception):
    """What the signal handler of the tests below raises, where it raises."""


def fill(sender: socket.socket) -> None:
    """Send on ``sender`` until its buffer stays full (its peer reads nothing)."""
    sender.setblocking(False)
    while True:
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                sent += sender.send(b"x" * 65536)
        if not sent:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("raising", [True, False], ids=["handler-raises", "handler-returns"])
def test_a_signal_during_a_blocked_send_is_handled_as_the_socket_module_handles_it(
    raising: bool,
):
    """PEP 475: a send blocked when a signal comes runs the signal's handler then; the
    handler's exception ends the call, and a send whose handler returned goes on. A UDP send
    over loopback hardly blocks; one on a TCP socket whose peer reads nothing does (TCP
    ignores the address), and a retry without the handler blocks again, as more is sent
    than the buffer holds."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.connect(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    fill(sender)
    sender.setblocking(True)
    receiver.setblocking(False)
    handled, returned = threading.Event(), threading.Event()
    handled_while_blocked = []

    def handler(signum: int, frame: object) -> None:
        handled.set()
        if raising:
            raise InterruptedBySignalError

    def interrupt_then_drain(main: int) -> None:
        time.sleep(0.2)  # for the main thread to block in its send
        signal.pthread_kill(main, signal.SIGUSR1)
        handled_while_blocked.append(handled.wait(PATIENCE_NS / 1e9))
        while not returned.is_set():
            try:
                receiver.recv(1 << 20)
            except BlockingIOError:
                time.sleep(0.001)

    previous = signal.signal(signal.SIGUSR1, handler)
    thread = threading.Thread(target=interrupt_then_drain, args=(threading.get_ident(),))
    thread.start()
    outcome: object = None
    try:
        try:
            outcome = landmark_server._timed_io.send_timed(
                sender.fileno(), socket.AF_INET, b"y" * 65536, ("127.0.0.1", 9), 0, False
            )[1]
        except InterruptedBySignalError:
            outcome = InterruptedBySignalError
    finally:
        returned.set()
        thread.join()
        signal.signal(signal.SIGUSR1, previous)
        sender.close()
        receiver.close()
    assert handled_while_blocked == [True]  # the handler ran while the send was blocked
    # the handler's exception, or the send's errno
    assert outcome == (InterruptedBySignalError if raising else 0)
