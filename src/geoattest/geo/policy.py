"""Region policies as versioned data: licensed regions, the embargo list, the land assumption.

A policy is a JSON file::

    {
      "id": "asia-pilot",
      "version": 3,
      "location": "land",
      "border_margin_km": 1.0,
      "regions": {
        "SG": {"countries": ["SG"]},
        "greater-tokyo": {"circle": {"lat": 35.68, "lon": 139.77, "radius_km": 60}},
        "campus": {"geojson_file": "campus.geojson"}
      },
      "embargo": ["KP", "IR", "SY", "CU"]
    }

``location`` says where chips are assumed to be (see :class:`LocationAssumption`);
``border_margin_km`` widens every disk to cover the positional error of the borders and
coastlines. A region is exactly one of ``countries`` (ISO 3166-1 alpha-2 codes resolved to
Natural Earth shapes, see :mod:`geoattest.geo.countries`), ``geojson`` (an inline Polygon,
MultiPolygon, Feature or FeatureCollection), ``geojson_file`` (the same, in a file relative
to the policy) or ``circle`` (a licensed site and a radius). Anything the loader does not
understand (an unknown key, a code with no shape, malformed GeoJSON, GeoJSON nested
otherwise than RFC 7946 nests it or naming a ``crs`` other than CRS84, an edge spanning
more than 180 degrees of longitude where a shape across the antimeridian was not cut) is a
:class:`~geoattest.errors.ConfigError` naming the problem; nothing is silently dropped.

Example::

    policy = load_policy(Path("policy.json"))
    appraiser = policy.appraiser()          # implements geoattest.verdict.RegionAppraiser
    appraiser.appraise(bounds, "SG").verdict
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geoattest.errors import ConfigError
from geoattest.files import read_json
from geoattest.geo.assumption import LocationAssumption
from geoattest.geo.countries import Countries, natural_earth
from geoattest.geo.feasible import cap_rings, normalised_parts
from geoattest.geo.sphere import ABSOLUTE_MARGIN_KM, EARTH_RADIUS_KM, grow, shrink

if TYPE_CHECKING:
    from geoattest.geo.appraiser import GeoAppraiser

TERRITORIAL_SEA_KM = 22.224
"""12 nautical miles (UNCLOS art. 3)."""
DEFAULT_BORDER_MARGIN_KM = 1.0
"""Default widening of every disk for the positional error of 1:10m borders and coasts."""
CIRCLE_VERTICES = 128

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CODE = re.compile(r"^[A-Z]{2}$")
_TOP_KEYS = frozenset({"id", "version", "location", "border_margin_km", "regions", "embargo"})
_REGION_KINDS = frozenset({"countries", "geojson", "geojson_file", "circle"})
_CIRCLE_KEYS = frozenset({"lat", "lon", "radius_km"})


@dataclass(frozen=True, slots=True)
class LicensedRegion:
    """One licence region. Country regions are decided by country code; shaped regions
    (GeoJSON, circle) by geometry, with an inner shape for ALLOWED and an outer one for
    OUTSIDE (equal for GeoJSON, which is exact by definition)."""

    name: str
    countries: frozenset[str] = frozenset()
    inner: BaseGeometry | None = None
    outer: BaseGeometry | None = None

    @property
    def is_countries(self) -> bool:
        return self.inner is None

    def drawing(self, countries: Countries) -> BaseGeometry:
        """The region's shape for maps (its inner shape; whole countries for country regions)."""
        if self.inner is not None:
            return self.inner
        return shapely.unary_union([countries.get(code).shape for code in sorted(self.countries)])


