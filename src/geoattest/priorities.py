"""Real-time (``SCHED_FIFO``) priorities of the threads whose promptness a timed exchange
sees, in one place so that their order is plain. Each is taken only where the process may
(``CAP_SYS_NICE``); 0 would leave a thread at normal priority. Beside them, how long a
landmark polls for a short path's answer, which keeps its wake-up out of the same turn.

The landmark's serving thread sits above the agent's timed phase: agents spinning through
their timed phases on the landmark's host (a demo, a benchmark) then never hold back the
challenge they wait for.
"""

AGENT_TIMED_PHASE = 10
"""The answering thread during a round's timed phase
(:attr:`geoattest.wire.rounds.RoundSettings.realtime_priority`)."""
LANDMARK = 20
"""The landmark's serving thread, as ``geoattest landmark serve`` runs it by default."""
LANDMARK_POLL_US = 50.0
"""How long ``geoattest landmark serve`` (and the benchmarks' landmarks) poll for the answer
after a challenge on a path whose last exchange took at most that long: a data centre's
path, never the Internet's (``LandmarkServer``'s ``spin_s``, ``--spin-us``)."""
