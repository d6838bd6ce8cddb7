"""The agent's round driver against real landmark servers on loopback: k landmarks,
loss, an unreachable landmark, a landmark key that does not match."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from geoattest import priorities
from geoattest.attestor.agent import Attester
from geoattest.attestor.licence import AgentLicence
from geoattest.attestor.outbox import Outbox
from geoattest.attestor.rounds import (
    LandmarkEndpoint,
    LandmarkSockets,
    PathFloors,
    RoundFailedError,
    RoundSettings,
    round_runner,
    run_round,
    run_rounds,
)
from geoattest.crypto import KeySigner
from geoattest.errors import Reason
from geoattest.pki import ResultKey
from geoattest.protocol.round import (
    AgentRound,
    AgentRoundState,
    LandmarkRound,
    RoundSecrets,
    decode_datagram,
)
from geoattest.v1 import round_pb2
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer, Limits
from geoattest.wire import rounds as rounds_module
from geoattest.wire.envelope import PayloadType, open_envelope
from geoattest.wire.rounds import (
    CAN_SPIN,
    SPIN_TURNAROUNDS,
    _LoadAverage,
    poll,
    realtime,
    restore_scheduling,
    spare_core,
    spin_permitted,
    spin_window_s,
    spins,
)

FAST_LOSS = Limits(challenge_timeout_ns=30_000_000)
"""Replace a lost challenge after 30 ms so that loss tests finish quickly."""


@pytest.fixture(scope="module")
def device() -> KeySigner:
    return KeySigner.generate()


@pytest.fixture
def secrets() -> RoundSecrets:
    return RoundSecrets(os.urandom)


@contextmanager
def landmarks(k: int, limits: Limits = FAST_LOSS) -> Iterator[list[LandmarkServer]]:
    servers = [
        LandmarkServer(
            LandmarkIdentity(f"lm-{i}", 10.0 * i, 5.0), KeySigner.generate(), limits=limits
        )
        for i in range(k)
    ]
    for s in servers:
        s.start()
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def endpoint_of(server: LandmarkServer, port: int | None = None) -> LandmarkEndpoint:
    host, bound = server.address[:2]
    return LandmarkEndpoint(
        server.identity.landmark_id, host, port or bound, server.signer.verifying_key
    )


def receipt_of(envelope, server: LandmarkServer) -> round_pb2.TimingReceipt:
    payload = open_envelope(envelope, PayloadType.TIMING_RECEIPT, server.signer.verifying_key)
    return round_pb2.TimingReceipt.FromString(payload)


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
def test_rounds_with_three_landmarks_each_give_a_receipt_from_that_landmark(
    device, secrets, concurrent
):
    with landmarks(3) as servers:
        outcomes = run_rounds(
            [endpoint_of(s) for s in servers],
            "dev-1",
            device,
            secrets,
            RoundSettings(exchanges=4),
            concurrent=concurrent,
        )
    assert [o.landmark_id for o in outcomes] == ["lm-0", "lm-1", "lm-2"]
    for outcome, server in zip(outcomes, servers, strict=True):
        assert outcome.failure is None
        receipt = receipt_of(outcome.receipt, server)
        assert (receipt.landmark_id, receipt.device_id, receipt.exchanges) == (
            server.identity.landmark_id,
            "dev-1",
            4,
        )


DropRule = Callable[[str, int, bytes], bool]
"""(direction 'up' or 'down', index of the datagram in that direction, bytes) -> drop?"""


@contextmanager
def lossy_link(target: tuple[str, int], drop: DropRule) -> Iterator[tuple[str, int]]:
    """A UDP shim in front of ``target`` that drops the datagrams ``drop`` picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.02)
    stop = threading.Event()
    counts = {"up": 0, "down": 0}

    def relay() -> None:
        agent: tuple[str, int] | None = None
        while not stop.is_set():
            try:
                data, sender = sock.recvfrom(4096)
            except TimeoutError:
                continue
            direction = "down" if sender == target else "up"
            if direction == "up":
                agent = sender
            index = counts[direction]
            counts[direction] += 1
            if drop(direction, index, data):
                continue
            destination = target if direction == "up" else agent
            if destination is not None:
                sock.sendto(data, destination)

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join()
        sock.close()


def kind(data: bytes) -> str:
    return decode_datagram(data).WhichOneof("kind") or ""