@dataclass(frozen=True, slots=True)
class RegionPolicy:
    """A loaded region policy (see the module docstring for the file format)."""

    id: str
    version: int
    regions: Mapping[str, LicensedRegion]
    embargo: frozenset[str] = frozenset()
    location: LocationAssumption = LocationAssumption.LAND
    border_margin_km: float = DEFAULT_BORDER_MARGIN_KM
    countries: Countries = field(default_factory=natural_earth, repr=False, compare=False)

    def __post_init__(self) -> None:
        """However the policy is built (a file, :func:`build_policy`, the constructor,
        ``dataclasses.replace``): the location is one of the assumptions, and the border
        margin, which only ever widens a disk, is finite and in [0, 100] km (a negative one
        would shrink every disk below the light-speed bound).

        Raises:
            ConfigError: either is not.
        """
        object.__setattr__(self, "location", _assumption(self.location))
        margin = _finite(self.border_margin_km, "border_margin_km")
        if not 0.0 <= margin <= 100.0:
            raise ConfigError(f"border_margin_km must be in [0, 100], got {margin}")
        object.__setattr__(self, "border_margin_km", margin)

    @property
    def policy_id(self) -> str:
        return f"policy:region/{self.id}@{self.version}"

    def appraiser(self) -> GeoAppraiser:
        """The :class:`~geoattest.verdict.RegionAppraiser` for this policy."""
        from geoattest.geo.appraiser import GeoAppraiser  # noqa: PLC0415 (it imports us)

        return GeoAppraiser(self)

    @property
    def extra_km(self) -> float:
        """How much every disk is widened before judging: the border margin, plus the
        territorial sea when the policy counts it."""
        waters = TERRITORIAL_SEA_KM if self.location is LocationAssumption.TERRITORIAL_WATERS else 0
        return self.border_margin_km + waters


def country_region(
    name: str, codes: Iterable[str], countries: Countries | None = None
) -> LicensedRegion:
    """A region made of whole countries; every code must have a Natural Earth shape."""
    countries = countries or natural_earth()
    resolved = frozenset(_code(c, countries, f"region {name!r}") for c in codes)
    if not resolved:
        raise ConfigError(f"region {name!r}: empty country list")
    return LicensedRegion(name=name, countries=resolved)


def circle_region(name: str, lat: float, lon: float, radius_km: float) -> LicensedRegion:
    """A licensed site and a radius: drawn inward for ALLOWED and outward for OUTSIDE."""
    where = f"region {name!r} circle"
    lat, lon = _finite(lat, f"{where} lat"), _finite(lon, f"{where} lon")
    radius_km = _finite(radius_km, f"{where} radius_km")
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise ConfigError(f"{where}: ({lat}, {lon}) is not a latitude/longitude")
    if not 0.0 < radius_km <= 5000.0:
        raise ConfigError(f"{where}: radius_km must be in (0, 5000], got {radius_km}")
    if shrink(radius_km) <= 0.0:
        raise ConfigError(
            f"{where}: radius_km {radius_km} is within the earth model's {ABSOLUTE_MARGIN_KM} km "
            "margin, so no place could be proven inside it"
        )
    phi = np.array([math.radians(lat)])
    lam = np.array([math.radians(lon)])
    shapes = []
    for outward, r_km in ((False, shrink(radius_km)), (True, grow(radius_km))):
        rings, ok = cap_rings(
            phi, lam, np.array([r_km / EARTH_RADIUS_KM]), lam[0], CIRCLE_VERTICES, outward=outward
        )
        if not ok[0]:
            raise ConfigError(f"{where}: too close to a pole to draw soundly")
        shapes.append(shapely.unary_union(normalised_parts(shapely.Polygon(rings[0]))))
    inner, outer = shapes
    shapely.prepare(inner)
    shapely.prepare(outer)
    return LicensedRegion(name=name, inner=inner, outer=outer)


def geojson_region(name: str, data: Any) -> LicensedRegion:
    """A region drawn by the operator (GeoJSON, longitude/latitude, RFC 7946)."""
    geom = _geojson_geometry(data, f"region {name!r} geojson")
    shapely.prepare(geom)
    return LicensedRegion(name=name, inner=geom, outer=geom)


