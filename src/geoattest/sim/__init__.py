"""Fleet studies: what a deployment of landmarks can prove about many chips at once.

Public API::

    from geoattest.sim import FleetConfig, run_fleet, check_sample
    result = run_fleet(scenario, FleetConfig(devices=1_000_000))
    result.sample_check = check_sample(scenario, result)

See ``docs/SIMULATION.md``.
"""
