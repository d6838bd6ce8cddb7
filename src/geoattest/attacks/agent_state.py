"""The agent's state across reboots: the host restarts the agent, and rolls back, edits or
deletes its sealed licence state, to win back a licence or a fresh grace period, or rolls
back its outbox to fork its proof chain.

Each scenario runs the real verifier service and the chip's real agent in a
:class:`~geoattest.attacks.served.ServedWorld`, reboots the agent on its files (key store,
outbox, sealed licence state) and reports the licence the restarted agent holds. Where
the restarted agent has no proof appraised, the reason is its own: why it refused its
sealed state (None when the state was genuine and the newest). Nothing trusted at the
verifier moves during any attack.

The outbox is not sealed: the verifier holds each chain's head, so a rolled-back outbox
only makes the agent extend a proof the verifier already saw extended. That is a fork,
refused with a CLONE alert (``agent_state_outbox_rolled_back``); the host gains nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from geoattest.attacks.scenarios import (
    JOHOR_BAHRU,
    SG1,
    SINGAPORE,
    AttackScenario,
    Expect,
    Observed,
    Play,
)
from geoattest.attacks.served import ServedChip, ServedWorld
from geoattest.attacks.world import AttackWorld, WorldChip
from geoattest.attestor.licence import AgentLicence, LicenceStatus
from geoattest.errors import Reason
from geoattest.units import SECOND_NS
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind

LAPSE_CADENCES = 6
"""How long the host firewalls the verifier so that the licence and its grace run out."""


def licensed_in_singapore(served: ServedWorld) -> tuple[ServedChip, bytes]:
    """An honest Singapore chip licensed by its first proof, and the copy of its sealed
    licence state the host takes then."""
    chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", served.world.nearest(SINGAPORE), SG1))
    served.cycle(chip)
    assert chip.results[-1].verdict is Verdict.ALLOWED, chip.results[-1]
    assert chip.attester.status(served.now_s()) is LicenceStatus.LICENSED
    return chip, chip.licence_state.read_bytes()


def _booted(served: ServedWorld, licence: AgentLicence, t0_ns: int) -> str:
    """How the restarted agent came up, and when its chip degrades (from ``t0_ns``)."""
    degrades = f"+{(licence.state.degrades_at_s * SECOND_NS - t0_ns) / 60e9:.0f} min"
    how = f"refused its sealed state ({licence.refused})" if licence.refused else "restored it"
    status = licence.status(served.now_s()).value
    return f"rebooted agent {how}: licence {status}, degrades at {degrades}"


Tamper = Literal["none", "roll back", "edit", "delete"]
"""What the host does to the sealed licence state before the agent restarts."""


def _tamper(how: Tamper, path: Path, copy: bytes) -> None:
    """Do ``how`` to the sealed state in ``path``; ``copy`` is the one taken when licensed."""
    if how == "roll back":
        path.write_bytes(copy)
    elif how == "edit":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif how == "delete":
        path.unlink()


def _reboot(
    world: AttackWorld,
    lapse: Callable[[ServedWorld, ServedChip], None],
    tamper: Tamper,
) -> Observed:
    """A licensed Singapore chip; ``lapse`` ends its licence, ``tamper`` changes its sealed
    state (with the copy taken while it was licensed), and its agent restarts."""
    with ServedWorld.open(world) as served:
        chip, copy = licensed_in_singapore(served)
        t0 = world.now_ns()
        lapse(served, chip)
        before, alerts = served.head(chip), len(served.alerts)
        _tamper(tamper, chip.licence_state, copy)
        licence = served.reboot(chip)
        return Observed(
            None,
            licence.refused.reason if licence.refused else None,
            tuple(AlertKind(a.kind) for a in served.alerts[alerts:]),
            served.head(chip) != before,
            _booted(served, licence, t0),
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            licence.status(served.now_s()).value,
        )


def _firewalled_until_degraded(served: ServedWorld, chip: ServedChip) -> None:
    """The host drops everything to the verifier until the licence and its grace ran out."""
    served.elapse(chip, LAPSE_CADENCES, verifier_reachable=False)
    assert chip.attester.status(served.now_s()) is LicenceStatus.DEGRADED


def _proved_across_the_border(served: ServedWorld, chip: ServedChip) -> None:
    """The host carries the chip to Johor Bahru; its next proof does not affirm, which
    ends its licence (the grace period starts)."""
    chip.move(JOHOR_BAHRU, served.world.nearest(JOHOR_BAHRU))
    served.elapse(chip, 1)
    assert chip.results[-1].verdict is not Verdict.ALLOWED, chip.results[-1]
    assert chip.attester.status(served.now_s()) is LicenceStatus.GRACE


def play_honest_reboot(world: AttackWorld) -> Observed:
    """A licensed chip's agent restarts mid-licence and proves again at its next cadence."""
    with ServedWorld.open(world) as served:
        chip, _ = licensed_in_singapore(served)
        t0, before = world.now_ns(), served.head(chip)
        licence = served.reboot(chip)
        booted = _booted(served, licence, t0)
        served.elapse(chip, 1)
        result = chip.results[-1]
        return Observed(
            result.verdict,
            licence.refused.reason if licence.refused else None,
            tuple(AlertKind(a.kind) for a in served.alerts),
            served.head(chip) != before,
            f"{booted}; then {result.verdict.value}",
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            chip.attester.status(served.now_s()).value,
        )