def build_policy(
    id: str,
    version: int,
    regions: Iterable[LicensedRegion],
    *,
    embargo: Iterable[str] = (),
    location: LocationAssumption | str = LocationAssumption.LAND,
    border_margin_km: float = DEFAULT_BORDER_MARGIN_KM,
    countries: Countries | None = None,
) -> RegionPolicy:
    """A policy built in code (the CLI, tests, demos); checks what :func:`load_policy` does."""
    countries = countries or natural_earth()
    if not isinstance(id, str) or not _ID.match(id):
        raise ConfigError(f"policy id {id!r} must match {_ID.pattern}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"policy version must be an integer >= 1, got {version!r}")
    by_name: dict[str, LicensedRegion] = {}
    for region in regions:
        if region.name in by_name:
            raise ConfigError(f"region {region.name!r} is defined twice")
        by_name[region.name] = region
    if not by_name:
        raise ConfigError("policy defines no regions")
    embargoed = frozenset(_code(c, countries, "embargo") for c in embargo)
    return RegionPolicy(
        id=id,
        version=version,
        regions=by_name,
        embargo=embargoed,
        location=_assumption(location),
        border_margin_km=border_margin_km,
        countries=countries,
    )


def policy_from_mapping(
    data: Any, base_dir: Path | None = None, countries: Countries | None = None
) -> RegionPolicy:
    """A policy from the parsed JSON document; ``base_dir`` resolves ``geojson_file``."""
    if not isinstance(data, dict):
        raise ConfigError("policy must be a JSON object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"policy has unknown key(s) {', '.join(map(repr, unknown))}")
    for key in ("id", "version", "regions"):
        if key not in data:
            raise ConfigError(f"policy is missing {key!r}")
    raw_regions = data["regions"]
    if not isinstance(raw_regions, dict):
        raise ConfigError("policy 'regions' must be an object of region name -> definition")
    embargo = data.get("embargo", [])
    if not isinstance(embargo, list) or not all(isinstance(c, str) for c in embargo):
        raise ConfigError("policy 'embargo' must be a list of country codes")
    countries = countries or natural_earth()
    regions = [_region(name, spec, base_dir, countries) for name, spec in raw_regions.items()]
    return build_policy(
        data["id"],
        data["version"],
        regions,
        embargo=embargo,
        location=data.get("location", LocationAssumption.LAND.value),
        border_margin_km=data.get("border_margin_km", DEFAULT_BORDER_MARGIN_KM),
        countries=countries,
    )


def load_policy(path: Path | str, countries: Countries | None = None) -> RegionPolicy:
    """Load a region policy file; every problem is a :class:`ConfigError` that names it."""
    path = Path(path)
    data = read_json(path, "policy")
    return policy_from_mapping(data, base_dir=path.parent, countries=countries)


def _region(name: Any, spec: Any, base_dir: Path | None, countries: Countries) -> LicensedRegion:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"region name {name!r} must be a non-empty string")
    if not isinstance(spec, dict):
        raise ConfigError(f"region {name!r} must be an object with one of {sorted(_REGION_KINDS)}")
    unknown = sorted(set(spec) - _REGION_KINDS)
    if unknown:
        raise ConfigError(f"region {name!r} has unknown key(s) {', '.join(map(repr, unknown))}")
    if len(spec) != 1:
        raise ConfigError(f"region {name!r} needs exactly one of {sorted(_REGION_KINDS)}")
    ((kind, value),) = spec.items()
    if kind == "countries":
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ConfigError(f"region {name!r}: 'countries' must be a list of ISO codes")
        return country_region(name, value, countries)
    if kind == "circle":
        if not isinstance(value, dict):
            raise ConfigError(f"region {name!r}: 'circle' must be an object {sorted(_CIRCLE_KEYS)}")
        bad = sorted(set(value) ^ _CIRCLE_KEYS)
        if bad:
            raise ConfigError(
                f"region {name!r}: circle needs exactly {sorted(_CIRCLE_KEYS)}, "
                f"unknown or missing {', '.join(map(repr, bad))}"
            )
        return circle_region(name, value["lat"], value["lon"], value["radius_km"])
    if kind == "geojson_file":
        if not isinstance(value, str):
            raise ConfigError(f"region {name!r}: 'geojson_file' must be a path")
        value = read_json((base_dir or Path.cwd()) / value, f"region {name!r}: geojson_file")
    return geojson_region(name, value)


def _code(code: Any, countries: Countries, where: str) -> str:
    if not isinstance(code, str) or not _CODE.match(code.strip().upper()):
        raise ConfigError(f"{where}: {code!r} is not an ISO 3166-1 alpha-2 code")
    upper: str = code.strip().upper()
    countries.get(upper)  # raises a ConfigError naming a code with no shape
    return upper


def _assumption(location: str) -> LocationAssumption:
    try:
        return LocationAssumption(location)
    except ValueError:
        options = ", ".join(a.value for a in LocationAssumption)
        raise ConfigError(f"policy location {location!r} is not one of {options}") from None


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value) if isinstance(value, int | float) else math.nan
    except OverflowError:
        raise ConfigError(
            f"{what} must be a finite number, got an integer past a float's range"
        ) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return number


