"""Licences are live data: the operator changes a licence and the next proof is judged by
it, with no re-enrolment and no restart.

Each scenario runs the real verifier service and agent (:class:`ServedWorld`): an honest
chip in Singapore proves, the operator changes its licence in the verifier's store (as
``geoattest verifier licences apply`` or SIGHUP to ``verifier serve`` do), and the chip
proves again. What is observed is the verifier's answer to that next proof, the alerts
stored, whether the chain head moved, and what the chip's agent may do once the licence
in force says so.
"""

from __future__ import annotations

from dataclasses import replace

import jwt

from geoattest.attacks.scenarios import SG1, SINGAPORE, AttackScenario, Expect, Observed
from geoattest.attacks.served import ServedChip, ServedWorld
from geoattest.attacks.world import AttackWorld, WorldChip
from geoattest.attestor.licence import AgentLicence
from geoattest.errors import Reason
from geoattest.units import SECOND_NS
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.results import CLAIM_PREFIX, submod_name
from geoattest.verifier.standing import Standing
from geoattest.verifier.state import ChainHead

THREAT = "licence"
MINUTE_S = 60


def standing_state(state: str, standing: Standing) -> str:
    """The device's state with what its status says of the last verdict: a relying party
    reading it must not take an ALLOWED that no longer stands for a licensed chip."""
    stands = "stands" if standing is Standing.STANDS else f"taken away: {standing.value}"
    return f"{state}, last verdict {stands}"


STANDS = standing_state("ATTESTING", Standing.STANDS)


def proving(served: ServedWorld, region: str, *, licence_s: int | None = None) -> ServedChip:
    """An honest chip in a Singapore data centre, licensed for ``region``, after its first
    proof."""
    chip = WorldChip("chip-sg", SINGAPORE, region, served.world.nearest(SINGAPORE), SG1)
    enrolled = served.enrol(chip) if licence_s is None else served.enrol(chip, licence_s=licence_s)
    served.cycle(enrolled)
    return enrolled


def change_licence(served: ServedWorld, chip: ServedChip, **terms: object) -> None:
    """The operator changes the chip's licence in force (a new version)."""
    current = served.licences.current(chip.device_id)
    served.licences.change(replace(current, **terms), served.world.now_ns())  # type: ignore[arg-type]


def token_claims(served: ServedWorld, chip: ServedChip) -> dict[str, object]:
    """The claims of the last result the chip was given, checked with the verifier's key."""
    token = chip.results[-1].token
    key = jwt.PyJWK(served.service.jwks()["keys"][0]).key  # type: ignore[index]
    claims = jwt.decode(token, key, algorithms=["ES256"], options={"verify_exp": False})
    submod: dict[str, object] = claims["submods"][submod_name(chip.device_id)]
    return {"exp": claims["exp"], **submod}


def _observe(
    served: ServedWorld, chip: ServedChip, before: ChainHead | None, *, hold_s: int | None = None
) -> Observed:
    """The verifier's answer to the chip's last proof, with the licence its result names
    and the alerts stored. ``licence`` is what the chip's agent may do now or, with
    ``hold_s``, whether the last result alone still licenses the chip ``hold_s`` later
    ("licensed" or "expired": older results are not recalled, see the threat model).
    ``device_state`` is the device's status then: its state and whether its last verdict
    still stands (:func:`standing_state`)."""
    result = chip.results[-1]
    claims = token_claims(served, chip)
    named = claims.get(f"{CLAIM_PREFIX}licence", {})
    in_force = served.licences.current(chip.device_id)
    exp_min = (int(str(claims["exp"])) - served.now_s()) / MINUTE_S
    licence = chip.attester.status(served.now_s()).value
    if hold_s is not None:
        served.world.wait(hold_s)
        holder = AgentLicence(chip.device_id, served.service.jwks(), grace_s=0, booted_at_s=0)
        licence = "licensed" if holder.offer(result.token, served.now_s()) else "expired"
    status = served.service.device_status(chip.device_id, served.world.now_ns())
    return Observed(
        result.verdict,
        result.reason,
        tuple(AlertKind(a.kind) for a in served.store.alerts(chip.device_id)),
        served.head(chip) != before,
        f"{result.detail}; token names licence {named} (in force: v{in_force.version}), "
        f"expires in {exp_min:.0f} min",
        standing_state(status.state.value, status.standing),
        licence,
    )


