"""The revocation list on the verifier's host is followed forward only.

Each scenario runs the real verifier service and agent (:class:`ServedWorld`) with the
registry and revocation list as files on the verifier's host, which the service follows
before each proof (as ``verifier serve --revocations`` does). An honest chip in Singapore
proves, the operator revokes it in the list (a new version), and then the list the
verifier finds is one that would lift the revocation without a newer version: an old copy
put back (while the verifier runs, or before it restarts), or no file at all. The chip
proves again.
"""

from __future__ import annotations

from collections.abc import Callable

from geoattest.attacks.licence import proving, standing_state
from geoattest.attacks.scenarios import AttackScenario, Expect, Observed
from geoattest.attacks.served import ServedWorld
from geoattest.attacks.world import AttackWorld
from geoattest.errors import Reason
from geoattest.pki import LandmarkRegistry, RevocationList
from geoattest.verdict import Verdict
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.standing import Standing

THREAT = "identity"


Undo = Callable[[ServedWorld, OperatorFiles, bytes], None]
"""Acts on the host's files (given the bytes the list held before the revocation)."""


def _revoked_then(world: AttackWorld, undo: Undo) -> Observed:
    """The chip proves, is revoked in the host's list, and ``undo`` acts on the files
    before its next proof."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG")
        registry = served.directory / "landmarks.json"
        revoked = served.directory / "revocations.json"
        LandmarkRegistry(served.service.in_force().landmarks).save(registry)
        RevocationList().save(revoked)
        files = OperatorFiles(registry, revoked)
        served.service.files = files
        before_revocation = revoked.read_bytes()
        RevocationList().with_device(chip.device_id).save(revoked)
        served.cycle(chip)  # REJECTED: the list in force revokes it
        undo(served, files, before_revocation)
        before = served.head(chip)
        served.cycle(chip)
        result = chip.results[-1]
        status = served.service.device_status(chip.device_id, world.now_ns())
        return Observed(
            result.verdict,
            result.reason,
            tuple(AlertKind(a.kind) for a in served.store.alerts(chip.device_id)),
            served.head(chip) != before,
            result.detail,
            standing_state(status.state.value, status.standing),
            chip.attester.status(served.now_s()).value,
        )


def _put_back(_served: ServedWorld, files: OperatorFiles, old: bytes) -> None:
    assert files.revocations is not None
    copy = files.revocations.with_name("revocations.old")
    copy.write_bytes(old)
    copy.replace(files.revocations)


def _put_back_and_restart(served: ServedWorld, files: OperatorFiles, old: bytes) -> None:
    """The old list put back, and the verifier restarted on it: its appraiser built from
    the files as they are (the old list revokes nothing, as the world's appraiser)."""
    _put_back(served, files, old)
    served.restart()
    served.service.files = OperatorFiles(files.registry, files.revocations)


def _remove(_served: ServedWorld, files: OperatorFiles, _old: bytes) -> None:
    assert files.revocations is not None
    files.revocations.unlink()


def play_revocation_list_rolled_back(world: AttackWorld) -> Observed:
    return _revoked_then(world, _put_back)


def play_revocation_list_rolled_back_across_restart(world: AttackWorld) -> Observed:
    return _revoked_then(world, _put_back_and_restart)


def play_revocation_list_removed(world: AttackWorld) -> Observed:
    return _revoked_then(world, _remove)


_STILL_REVOKED = Expect(
    frozenset({Verdict.REJECTED}),
    Reason.REVOKED_DEVICE,
    device_state=standing_state("REVOKED", Standing.DEVICE_REVOKED),
    licence="licensed",  # the result from before the revocation, until it expires
)

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "revocation_list_rolled_back",
        THREAT,
        "The operator revokes a chip in the verifier host's revocation list; the list of "
        "the version before is put back, and the chip proves again.",
        _STILL_REVOKED,
        play_revocation_list_rolled_back,
    ),
    AttackScenario(
        "revocation_list_rolled_back_across_restart",
        THREAT,
        "The operator revokes a chip in the verifier host's revocation list; the list of "
        "the version before is put back and the verifier restarted on it, and the chip "
        "proves again.",
        _STILL_REVOKED,
        play_revocation_list_rolled_back_across_restart,
    ),
    AttackScenario(
        "revocation_list_removed",
        THREAT,
        "The operator revokes a chip in the verifier host's revocation list; the file is "
        "removed, and the chip proves again.",
        _STILL_REVOKED,
        play_revocation_list_removed,
    ),
)