def dropping_first(*kinds: tuple[str, str]) -> DropRule:
    """Drop the first datagram of each (direction, kind)."""
    pending = set(kinds)

    def drop(direction: str, _index: int, data: bytes) -> bool:
        key = (direction, kind(data))
        if key in pending:
            pending.discard(key)
            return True
        return False

    return drop


@pytest.mark.parametrize(
    "lost",
    [
        [("up", "open")],
        [("down", "challenge")],
        [("up", "response")],
        [("down", "complete")],
        [("up", "close")],
        [("down", "receipt")],
        [("up", "open"), ("down", "challenge"), ("up", "close"), ("down", "receipt")],
    ],
    ids=lambda lost: "+".join(f"{d}-{k}" for d, k in lost),
)
def test_lost_datagrams_are_recovered_and_the_receipt_still_verifies(device, secrets, lost):
    with landmarks(1) as (server,), lossy_link(server.address, dropping_first(*lost)) as shim:
        envelope = run_round(
            endpoint_of(server, port=shim[1]),
            "dev-1",
            device,
            secrets,
            RoundSettings(exchanges=4, resend_s=0.03, deadline_s=30.0),
        )
        counters = server.counters()
    assert receipt_of(envelope, server).exchanges == 4
    assert counters.receipts_signed == 1


def test_a_landmark_nobody_listens_at_is_unreachable(device, secrets):
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    endpoint = LandmarkEndpoint("lm-dead", "127.0.0.1", port, device.verifying_key)
    with pytest.raises(RoundFailedError) as caught:
        run_round(endpoint, "dev-1", device, secrets, RoundSettings(deadline_s=0.3, resend_s=0.05))
    assert caught.value.reason is Reason.UNREACHABLE
    assert caught.value.landmark_id == "lm-dead"


def test_an_unresolvable_landmark_host_is_unreachable(device, secrets):
    endpoint = LandmarkEndpoint("lm-x", "no-such-host.invalid", 1, device.verifying_key)
    with pytest.raises(RoundFailedError) as caught:
        run_round(endpoint, "dev-1", device, secrets)
    assert caught.value.reason is Reason.UNREACHABLE


def test_a_receipt_signed_by_another_key_is_refused_and_the_round_fails(device, secrets):
    with landmarks(1) as (server,):
        host, port = server.address[:2]
        wrong = LandmarkEndpoint("lm-0", host, port, KeySigner.generate().verifying_key)
        with pytest.raises(RoundFailedError) as caught:
            run_round(wrong, "dev-1", device, secrets, RoundSettings(deadline_s=0.5))
    assert caught.value.reason is Reason.ROUND_TIMEOUT
    assert Reason.BAD_RECEIPT_SIGNATURE.value in caught.value.detail


def test_the_attester_runs_its_cycle_over_real_sockets(device, secrets, tmp_path):
    with landmarks(2) as servers:
        runner = round_runner(
            [endpoint_of(s) for s in servers], "dev-1", device, secrets, RoundSettings(exchanges=2)
        )
        assert runner("lm-unknown") is None
        attester = Attester(
            device,
            "dev-1",
            ["lm-0", "lm-1"],
            Outbox(tmp_path, "dev-1"),
            AgentLicence("dev-1", ResultKey.generate().jwks(), grace_s=60, booted_at_s=0),
        )
        assert attester.attest(runner) == 2


@pytest.mark.parametrize(
    ("turnaround_s", "may_spin", "spin_below_s", "expected"),
    [
        (20e-6, True, 0.001, CAN_SPIN),  # a data centre's path where the host lets it spin
        (0.001, True, 0.001, CAN_SPIN),
        (0.005, True, 0.001, False),  # an Internet path: block
        (20e-6, False, 0.001, False),  # a full host at normal priority: block
        (20e-6, True, 0.0, False),  # spinning switched off
        (math.inf, True, 0.001, False),  # nothing heard yet
    ],
)
def test_the_agent_spins_only_on_a_short_path_where_the_host_lets_it(
    turnaround_s, may_spin, spin_below_s, expected
):
    settings = RoundSettings(spin_below_s=spin_below_s)
    assert spins(settings, turnaround_s, may_spin) is expected


def on_cpus(cpus: set[int], check: Callable[[], bool]) -> bool:
    """``check()`` in a thread of its own that may run only on ``cpus`` (Linux sets the
    calling thread's affinity), so this process's other threads keep theirs."""
    answer: list[bool] = []

    def run() -> None:
        os.sched_setaffinity(0, cpus)
        answer.append(check())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return answer[0]


