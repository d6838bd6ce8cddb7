"""Network simulation: honest latency, adversaries, a live UDP relay and a virtual network.

- :mod:`~geoattest.netsim.latency`: the calibrated honest-path latency model.
- :mod:`~geoattest.netsim.adversary`: what an owner of the path can do to a datagram.
- :mod:`~geoattest.netsim.route`: one chip-landmark path (model + adversary + physics).
- :mod:`~geoattest.netsim.timer`: a thread that fires callbacks within tens of microseconds.
- :mod:`~geoattest.netsim.relay`: live mode, a netem-like UDP relay on loopback.
- :mod:`~geoattest.netsim.virtual`: virtual mode, an in-memory network on a virtual clock.
"""
