"""Sans-I/O protocol state machines: they are fed bytes, times and randomness.

Nothing in this package opens a socket or reads a clock, so the live drivers
(UDP, gRPC), the virtual network and the tests all run the same logic, as h11
and python-tuf's trusted metadata set do.
"""
