"""Macro benchmarks behind ``geoattest bench NAME``: every figure a ratio to a baseline
measured in the same run, because the machines they run on are shared and noisy."""