def play_licence_control(world: AttackWorld) -> Observed:
    """A chip licensed for Singapore proves there twice; nothing changes its licence."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG")
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before)


def play_licence_narrowed(world: AttackWorld) -> Observed:
    """Licensed for Singapore and Malaysia; the operator narrows the licence to Malaysia."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG-MY")
        change_licence(served, chip, region="MY")
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before)


def play_licence_withdrawn(world: AttackWorld) -> Observed:
    """The operator withdraws the licence of a chip that keeps proving from its site."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG")
        served.licences.withdraw(chip.device_id, world.now_ns())
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before)


def play_licence_widened(world: AttackWorld) -> Observed:
    """Licensed for Malaysia only, the chip in Singapore is OUTSIDE; the operator widens the
    licence to Singapore and Malaysia."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "MY")
        change_licence(served, chip, region="SG-MY")
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before)


def play_licence_renewed(world: AttackWorld) -> Observed:
    """A licence that ends in 20 minutes is renewed for a year; the chip proves, and its
    new result still licenses it 25 minutes on."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG", licence_s=20 * MINUTE_S)
        renewed = (served.now_s() + 365 * 24 * 3600) * SECOND_NS
        change_licence(served, chip, valid_until_ns=renewed)
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before, hold_s=25 * MINUTE_S)


def play_licence_shortened(world: AttackWorld) -> Observed:
    """A year's licence is cut to end in 10 minutes; the chip proves at once, and its new
    result licenses nothing 15 minutes on."""
    with ServedWorld.open(world) as served:
        chip = proving(served, "SG")
        change_licence(served, chip, valid_until_ns=(served.now_s() + 10 * MINUTE_S) * SECOND_NS)
        before = served.head(chip)
        served.cycle(chip)
        return _observe(served, chip, before, hold_s=15 * MINUTE_S)


def _allowed(licence: str, device_state: str = STANDS) -> Expect:
    """ALLOWED on evidence, the device attesting and its agent's licence as given."""
    return Expect(
        frozenset({Verdict.ALLOWED}), advances=True, device_state=device_state, licence=licence
    )


SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "licence_control",
        THREAT,
        "Control: a chip licensed for Singapore proves from its Singapore data centre; its "
        "licence does not change.",
        _allowed("licensed"),
        play_licence_control,
    ),
    AttackScenario(
        "licence_narrowed",
        THREAT,
        "The operator narrows a Singapore-and-Malaysia licence to Malaysia while the chip "
        "stays in Singapore; the chip is not re-enrolled.",
        Expect(
            frozenset({Verdict.OUTSIDE}),
            alerts=frozenset({AlertKind.OUTSIDE_LICENSED_REGION}),
            advances=True,
            device_state=STANDS,  # the OUTSIDE, judged under the narrowed licence
            licence="grace",  # a result that does not affirm ends the agent's licence
        ),
        play_licence_narrowed,
    ),
    AttackScenario(
        "licence_withdrawn",
        THREAT,
        "The operator withdraws the licence of a chip that keeps proving from its licensed site.",
        Expect(
            frozenset({Verdict.REJECTED}),
            Reason.LICENCE_WITHDRAWN,
            frozenset({AlertKind.LICENCE_WITHDRAWN}),
            # the result from before the withdrawal licenses the agent until it expires;
            # the device's status already says that ALLOWED no longer stands
            device_state=standing_state("ATTESTING", Standing.LICENCE_WITHDRAWN),
            licence="licensed",
        ),
        play_licence_withdrawn,
    ),
    AttackScenario(
        "licence_widened",
        THREAT,
        "The operator widens a Malaysia licence to Singapore and Malaysia for a chip in "
        "Singapore that proved OUTSIDE; the chip is not re-enrolled.",
        Expect(
            frozenset({Verdict.ALLOWED}),
            alerts=frozenset({AlertKind.OUTSIDE_LICENSED_REGION}),  # its first proof's
            advances=True,
            device_state=STANDS,
            licence="licensed",
        ),
        play_licence_widened,
    ),
    AttackScenario(
        "licence_renewed",
        THREAT,
        "The operator renews a licence 20 minutes before it ends; the chip's next result "
        "lasts past the old end.",
        _allowed("licensed"),
        play_licence_renewed,
    ),
    AttackScenario(
        "licence_shortened",
        THREAT,
        "The operator cuts a year's licence to end in 10 minutes; the chip's next result "
        "ends with it.",
        _allowed("expired", standing_state("ATTESTING", Standing.LICENCE_EXPIRED)),
        play_licence_shortened,
    ),
)
