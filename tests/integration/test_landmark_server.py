"""The landmark's UDP server on a real loopback socket: honest rounds, bad rounds, garbage.

Every wait here is for something to happen (a counter to move), never a time limit on
how fast it happens.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geoattest.attacks.junk import flood
from geoattest.attestor.rounds import LandmarkEndpoint, RoundSettings, run_round
from geoattest.crypto import KeySigner
from geoattest.errors import PlaintextNotLoopbackError, RoundError, WireError
from geoattest.pki.tls import OperatorCA, Role, TlsIdentity
from geoattest.protocol.round import AgentRound, AgentRoundState, RoundSecrets, decode_datagram
from geoattest.v1 import landmark_service_pb2, landmark_service_pb2_grpc, round_pb2
from geoattest.verifier.landmark import Counters, LandmarkIdentity, LandmarkServer, Limits
from geoattest.verifier.landmark import server as landmark_server
from geoattest.verifier.landmark.service import start_info_service
from geoattest.wire.client import tls_credentials
from geoattest.wire.envelope import PayloadType, open_envelope

IDENTITY = LandmarkIdentity("lm-1", 50.11, 8.68)
PATIENCE_S = 30.0
"""How long to wait for the server to get to a datagram before calling it stuck."""


def wait_for(condition: Callable[[], bool]) -> None:
    give_up = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < give_up, "the landmark never got there"
        time.sleep(0.001)


@pytest.fixture(scope="module")
def keys() -> tuple[KeySigner, KeySigner]:
    return KeySigner.generate(), KeySigner.generate()


@pytest.fixture(scope="module", params=[True, False], ids=["native-io", "python-io"])
def server(request, keys) -> Iterator[LandmarkServer]:
    """A landmark timing with the native receive and send where they built, and one with
    the Python reference path: every test of it runs on both."""
    limits = Limits(rate_per_s=1e6, burst=1e6)
    with LandmarkServer(IDENTITY, keys[1], limits=limits, native=request.param) as s:
        yield s


@pytest.fixture(scope="module")
def secrets() -> RoundSecrets:
    return RoundSecrets(os.urandom)


@pytest.fixture
def raw() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(PATIENCE_S)
    yield sock
    sock.close()


def endpoint(server: LandmarkServer, key: KeySigner) -> LandmarkEndpoint:
    host, port = server.address[:2]
    return LandmarkEndpoint(IDENTITY.landmark_id, host, port, key.verifying_key)


def honest_round(server, keys, secrets, exchanges: int = 8) -> round_pb2.TimingReceipt:
    envelope = run_round(
        endpoint(server, keys[1]), "dev-1", keys[0], secrets, RoundSettings(exchanges=exchanges)
    )
    payload = open_envelope(envelope, PayloadType.TIMING_RECEIPT, keys[1].verifying_key)
    return round_pb2.TimingReceipt.FromString(payload)


def settled(server: LandmarkServer, received: int) -> Counters:
    wait_for(lambda: server.counters().datagrams_received >= received)
    return server.counters()


def test_an_honest_round_yields_a_receipt_that_verifies_with_the_landmark_key(
    server, keys, secrets
):
    before = server.counters()
    receipt = honest_round(server, keys, secrets, exchanges=8)
    assert (receipt.landmark_id, receipt.device_id, receipt.exchanges) == ("lm-1", "dev-1", 8)
    assert receipt.rtt_min_ns > 0
    after = server.counters()
    assert after.receipts_signed == before.receipts_signed + 1
    assert after.exchanges_timed == before.exchanges_timed + 8
    if server.kernel_timestamps:
        assert after.exchanges_kernel_timed == before.exchanges_kernel_timed + 8
    if server.transmit_timestamps:
        assert after.challenges_transmit_stamped == before.challenges_transmit_stamped + 8


WITHOUT_EXTENSION = """
import sys
sys.modules["geoattest.verifier.landmark._timed_io"] = None  # its import fails
from geoattest.crypto import KeySigner
from geoattest.verifier.landmark import server
landmark = server.LandmarkServer(server.LandmarkIdentity("lm", 0.0, 0.0), KeySigner.generate())
print(server.NATIVE_IO, landmark.landmark_io)
landmark.stop()
"""


def test_where_the_extension_is_missing_the_landmark_runs_the_python_path():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTENSION], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "python"]


@pytest.mark.parametrize("native", [True, False], ids=["native-io", "python-io"])
def test_a_landmark_that_polls_for_answers_times_rounds_as_one_that_blocks(
    keys, secrets, monkeypatch, native
):
    """With ``spin_s`` (and a host that lets it spin) the landmark polls for each answer
    after every challenge but a round's first; the round is served and timed as ever."""
    polled: list[bool] = []
    poll = LandmarkServer._poll

    def counted(self: LandmarkServer, until_ns: int) -> object:
        got = poll(self, until_ns)
        polled.append(got is not None)
        return got

    monkeypatch.setattr(LandmarkServer, "_poll", counted)
    monkeypatch.setattr(landmark_server, "spin_permitted", lambda realtime_held: True)
    limits = Limits(rate_per_s=1e6, burst=1e6)
    with LandmarkServer(IDENTITY, keys[1], limits=limits, spin_s=1.0, native=native) as spinning:
        receipt = honest_round(spinning, keys, secrets, exchanges=8)
        counters = spinning.counters()
        landmark_io = spinning.landmark_io
    assert (receipt.exchanges, counters.exchanges_timed, counters.receipts_signed) == (8, 8, 1)
    assert receipt.rtt_min_ns > 0
    # each answer read by a poll, within the second it may take (the reference path's
    # polls seen one by one, the native path's in its count)
    assert polled == ([] if landmark_io == "native" else [True] * 7)
    assert counters.datagrams_polled == 7


