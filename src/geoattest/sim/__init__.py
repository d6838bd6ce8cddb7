"""Fleet studies: what a deployment of landmarks can prove about many chips at once.

Public API::

    from geoattest.sim import FleetConfig, check_sample, run_fleet
    result = run_fleet(scenario, FleetConfig(devices=1_000_000))
    check_sample(scenario, result)     # replays a sample through the real pipeline
    assert result.verified

See ``docs/SIMULATION.md``.
"""

from geoattest.sim.fleet import FleetConfig, FleetResult, Placement, Strategy, run_fleet
from geoattest.sim.replay import check_sample

__all__ = ["FleetConfig", "FleetResult", "Placement", "Strategy", "check_sample", "run_fleet"]
