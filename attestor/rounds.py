"""The agent's round runner over real sockets.

The round driver itself (:func:`~geoattest.wire.rounds.run_round` and its settings) is in
:mod:`geoattest.wire.rounds`, shared with the landmarks' peer audits; its names are
re-exported here for the agent's callers.

Example::

    secrets = RoundSecrets(os.urandom)      # one per agent: r is never reused
    run = round_runner(endpoints, "dev-1", device_signer, secrets)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from geoattest.attestor.agent import RoundRunner
from geoattest.crypto import Signer
from geoattest.protocol.round import RoundSecrets
from geoattest.v1 import envelope_pb2
from geoattest.wire.rounds import (
    LandmarkEndpoint,
    LandmarkSockets,
    PathFloors,
    RoundFailedError,
    RoundOutcome,
    RoundSettings,
    run_round,
    run_rounds,
)

__all__ = [
    "LandmarkEndpoint",
    "LandmarkSockets",
    "PathFloors",
    "RoundFailedError",
    "RoundOutcome",
    "RoundSettings",
    "round_runner",
    "run_round",
    "run_rounds",
]

log = logging.getLogger("geoattest.agent.rounds")

DEFAULT_SETTINGS = RoundSettings()


def round_runner(
    endpoints: Sequence[LandmarkEndpoint],
    device_id: str,
    signer: Signer,
    secrets: RoundSecrets,
    settings: RoundSettings = DEFAULT_SETTINGS,
) -> RoundRunner:
    """The :class:`~geoattest.attestor.agent.Attester`'s round runner over real sockets;
    its rounds are adaptive, on the floors its own receipts show, each landmark's over one
    socket kept for the runner's life."""
    by_id = {e.landmark_id: e for e in endpoints}
    floors = PathFloors()
    sockets = LandmarkSockets()

    def run(landmark_id: str) -> envelope_pb2.Envelope | None:
        endpoint = by_id.get(landmark_id)
        if endpoint is None:
            log.warning("no address for landmark %s", landmark_id)
            return None
        try:
            return run_round(
                endpoint, device_id, signer, secrets, settings, floors=floors, sockets=sockets
            )
        except RoundFailedError as failure:
            log.warning("round failed: %s", failure)
            return None

    return run