def test_real_time_priority_lets_the_agent_spin_on_a_full_host_with_a_second_cpu():
    """At real-time priority the host's load cannot deschedule the spinning thread, so the
    rule lets it spin whatever the load, but only where a second CPU is left for the rest
    (the landmark answering it among them); at normal priority a single CPU never spins
    (this thread itself is runnable there, so no core is spare)."""
    if not CAN_SPIN:
        pytest.skip("spinning needs Linux")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs a second CPU")
    both, one = set(cpus[:2]), {cpus[0]}
    assert not on_cpus(one, lambda: spin_permitted(realtime_held=True))
    assert not on_cpus(one, lambda: spin_permitted(realtime_held=False))
    with busy_processes(len(cpus)):
        assert not spin_permitted(realtime_held=False)
        assert on_cpus(both, lambda: spin_permitted(realtime_held=True))


def test_at_real_time_priority_with_a_second_cpu_the_load_is_not_read(monkeypatch):
    """Where real-time priority and a second CPU already let the round spin, the host's load
    would not change the answer, so ``/proc/loadavg`` is not read (a read costs the agent
    several microseconds of CPU per round); without either it is."""
    if not CAN_SPIN:
        pytest.skip("spinning needs Linux")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs a second CPU")
    reads: list[bool] = []

    def counted() -> bool:
        reads.append(True)
        return False

    monkeypatch.setattr("geoattest.wire.rounds.spare_core", counted)
    assert on_cpus(set(cpus[:2]), lambda: spin_permitted(realtime_held=True))
    assert reads == []
    assert not on_cpus(set(cpus[:2]), lambda: spin_permitted(realtime_held=False))
    assert not on_cpus({cpus[0]}, lambda: spin_permitted(realtime_held=True))
    assert len(reads) == 2


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that keep a CPU busy each, until the host shows no core spare."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        for _ in range(1000):
            if not spare_core():
                break
            time.sleep(0.01)
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_one_wait_spins_for_a_few_round_trips_and_never_past_spin_s():
    settings = RoundSettings(spin_s=0.0005)
    assert spin_window_s(settings, 20e-6) == pytest.approx(SPIN_TURNAROUNDS * 20e-6)
    assert spin_window_s(settings, 0.001) == 0.0005


def test_the_hosts_runnable_threads_are_reread_each_time():
    """One open file, re-read in place: every read is the kernel's count now, this
    thread included."""
    if not CAN_SPIN:
        pytest.skip("no /proc/loadavg here")
    load = _LoadAverage()
    assert all(load.runnable() >= 1 for _ in range(3))


def test_poll_returns_a_waiting_datagram_and_none_once_its_window_is_over():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("127.0.0.1", 0))
        b.connect(a.getsockname())
        a.connect(b.getsockname())
        clock = time.monotonic
        assert poll(a.recv, clock() + 0.01, clock) is None
        b.send(b"challenge")
        assert poll(a.recv, clock() + 5.0, clock) == b"challenge"


@pytest.mark.parametrize("spin_below_s", [0.0, 1.0], ids=["blocking", "spinning"])
def test_rounds_complete_whether_the_agent_spins_or_blocks(device, secrets, spin_below_s):
    with landmarks(2) as servers:
        outcomes = run_rounds(
            [endpoint_of(s) for s in servers],
            "dev-1",
            device,
            secrets,
            RoundSettings(exchanges=8, spin_below_s=spin_below_s),
            concurrent=True,
        )
    assert all(o.failure is None for o in outcomes)
    for outcome, server in zip(outcomes, servers, strict=True):
        assert receipt_of(outcome.receipt, server).exchanges == 8


def play_landmark(
    sock: socket.socket,
    landmark_id: str,
    key: KeySigner,
    open_datagram: bytes,
    peer: tuple[str, int],
    watch: Callable[[str], None] = lambda _kind: None,
) -> None:
    """Play the landmark's side of a round over ``sock`` from the agent's ``Open`` to the
    receipt, calling ``watch`` with the kind of each datagram the agent sends, as it
    arrives."""
    landmark = LandmarkRound(
        landmark_id,
        key,
        decode_datagram(open_datagram).open,
        round_id=os.urandom(16),
        randomness=os.urandom,
    )
    to_agent: bytes | None = landmark.next_challenge(time.monotonic_ns())
    while to_agent is not None:
        sock.sendto(to_agent, peer)
        data, peer = sock.recvfrom(4096)
        kind = decode_datagram(data).WhichOneof("kind") or ""
        watch(kind)
        to_agent = landmark.receive(data, time.monotonic_ns(), time.time_ns())
        if kind == "close":
            assert to_agent is not None
            sock.sendto(to_agent, peer)  # the receipt
            to_agent = None


