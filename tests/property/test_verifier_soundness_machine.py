"""The whole system, stateful: no affirming result unless the chip is truly inside the
licence in force, and no alert against a device from evidence its key did not sign.

A hypothesis state machine drives the real verifier service over its SQLite store
(:class:`soundness_world.SoundnessWorld`): chips are enrolled, carried between sites (at an
airliner's speed, or teleported as only an adversary's bookkeeping could), prove honestly
through their real agents and outboxes, or offline and drip-fed later; the adversary
replays proofs, clones keys onto forked chains, forges proofs (unknown keys, another
device's key, mutated bytes), and turns up to ``FAULTS`` landmark operators into liars; the
operator narrows, widens, renews and withdraws licences, registers and revokes landmarks,
audits them, and restarts the service on the same database. After every step the world,
which knows where every receipt was measured, checks every answer and alert given.

How many examples: each example is a fresh deployment and up to ``STEPS`` steps, and every
counterexample found so far needs at most six (enrol, a licence change or a lie, a proof);
sequences of that length over these rules are covered many times over by a few dozen
examples, so the fast set runs ``GEOATTEST_SOUNDNESS_EXAMPLES`` (default 20) examples per
machine, derandomized so that it checks the same sequences on every run, and the slow set
runs 300 fresh random examples of the machine with every rule.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from soundness_world import FAULTS, REGIONS, SITES, UNREGISTERED, SoundnessWorld

from geoattest.attacks.served import CADENCE_S
from geoattest.attacks.world import LANDMARKS
from geoattest.crypto import KeySigner

EXAMPLES = int(os.environ.get("GEOATTEST_SOUNDNESS_EXAMPLES", "20"))
SLOW_EXAMPLES = 300
STEPS = 30
SHRINK = os.environ.get("GEOATTEST_SOUNDNESS_SHRINK", "") == "1"
"""Shrink a counterexample to its shortest form: minutes of work, so only on request."""
MAX_CHIPS = 3

PHASES = tuple(Phase)
CORE = "core"
LICENCES = "licences"
JUNK = "junk"

site_names = st.sampled_from(sorted(SITES))
region_names = st.sampled_from(sorted(REGIONS))
landmark_ids = st.sampled_from(sorted(LANDMARKS))
chip_numbers = st.integers(0, MAX_CHIPS - 1)
picks = st.integers(0, 1 << 16)


class SoundnessMachine(RuleBasedStateMachine):
    """Every rule of the whole system; a subclass leaves groups of rules out."""

    groups: ClassVar[frozenset[str]] = frozenset({CORE, LICENCES, JUNK})

    def __init__(self) -> None:
        super().__init__()
        self._directory = tempfile.TemporaryDirectory(prefix="geoattest-soundness-")
        self.world = SoundnessWorld(Path(self._directory.name))

    def teardown(self) -> None:
        self.world.close()
        self._directory.cleanup()

    def _chip(self, number: int) -> str:
        return sorted(self.world.chips)[number % len(self.world.chips)]

    def _has_chips(self) -> bool:
        return bool(self.world.chips)

    # --- chips --------------------------------------------------------------------------

    @initialize()
    def first_chip(self) -> None:
        """Every deployment starts with a chip in its licensed Singapore data centre."""
        self.world.enrol_chip("Singapore", "SG")

    @precondition(lambda self: len(self.world.chips) < MAX_CHIPS)
    @rule(site=site_names, region=region_names)
    def enrol(self, site: str, region: str) -> None:
        self.world.enrol_chip(site, region)

    @rule(chip=chip_numbers, site=site_names, teleport=st.booleans())
    def move(self, chip: int, site: str, teleport: bool) -> None:
        self.world.move(self._chip(chip), site, teleport=teleport)

    @rule(chip=chip_numbers, landmarks=st.sets(landmark_ids, min_size=3, max_size=5))
    def host_picks_landmarks(self, chip: int, landmarks: set[str]) -> None:
        self.world.choose_landmarks(self._chip(chip), sorted(landmarks))

    @rule(chip=chip_numbers, online=st.booleans())
    def prove(self, chip: int, online: bool) -> None:
        """A cadence passes and the agent cycles: measures, keeps the proof, and delivers
        its outbox, unless the host has cut the verifier off."""
        self.world.world.wait(CADENCE_S)
        self.world.cycle(self.world.chips[self._chip(chip)], verifier_reachable=online)

    @rule(chip=chip_numbers, most=st.integers(1, 3))
    def drip_feed(self, chip: int, most: int) -> None:
        """The host lets the oldest few proofs of the backlog through."""
        self.world.deliver(self.world.chips[self._chip(chip)], most=most)

    @rule(seconds=st.sampled_from([60, 3600, 6 * 3600, 3 * 24 * 3600]), restart=st.booleans())
    def time_passes(self, seconds: int, restart: bool) -> None:
        """Time passes, the stale sweep runs, and the service may restart on its store."""
        self.world.world.wait(seconds)
        self.world.service.sweep_stale(self.world.world.now_ns())
        if restart:
            self.world.restart()

    # --- the adversary ------------------------------------------------------------------

    @precondition(lambda self: bool(self.world.sent))
    @rule(pick=picks)
    def replay(self, pick: int) -> None:
        self.world.submit_evidence(self.world.sent[pick % len(self.world.sent)])

    @rule(chip=chip_numbers, site=site_names, fresh=st.booleans(), pick=picks)
    def clone(self, chip: int, site: str, fresh: bool, pick: int) -> None:
        """A copy of a device key proves on a chain forked from its agent's (a fresh
        copy of the chain as it is now, or one made earlier, proving again)."""
        clones = self.world.clones
        if fresh or not clones:
            self.world.clone(self._chip(chip), site)
            clones = self.world.clones
        self.world.clone_proves(clones[-1] if fresh else clones[pick % len(clones)])

    @rule(
        victim=chip_numbers,
        signer=st.none() | chip_numbers,
        site=site_names,
    )
    def forge(self, victim: int, signer: int | None, site: str) -> None:
        """A proof naming the victim, signed by a key the verifier never enrolled or by
        an enrolled device's (itself on a fresh chain, or another)."""
        key = (
            KeySigner.generate() if signer is None else self.world.chips[self._chip(signer)].signer
        )
        self.world.forge(self._chip(victim), site, key)

    @precondition(lambda self: JUNK in self.groups and bool(self.world.sent))
    @rule(pick=picks, position=picks, flip=st.integers(1, 255))
    def mutate(self, pick: int, position: int, flip: int) -> None:
        """A proof as sent, with one byte changed: signed by nobody."""
        data = bytearray(self.world.sent[pick % len(self.world.sent)].SerializeToString())
        data[position % len(data)] ^= flip
        self.world.submit_evidence(bytes(data))

    @precondition(lambda self: len(self.world.lying - self.world.revoked_landmarks) < FAULTS)
    @rule(landmark=landmark_ids)
    def landmark_lies(self, landmark: str) -> None:
        self.world.lie(landmark)

    # --- the operator -------------------------------------------------------------------

    @precondition(lambda self: LICENCES in self.groups)
    @rule(
        chip=chip_numbers,
        region=st.none() | region_names,
        valid_for=st.sampled_from([0, 600, 3600, 365 * 24 * 3600]),
    )
    def licence(self, chip: int, region: str | None, valid_for: int) -> None:
        """Narrow, widen, move, renew or shorten the licence (``valid_for`` seconds from
        now), or withdraw it (no region)."""
        if region is None:
            self.world.withdraw(self._chip(chip))
        else:
            self.world.license(self._chip(chip), region, valid_for)

    @rule(landmark=landmark_ids, revoke=st.booleans())
    def registry(self, landmark: str, revoke: bool) -> None:
        """The operator registers a new landmark or revokes one, and restarts."""
        if revoke and len(self.world.revoked_landmarks) < 2:
            self.world.reconfigure(revoke=landmark)
        elif not revoke and landmark in UNREGISTERED:
            self.world.reconfigure(register=landmark)

    @rule(landmarks=st.sets(landmark_ids, min_size=3, max_size=3))
    def audit_landmarks(self, landmarks: set[str]) -> None:
        """Three landmarks time each other (a full audit of all is too dear per step)."""
        self.world.audit(landmarks)

    # --- the promises -------------------------------------------------------------------

    @invariant()
    def sound(self) -> None:
        assert not self.world.violations, self.world.violations


class CoreMachine(SoundnessMachine):
    """The service's state without live licences or junk."""

    groups = frozenset({CORE})


class LicenceMachine(SoundnessMachine):
    """Licences change while chips prove."""

    groups = frozenset({CORE, LICENCES})


class JunkMachine(SoundnessMachine):
    """Evidence no device signed."""

    groups = frozenset({CORE, JUNK})


def _run(machine: type[SoundnessMachine], examples: int, *, derandomize: bool) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=derandomize,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            phases=PHASES if SHRINK else [p for p in PHASES if p is not Phase.shrink],
        ),
    )


def test_core_state_is_sound() -> None:
    _run(CoreMachine, EXAMPLES, derandomize=True)


def test_live_licences_are_sound() -> None:
    _run(LicenceMachine, EXAMPLES, derandomize=True)


def test_junk_speaks_for_no_device() -> None:
    _run(JunkMachine, EXAMPLES, derandomize=True)


def test_every_rule_is_sound() -> None:
    _run(SoundnessMachine, EXAMPLES, derandomize=True)


@pytest.mark.slow
def test_every_rule_is_sound_over_many_examples() -> None:
    _run(SoundnessMachine, SLOW_EXAMPLES, derandomize=False)
