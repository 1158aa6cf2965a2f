"""Cross-match alerts against a local catalogue by cone search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alertbench.broker.batch.science.module import ScienceModule

DEFAULT_RADIUS_ARCSEC = 1.5


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def load_catalogue(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, name) columns of a CSV or Parquet catalogue.

    Raises
    ------
    ValueError
        Naming the file and the missing columns.
    """
    import pandas as pd

    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = {"ra", "dec", "name"} - set(frame.columns)
    if missing:
        raise ValueError(f"catalogue {path} lacks column(s) {', '.join(sorted(missing))}")
    return (
        frame["ra"].to_numpy(float),
        frame["dec"].to_numpy(float),
        frame["name"].astype(str).to_numpy(),
    )


def crossmatch_module(
    path: str | Path, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC
) -> ScienceModule:
    """A module adding the nearest catalogue source within ``radius_arcsec``.

    Adds ``xmatch_name`` (null when none) and ``xmatch_sep_arcsec``.
    """
    ra_c, dec_c, names = load_catalogue(path)
    cat = _unit(ra_c, dec_c)
    cos_radius = np.cos(np.radians(radius_arcsec / 3600.0))

    def match(batch):
        pts = _unit(batch["ra"].to_numpy(float), batch["dec"].to_numpy(float))
        best = np.full(len(pts), -1)
        best_dot = np.full(len(pts), -2.0)
        # Chunks keep the alert x catalogue matrix small for large catalogues.
        for start in range(0, len(cat), 50_000):
            dots = pts @ cat[start : start + 50_000].T
            idx = dots.argmax(axis=1)
            top = dots[np.arange(len(pts)), idx]
            better = top > best_dot
            best[better], best_dot[better] = idx[better] + start, top[better]
        hit = best_dot >= cos_radius
        # atan2(|a x b|, a . b): arccos loses precision near zero separation.
        nearest = cat[np.maximum(best, 0)]
        cross = np.linalg.norm(np.cross(pts, nearest), axis=1)
        sep = np.degrees(np.arctan2(cross, np.einsum("ij,ij->i", pts, nearest))) * 3600.0
        return {
            "xmatch_name": [names[i] if h else None for i, h in zip(best, hit, strict=True)],
            "xmatch_sep_arcsec": np.where(hit, sep, np.nan),
        }

    return ScienceModule(
        name="crossmatch",
        reads=["ra", "dec"],
        adds={"xmatch_name": "string", "xmatch_sep_arcsec": "double"},
        fn=match,
    )
