"""The cost model: inputs with units and sources, refused input, hand-computed prices."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoattest.errors import ConfigError
from geoattest.plan.cost import (
    FIGURES,
    FLEET,
    HOURS_PER_YEAR,
    KINDS,
    MOST_CHIPS,
    MOST_YEARS,
    Load,
    default_costs_path,
    duration,
    load_inputs,
    percent,
    price,
    usd,
)
from geoattest.plan.published import derive, load_published

REGIONS = ("A", "B")

# Every priced figure, in round numbers a person can check by hand.
HAND_FIGURES = {
    "landmark_rented_setup": (500, "USD/landmark server"),
    "landmark_rented_yearly": (1000, "USD/landmark server/year"),
    "landmark_rounds_per_s": (100, "rounds/s/landmark server"),
    "verifier_proofs_per_s": (10, "proofs/s/replica"),
    "verifier_replica_yearly": (100, "USD/replica/year"),
    "verifier_min_replicas": (1, "replicas"),
    "target_utilisation": (0.5, "fraction of capacity"),
    "network_price": (1, "USD/GB"),
    "agent_cpu_per_round": (1_000_000, "us CPU/round"),
    "host_cpu_price": (0.01, "USD/core-hour"),
    "programme_setup": (7, "USD"),
    "programme_yearly": (11, "USD/year"),
}


def cost_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "costs.toml"
    path.write_text(body, encoding="utf-8")
    return path


def figure(name: str, value: object, unit: str, source: str = "a test") -> str:
    rendered = f'"{value}"' if isinstance(value, str) else repr(value)
    return f'[figures.{name}]\nvalue = {rendered}\nunit = "{unit}"\nsource = "{source}"\n'


def hand_file(tmp_path: Path, fleet: str) -> Path:
    body = "".join(figure(n, v, u) for n, (v, u) in HAND_FIGURES.items())
    return cost_file(tmp_path, body + "[fleet]\n" + fleet)


def test_every_default_input_has_its_unit_a_source_and_a_kind() -> None:
    inputs = load_inputs(REGIONS)
    names = {f.name for f in inputs.all_inputs()}
    assert {n for n, s in FIGURES.items() if s.required} <= names
    assert set(FLEET) - {"chips_total"} <= names
    for f in inputs.all_inputs():
        spec = FIGURES.get(f.name) or FLEET[f.name]
        assert f.unit == spec.unit, f.name
        assert f.kind in KINDS, f.name
        assert len(f.source) > 20, f"{f.name} needs a source that says something"


def test_the_default_file_names_only_known_figures_each_with_unit_source_and_kind() -> None:
    document = tomllib.loads(default_costs_path().read_text(encoding="utf-8"))
    for table, known in (("figures", FIGURES), ("fleet", FLEET)):
        for name, raw in document[table].items():
            assert name in known, name
            assert set(raw) == {"value", "unit", "source", "kind"}, name


def test_the_owned_landmark_default_is_the_published_models_own_slope() -> None:
    model, _ = load_published()
    owned = load_inputs(REGIONS).value("landmark_owned_setup")
    assert owned == pytest.approx(derive(model)["owned"].per_landmark, abs=1.0)


def test_chips_default_to_the_published_fleet_split_evenly() -> None:
    fleet = load_inputs(("A", "B", "C")).fleet
    assert fleet.chips == {"A": 1_000_000, "B": 1_000_000, "C": 1_000_000}
    assert not fleet.chips_given


def test_a_cost_file_overrides_a_figure_and_says_so(tmp_path: Path) -> None:
    path = cost_file(
        tmp_path,
        figure("landmark_rented_yearly", 30000, "USD/landmark server/year", "our quote")
        + "[fleet]\ncadence_s = 600\nchips = { A = 10, B = 20 }\n",
    )
    inputs = load_inputs(REGIONS, path)
    assert inputs.value("landmark_rented_yearly") == 30000
    assert inputs.figures["landmark_rented_yearly"].source == "our quote"
    assert inputs.figures["landmark_rented_yearly"].kind == "given"
    assert inputs.fleet.cadence_s == 600
    assert inputs.fleet.chips == {"A": 10, "B": 20}
    shown = {f.name: f for f in inputs.fleet.inputs}
    assert "chips_total" not in shown
    assert shown["chips"].value == "A=10, B=20"
    assert str(path) in shown["cadence_s"].source


def test_command_line_values_override_the_file(tmp_path: Path) -> None:
    path = cost_file(tmp_path, "[fleet]\ncadence_s = 600\n")
    inputs = load_inputs(REGIONS, path, overrides={"cadence_s": 60.0, "chips": "A=5,B=7"})
    assert inputs.fleet.cadence_s == 60
    assert inputs.fleet.chips == {"A": 5, "B": 7}
    assert load_inputs(REGIONS, overrides={"chips": "9"}).fleet.chips == {"A": 5, "B": 4}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[figures.landmark_rented_yearly\n", "not valid TOML"),
        ("[prices]\nx = 1\n", "unknown table"),
        (figure("landmark_yearly", 1, "USD"), "unknown figure 'landmark_yearly'"),
        (figure("network_price", -0.5, "USD/GB"), "must not be negative"),
        (figure("network_price", 0.05, "EUR/GB"), "unit 'EUR/GB' is not 'USD/GB'"),
        (figure("network_price", "cheap", "USD/GB"), "must be a number"),
        (figure("network_price", 0.05, "USD/GB", " "), "source must say"),
        ('[figures.network_price]\nvalue = 0.05\nunit = "USD/GB"\n', "missing key(s) ['source']"),
        (
            '[figures.network_price]\nvalue = 1\nunit = "USD/GB"\nsource = "x"\nnote = 1\n',
            "unknown key(s) ['note']",
        ),
        (figure("landmark_rounds_per_s", 0, "rounds/s/landmark server"), "must be above 0"),
        (figure("target_utilisation", 1.5, "fraction of capacity"), "must be in (0, 1]"),
        (figure("verifier_min_replicas", 1.5, "replicas"), "whole number"),
        (figure("gpu_yearly_value", 20000, "USD/GPU/year"), "together, or neither"),
        ("[fleet]\ncadence = 60\n", "unknown fleet value 'cadence'"),
        ("[fleet]\ncadence_s = 0\n", "must be above 0"),
        ("[fleet]\nlandmarks = 'leased'\n", "'rented' or 'owned'"),
        ("[fleet]\nchips = { ZZ = 10 }\n", "region 'ZZ' is not licensed"),
        ("[fleet]\nchips = { A = -1 }\n", "whole number >= 0"),
        ("[fleet]\nchips = { A = 0 }\n", "no chips"),
    ],
)
def test_bad_cost_files_are_refused_with_what_is_wrong(
    tmp_path: Path, body: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_inputs(REGIONS, cost_file(tmp_path, body))
    assert needle in raised.value.detail


def test_a_missing_cost_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_inputs(REGIONS, tmp_path / "nope.toml")


@pytest.mark.parametrize("chips", ["A=1,Q=2", "A=x", "A", "0"])
def test_bad_chips_on_the_command_line_are_refused(chips: str) -> None:
    with pytest.raises(ConfigError):
        load_inputs(REGIONS, overrides={"chips": chips})


@given(years=st.integers(1, 10**12))
def test_a_horizon_is_costed_only_up_to_its_bound(years: int) -> None:
    """The model lists every year of the horizon: a million years would not finish."""
    if years <= MOST_YEARS:
        assert load_inputs(REGIONS, overrides={"years": years}).fleet.years == years
    else:
        with pytest.raises(ConfigError, match="at most"):
            load_inputs(REGIONS, overrides={"years": years})


@given(a=st.integers(0, 10**30), b=st.integers(0, 10**30), total=st.booleans())
def test_a_fleet_is_costed_only_up_to_its_bound(a: int, b: int, total: bool) -> None:
    chips = str(a + b) if total else f"A={a},B={b}"
    if 0 < a + b <= MOST_CHIPS:
        assert sum(load_inputs(REGIONS, overrides={"chips": chips}).fleet.chips.values()) == a + b
    else:
        with pytest.raises(ConfigError):
            load_inputs(REGIONS, overrides={"chips": chips})


def test_price_by_hand(tmp_path: Path) -> None:
    inputs = load_inputs(
        REGIONS,
        hand_file(tmp_path, "chips = { A = 3600 }\ncadence_s = 3600\nyears = 2\n"),
    )
    load = Load(
        landmark_ids=("lm-1", "lm-2"),
        chips_per_landmark=(3_600.0, 360_000.0),
        landmarks_per_chip=1,
        bytes_per_proof=1000,
    )
    cost = price(inputs, load, {"A": 0.25})
    proofs_per_year = 3600 * HOURS_PER_YEAR  # a proof an hour from 3,600 chips
    # Landmark servers: 1 round/s and 100 rounds/s against 100 x 0.5 each: 1 + 2 servers.
    assert cost.landmark_servers == 3
    # Verifier: 1 proof/s against 10 x 0.5: one replica, the minimum.
    assert cost.verifier_replicas == 1
    assert cost.gb_per_year == pytest.approx(proofs_per_year * 1000 / 1e9)
    parts = {p.name: p for p in cost.parts}
    assert (parts["landmarks (rented)"].setup, parts["landmarks (rented)"].yearly) == (1500, 3000)
    assert parts["verifier"].yearly == 100
    assert parts["network"].yearly == pytest.approx(31.536)
    # One second of CPU per proof (one round of 1e6 us): 8,760 core-hours at $0.01.
    assert parts["chips' host CPU"].yearly == pytest.approx(87.6)
    assert (parts["programme"].setup, parts["programme"].yearly) == (7, 11)
    yearly = 3000 + 100 + 31.536 + 87.6 + 11
    assert cost.by_year == pytest.approx((1507 + yearly, yearly))
    assert cost.total == pytest.approx(1507 + 2 * yearly)
    assert cost.per_chip_year == pytest.approx(cost.total / (3600 * 2))
    assert cost.certifiable_chips == 900
    assert cost.per_certifiable_chip_year == pytest.approx(cost.total / (900 * 2))
    assert cost.duty_cycle == pytest.approx(1 / 3600)
    assert cost.unpriced
    assert "not measured" in cost.unpriced[0]


def test_no_certifiable_chip_means_no_cost_per_certifiable_chip() -> None:
    inputs = load_inputs(REGIONS, overrides={"chips": "A=10,B=10"})
    load = Load(("lm",), (20.0,), 1, 100)
    assert price(inputs, load, {"A": 0.0, "B": 0.0}).per_certifiable_chip_year is None


def test_the_gpu_is_priced_only_with_a_measured_loss(tmp_path: Path) -> None:
    body = figure(
        "gpu_loss_per_round_rate", 0.01, "fraction of GPU throughput per round/s"
    ) + figure("gpu_yearly_value", 20000, "USD/GPU/year")
    inputs = load_inputs(REGIONS, cost_file(tmp_path, body + "[fleet]\nchips = { A = 2 }\n"))
    cost = price(inputs, Load(("lm",), (8.0,), 4, 100), {"A": 1.0})
    gpu = next(p for p in cost.parts if "GPU" in p.name)
    # 4 rounds an hour: 4/3600 rounds/s x 0.01 of throughput per round/s, on 2 GPUs.
    assert gpu.yearly == pytest.approx(2 * 20000 * 0.01 * 4 / 3600)
    assert not cost.unpriced


def test_sweeps_change_the_fleet_and_say_why() -> None:
    inputs = load_inputs(REGIONS).replace_fleet("a test sweep", cadence_s=60)
    assert inputs.fleet.cadence_s == 60
    assert inputs.fleet.figures["cadence_s"].source == "a test sweep"
    with pytest.raises(ConfigError):
        load_inputs(REGIONS).replace_fleet("a test sweep", cadence_s=-1)


def test_money_and_durations_read_as_people_write_them() -> None:
    assert [usd(v) for v in (0, 0.0869, 4.072, 260_679.2, 1_303_396)] == [
        "$0",
        "$0.0869",
        "$4.07",
        "$260,679",
        "$1.30M",
    ]
    assert [duration(s) for s in (60, 3600, 3 * 3600 + 60, 2 * 86_400, 30)] == [
        "1 min",
        "1 h",
        "3 h 1 min",
        "2 days",
        "30 s",
    ]
    assert [percent(s) for s in (3.8e-7, 0.184, 0.0012, 1.0, 0.0)] == [
        "0.000038 %",
        "18 %",
        "0.12 %",
        "100 %",
        "0 %",
    ]


def test_the_cost_document_states_every_default_with_its_value() -> None:
    """docs/COST.md's tables of defaults may not drift from the defaults file."""
    doc = Path(__file__).parents[3].joinpath("docs", "COST.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| `")}
    for f in load_inputs(REGIONS).all_inputs():
        row = next(line for name, line in rows.items() if name.startswith(f"`{f.name}`"))
        value = f.value if isinstance(f.value, str) else f"{f.value:,.10g}"
        assert f"| {value} |" in row, f.name
        assert f"| {f.unit} |" in row, f.name
        assert f"| {f.kind} |" in row, f.name
