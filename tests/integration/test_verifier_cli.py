"""``geoattest verifier serve|status|enrol|exclusions|lift|retain|trust list``: every bad input is a
one-line error naming it and a non-zero exit. What binds or dials (ports, addresses, an
unreachable verifier) runs the real console script; refusals made before anything starts run
in process through the same entry point (``invoke``)."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
from command import GEOATTEST, assert_one_line_error, invoke, run_geoattest
from verifier_world import VerifierWorld

from geoattest.verifier.store import SqlStore

run = invoke


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> VerifierWorld:
    return VerifierWorld.create(tmp_path_factory.mktemp("cli"))


def with_option(args: list[str], option: str, value: str) -> list[str]:
    changed = list(args)
    changed[changed.index(option) + 1] = value
    return changed


def test_serve_with_an_unknown_flag(world):
    assert_one_line_error(run(*world.serve_args(), "--colour", "blue"), "--colour")


@pytest.mark.parametrize(
    "option",
    ["--trust-root", "--landmarks", "--policy", "--licences", "--result-key"],
)
def test_serve_with_a_missing_file_names_it(world, tmp_path, option):
    missing = str(tmp_path / f"missing{option}")
    assert_one_line_error(run(*with_option(world.serve_args(), option, missing)), missing)


def test_serve_refuses_tolerating_as_many_lying_landmarks_as_the_quorum(world):
    args = [*world.serve_args(), "--landmark-faults", "3", "--quorum", "3"]
    assert_one_line_error(run(*args), "--landmark-faults 3 must be below --quorum 3")


def test_serve_with_a_database_in_a_missing_directory(world, tmp_path):
    db = str(tmp_path / "nowhere" / "verifier.db")
    assert_one_line_error(run(*with_option(world.serve_args(), "--db", db)), db)


def test_serve_with_a_malformed_address(world):
    assert_one_line_error(run(*world.serve_args("localhost")), "localhost")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use(world, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_geoattest(*world.serve_args(address), "--workers", workers)
        assert_one_line_error(result, address)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_an_address_not_of_this_host(world, workers):
    args = [*world.serve_args("192.0.2.1:50051", tls=world.server_tls()), "--workers", workers]
    assert_one_line_error(run_geoattest(*args), "cannot listen on 192.0.2.1:50051")


@pytest.mark.parametrize("workers", ["0", "two", "100000"])
def test_serve_with_a_bad_worker_count(world, workers):
    assert_one_line_error(run(*world.serve_args(), "--workers", workers), "--workers")


@pytest.mark.parametrize("verifier_id", ["", "a\x01b", "a/b", "v" * 129])
def test_serve_with_a_bad_verifier_id(world, verifier_id):
    result = run(*world.serve_args(), "--verifier-id", verifier_id)
    assert_one_line_error(result, "--verifier-id")


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_status_of_an_unreachable_verifier(world):
    address = unused_address()
    result = run_geoattest(
        "verifier", "status", "--device-id", "dev-1", "--target", address, "--timeout-s", "1",
        "--plaintext",
    )  # fmt: skip
    assert_one_line_error(result, address)


def test_enrol_with_a_missing_key_store(tmp_path):
    missing = str(tmp_path / "no-keystore")
    assert_one_line_error(run("verifier", "enrol", "--keystore", missing, "--plaintext"), missing)


def test_status_with_a_bad_flag_value():
    assert_one_line_error(
        run("verifier", "status", "--device-id", "d", "--timeout-s", "soon"), "--timeout-s"
    )


def test_exclusions_and_lift_of_a_missing_database_name_it(tmp_path):
    missing = str(tmp_path / "no.db")
    assert_one_line_error(run("verifier", "exclusions", "--db", missing), missing)
    assert_one_line_error(run("verifier", "lift", "lm-fra", "--db", missing), missing)


def test_lift_of_a_landmark_that_is_not_excluded_names_it(world):
    SqlStore.open(world.db_path).close()
    listed = run("verifier", "exclusions", "--db", str(world.db_path))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "no landmark is excluded\n"
    result = run("verifier", "lift", "lm-fra", "--db", str(world.db_path), "--why", "test")
    assert_one_line_error(result, "landmark lm-fra is not excluded")


def test_lift_refuses_a_reason_that_could_forge_a_listed_line_and_lifts_nothing(world):
    store = SqlStore.open(world.db_path)
    store.exclude_landmark("lm-fra", 1_767_225_600 * 10**9, by="alice", why="clock drift")
    store.close()
    forged = "ok\nv9 2026-01-01T00:00:00Z device_restored dev-7 by alice: found"
    for flag, value in (("--why", forged), ("--by", "alice\x1b[2J")):
        result = run("verifier", "lift", "lm-fra", "--db", str(world.db_path), flag, value)
        assert_one_line_error(result, f"{flag} must be at most 500 printable characters")
    listed = run("verifier", "exclusions", "--db", str(world.db_path))
    assert listed.stdout.startswith("lm-fra IN FORCE")


def test_listings_print_each_stored_change_on_one_line_whatever_its_text(tmp_path):
    """A reason stored before the admin API checked it (or by another tool) holding a line
    break or a terminal escape is printed escaped: one line per change, no forged line."""
    db = str(tmp_path / "verifier.db")
    store = SqlStore.open(db)
    forged = "x\nv9 2026-01-01T03:00:00Z device_restored dev-7 by alice: found\x1b[2J"
    store.revoke_device("dev-7", 1_767_225_600 * 10**9, by="mallory", why=forged)
    store.exclude_landmark("lm-fra", 1_767_229_200 * 10**9, by="mallory", why=forged)
    store.close()
    listed = run("verifier", "trust", "list", "--db", db).stdout.splitlines()
    assert len(listed) == 2
    assert listed[0].endswith(
        "by mallory: x\\nv9 2026-01-01T03:00:00Z device_restored dev-7 by alice: found\\x1b[2J"
    )
    excluded = run("verifier", "exclusions", "--db", db).stdout.splitlines()
    assert len(excluded) == 1
    assert "\x1b" not in excluded[0]


def test_trust_list_shows_every_change_and_names_a_missing_database(tmp_path):
    db = str(tmp_path / "verifier.db")
    assert run("verifier", "migrate", "--db", db).returncode == 0
    empty = run("verifier", "trust", "list", "--db", db)
    assert (empty.returncode, empty.stdout) == (0, "no trust change is stored\n")
    store = SqlStore.open(db)
    store.revoke_device("dev-1", 1_767_225_600 * 10**9, by="alice", why="stolen")
    store.restore_device("dev-1", 1_767_229_200 * 10**9, by="bob", why="found")
    store.exclude_landmark("lm-fra", 1_767_232_800 * 10**9, by="alice", why="clock drift")
    store.close()
    listed = run("verifier", "trust", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "v1 2026-01-01T00:00:00Z device_revoked dev-1 by alice: stolen",
        "v2 2026-01-01T01:00:00Z device_restored dev-1 by bob: found",
        "v3 2026-01-01T02:00:00Z landmark_excluded lm-fra by alice: clock drift",
    ]
    one = run("verifier", "trust", "list", "--db", db, "--subject", "lm-fra")
    assert one.stdout.splitlines() == [listed.stdout.splitlines()[2]]
    missing = str(tmp_path / "missing.db")
    assert_one_line_error(run("verifier", "trust", "list", "--db", missing), missing)
    empty = tmp_path / "empty.db"
    empty.touch()
    for command in (("trust", "list"), ("exclusions",)):
        assert_one_line_error(run("verifier", *command, "--db", str(empty)), "is empty")
        assert empty.stat().st_size == 0  # read-only commands write no schema into it


def test_retain_archives_by_age_and_names_a_missing_database(tmp_path):
    db = str(tmp_path / "verifier.db")
    assert run("verifier", "migrate", "--db", db).returncode == 0
    retained = run("verifier", "retain", "--db", db, "--older-than-days", "30")
    assert retained.returncode == 0, retained.stderr
    assert retained.stdout.strip() == "0 proof(s) archived"
    missing = str(tmp_path / "missing.db")
    assert_one_line_error(
        run("verifier", "retain", "--db", missing, "--older-than-days", "30"), missing
    )
    for days in ("0", "nan", "36501", "1e9"):  # a cutoff before the store's 64-bit times
        assert_one_line_error(
            run("verifier", "retain", "--db", db, "--older-than-days", days), "--older-than-days"
        )


def serve_until_listening(args: list[str]) -> str:
    """Start ``verifier serve``, stop it once it listens; its stderr."""
    process = subprocess.Popen(
        [GEOATTEST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert line.startswith("verifier listening on "), line + err
    return err


@pytest.mark.parametrize(("quorum", "warned"), [("4", False), ("5", True)])
def test_serve_warns_of_a_quorum_the_registry_cannot_meet(world, quorum, warned):
    """The four test landmarks are four fault domains: a quorum of five can meet no proof
    until more are registered (the admin API may), so the verifier starts and says so."""
    err = serve_until_listening([*world.serve_args(), "--quorum", quorum])
    warning = (
        f"warning: --quorum {quorum} is more than the 4 fault domain(s) the registered "
        "landmarks make: no proof can be ALLOWED"
    )
    assert (warning in err) is warned, err