def thread_cpu_ns(native_id: int) -> int:
    """CPU time a thread of this process has run (the kernel's schedstat)."""
    return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0])


def test_the_agent_sleeps_through_the_wait_for_its_first_challenge(device, secrets, monkeypatch):
    """The test plays the landmark: a quick Retry (a short path, so the agent spins once it
    answers), then 30 ms before the first challenge. The agent must not spin through that
    wait (eight Retry turnarounds here, milliseconds): the landmark sets up the
    round meanwhile, and that is not worth the agent's CPU. The host is taken to have a
    core to spare, as it would when idle, so that the test does not depend on its load."""
    if not CAN_SPIN or not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc")
    monkeypatch.setattr("geoattest.wire.rounds.spare_core", lambda **_: True)
    landmark_key = KeySigner.generate()
    settings = RoundSettings(exchanges=4, extra_exchanges=0, spin_s=0.02, realtime_priority=0)
    agent_thread: list[int] = []
    outcome: list[object] = []

    def agent(endpoint: LandmarkEndpoint) -> None:
        agent_thread.append(threading.get_native_id())
        outcome.append(run_round(endpoint, "dev-1", device, secrets, settings))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        endpoint = LandmarkEndpoint(
            "lm-first", "127.0.0.1", sock.getsockname()[1], landmark_key.verifying_key
        )
        thread = threading.Thread(target=agent, args=(endpoint,))
        thread.start()
        try:
            _, peer = sock.recvfrom(4096)
            time.sleep(0.0005)  # a short path still, but a spin window of milliseconds
            retry = round_pb2.Datagram(retry=round_pb2.Retry(cookie=b"c" * 20))
            sock.sendto(retry.SerializeToString(), peer)
            data, peer = sock.recvfrom(4096)
            (tid,) = agent_thread
            before = thread_cpu_ns(tid)
            time.sleep(0.03)
            waited_ns = thread_cpu_ns(tid) - before
            play_landmark(sock, "lm-first", landmark_key, data, peer)
        finally:
            thread.join(timeout=10)
    assert outcome, "the round did not finish"
    assert waited_ns < 200_000, f"the agent ran {waited_ns / 1e3:.0f} µs waiting"


@contextmanager
def hand_played_landmark(key: KeySigner) -> Iterator[tuple[socket.socket, LandmarkEndpoint]]:
    """A socket the test answers from by hand, and the endpoint an agent reaches it at."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        yield sock, LandmarkEndpoint("lm-hand", "127.0.0.1", port, key.verifying_key)


def in_thread(run: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """``run`` started in a thread; the list gets its result or its exception."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(run())
        except RoundFailedError as failure:
            outcome.append(failure)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_kept_sockets_carry_the_next_round_and_drop_what_the_last_one_left(device, secrets):
    """Two rounds over one kept socket: the landmark sees one source address, and a stale
    challenge waiting in the socket when the second round starts (from a round the
    landmark replaced) is dropped, not answered in place of the new round's."""
    key = KeySigner.generate()
    sockets = LandmarkSockets()
    settings = RoundSettings(exchanges=2, extra_exchanges=0, deadline_s=2.0)
    peers = []
    with hand_played_landmark(key) as (sock, endpoint):
        for n in range(2):
            thread, outcome = in_thread(
                lambda: run_round(endpoint, "dev-1", device, secrets, settings, sockets=sockets)
            )
            try:
                data, peer = sock.recvfrom(4096)
                peers.append(peer)
                play_landmark(sock, "lm-hand", key, data, peer)
            finally:
                thread.join(timeout=10)
            assert not isinstance(outcome[0], RoundFailedError), outcome
            if n == 0:
                stale = round_pb2.Challenge(round_id=os.urandom(16), index=0, challenge=bytes(16))
                sock.sendto(round_pb2.Datagram(challenge=stale).SerializeToString(), peer)
    sockets.close()
    assert peers[0] == peers[1]