def test_the_landmark_asks_for_transmit_stamps_where_linux_offers_them(server):
    assert server.transmit_timestamps is (sys.platform == "linux")


def test_an_answer_held_back_is_timed_with_all_of_its_delay(server, keys, raw):
    """The transmit stamp moves a timer's start to the challenge's departure and no
    further: every exchange of an agent that sits on each challenge for 3 ms measures at
    least 3 ms."""
    timed: list[int] = []
    finished = threading.Event()

    def record(landmark_round) -> None:
        timed.extend(e.rtt_ns for e in landmark_round.timed)
        finished.set()

    with LandmarkServer(IDENTITY, keys[1], on_finished=record) as held:
        agent = AgentRound(
            "dev-1", "lm-1", keys[1].verifying_key, keys[0], secret=os.urandom(32), exchanges=4
        )

        def hold(reply: bytes) -> bytes:
            if decode_datagram(reply).WhichOneof("kind") == "response":
                time.sleep(0.003)
            return reply

        exchange_by_hand(raw, held, agent, hold)
        assert finished.wait(PATIENCE_S)
    assert len(timed) == 4
    assert min(timed) >= 3_000_000


def exchange_by_hand(
    raw: socket.socket, server: LandmarkServer, agent: AgentRound, tamper: Callable[[bytes], bytes]
) -> bytes:
    """Answer every challenge through ``tamper``; return what the landmark sent last."""
    raw.sendto(agent.open(), server.address)
    while True:
        data, _ = raw.recvfrom(4096)
        reply = agent.receive(data)
        if reply is None:
            return data
        reply = tamper(reply)
        raw.sendto(reply, server.address)
        if decode_datagram(reply).WhichOneof("kind") == "close":
            data, _ = raw.recvfrom(4096)
            return data


def wrong_answer(datagram: bytes) -> bytes:
    message = decode_datagram(datagram)
    if message.WhichOneof("kind") == "response" and message.response.index == 1:
        message.response.answer = bytes(32)
    return message.SerializeToString()


def wrong_secret(datagram: bytes) -> bytes:
    message = decode_datagram(datagram)
    if message.WhichOneof("kind") == "close":
        message.close.secret = os.urandom(32)
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [(wrong_answer, "round.bad_response"), (wrong_secret, "round.bad_commit")],
    ids=["wrong-answer", "wrong-commit"],
)
def test_a_round_whose_answers_or_commit_do_not_check_gets_no_receipt(
    server, keys, raw, tamper, reason
):
    before = server.counters()
    agent = AgentRound(
        "dev-1", "lm-1", keys[1].verifying_key, keys[0], secret=os.urandom(32), exchanges=3
    )
    last = decode_datagram(exchange_by_hand(raw, server, agent, tamper))
    assert last.WhichOneof("kind") == "abort"
    assert last.abort.reason == reason
    after = server.counters()
    assert after.receipts_signed == before.receipts_signed
    assert after.rounds_failed == before.rounds_failed + 1


def is_valid_open(data: bytes) -> bool:
    try:
        message = decode_datagram(data)
    except WireError:
        return False
    return message.WhichOneof("kind") == "open"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=3000))
def test_garbage_leaves_the_landmark_healthy_and_its_rounds_untouched(server, raw, data):
    assume(not is_valid_open(data))
    before = server.counters()

    def refused(counters: Counters) -> int:
        return (counters.datagrams_malformed - before.datagrams_malformed) + (
            counters.datagrams_rejected - before.datagrams_rejected
        )

    raw.sendto(data, server.address)
    # the server counts a datagram as received before it decodes it: wait for the verdict
    wait_for(lambda: refused(server.counters()) >= 1)
    after = settled(server, before.datagrams_received + 1)
    assert refused(after) == 1
    assert (after.rounds_opened, after.receipts_signed, after.internal_errors) == (
        before.rounds_opened,
        before.receipts_signed,
        0,
    )


