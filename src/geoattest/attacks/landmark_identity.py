"""A landmark is its key, its operator and its site, not its id.

An adversary who runs landmarks (or has bought one operator) tries to make one party
count as several: one key registered under two ids, two ids of one operator, two keys on
one host, or a key revoked under one id presenting under another. The registry refuses a
key it already holds; the pipeline counts fault domains (one operator, or sites within
100 m of each other) for the quorum and for the landmark faults the policy tolerates,
and a revoked key is untrusted under every id.

In this world the Singapore data centre holds lm-sin and lm-sin-b, two operators' landmarks
in buildings 500 m apart; the default policy tolerates one lying operator.
"""

from __future__ import annotations

from geoattest.attacks.scenarios import (
    SG1,
    SHENZHEN,
    SINGAPORE,
    AttackScenario,
    Observed,
    _expect,
    _honest,
    _rejected,
)
from geoattest.attacks.world import LANDMARKS, AttackWorld, LandmarkClock
from geoattest.errors import LandmarkKeyReusedError, Reason
from geoattest.pki import LandmarkRecord
from geoattest.v1 import envelope_pb2
from geoattest.verdict import Verdict

THREAT = "landmark_identity"
DATACENTRE = ("lm-sin", "lm-sin-b", "lm-jhb", "lm-kul")
"""An honest Singapore chip's landmarks: both of its data centre's, then the nearest."""


def play_honest_two_operators(world: AttackWorld) -> envelope_pb2.Envelope:
    return _honest(world, "chip-sg", SINGAPORE, "SG", landmarks=DATACENTRE, datacentre=SG1)


def play_key_registered_under_a_second_id(world: AttackWorld) -> Observed:
    """lm-sin's operator asks the registry authority to list lm-sin's key again as
    lm-sin-x, an "independent" landmark at another site."""
    twin = LandmarkRecord(
        "lm-sin-x",
        *LANDMARKS["lm-kul"],
        world.landmark_signers["lm-sin"].verifying_key,
        operator="kul-carrier",
    )
    before = world.appraiser.landmarks
    try:
        world.register(twin)
    except LandmarkKeyReusedError as refused:
        return Observed(
            Verdict.REJECTED,
            refused.reason,
            (),
            world.appraiser.landmarks != before,
            refused.detail,
        )
    return Observed(Verdict.ALLOWED, None, (), True, "registered lm-sin's key a second time")


def _both_datacentre_landmarks_lie(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-sin and lm-sin-b under-report a Shenzhen chip's rounds; it measures them and
    the two nearest honest landmarks."""
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)
    world.landmark_clocks["lm-sin-b"] = LandmarkClock(rate=0.001)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=DATACENTRE)


def play_one_operator_fills_the_quorum(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-sin and lm-sin-b (one operator) under-report a Shenzhen chip's rounds; its proof
    carries them and lm-jhb: three receipts, two operators."""
    world.landmark_clocks["lm-sin"] = LandmarkClock(rate=0.001)
    world.landmark_clocks["lm-sin-b"] = LandmarkClock(rate=0.001)
    return _honest(world, "chip-sz", SHENZHEN, "SG", landmarks=("lm-sin", "lm-sin-b", "lm-jhb"))


def play_key_revoked_under_another_id(world: AttackWorld) -> envelope_pb2.Envelope:
    """lm-jhb was revoked (its id and its key); its operator re-registers the same key as
    lm-jhb-2 and vouches for an honest-looking Singapore chip."""
    landmarks = ("lm-sin", "lm-sin-b", "lm-jhb-2", "lm-kul")
    return _honest(world, "chip-sg", SINGAPORE, "SG", landmarks=landmarks, datacentre=SG1)


_SITES_WITHOUT_JHB = {k: v for k, v in LANDMARKS.items() if k != "lm-jhb"}

SCENARIOS: tuple[AttackScenario, ...] = (
    AttackScenario(
        "honest_chip_with_two_operators_in_its_data_centre",
        THREAT,
        "Control: honest Singapore chip measuring its data centre's two landmarks of "
        "independent operators, under the default policy (one lying operator tolerated).",
        _expect(Verdict.ALLOWED),
        play_honest_two_operators,
    ),
    AttackScenario(
        "one_key_registered_under_two_ids",
        THREAT,
        "lm-sin's operator registers lm-sin's key a second time, as lm-sin-x at another "
        "site under another operator's name, so that one key would count twice.",
        _rejected(Reason.LANDMARK_KEY_REUSED),
        play_key_registered_under_a_second_id,
    ),
    AttackScenario(
        "one_operator_two_ids_collude_to_outvote",
        THREAT,
        "One operator runs both Singapore data-centre landmarks (lm-sin, lm-sin-b); both "
        "under-report a Shenzhen chip's rounds, so each alone would outvote the policy's "
        "one tolerated liar. They count as one operator: leaving it out is INCONCLUSIVE.",
        _expect(Verdict.INCONCLUSIVE),
        _both_datacentre_landmarks_lie,
        {"operators": {"lm-sin-b": "lm-sin"}},
    ),
    AttackScenario(
        "two_keys_on_one_host",
        THREAT,
        "lm-sin-b is registered under an operator of its own but at lm-sin's site (two keys "
        "on one host); both under-report a Shenzhen chip's rounds. One site is one fault "
        "domain: leaving it out is INCONCLUSIVE.",
        _expect(Verdict.INCONCLUSIVE),
        _both_datacentre_landmarks_lie,
        {"registered_sites": {**LANDMARKS, "lm-sin-b": LANDMARKS["lm-sin"]}},
    ),
    AttackScenario(
        "one_operator_fills_the_quorum_with_two_ids",
        THREAT,
        "One operator runs lm-sin and lm-sin-b; both under-report a Shenzhen chip's rounds, "
        "and its proof carries them and lm-jhb: three receipts, but two operators, short of "
        "the quorum of three.",
        _rejected(Reason.QUORUM_NOT_MET),
        play_one_operator_fills_the_quorum,
        {"operators": {"lm-sin-b": "lm-sin"}},
    ),
    AttackScenario(
        "revoked_key_presents_under_another_id",
        THREAT,
        "lm-jhb's id and key are revoked and it leaves the registry; its operator registers "
        "the same key as lm-jhb-2 and vouches for a Singapore chip with it.",
        _rejected(Reason.REVOKED_LANDMARK),
        play_key_revoked_under_another_id,
        {
            "aliases": {"lm-jhb-2": "lm-jhb"},
            "registered_sites": {**_SITES_WITHOUT_JHB, "lm-jhb-2": LANDMARKS["lm-jhb"]},
            "revoked_landmarks": frozenset({"lm-jhb"}),
            "revoked_keys_of": frozenset({"lm-jhb"}),
        },
    ),
)