def test_kept_sockets_keep_the_landmarks_cookie_so_later_rounds_open_without_a_retry(
    device, secrets
):
    """Over a kept socket only the first round is answered a Retry; a kept cookie the
    landmark no longer takes gets a Retry again, and the round still gives a receipt."""
    sockets = LandmarkSockets()
    settings = RoundSettings(exchanges=4, extra_exchanges=0)
    with landmarks(1) as (server,):
        endpoint = endpoint_of(server)
        for _ in range(3):
            run_round(endpoint, "dev-1", device, secrets, settings, sockets=sockets)
        assert (server.counters().opens_retried, server.counters().rounds_opened) == (1, 3)
        (kept,) = sockets._idle.values()
        assert kept.cookie
        kept.cookie = bytes(len(kept.cookie))
        envelope = run_round(endpoint, "dev-1", device, secrets, settings, sockets=sockets)
        assert receipt_of(envelope, server).exchanges == 4
        assert (server.counters().opens_retried, server.counters().rounds_opened) == (2, 4)
    sockets.close()


def test_a_failed_round_does_not_keep_its_socket(device, secrets):
    key = KeySigner.generate()
    sockets = LandmarkSockets()
    quick = RoundSettings(exchanges=2, extra_exchanges=0, deadline_s=0.3, resend_s=1.0)
    with hand_played_landmark(key) as (sock, endpoint):
        with pytest.raises(RoundFailedError):
            run_round(endpoint, "dev-1", device, secrets, quick, sockets=sockets)
        _, silent = sock.recvfrom(4096)  # the Open nobody answered
        thread, outcome = in_thread(
            lambda: run_round(endpoint, "dev-1", device, secrets, sockets=sockets)
        )
        try:
            data, peer = sock.recvfrom(4096)
            play_landmark(sock, "lm-hand", key, data, peer)
        finally:
            thread.join(timeout=10)
    sockets.close()
    assert not isinstance(outcome[0], RoundFailedError), outcome
    assert peer != silent


def test_a_round_far_above_its_paths_floor_asks_the_landmark_for_more_exchanges(device, secrets):
    floors = PathFloors()
    settings = RoundSettings(exchanges=4, extra_exchanges=4)
    with landmarks(1) as (server,):
        endpoint = endpoint_of(server)
        first = receipt_of(
            run_round(endpoint, "dev-1", device, secrets, settings, floors=floors), server
        )
        assert first.exchanges == 8  # no floor known yet: every extra exchange
        assert floors.floor_ns("lm-0") == first.rtt_min_ns
        floors.record("lm-0", 1)  # a floor no real exchange comes near
        second = receipt_of(
            run_round(endpoint, "dev-1", device, secrets, settings, floors=floors), server
        )
        generous = PathFloors()
        generous.record("lm-0", 10**12)  # a floor every exchange is under
        third = receipt_of(
            run_round(endpoint, "dev-1", device, secrets, settings, floors=generous), server
        )
    assert second.exchanges == 8
    assert third.exchanges == 4


@pytest.mark.parametrize(
    ("exchanges", "extra", "floor_ns", "spun_after"),
    [
        (8, 0, None, [0, 1]),  # the first few waits, then blocking
        (4, 4, 1, [0, 1, 4, 5, 6, 7]),  # and every wait the landmark extends the round for
    ],
    ids=["base", "extended"],
)
def test_a_round_spins_through_its_first_waits_and_those_it_is_extended_for(
    device, secrets, monkeypatch, exchanges, extra, floor_ns, spun_after
):
    """Over real sockets with a landmark server: after which answers (by challenge index)
    the agent spun. The host is taken to have a core to spare, so that the test does not
    depend on its load."""
    if not CAN_SPIN:
        pytest.skip("spinning needs Linux")
    monkeypatch.setattr("geoattest.wire.rounds.spare_core", lambda: True)
    events: list[int | str] = []
    real_poll, real_receive = rounds_module.poll, AgentRound.receive

    def counted_poll(*args: object) -> bytes | None:
        events.append("spin")
        return real_poll(*args)

    def counted_receive(agent: AgentRound, data: bytes) -> bytes | None:
        reply = real_receive(agent, data)
        if reply is not None and agent.state is AgentRoundState.ANSWERING:
            events.append(agent.highest_index)
        return reply

    monkeypatch.setattr("geoattest.wire.rounds.poll", counted_poll)
    monkeypatch.setattr(AgentRound, "receive", counted_receive)
    settings = RoundSettings(
        exchanges=exchanges,
        extra_exchanges=extra,
        spin_waits=2,
        spin_below_s=1.0,
        realtime_priority=0,
    )
    floors = PathFloors()
    if floor_ns is not None:
        floors.record("lm-0", floor_ns)  # a floor no real exchange comes near
    with landmarks(1) as (server,):
        envelope = run_round(endpoint_of(server), "dev-1", device, secrets, settings, floors=floors)
    assert receipt_of(envelope, server).exchanges == exchanges + extra
    spins = [i for i, event in enumerate(events) if event == "spin"]
    assert [events[i - 1] for i in spins] == spun_after


