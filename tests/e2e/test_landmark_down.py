"""A landmark that goes down never turns into a verdict better than the remaining evidence
supports: a Frankfurt chip is ALLOWED only thanks to the two landmarks in its data centre
(two operators: the default policy tolerates one lying); once one is SIGKILLed, the other
cannot vouch alone and the far landmarks' wider bounds cannot prove it is in Germany."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from live_fleet import LiveFleet, running_fleet, write_scenario

from geoattest.pki.tls import TlsIdentity
from geoattest.v1 import evidence_pb2
from geoattest.wire.client import VerifierClient, tls_credentials

CHIP = "chip-de-01"
DC_LANDMARK = "lm-fra"
OTHER_DC_LANDMARK = "lm-fra-2"
CADENCE_S = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LiveFleet]:
    scenario = write_scenario(
        tmp_path / "scenario.toml",
        landmarks=["lm-fra", "lm-fra-2", "lm-zrh", "lm-ams", "lm-cdg"],
        chips=[CHIP],
        quorum=3,
        cadence_s=CADENCE_S,
    )
    with running_fleet(scenario, tmp_path / "work", CADENCE_S) as live:
        yield live


def measured(result: dict[str, Any], landmark_id: str) -> bool:
    return any(b["landmark_id"] == landmark_id for b in result["bounds"])


def test_killing_the_datacentre_landmark_never_yields_allowed(fleet: LiveFleet):
    events = fleet.events(CHIP)
    events.wait_for(
        "two ALLOWED results",
        lambda seen: sum(1 for e in seen if e.get("verdict") == "ALLOWED") >= 2,
    )

    landmark = fleet.fleet.landmarks[DC_LANDMARK].process
    landmark.kill()
    assert landmark.wait(timeout=30) == -signal.SIGKILL
    events.wait_for(
        f"two results without {DC_LANDMARK}",
        lambda seen: (
            sum(1 for e in seen if e.get("event") == "result" and not measured(e, DC_LANDMARK)) >= 2
        ),
    )
    results = events.results()

    # After the kill: no bound from the dead landmark, and never ALLOWED.
    first_without = next(i for i, r in enumerate(results) if not measured(r, DC_LANDMARK))
    after = results[first_without:]
    assert not any(measured(r, DC_LANDMARK) for r in after), "a dead landmark measured"
    assert all(r["verdict"] in {"INCONCLUSIVE", "REJECTED"} for r in after), [
        (r["verdict"], r["reason"]) for r in after
    ]
    for r in after:
        if r["verdict"] == "INCONCLUSIVE":
            far = [b for b in r["bounds"] if b["landmark_id"] != OTHER_DC_LANDMARK]
            assert min(b["bound_km"] for b in far) > 150, r["bounds"]

    # The verifier's own record agrees (asked over the demo's mutual TLS, as its operator).
    credentials = tls_credentials(TlsIdentity.load(fleet.fleet.workspace.operator_tls))

    async def last_verdict() -> int:
        async with VerifierClient(fleet.fleet.verifier_address, credentials=credentials) as client:
            return (await client.device_status(CHIP)).last_verdict

    assert asyncio.run(last_verdict()) != evidence_pb2.VERDICT_ALLOWED

    # The ALLOWED results before it were genuine: signed by the verifier, with a tight
    # bound from the data-centre landmark.
    jwks = json.loads((fleet.fleet.workspace.result_key / "jwks.json").read_text())
    keys = jwt.PyJWKSet.from_dict(jwks)
    earlier = [r for r in results[:first_without] if r["verdict"] == "ALLOWED"]
    assert len(earlier) >= 2
    for r in earlier:
        token = r["result_token"]
        # Expired by now (a result licenses only the stale window after its evidence).
        claims = jwt.decode(
            token,
            keys[jwt.get_unverified_header(token)["kid"]],
            algorithms=["ES256"],
            options={"verify_exp": False},
        )
        submod = claims["submods"][f"chip-{CHIP}"]
        assert submod["ear.status"] == "affirming"
        assert submod["ear.x-geoattest.verdict"] == "ALLOWED"
        assert submod["ear.x-geoattest.counter"] == r["counter"]
        tight = [b for b in submod["ear.x-geoattest.bounds"] if b["landmark_id"] == DC_LANDMARK]
        assert tight, submod["ear.x-geoattest.bounds"]
        assert tight[0]["bound_km"] < 150
