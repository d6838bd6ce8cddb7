"""Demo scenarios: landmarks, chips where they really are, and the licences they hold.

A scenario is a TOML file (the default one, ``scenario.toml`` beside this module, is the
template users copy). Loading checks every key and value, so a typo is a one-line error
naming it, never a silently different demo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from geoattest.errors import ConfigError
from geoattest.files import read_toml
from geoattest.geo import RegionPolicy, policy_from_mapping
from geoattest.netsim.latency import great_circle_km
from geoattest.pki.landmarks import check_coordinates
from geoattest.pki.names import check_device_id, check_identifier

_TOP = {
    "name",
    "cadence_s",
    "exchanges",
    "landmarks_per_chip",
    "quorum",
    "seed",
    "policy",
    "landmarks",
    "chips",
}
_LANDMARK = {"id", "name", "lat", "lon", "operator"}
_CHIP = {
    "id",
    "place",
    "lat",
    "lon",
    "licensed_region",
    "datacentre_landmarks",
    "datacentre_landmark",
}


@dataclass(frozen=True, slots=True)
class LandmarkSite:
    landmark_id: str
    name: str
    latitude: float
    longitude: float
    operator: str = ""
    """Who runs the landmark; empty: it is its own operator (as the registry reads it)."""

    def __post_init__(self) -> None:
        if not self.operator:
            object.__setattr__(self, "operator", self.landmark_id)


@dataclass(frozen=True, slots=True)
class ChipSite:
    device_id: str
    place: str
    latitude: float
    longitude: float
    licensed_region: str
    datacentre_landmarks: tuple[str, ...]
    """Landmarks on the chip's own data-centre campus, reached without crossing the
    Internet. A licensed data centre needs two of independent operators (at sites more
    than 100 m apart) for its chips to be ALLOWED under ``landmark_faults = 1``."""


@dataclass(frozen=True)
class DemoScenario:
    """Landmarks, chips where they really are, and the licences they hold, under one region
    policy: the world the demo runs live (the fleet study and the planner start from it)."""

    name: str
    cadence_s: float
    exchanges: int
    landmarks_per_chip: int
    quorum: int
    seed: int
    policy_document: Mapping[str, Any]
    policy: RegionPolicy
    landmarks: tuple[LandmarkSite, ...]
    chips: tuple[ChipSite, ...]

    def landmarks_for(self, chip: ChipSite) -> list[LandmarkSite]:
        """The chip's nearest landmarks (its data-centre landmarks always among them)."""
        here = (chip.latitude, chip.longitude)
        ranked = sorted(
            self.landmarks,
            key=lambda s: (
                s.landmark_id not in chip.datacentre_landmarks,
                great_circle_km(here, (s.latitude, s.longitude)),
            ),
        )
        return ranked[: self.landmarks_per_chip]


def default_scenario_path() -> Path:
    return Path(str(resources.files("geoattest.demo").joinpath("scenario.toml")))


def _keys(where: str, table: Any, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    missing = required - set(table)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")
    return table


def _number(where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _whole(where: str, value: Any, low: int, high: int) -> int:
    """A count (a quorum, landmarks per chip, exchanges, a seed): a whole number, never a
    fraction cut down to one (a quorum of 2.9 is not a quorum of 2)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where} must be a whole number in [{low}, {high}], got {value!r}")
    return value


def _datacentre_landmarks(where: str, chip: Mapping[str, Any]) -> tuple[str, ...]:
    """A chip's ``datacentre_landmarks`` list, or the one ``datacentre_landmark`` of a
    scenario written before a data centre could hold two."""
    if "datacentre_landmark" in chip and "datacentre_landmarks" in chip:
        raise ConfigError(f"{where}: give datacentre_landmarks or datacentre_landmark, not both")
    if "datacentre_landmark" in chip:
        return (str(chip["datacentre_landmark"]),)
    listed = chip.get("datacentre_landmarks", [])
    if not isinstance(listed, list) or len(set(map(str, listed))) != len(listed):
        raise ConfigError(f"{where}: datacentre_landmarks must be a list of distinct landmark ids")
    return tuple(str(landmark_id) for landmark_id in listed)


def load_scenario(path: Path) -> DemoScenario:
    return scenario_from_mapping(read_toml(path, "scenario"), path)


def scenario_from_mapping(document: Mapping[str, Any], path: Path) -> DemoScenario:
    """A scenario from its parsed TOML; ``path`` names it in errors and resolves relative
    policy files. Files that extend the scenario format strip their own keys first."""
    top = _keys(f"scenario {path}", document, _TOP, {"policy", "landmarks", "chips"})
    landmarks = []
    for i, raw in enumerate(top["landmarks"] if isinstance(top["landmarks"], list) else [None]):
        entry = _keys(f"landmarks[{i}]", raw, _LANDMARK, _LANDMARK - {"operator"})
        lat = _number(f"landmarks[{i}].lat", entry["lat"], -90, 90)
        lon = _number(f"landmarks[{i}].lon", entry["lon"], -180, 180)
        check_coordinates(lat, lon)
        landmarks.append(
            LandmarkSite(
                check_identifier(str(entry["id"]), "landmark id"),
                str(entry["name"]),
                lat,
                lon,
                check_identifier(str(entry.get("operator", entry["id"])), "landmark operator"),
            )
        )
    landmark_ids = {site.landmark_id for site in landmarks}
    if len(landmark_ids) != len(landmarks):
        raise ConfigError("scenario: landmark ids must be unique")
    policy = policy_from_mapping(top["policy"], base_dir=path.parent)
    chips = []
    required = _CHIP - {"datacentre_landmarks", "datacentre_landmark"}
    for i, raw in enumerate(top["chips"] if isinstance(top["chips"], list) else [None]):
        entry = _keys(f"chips[{i}]", raw, _CHIP, required)
        region = str(entry["licensed_region"])
        if region not in policy.regions:
            raise ConfigError(f"chips[{i}]: region {region!r} is not in the scenario's policy")
        colocated = _datacentre_landmarks(f"chips[{i}]", entry)
        for landmark_id in colocated:
            if landmark_id not in landmark_ids:
                raise ConfigError(
                    f"chips[{i}]: datacentre landmark {landmark_id!r} is not a landmark"
                )
        chips.append(
            ChipSite(
                check_device_id(str(entry["id"])),
                str(entry["place"]),
                _number(f"chips[{i}].lat", entry["lat"], -90, 90),
                _number(f"chips[{i}].lon", entry["lon"], -180, 180),
                region,
                colocated,
            )
        )
    if len({c.device_id for c in chips}) != len(chips):
        raise ConfigError("scenario: chip ids must be unique")
    per_chip = _whole("landmarks_per_chip", top.get("landmarks_per_chip", 4), 1, 16)
    quorum = _whole("quorum", top.get("quorum", 3), 1, 16)
    if quorum > per_chip:
        raise ConfigError("scenario: quorum exceeds landmarks_per_chip")
    return DemoScenario(
        name=str(top.get("name", path.stem)),
        cadence_s=_number("cadence_s", top.get("cadence_s", 10), 0.5, 86400),
        exchanges=_whole("exchanges", top.get("exchanges", 8), 1, 32),
        landmarks_per_chip=per_chip,
        quorum=quorum,
        seed=_whole("seed", top.get("seed", 0), 0, 2**32),
        policy_document=top["policy"],
        policy=policy,
        landmarks=tuple(landmarks),
        chips=tuple(chips),
    )
