"""Several verifier processes over one database, SQLite or a real PostgreSQL server,
through the real console script: a device's chain advances exactly once however its proofs
are spread over the processes, an alert stream at any process carries every process's
alerts, a licence or a landmark exclusion changed through one process holds for the next
proof at another and for the device's status there, and a process killed mid-batch loses
nothing its clients were told.

Two ``verifier serve`` processes on their own ports (replicas, on PostgreSQL) make "these
two proofs reach different processes" certain; ``serve --workers N`` runs N such processes
on one port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from command import GEOATTEST
from verifier_world import MEASUREMENT, ProvisionedChip, VerifierWorld

from geoattest.errors import Reason
from geoattest.pki import RevocationList
from geoattest.protocol.proof import ChainedProof
from geoattest.v1 import admin_service_pb2, envelope_pb2, evidence_pb2, verifier_service_pb2
from geoattest.verifier.pipeline import AlertKind, PipelineConfig
from geoattest.verifier.store import SqlStore
from geoattest.wire.client import VerifierClient, VerifierRefused

CHIPS = 8
MS = 1_000_000

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> VerifierWorld:
    valid_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat()
    licensed = {f"dev-{i}": "FRA-300" for i in range(CHIPS)}
    return VerifierWorld.create(tmp_path, licensed, valid_until=valid_until)


class Verifier:
    """A ``geoattest verifier serve`` process and the address it printed; with ``host``,
    its registry and revocation list are copies of its own there, as on a host of its own."""

    def __init__(
        self, world: VerifierWorld, database: str, *flags: str, host: Path | None = None
    ) -> None:
        args = world.serve_args()
        args[args.index("--db") + 1] = database
        if host is not None:
            host.mkdir()
            registry = host / "landmarks.json"
            shutil.copy(args[args.index("--landmarks") + 1], registry)
            args[args.index("--landmarks") + 1] = str(registry)
            RevocationList().save(host / "revocations.json")
            args += ["--revocations", str(host / "revocations.json")]
        self.process = subprocess.Popen(
            [GEOATTEST, *args, *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("verifier listening on "), line + self.stop()
        self.target = line.split()[-1]

    def stop(self) -> str:
        """SIGTERM, then its stderr once it exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self) -> str:
        """Its stderr once it exits."""
        _, err = self.process.communicate(timeout=60)
        return err


@pytest.fixture
def start(world: VerifierWorld, database: str) -> Iterator:
    started: list[Verifier] = []

    def start(*flags: str, host: Path | None = None) -> Verifier:
        started.append(Verifier(world, database, *flags, host=host))
        return started[-1]

    yield start
    for verifier in started:
        verifier.process.kill()
        verifier.process.wait()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat.rpartition(")")[2].split()
        if entry.name.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def next_proof(world: VerifierWorld, chip: ProvisionedChip) -> ChainedProof:
    """A fresh proof extending the chip's chain, and the chain it would leave (not taken)."""
    receipts = world.receipts(chip, unix_ns=time.time_ns() - MS)
    return chip.chain.extend(receipts, measurement=MEASUREMENT, signer=chip.signer)


async def enrol(target: str, chips: list[ProvisionedChip]) -> None:
    async with VerifierClient(target) as client:
        for chip in chips:
            await client.enroll(chip.enroll_request())


async def submit(target: str, proof: envelope_pb2.Envelope) -> evidence_pb2.AttestationResult:
    """Over a connection of its own, so that proofs sent together are in flight together."""
    async with VerifierClient(target, timeout_s=60) as client:
        return await client.submit(proof)


async def call_admin(target: str, method: str, request: object) -> None:
    async with VerifierClient(target) as client:
        await client.admin(method, request)


def prove_at(
    world: VerifierWorld, target: str, device: ProvisionedChip
) -> evidence_pb2.AttestationResult | VerifierRefused:
    """``device``'s next proof at ``target``; its chain moves on if the proof was stored."""
    proof, chain = next_proof(world, device)
    try:
        result = asyncio.run(submit(target, proof))
    except VerifierRefused as refused:
        return refused
    device.chain = chain
    return result


def past_the_skew_of_a_lift() -> None:
    """Wait until rounds timed now are past the clock skew of a lift just made: those
    timed within it count as timed before the lift, and are refused."""
    time.sleep(PipelineConfig().clock_skew_ns / 10**9 + 0.1)