def play_outbox_rolled_back(world: AttackWorld) -> Observed:
    """The host keeps a copy of the outbox's chain from the chip's first proof, lets two
    more proofs go, then puts the copy back and restarts the agent."""
    with ServedWorld.open(world) as served:
        chip, _ = licensed_in_singapore(served)
        chain = chip.attester.outbox.directory / "chain.json"
        older = chain.read_bytes()
        served.elapse(chip, 2)
        before, alerts = served.head(chip), len(served.alerts)
        chain.write_bytes(older)
        served.reboot(chip)
        served.elapse(chip, 1)
        result = chip.results[-1]
        return Observed(
            result.verdict,
            result.reason,
            tuple(AlertKind(a.kind) for a in served.alerts[alerts:]),
            served.head(chip) != before,
            result.detail,
            served.service.device_status(chip.device_id, world.now_ns()).state.value,
            chip.attester.status(served.now_s()).value,
        )


def _played(lapse: Callable[[ServedWorld, ServedChip], None], tamper: Tamper) -> Play:
    def play(world: AttackWorld) -> Observed:
        return _reboot(world, lapse, tamper)

    return play


def _lapsed(reason: Reason | None, device_state: str) -> Expect:
    """The restarted agent holds no licence and no grace period: degraded at once."""
    return Expect(frozenset({None}), reason, device_state=device_state, licence="degraded")


SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "agent_state_honest_reboot",
        "agent_state",
        "Control: a licensed Singapore chip's agent restarts mid-licence; it keeps its "
        "licence and proves again at its next cadence.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            advances=True,
            device_state="ATTESTING",
            licence="licensed",
        ),
        play_honest_reboot,
    ),
    AttackScenario(
        "agent_state_reboot_after_lapse",
        "agent_state",
        "The host firewalls the verifier until the chip's licence and grace period ran out, "
        "then restarts the agent for a fresh grace period.",
        _lapsed(None, "STALE"),
        _played(_firewalled_until_degraded, "none"),
    ),
    AttackScenario(
        "agent_state_rolled_back",
        "agent_state",
        "The host copies the sealed licence state while the chip is licensed, carries the "
        "chip to Johor Bahru (its proof there ends the licence), puts the copy back and "
        "restarts the agent.",
        _lapsed(Reason.SEALED_ROLLED_BACK, "ATTESTING"),
        _played(_proved_across_the_border, "roll back"),
    ),
    AttackScenario(
        "agent_state_edited",
        "agent_state",
        "After the licence and grace period ran out (verifier firewalled), the host changes "
        "one byte of the sealed licence state and restarts the agent.",
        _lapsed(Reason.SEALED_EDITED, "STALE"),
        _played(_firewalled_until_degraded, "edit"),
    ),
    AttackScenario(
        "agent_state_deleted",
        "agent_state",
        "After the licence and grace period ran out (verifier firewalled), the host deletes "
        "the sealed licence state and restarts the agent as if on its first boot.",
        _lapsed(Reason.SEALED_MISSING, "STALE"),
        _played(_firewalled_until_degraded, "delete"),
    ),
    AttackScenario(
        "agent_state_outbox_rolled_back",
        "agent_state",
        "The host puts back a copy of the outbox's chain from the chip's first proof, two "
        "proofs later, and restarts the agent: its next proof forks the chain.",
        Expect(
            frozenset({Verdict.REJECTED}),
            Reason.FORK,
            frozenset({AlertKind.CLONE}),
            device_state="ATTESTING",
            licence="licensed",
        ),
        play_outbox_rolled_back,
    ),
)
"""A reboot never starts a fresh grace period: an honest restart keeps the licence and its
deadline, a lapsed chip stays lapsed, and a rolled-back, edited or deleted sealed state
boots the chip lapsed (degraded at once) with the agent's exact reason, and a rolled-back
outbox forks the chain, which the verifier refuses; nothing trusted at the verifier moves."""