@pytest.mark.parametrize("size", [2049, 4096, 65_000])
def test_oversized_datagrams_are_counted_and_dropped(server, raw, size):
    before = server.counters()
    raw.sendto(os.urandom(size), server.address)
    after = settled(server, before.datagrams_received + 1)
    assert after.datagrams_malformed == before.datagrams_malformed + 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255), which=st.integers(0, 2))
def test_a_datagram_mutated_in_flight_never_earns_a_receipt_for_a_changed_round(
    server, keys, raw, position, flip, which
):
    """One of the agent's datagrams (response 0, response 1 or Close) has one byte flipped
    in flight. Whatever the landmark makes of it, any receipt it sends must be one the
    agent accepts: for this round, these challenges, this commit."""
    agent = AgentRound(
        "dev-1", "lm-1", keys[1].verifying_key, keys[0], secret=os.urandom(32), exchanges=2
    )
    raw.settimeout(0.3)  # only how long to listen; a slow landmark just ends the example
    raw.sendto(agent.open(), server.address)
    replies = 0
    while True:
        try:
            data, _ = raw.recvfrom(4096)
        except TimeoutError:
            break
        kind = decode_datagram(data).WhichOneof("kind")
        try:
            reply = agent.receive(data)
        except (RoundError, WireError) as exc:
            assert kind != "receipt", f"a receipt the agent refuses: {exc}"
            break
        if reply is None:
            break
        if kind != "retry":  # the Open with its cookie goes as it is
            if replies == which:
                mutated = bytearray(reply)
                mutated[position % len(mutated)] ^= flip
                reply = bytes(mutated)
            replies += 1
        raw.sendto(reply, server.address)
    assert server.counters().internal_errors == 0


def test_the_landmark_still_serves_honest_rounds_after_all_that(server, keys, secrets):
    receipt = honest_round(server, keys, secrets, exchanges=4)
    assert receipt.exchanges == 4
    assert server.counters().internal_errors == 0


def test_a_source_opening_rounds_too_fast_is_rate_limited(keys, raw):
    """Only Opens that carry a valid cookie (a sender that receives at its address) spend
    the source's rate; junk spends nothing and is counted malformed."""
    limits = Limits(rate_per_s=1e-6, burst=5)
    with LandmarkServer(IDENTITY, keys[1], limits=limits) as flooded:
        for _ in range(20):
            raw.sendto(b"\x00flood", flooded.address)
        agent = AgentRound(
            "dev-1", "lm-1", keys[1].verifying_key, keys[0], secret=os.urandom(32), exchanges=1
        )
        raw.sendto(agent.open(), flooded.address)
        with_cookie = agent.receive(raw.recvfrom(4096)[0])
        assert with_cookie is not None
        for _ in range(8):
            raw.sendto(with_cookie, flooded.address)
        counters = settled(flooded, 29)
    assert counters.datagrams_malformed == 20
    assert (counters.opens_retried, counters.rounds_opened) == (1, 5)
    assert counters.datagrams_rate_limited == 3


def test_stop_ends_the_thread_and_frees_the_port(keys):
    server = LandmarkServer(IDENTITY, keys[1])
    server.start()
    port = server.address[1]
    server.stop()
    with LandmarkServer(IDENTITY, keys[1], port=port) as again:
        assert again.address[1] == port


def test_grpc_info_and_counters_describe_the_landmark(server, keys, secrets):
    honest_round(server, keys, secrets, exchanges=2)
    info = start_info_service(server, "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{info.port}") as channel:
            stub = landmark_service_pb2_grpc.LandmarkServiceStub(channel)
            described = stub.GetInfo(landmark_service_pb2.GetInfoRequest(), timeout=PATIENCE_S)
            counted = stub.GetCounters(
                landmark_service_pb2.GetCountersRequest(), timeout=PATIENCE_S
            )
    finally:
        info.server.stop(None)
    assert (described.landmark_id, described.latitude, described.longitude) == (
        "lm-1",
        50.11,
        8.68,
    )
    assert described.public_key_der == keys[1].verifying_key.der()
    now = server.counters()
    assert counted.receipts_signed == now.receipts_signed >= 1
    assert counted.datagrams_malformed == now.datagrams_malformed