def verdict(outcome: evidence_pb2.AttestationResult | VerifierRefused) -> int:
    assert isinstance(outcome, evidence_pb2.AttestationResult), outcome
    return outcome.verdict


def refused_for(outcome: evidence_pb2.AttestationResult | VerifierRefused) -> Reason:
    assert isinstance(outcome, VerifierRefused), outcome
    return outcome.reason


async def race(targets: tuple[str, str], pairs: list[tuple]) -> list[list]:
    """Each pair's two proofs at once, one to each target; results or refusals."""
    calls = [
        submit(target, proof) for pair in pairs for target, proof in zip(targets, pair, strict=True)
    ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    return [outcomes[i : i + 2] for i in range(0, len(outcomes), 2)]


def assert_one_accepted_one_fork(outcome: list) -> int:
    """Exactly one of a fork's two proofs accepted, the other refused as a fork; which."""
    accepted = [i for i, o in enumerate(outcome) if isinstance(o, evidence_pb2.AttestationResult)]
    assert len(accepted) == 1, outcome
    refused = outcome[1 - accepted[0]]
    assert isinstance(refused, VerifierRefused), refused
    assert refused.reason == Reason.FORK.value, refused
    return accepted[0]


def test_forks_sent_to_two_processes_at_once_advance_each_chain_once(world, start, database):
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    a, b = start(), start()
    asyncio.run(enrol(a.target, chips))
    for _ in range(2):  # the first proof (no head yet), then one extending a head
        forks = [(next_proof(world, chip), next_proof(world, chip)) for chip in chips]
        outcomes = asyncio.run(race((a.target, b.target), [(fa[0], fb[0]) for fa, fb in forks]))
        for chip, fork, outcome in zip(chips, forks, outcomes, strict=True):
            chip.chain = fork[assert_one_accepted_one_fork(outcome)][1]
    a.stop(), b.stop()

    store = SqlStore.open(database)
    tables = store.dump()
    for chip in chips:
        assert store.accepted_counters(chip.device_id) == [1, 2]
        head = store.head(chip.device_id)
        assert head is not None
        assert head.digest == chip.chain.head_digest
        clones = [a for a in store.alerts(chip.device_id) if a.kind == AlertKind.CLONE]
        assert len(clones) == 2
    assert len(tables["successors"]) == 2 * CHIPS
    store.close()


def test_the_same_proof_at_two_processes_at_once_is_stored_once(world, start, database):
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    a, b = start(), start()
    asyncio.run(enrol(a.target, chips))
    proofs = [next_proof(world, chip)[0] for chip in chips]
    outcomes = asyncio.run(race((a.target, b.target), [(p, p) for p in proofs]))
    a.stop(), b.stop()

    for first, second in outcomes:
        assert isinstance(first, evidence_pb2.AttestationResult), first
        assert isinstance(second, evidence_pb2.AttestationResult), second
        assert first.result_token == second.result_token, "the replay got a second result"
    store = SqlStore.open(database)
    for chip in chips:
        assert store.accepted_counters(chip.device_id) == [1]
    store.close()


def test_workers_share_one_port_and_stop_together(world, start):
    verifier = start("--workers", "2")
    workers = children(verifier.process.pid)
    assert len(workers) == 2
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    asyncio.run(enrol(verifier.target, chips))
    forks = [(next_proof(world, chip), next_proof(world, chip)) for chip in chips]
    target = (verifier.target, verifier.target)
    outcomes = asyncio.run(race(target, [(fa[0], fb[0]) for fa, fb in forks]))
    for outcome in outcomes:
        assert_one_accepted_one_fork(outcome)
    err = verifier.stop()
    assert verifier.process.returncode == 0, err
    assert "verifier: 2 worker processes" in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_worker_that_dies_stops_the_verifier_with_an_error(world, start):
    verifier = start("--workers", "3")
    workers = children(verifier.process.pid)
    assert len(workers) == 3
    os.kill(workers[1], signal.SIGKILL)
    err = verifier.wait()
    assert verifier.process.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: verifier worker-"), err
    assert "exited with status -9" in last
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_an_alert_stream_at_one_process_carries_another_process_alerts(world, start):
    """Every clone alert is raised at ``a``; a stream at ``b`` carries them all, and one
    that reconnects with the cursor of the last alert it got misses none."""
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    a, b = start(), start()
    asyncio.run(enrol(a.target, chips))
    forks = [(next_proof(world, chip), next_proof(world, chip)) for chip in chips]

    async def watch(target: str, count: int, after: int) -> list:
        received = []
        async with VerifierClient(target) as client:
            async for alert in client.watch_alerts(after=after):
                received.append(alert)
                if len(received) == count:
                    return received
        return received

    async def scenario() -> tuple[list, list]:
        half = CHIPS // 2
        first = asyncio.create_task(asyncio.wait_for(watch(b.target, half, 0), 120))
        for fa, fb in forks:  # one after the other, at a: the second is a clone
            await submit(a.target, fa[0])
            with pytest.raises(VerifierRefused):
                await submit(a.target, fb[0])
        received = await first
        rest = await asyncio.wait_for(watch(b.target, CHIPS - half, received[-1].cursor), 120)
        return received, rest

    first, rest = asyncio.run(scenario())
    a.stop(), b.stop()
    alerts = first + rest
    assert [alert.device_id for alert in alerts] == [chip.device_id for chip in chips]
    assert {alert.kind for alert in alerts} == {AlertKind.CLONE.value}
    cursors = [alert.cursor for alert in alerts]
    assert cursors == sorted(set(cursors))


def test_a_process_killed_mid_batch_loses_nothing_a_client_was_told(world, start, database):
    """A batch in flight at ``a`` when it is SIGKILLed either committed or did not; sent
    again to ``b``, each proof is accepted once: the stored answer where ``a`` committed
    (the same result token), a fresh one where it had not."""
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    a, b = start(), start()
    asyncio.run(enrol(b.target, chips))
    proofs = [next_proof(world, chip)[0] for chip in chips]

    async def kill_mid_batch() -> object:
        async with VerifierClient(a.target, timeout_s=60) as client:
            batch = asyncio.create_task(client.submit_batch(proofs))
            await asyncio.sleep(0.05)
            a.process.kill()
            try:
                return await batch
            except VerifierRefused as refused:
                return refused

    first = asyncio.run(kill_mid_batch())
    a.wait()

    async def retry() -> list:
        async with VerifierClient(b.target, timeout_s=60) as client:
            return await client.submit_batch(proofs)

    results = asyncio.run(retry())
    assert [r.verdict for r in results] == [evidence_pb2.VERDICT_ALLOWED] * CHIPS
    if isinstance(first, list):  # a answered before it died: the retry gets those answers
        assert [r.result_token for r in results] == [r.result_token for r in first]
    store = SqlStore.open(database)
    for chip in chips:
        assert store.accepted_counters(chip.device_id) == [1]
    store.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_licences_and_exclusions_changed_at_one_replica_hold_at_the_other(world, start):
    """Every change goes through ``a``'s admin API and every proof to ``b``: ``b`` judges
    the next proof by the licence and the exclusions in force in the database, never by what
    it read before (a replica that kept either in memory would answer ALLOWED here)."""
    chip, other = world.chip("dev-0"), world.chip("dev-1")
    a, b = start(), start()
    asyncio.run(enrol(a.target, [chip, other]))

    def admin(method: str, request: object) -> None:
        asyncio.run(call_admin(a.target, method, request))

    def prove(device: ProvisionedChip) -> evidence_pb2.AttestationResult | VerifierRefused:
        return prove_at(world, b.target, device)

    assert verdict(prove(chip)) == evidence_pb2.VERDICT_ALLOWED
    assert verdict(prove(other)) == evidence_pb2.VERDICT_ALLOWED

    # The licence narrowed to a region the chip is not in: outside it at b's next proof.
    until_s = time.time_ns() // 10**9 + 86_400
    licence = admin_service_pb2.SetLicenceRequest(
        device_id="dev-0", region="SYD-300", valid_until_s=until_s
    )
    admin("SetLicence", licence)
    assert verdict(prove(chip)) == evidence_pb2.VERDICT_OUTSIDE
    assert verdict(prove(other)) == evidence_pb2.VERDICT_ALLOWED
    licence.region = "FRA-300"
    admin("SetLicence", licence)
    assert verdict(prove(chip)) == evidence_pb2.VERDICT_ALLOWED

    # An exclusion removes the landmark's receipts: the proof that carries one is refused.
    landmark = admin_service_pb2.LandmarkRequest(landmark_id="lm-fra", why="clock drift")
    admin("ExcludeLandmark", landmark)
    excluded = prove(other)
    assert isinstance(excluded, VerifierRefused), excluded
    assert excluded.reason is Reason.REVOKED_LANDMARK
    admin("LiftExclusion", landmark)
    past_the_skew_of_a_lift()
    assert verdict(prove(other)) == evidence_pb2.VERDICT_ALLOWED
    a.stop(), b.stop()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_revocations_made_at_one_replica_hold_at_another_on_a_host_of_its_own(
    world, start, tmp_path
):
    """Each replica reads its own copy of the registry and the revocation list, as on
    hosts of their own; revocations go through ``a``'s admin API and every proof to
    ``b``. ``b`` refuses the revoked device at its next proof, and counts the revoked
    landmark's receipts no more (a replica that judged by its files alone would answer
    ALLOWED); neither host's file changes."""
    chip, other = world.chip("dev-0"), world.chip("dev-1")
    a, b = start(host=tmp_path / "host-a"), start(host=tmp_path / "host-b")
    asyncio.run(enrol(a.target, [chip, other]))
    assert verdict(prove_at(world, b.target, chip)) == evidence_pb2.VERDICT_ALLOWED
    assert verdict(prove_at(world, b.target, other)) == evidence_pb2.VERDICT_ALLOWED

    device = admin_service_pb2.DeviceRequest(device_id="dev-0", why="stolen")
    asyncio.run(call_admin(a.target, "RevokeDevice", device))
    assert refused_for(prove_at(world, b.target, chip)) is Reason.REVOKED_DEVICE
    assert verdict(prove_at(world, b.target, other)) == evidence_pb2.VERDICT_ALLOWED
    asyncio.run(call_admin(a.target, "RestoreDevice", device))
    assert verdict(prove_at(world, b.target, chip)) == evidence_pb2.VERDICT_ALLOWED

    # Every proof carries lm-fra's receipt: revoked, it makes the proof no longer ALLOWED.
    landmark = admin_service_pb2.LandmarkRequest(landmark_id="lm-fra", why="key leaked")
    asyncio.run(call_admin(a.target, "RevokeLandmark", landmark))
    assert refused_for(prove_at(world, b.target, other)) is Reason.REVOKED_LANDMARK
    a.stop(), b.stop()
    for host in ("host-a", "host-b"):
        assert RevocationList.load(tmp_path / host / "revocations.json") == RevocationList()


def test_a_revocation_list_deployed_to_one_host_holds_at_every_replica(world, start, tmp_path):
    """A newer revocation list is written on ``a``'s host only. Once ``a`` has followed it
    (at its next batch), ``b``, whose own file is older, refuses the revoked device, and
    so does a replica started afterwards on a host with the older file (a restart on an
    old deploy): the database keeps the newest list any replica followed."""
    chip, other = world.chip("dev-0"), world.chip("dev-1")
    a, b = start(host=tmp_path / "host-a"), start(host=tmp_path / "host-b")
    asyncio.run(enrol(a.target, [chip, other]))
    assert verdict(prove_at(world, b.target, chip)) == evidence_pb2.VERDICT_ALLOWED

    RevocationList().with_device("dev-0").save(tmp_path / "host-a" / "revocations.json")
    assert verdict(prove_at(world, a.target, other)) == evidence_pb2.VERDICT_ALLOWED
    assert refused_for(prove_at(world, b.target, chip)) is Reason.REVOKED_DEVICE
    b.stop()
    c = start(host=tmp_path / "host-c")
    assert refused_for(prove_at(world, c.target, chip)) is Reason.REVOKED_DEVICE
    assert verdict(prove_at(world, c.target, other)) == evidence_pb2.VERDICT_ALLOWED
    a.stop()
    assert "holds version 0; version 1, followed before" in c.stop()
    assert RevocationList.load(tmp_path / "host-c" / "revocations.json") == RevocationList()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_status_at_one_replica_says_what_an_operator_did_at_another(world, start, database):
    """Every change goes through ``a``'s admin API; the chip proves and the relying party
    reads its status at ``b``. From each change on, ``b`` says the last ALLOWED no longer
    stands, and why, until the chip's next proof; ``verifier trust list`` over the same
    database names the revocations and exclusions behind it."""
    chip = world.chip("dev-0")
    a, b = start(), start()
    asyncio.run(enrol(a.target, [chip]))

    def admin(method: str, request: object) -> None:
        asyncio.run(call_admin(a.target, method, request))

    async def read_status() -> tuple[int, bool, int]:
        async with VerifierClient(b.target) as client:
            status = await client.device_status("dev-0")
        assert status.last_verdict == evidence_pb2.VERDICT_ALLOWED
        return status.standing, status.verdict_current, status.licence_version

    def standing() -> tuple[int, bool, int]:
        return asyncio.run(read_status())

    def allowed_again() -> None:
        assert verdict(prove_at(world, b.target, chip)) == evidence_pb2.VERDICT_ALLOWED
        assert standing()[:2] == (verifier_service_pb2.STANDING_STANDS, True)

    allowed_again()
    admin("WithdrawLicence", admin_service_pb2.DeviceRequest(device_id="dev-0", why="ended"))
    assert standing() == (verifier_service_pb2.STANDING_LICENCE_WITHDRAWN, False, 2)
    until_s = time.time_ns() // 10**9 + 86_400
    admin(
        "SetLicence",
        admin_service_pb2.SetLicenceRequest(
            device_id="dev-0", region="FRA-300", valid_until_s=until_s
        ),
    )
    assert standing() == (verifier_service_pb2.STANDING_LICENCE_CHANGED, False, 3)
    allowed_again()

    device = admin_service_pb2.DeviceRequest(device_id="dev-0", why="stolen")
    admin("RevokeDevice", device)
    admin("RestoreDevice", device)
    assert standing()[:2] == (verifier_service_pb2.STANDING_DEVICE_REVOKED, False)
    allowed_again()

    landmark = admin_service_pb2.LandmarkRequest(landmark_id="lm-fra", why="clock drift")
    admin("ExcludeLandmark", landmark)
    admin("LiftExclusion", landmark)
    assert standing()[:2] == (verifier_service_pb2.STANDING_LANDMARK_UNTRUSTED, False)
    past_the_skew_of_a_lift()
    allowed_again()
    a.stop(), b.stop()

    listed = subprocess.run(
        [GEOATTEST, "verifier", "trust", "list", "--db", database],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    changes = [line.split()[2:4] for line in listed.stdout.splitlines()]
    assert changes == [
        ["device_revoked", "dev-0"],
        ["device_restored", "dev-0"],
        ["landmark_excluded", "lm-fra"],
        ["exclusion_lifted", "lm-fra"],
    ]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_revocation_through_the_admin_api_holds_in_every_worker(world, start):
    """Every chip proves over a connection of its own (spread over both workers, which
    then have read what is in force); after the revocation, the revoked chip's next proof
    is refused over each of many connections, whichever worker takes it."""
    verifier = start("--workers", "2")
    chips = [world.chip(f"dev-{i}") for i in range(CHIPS)]
    asyncio.run(enrol(verifier.target, chips))

    async def each(proofs: list) -> list:
        calls = [submit(verifier.target, proof) for proof in proofs]
        return await asyncio.gather(*calls, return_exceptions=True)

    firsts = [next_proof(world, chip) for chip in chips]
    assert [verdict(r) for r in asyncio.run(each([p for p, _ in firsts]))] == [
        evidence_pb2.VERDICT_ALLOWED
    ] * CHIPS
    chips[0].chain = firsts[0][1]

    device = admin_service_pb2.DeviceRequest(device_id="dev-0", why="stolen")
    asyncio.run(call_admin(verifier.target, "RevokeDevice", device))
    proof, _ = next_proof(world, chips[0])
    outcomes = asyncio.run(each([proof] * 2 * CHIPS))
    assert {refused_for(outcome) for outcome in outcomes} == {Reason.REVOKED_DEVICE}
    err = verifier.stop()
    assert verifier.process.returncode == 0, err


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_licence_withdrawn_at_one_replica_stays_withdrawn_when_another_starts(world, start):
    """The licence is withdrawn through ``a``'s admin API; ``b`` starts afterwards with the
    same licences file: the chip's next proof there is still REJECTED (a replica that
    applied its file again at start would have licensed the chip again)."""
    chip = world.chip("dev-0")
    a = start()
    asyncio.run(enrol(a.target, [chip]))
    assert verdict(prove_at(world, a.target, chip)) == evidence_pb2.VERDICT_ALLOWED
    withdraw = admin_service_pb2.DeviceRequest(device_id="dev-0", why="ended")
    asyncio.run(call_admin(a.target, "WithdrawLicence", withdraw))
    b = start()  # its licences file is applied before it listens
    assert refused_for(prove_at(world, b.target, chip)) is Reason.LICENCE_WITHDRAWN
    a.stop(), b.stop()