_GEOMETRIES = ("Polygon", "MultiPolygon")
_CRS84 = frozenset(
    {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "OGC:CRS84", "CRS84"}
)
"""Names of WGS 84 in longitude, latitude order: the one reference system of RFC 7946."""


def _geojson_geometry(
    data: Any, where: str, kinds: tuple[str, ...] = ("FeatureCollection", "Feature", *_GEOMETRIES)
) -> BaseGeometry:
    """The shape of a GeoJSON object of one of ``kinds``: nested as RFC 7946 nests them (a
    FeatureCollection holds Features, a Feature holds a geometry), in its one reference
    system."""
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(f"{where}: not a GeoJSON object (no 'type')")
    _check_crs(data.get("crs"), where)
    kind = data["type"]
    if kind not in kinds:
        raise ConfigError(f"{where}: a {kind!r} is not one of {', '.join(kinds)} here")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise ConfigError(f"{where}: FeatureCollection has no features")
        parts = [
            _geojson_geometry(f, f"{where} feature {i}", ("Feature",))
            for i, f in enumerate(features)
        ]
        return shapely.unary_union(parts)
    if kind == "Feature":
        return _geojson_geometry(data.get("geometry"), where, _GEOMETRIES)
    try:
        geom = shape(data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise ConfigError(f"{where}: malformed {kind} coordinates ({exc})") from exc
    except shapely.errors.ShapelyError as exc:
        raise ConfigError(f"{where}: malformed {kind} coordinates ({exc})") from exc
    if geom.is_empty:
        raise ConfigError(f"{where}: the {kind} is empty")
    coords = shapely.get_coordinates(geom)
    if not np.all(np.isfinite(coords)):
        raise ConfigError(f"{where}: coordinates must be finite numbers")
    if np.any(np.abs(coords[:, 0]) > 180.0) or np.any(np.abs(coords[:, 1]) > 90.0):
        raise ConfigError(f"{where}: coordinates must be [longitude, latitude] within range")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise ConfigError(f"{where}: invalid {kind}: {reason}")
    _check_no_wide_edge(geom, where)
    return geom


def _check_crs(crs: Any, where: str) -> None:
    """RFC 7946 dropped the ``crs`` member: coordinates are WGS 84 longitude, latitude.
    Files written to the 2008 format may still name another system, EPSG:4326 (latitude
    first) or a projection in metres; read as longitude, latitude they would license
    another place, so a ``crs`` naming anything but CRS84 is refused.

    Raises:
        ConfigError: naming the system.
    """
    if crs is None:
        return
    properties = crs.get("properties") if isinstance(crs, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if not (isinstance(crs, dict) and crs.get("type") == "name" and name in _CRS84):
        raise ConfigError(
            f"{where}: 'crs' names {str(name if name is not None else crs)[:80]!r}; "
            "only WGS 84 longitude, latitude (CRS84, RFC 7946) is read: drop the member "
            "and give the coordinates as [longitude, latitude]"
        )


def _check_no_wide_edge(geom: BaseGeometry, where: str) -> None:
    """Refuse an edge that spans more than 180 degrees of longitude: RFC 7946 draws it
    straight the long way round (170 to -170 is 340 degrees west), which licenses nearly
    a whole band of latitude where a shape across the antimeridian was almost surely
    meant. Such a shape must be cut at the antimeridian (RFC 7946, 3.1.9), or the long way
    drawn with a vertex between. An edge along a parallel from -180 to 180 (a polar cap,
    a band round the earth) says what it means and stays.

    Raises:
        ConfigError: naming the edge.
    """
    for polygon in shapely.get_parts(geom):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = shapely.get_coordinates(ring)
            start, end = xy[:-1], xy[1:]
            wide = np.abs(end[:, 0] - start[:, 0]) > 180.0
            round_the_earth = (
                (np.abs(start[:, 0]) == 180.0)
                & (np.abs(end[:, 0]) == 180.0)
                & (start[:, 1] == end[:, 1])
            )
            for i in np.flatnonzero(wide & ~round_the_earth)[:1]:
                (x0, y0), (x1, y1) = start[i].tolist(), end[i].tolist()
                raise ConfigError(
                    f"{where}: the edge from [{x0}, {y0}] to [{x1}, {y1}] spans more than 180 "
                    "degrees of longitude; cut a shape that crosses the antimeridian in two "
                    "(RFC 7946, 3.1.9), or add a vertex to go the long way"
                )
