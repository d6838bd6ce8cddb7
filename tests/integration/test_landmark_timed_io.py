"""The landmark's timed receive and send in C against the Python reference path, side by
side on real loopback sockets: the same data and sources, kernel stamps on both, readings in
order, transmit stamps matched to their own send, and the same errors.

Elsewhere these tests skip where the extension did not build; in CI (``GEOATTEST_CI``,
``.ci/run``) a missing extension fails them.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
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
