"""Landmark planning: what a deployment can certify, where new landmarks help, a report.

Public API::

    from geoattest.plan.coverage import measure
    coverage, _ = measure(policy, "JP", landmarks, landmarks_per_chip=4)
    coverage.stretches["median"].population_share

Commands: ``geoattest plan coverage``, ``geoattest plan landmarks``, ``geoattest report``.
See ``docs/PLANNING.md`` for what the figures mean and what they assume.
"""