@pytest.fixture
def info_port(server) -> Iterator[int]:
    info = start_info_service(server, "127.0.0.1", 0)
    yield info.port
    info.server.stop(None)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GetInfo", "GetCounters"]),
    junk=st.one_of(st.binary(min_size=1, max_size=64), st.binary(min_size=1025, max_size=4096)),
)
def test_a_request_that_is_not_one_is_malformed_not_internal(info_port, method, junk):
    """Whatever bytes reach the management service, the answer is the request's decoding
    as a stable reason (INVALID_ARGUMENT, ``wire.malformed_message`` or
    ``wire.oversized_message``), or the method's answer where the bytes happen to parse:
    never INTERNAL."""
    with grpc.insecure_channel(f"127.0.0.1:{info_port}") as channel:
        call = channel.unary_unary(f"/geoattest.v1.LandmarkService/{method}")
        try:
            call(junk, timeout=PATIENCE_S)
        except grpc.RpcError as refused:
            assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT, refused.details()
            reason = dict(refused.trailing_metadata())["geoattest-reason"]
            assert reason in {"wire.malformed_message", "wire.oversized_message"}
            assert refused.details().startswith(reason)


def test_a_flood_from_the_chip_s_own_socket_does_not_starve_its_honest_round(keys, raw):
    """A thread floods the landmark with junk through the very socket the honest round
    uses (same address, same port) for the whole round, at a rate the landmark can read;
    the landmark allows that address one round at a time and one Open's worth of rate.
    The round completes."""
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # the flood's Retries
    limits = Limits(
        max_rounds_per_source=1, rate_per_s=1e-6, burst=1, challenge_timeout_ns=5 * 10**9
    )
    agent = AgentRound(
        "dev-1", "lm-1", keys[1].verifying_key, keys[0], secret=os.urandom(32), exchanges=8
    )
    stop = threading.Event()
    with LandmarkServer(IDENTITY, keys[1], limits=limits) as landmark:
        flooding = threading.Thread(
            target=flood,
            args=(raw, landmark.address, stop),
            kwargs={"replayed": [agent.open()], "burst": 8, "pause_s": 0.002},
        )
        flooding.start()
        try:
            wait_for(lambda: landmark.counters().datagrams_received > 500)
            drive_by_hand(raw, landmark, agent)
        finally:
            stop.set()
            flooding.join()
        counters = landmark.counters()
    assert (counters.rounds_opened, counters.receipts_signed, counters.rounds_failed) == (1, 1, 0)
    refused = counters.datagrams_malformed + counters.datagrams_rejected + counters.opens_retried
    assert refused > 500
    assert counters.internal_errors == 0


def drive_by_hand(raw: socket.socket, landmark: LandmarkServer, agent: AgentRound) -> None:
    """The agent's side of a round on ``raw``, re-sending its Open or Close after a
    quarter second without progress (as the real agent does); whatever the agent refuses
    is ignored."""
    raw.settimeout(0.05)
    last = agent.open()
    raw.sendto(last, landmark.address)
    sent_at, give_up = time.monotonic(), time.monotonic() + PATIENCE_S
    while agent.state is not AgentRoundState.DONE:
        assert agent.state is not AgentRoundState.FAILED, agent.failure
        assert time.monotonic() < give_up, f"the round got stuck in {agent.state}"
        try:
            data, _ = raw.recvfrom(4096)
            reply = agent.receive(data)
        except (TimeoutError, RoundError, WireError):
            reply = None
        if reply is not None:
            last, sent_at = reply, time.monotonic()
            raw.sendto(reply, landmark.address)
        elif time.monotonic() - sent_at > 0.25 and agent.state in (
            AgentRoundState.OPENED,
            AgentRoundState.REVEALED,
        ):
            sent_at = time.monotonic()
            raw.sendto(last, landmark.address)


def test_grpc_info_over_mutual_tls_and_plaintext_only_on_loopback(server):
    now = dt.datetime.now(dt.UTC)
    ca = OperatorCA.create("Landmark Operator", now)
    served = TlsIdentity.of(
        *ca.issue(Role.SERVER, "lm-1", now, hosts=["127.0.0.1"]), ca.certificate
    )
    caller = TlsIdentity.of(*ca.issue(Role.OPERATOR, "noc", now), ca.certificate)
    info = start_info_service(server, "127.0.0.1", 0, served)
    try:
        with grpc.secure_channel(f"127.0.0.1:{info.port}", tls_credentials(caller)) as channel:
            stub = landmark_service_pb2_grpc.LandmarkServiceStub(channel)
            described = stub.GetInfo(landmark_service_pb2.GetInfoRequest(), timeout=PATIENCE_S)
        assert described.landmark_id == "lm-1"
        anonymous = grpc.ssl_channel_credentials(served.ca_pem)
        with grpc.secure_channel(f"127.0.0.1:{info.port}", anonymous) as channel:
            stub = landmark_service_pb2_grpc.LandmarkServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetInfo(landmark_service_pb2.GetInfoRequest(), timeout=PATIENCE_S)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        info.server.stop(None)
    with pytest.raises(PlaintextNotLoopbackError):
        start_info_service(server, "0.0.0.0", 0)