def test_a_path_floor_is_the_best_of_the_recent_receipts_and_forgets_old_ones():
    floors = PathFloors(remembered=2)
    settings = RoundSettings(far_above=1.5)
    assert floors.extend_above_ns("lm-0", settings) == 1  # no floor yet: run them all
    for rtt_min_ns in (10_000, 40_000, 30_000):
        floors.record("lm-0", rtt_min_ns)
    assert floors.floor_ns("lm-0") == 30_000
    assert floors.extend_above_ns("lm-0", settings) == 45_000
    assert floors.extend_above_ns("lm-0", RoundSettings(extra_exchanges=0)) == 0


def require_realtime() -> None:
    """Skip where this process may not use SCHED_FIFO, except in CI (it runs as root)."""
    permitted = realtime(1)
    if permitted is not None:
        restore_scheduling(permitted)
        return
    if os.environ.get("GEOATTEST_CI"):
        pytest.fail("SCHED_FIFO is refused in CI")
    pytest.skip("this process may not use SCHED_FIFO (CAP_SYS_NICE)")


@pytest.mark.parametrize("spin_below_s", [0.0, 1.0], ids=["blocking", "spinning"])
def test_the_timed_phase_and_only_it_runs_at_real_time_priority(device, secrets, spin_below_s):
    """The test plays the landmark over a real socket and, while the agent waits for each
    challenge, reads the agent thread's scheduling policy."""
    require_realtime()
    landmark_key = KeySigner.generate()
    agent_thread: list[int] = []
    outcome: list[object] = []

    def agent(endpoint: LandmarkEndpoint) -> None:
        agent_thread.append(threading.get_native_id())
        settings = RoundSettings(exchanges=4, extra_exchanges=0, spin_below_s=spin_below_s)
        try:
            outcome.append(run_round(endpoint, "dev-1", device, secrets, settings))
        except RoundFailedError as failure:
            outcome.append(failure)
        outcome.append(os.sched_getscheduler(0))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        endpoint = LandmarkEndpoint("lm-rt", "127.0.0.1", port, landmark_key.verifying_key)
        thread = threading.Thread(target=agent, args=(endpoint,))
        thread.start()
        try:
            data, peer = sock.recvfrom(4096)
            (tid,) = agent_thread
            policies = {"open": os.sched_getscheduler(tid)}

            def watch(kind: str) -> None:
                policies.setdefault(kind, os.sched_getscheduler(tid))
                if kind == "close":
                    policies["close"] = os.sched_getscheduler(tid)

            play_landmark(sock, "lm-rt", landmark_key, data, peer, watch)
        finally:
            thread.join(timeout=10)
    receipt, after = outcome
    assert not isinstance(receipt, RoundFailedError), receipt
    assert policies == {
        "open": os.SCHED_OTHER,
        "response": os.SCHED_FIFO,
        "close": os.SCHED_OTHER,
    }
    assert after == os.SCHED_OTHER


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
def test_rounds_one_after_another_switch_to_real_time_priority_once(
    device, secrets, monkeypatch, concurrent
):
    """Sequential rounds share one :class:`RealtimeSpan`: one switch to ``SCHED_FIFO`` at the
    first timed phase and one back after the last round, every answer sent at it, and the
    thread at its own policy after; concurrent rounds switch each for its own phase."""
    require_realtime()
    switches: list[tuple[int, int]] = []
    answers: list[int] = []
    setscheduler, send_quietly = os.sched_setscheduler, rounds_module._send_quietly

    def switch(pid: int, policy: int, param: os.sched_param) -> None:
        switches.append((threading.get_ident(), policy))
        setscheduler(pid, policy, param)

    def send(send: Callable[[bytes], int], datagram: bytes) -> None:
        if decode_datagram(datagram).WhichOneof("kind") == "response":
            answers.append(os.sched_getscheduler(0))
        send_quietly(send, datagram)

    with landmarks(3) as servers:
        monkeypatch.setattr(os, "sched_setscheduler", switch)
        monkeypatch.setattr(rounds_module, "_send_quietly", send)
        outcomes = run_rounds(
            [endpoint_of(s) for s in servers],
            "dev-1",
            device,
            secrets,
            RoundSettings(exchanges=4, extra_exchanges=0),
            concurrent=concurrent,
        )
        monkeypatch.undo()
    assert [o.failure for o in outcomes] == [None, None, None]
    assert answers == [os.SCHED_FIFO] * 12
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    agent = threading.get_ident()
    if concurrent:
        assert sorted(policy for _, policy in switches) == sorted(
            [os.SCHED_FIFO, os.SCHED_OTHER] * 3
        )
        assert agent not in {thread for thread, _ in switches}
    else:
        assert switches == [(agent, os.SCHED_FIFO), (agent, os.SCHED_OTHER)]


