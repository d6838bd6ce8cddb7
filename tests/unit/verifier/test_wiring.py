"""A verifier built from the operator's files, as ``verifier serve`` builds it."""

from __future__ import annotations

import inspect
from dataclasses import replace

import pytest
from typer.main import get_command
from verifier_world import MEASUREMENT, NOW_NS, VERIFIER_ID, VerifierWorld

from geoattest.cli.verifier_serve import verifier_app
from geoattest.errors import ConfigError
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import PipelineConfig
from geoattest.verifier.pool import POOL_SIZE, connections_at_most
from geoattest.verifier.store import SqlStore
from geoattest.verifier.wiring import VerifierFiles, VerifierOptions, load_verifier

OPTIONS = VerifierOptions(
    VERIFIER_ID, PipelineConfig(quorum=3, allowed_measurements=frozenset({MEASUREMENT}))
)


@pytest.fixture
def world(tmp_path) -> VerifierWorld:
    world = VerifierWorld.create(tmp_path)
    world.serve_args()  # writes the registry, the policy and the result key
    return world


@pytest.fixture
def files(world) -> VerifierFiles:
    return VerifierFiles(
        db=world.db_path,
        trust_roots=[world.root / "ca.crt"],
        landmarks=world.root / "landmarks.json",
        policy=world.root / "policy.json",
        licences=world.licences_path,
        result_key=world.root / "result-key",
    )


def test_the_loaded_verifier_enrols_and_appraises(world, files):
    verifier = load_verifier(files, replace(OPTIONS, cadence_s=600, stale_after=2))
    assert verifier.config.stale_after_cadences == 2
    assert verifier.sweep_every_s == 150
    store = SqlStore.open(world.db_path)
    service = verifier.service(store)
    chip = world.chip("dev-1")
    service.enrol(chip.identity(), chip.possession(), NOW_NS)
    assert service.submit(world.proof(chip), NOW_NS).verdict is Verdict.ALLOWED
    store.close()


def test_each_server_is_built_afresh_from_what_was_loaded(files):
    verifier = load_verifier(files, OPTIONS)
    with verifier.server() as first, verifier.server() as second:
        assert first.service is not second.service
        assert first.service.config == verifier.config


def test_a_database_that_does_not_open_fails_at_load(files, tmp_path):
    (tmp_path / "notes.db").write_text("not a database " * 100)
    with pytest.raises(ConfigError, match=r"notes\.db"):
        load_verifier(replace(files, db=tmp_path / "notes.db"), OPTIONS)


def test_an_audit_log_records_each_appraisal_and_is_checkpointed_at_close(world, files):
    from geoattest.crypto import KeySigner  # noqa: PLC0415
    from geoattest.verifier.audit_log import (  # noqa: PLC0415
        read_checkpoints,
        read_entries,
        verify_log,
    )

    log = world.root / "audit.log"
    verifier = load_verifier(replace(files, audit_log=log), OPTIONS)
    with verifier.server() as server:
        chip = world.chip("dev-1")
        server.service.enrol(chip.identity(), chip.possession(), NOW_NS)
        result = server.service.submit(world.proof(chip), NOW_NS)
    key = KeySigner(world.result_key.private_key).verifying_key
    checkpoints = read_checkpoints(log.with_name("audit.log.checkpoints"), key)
    assert [c.size for c in checkpoints] == [1, 1]  # the first append, then the close
    entries = read_entries(log)
    assert verify_log(entries, checkpoints).entries == 1
    assert result.token
    assert b'"verdict":"ALLOWED"' in entries[0]


def test_the_pool_size_default_is_one_definition_for_the_command_line_and_the_store():
    """``serve --pool-size``, the options and the store take the one default, so that the
    pool rule the documentation states is the rule the processes follow."""
    serve = get_command(verifier_app).commands["serve"]  # type: ignore[attr-defined]
    (option,) = (p for p in serve.params if p.name == "pool_size")
    assert option.default == POOL_SIZE
    assert VerifierOptions(VERIFIER_ID, PipelineConfig()).pool_size == POOL_SIZE
    assert inspect.signature(SqlStore.open).parameters["pool_size"].default == POOL_SIZE
    assert connections_at_most(3) == 3 * (POOL_SIZE + 1)
