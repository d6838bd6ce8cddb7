"""The examples in module docstrings run, so the usage they show stays true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "geoattest.attestor.gpu",
    "geoattest.crypto",
    "geoattest.geo",
    "geoattest.netsim.latency",
    "geoattest.pki",
    "geoattest.protocol.round",
    "geoattest.verifier.pipeline",
    "geoattest.verifier.store",
    "geoattest.wire.envelope",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    tests = doctest.DocTestFinder().find(importlib.import_module(name))
    assert any(test.examples for test in tests), f"{name} shows no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
