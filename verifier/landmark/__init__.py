"""The landmark: a UDP timing server at surveyed coordinates that signs timing receipts.

:class:`LandmarkServer` serves rounds; :mod:`geoattest.verifier.landmark.dispatch` holds the
rules (rate limits, bounded open rounds, expiry, counters) free of sockets and clocks;
:mod:`geoattest.verifier.landmark.clock` turns kernel receive stamps into sound RTTs.
"""

from geoattest.verifier.landmark.dispatch import Counters, Limits
from geoattest.verifier.landmark.server import LandmarkIdentity, LandmarkServer

__all__ = ["Counters", "LandmarkIdentity", "LandmarkServer", "Limits"]
