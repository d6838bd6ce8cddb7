"""Clocks: evidence time, not arrival time.

A proof says where the chip was when its rounds ran (landmark time); it arrives whenever
the host lets it. Staleness, the device's state and ``STALE_DEVICE`` are measured from the
newest accepted evidence, so a host that keeps an outbox backlog and lets it drip (or
delivers it all at once) after the chip has left cannot keep the device ATTESTING. These
attacks run the real verifier service and agent on the virtual clock
(:class:`~geoattest.attacks.served.ServedWorld`).
"""

from __future__ import annotations

from geoattest.attacks.scenarios import (
    SG1,
    SINGAPORE,
    AttackScenario,
    Expect,
    Observed,
)
from geoattest.attacks.served import SWEEP_EVERY_S, ServedChip, ServedWorld, Timeline
from geoattest.attacks.world import AttackWorld, WorldChip
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.state import ChainHead

BACKLOG_CADENCES = 6
"""The chip proves for an hour while the host holds its proofs back."""
DRIP_EVERY_S = 25 * 60
"""The host lets a queued proof through every 25 minutes: within the stale window (30
minutes), so proofs keep arriving often enough to look alive."""


def proving_in_singapore(served: ServedWorld) -> ServedChip:
    """An honest Singapore chip whose first proof was accepted."""
    chip = served.enrol(WorldChip("chip-sg", SINGAPORE, "SG", served.world.nearest(SINGAPORE), SG1))
    served.cycle(chip)
    assert chip.results[-1].verdict is Verdict.ALLOWED, chip.results[-1]
    return chip


def drip_backlog(served: ServedWorld, chip: ServedChip) -> Timeline:
    """Sweep by sweep (four a cadence): the chip proves each cadence for
    ``BACKLOG_CADENCES`` and then no more; from five minutes on, the host lets the oldest
    queued proof through every ``DRIP_EVERY_S`` until none is left."""
    timeline = Timeline()
    drip_ticks = DRIP_EVERY_S // SWEEP_EVERY_S
    tick = 0
    while tick < 4 * BACKLOG_CADENCES or chip.attester.outbox.pending():
        tick += 1
        served.world.wait(SWEEP_EVERY_S)
        proving = tick % 4 == 0 and tick <= 4 * BACKLOG_CADENCES
        dripping = tick % drip_ticks == 2
        if proving:
            served.measure(chip)
        if dripping:
            served.deliver(chip, most=1)
        timeline.alerts += served.service.sweep_stale(served.world.now_ns())
    return timeline


def _observed(
    served: ServedWorld, chip: ServedChip, before: ChainHead | None, timeline: Timeline
) -> Observed:
    """The last answer to the chip, every alert, and where the device and chip stand."""
    result = chip.results[-1]
    state = served.service.device_status(chip.device_id, served.world.now_ns()).state
    alerts = ", ".join(f"{a.kind} ({a.detail})" for a in timeline.alerts) or "no alert"
    return Observed(
        result.verdict,
        result.reason,
        tuple(AlertKind(a.kind) for a in served.alerts),
        served.head(chip) != before,
        f"{result.detail}; {len(chip.results)} proofs accepted; {alerts}",
        state.value,
        chip.attester.status(served.now_s()).value,
    )


def play_honest_backlog(world: AttackWorld) -> Observed:
    """The chip proves from Singapore through an hour-long outage of its verifier link,
    then the link comes back and the whole outbox is delivered."""
    with ServedWorld.open(world) as served:
        chip = proving_in_singapore(served)
        before = served.head(chip)
        timeline = served.elapse(chip, BACKLOG_CADENCES, verifier_reachable=False)
        served.cycle(chip)
        return _observed(served, chip, before, timeline)


def play_drip_fed_backlog(world: AttackWorld) -> Observed:
    """The chip proves from Singapore each cadence for an hour, then leaves (no more
    rounds); the host lets one queued proof through every 25 minutes, so the verifier
    hears from the device more often than the stale window until the backlog runs out."""
    with ServedWorld.open(world) as served:
        chip = proving_in_singapore(served)
        before = served.head(chip)
        timeline = drip_backlog(served, chip)
        return _observed(served, chip, before, timeline)


def play_old_backlog_after_departure(world: AttackWorld) -> Observed:
    """The chip proves from Singapore for an hour with its verifier link cut, then leaves;
    an hour later the host delivers the whole backlog at once."""
    with ServedWorld.open(world) as served:
        chip = proving_in_singapore(served)
        before = served.head(chip)
        timeline = served.elapse(chip, BACKLOG_CADENCES, verifier_reachable=False)
        gone = served.elapse(
            chip, BACKLOG_CADENCES, landmarks_reachable=False, verifier_reachable=False
        )
        served.cycle(chip, landmarks_reachable=False)
        timeline.alerts += gone.alerts + served.service.sweep_stale(served.world.now_ns())
        return _observed(served, chip, before, timeline)


STALE = frozenset({AlertKind.STALE_DEVICE})

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "honest_backlog_after_an_outage",
        "clock",
        "Control: the chip proves from Singapore through an hour with its verifier link cut, "
        "then the link comes back and the outbox is delivered.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            alerts=STALE,
            advances=True,
            device_state="ATTESTING",
            licence="licensed",
        ),
        play_honest_backlog,
    ),
    AttackScenario(
        "drip_fed_backlog_after_the_chip_left",
        "clock",
        "The chip proves from Singapore for an hour, then leaves; the host lets one queued "
        "proof through every 25 minutes until the outbox is empty.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            alerts=STALE,
            advances=True,
            device_state="STALE",
            licence="degraded",
        ),
        play_drip_fed_backlog,
    ),
    AttackScenario(
        "old_backlog_delivered_after_the_chip_left",
        "clock",
        "The chip proves from Singapore for an hour with its verifier link cut and leaves; "
        "an hour later the host delivers the whole backlog.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            alerts=STALE,
            advances=True,
            device_state="STALE",
            licence="degraded",
        ),
        play_old_backlog_after_departure,
    ),
)
"""The clock group: a control and two attacks."""
