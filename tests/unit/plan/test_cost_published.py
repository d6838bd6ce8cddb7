"""The published ping-based model, reproduced from its stated totals by our arithmetic."""

from __future__ import annotations

import pytest

from geoattest.plan.cost import OWNED, RENTED, load_inputs
from geoattest.plan.published import (
    PingModel,
    break_even,
    derive,
    load_published,
    reproduce,
    scale_chips,
)


def test_the_stated_figures_are_the_ones_the_docs_quote() -> None:
    model, software = load_published()
    assert model.chips == 3_000_000
    assert model.landmarks == (12, 500)
    assert model.totals[RENTED] == (2.25e6, 72.4e6)
    assert model.totals[OWNED] == (3.03e6, 28.7e6)
    assert model.missed_diversion_share == 0.10
    assert software.ceiling_usd == 1e6
    assert "not be read" in model.source
    assert "iaps.ai" in software.source


def test_derived_inputs_by_hand() -> None:
    model, _ = load_published()
    lines = derive(model)
    # (72.4M - 2.25M) / (500 - 12) = 143,750 per landmark; 2.25M - 12 x 143,750 = 525,000.
    assert lines[RENTED].per_landmark == pytest.approx(143_750)
    assert lines[RENTED].fixed == pytest.approx(525_000)
    assert lines[OWNED].per_landmark == pytest.approx(25.67e6 / 488)
    # Owning costs more up front and less per landmark: it wins above about 20.6.
    assert break_even(lines) == pytest.approx(
        (lines[OWNED].fixed - 525_000) / (143_750 - 52_602.46), rel=1e-6
    )


def test_our_arithmetic_gives_the_published_totals_from_the_derived_inputs() -> None:
    model, _ = load_published()
    rows = reproduce(model, load_inputs(("A",)))
    assert [(r.option, r.landmarks) for r in rows] == [
        (RENTED, 12),
        (RENTED, 500),
        (OWNED, 12),
        (OWNED, 500),
    ]
    for row in rows:
        assert row.reproduced_usd == pytest.approx(row.published_usd, rel=1e-9)
    assert rows[0].to_json()["per_chip_usd"] == pytest.approx(0.75)


def test_a_model_with_other_totals_is_reproduced_too() -> None:
    """The reproduction is arithmetic, not a table of the four published numbers."""
    model, _ = load_published()
    other = PingModel(
        model.title,
        model.source,
        chips=1000,
        landmarks=(10, 20),
        totals={RENTED: (3000.0, 5000.0), OWNED: (5000.0, 5500.0)},
        missed_diversion_share=0.2,
    )
    got = {(r.option, r.landmarks): r.reproduced_usd for r in reproduce(other, load_inputs(("A",)))}
    assert got[RENTED, 10] == pytest.approx(3000)
    assert got[RENTED, 20] == pytest.approx(5000)
    assert got[OWNED, 20] == pytest.approx(5500)
    # rented: 1,000 + 200 per landmark; owned: 4,500 + 50 per landmark.
    assert break_even(derive(other)) == pytest.approx(3500 / 150)


def test_scaling_a_fleet_keeps_whole_chips_and_its_total() -> None:
    scaled = scale_chips({"A": 1, "B": 1, "C": 1}, 3_000_000)
    assert scaled == {"A": 1_000_000, "B": 1_000_000, "C": 1_000_000}
    odd = scale_chips({"A": 2, "B": 1}, 10)
    assert sum(odd.values()) == 10
    assert odd["A"] > odd["B"]