def test_a_real_time_span_switches_once_and_not_back_where_it_was_refused(monkeypatch):
    asked: list[int] = []

    def refused(priority: int) -> None:
        asked.append(priority)

    monkeypatch.setattr(rounds_module, "realtime", refused)
    monkeypatch.setattr(rounds_module, "restore_scheduling", lambda _: pytest.fail("restored"))
    span = rounds_module.RealtimeSpan(10)
    assert (span.hold(), span.hold()) == (False, False)
    span.close()
    assert asked == [10]


def fifo_threads(priority: int) -> int:
    """Threads of this process running at ``SCHED_FIFO`` ``priority`` now."""
    found = 0
    for task in Path("/proc/self/task").iterdir():
        tid = int(task.name)
        try:
            fifo = os.sched_getscheduler(tid) == os.SCHED_FIFO
            found += fifo and os.sched_getparam(tid).sched_priority == priority
        except OSError:  # the thread ended meanwhile
            continue
    return found


def test_the_landmark_serves_its_rounds_at_the_priority_it_is_given(device, secrets):
    """The serving thread takes the landmark's real-time priority for its life, above the
    agent's timed phase, and a round is served and timed as before."""
    require_realtime()
    assert priorities.LANDMARK > priorities.AGENT_TIMED_PHASE
    before = fifo_threads(priorities.LANDMARK)
    with LandmarkServer(
        LandmarkIdentity("lm-rt", 0.0, 0.0),
        KeySigner.generate(),
        realtime_priority=priorities.LANDMARK,
    ) as server:
        host, port = server.address[:2]
        endpoint = LandmarkEndpoint("lm-rt", host, port, server.signer.verifying_key)
        receipt = run_round(endpoint, "dev-1", device, secrets, RoundSettings(exchanges=4))
        assert receipt.key_id == server.signer.verifying_key.key_id
        assert fifo_threads(priorities.LANDMARK) == before + 1
    assert fifo_threads(priorities.LANDMARK) == before


REFUSED_CHILD = """
import logging, os, resource, sys
from geoattest.crypto import KeySigner
from geoattest.protocol.round import RoundSecrets
from geoattest.verifier.landmark import LandmarkIdentity, LandmarkServer
from geoattest.wire.rounds import LandmarkEndpoint, RoundSettings, run_round
resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
with LandmarkServer(LandmarkIdentity("lm-0", 0.0, 0.0), KeySigner.generate()) as server:
    host, port = server.address[:2]
    endpoint = LandmarkEndpoint("lm-0", host, port, server.signer.verifying_key)
    secrets, device = RoundSecrets(os.urandom), KeySigner.generate()
    for _ in range(2):
        run_round(endpoint, "dev-1", device, secrets, RoundSettings(exchanges=4))
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
print("two receipts")
"""


def test_without_the_capability_rounds_run_at_normal_priority_and_say_so_once():
    """A process that may not use SCHED_FIFO (no CAP_SYS_NICE, RLIMIT_RTPRIO 0) still gets
    its receipts; the refusal is one log line, not one per round."""
    drop = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root needs setpriv (util-linux) to drop CAP_SYS_NICE")
        drop = [setpriv, "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]
    result = subprocess.run(
        [*drop, sys.executable, "-c", REFUSED_CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "two receipts"
    refusals = [line for line in result.stderr.splitlines() if "SCHED_FIFO 10 refused" in line]
    assert len(refusals) == 1, result.stderr
