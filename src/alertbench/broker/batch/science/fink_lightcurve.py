"""The ``fink`` profile's light curves: Fink's features per band and its anomaly score.

- ``ad_features`` (ZTF): fink-science 7.4.0's ``extract_features_ad_raw``.
  Each alert's history and detection, upper limits dropped, in DC
  magnitudes when a valid point lies within 1.5 px of a reference source
  (``is_source_behind``), sorted by time; the 26 light-curve features of
  each of g (``fid`` 1) and r (``fid`` 2) as ``lc_features_g`` and
  ``lc_features_r``. A band the alert has points in (upper limits count)
  but no valid one gets 26 NaN; a band with two detections at one time is
  left null, as light-curve refuses it and Fink skips it.
- ``ad_features`` (Rubin): fink-science's Rubin extractor (its ``rubin/
  ad_features``, after 7.4.0): the same features on ``psfFlux`` in nJy per
  band ``u`` to ``y``, history and detection, one point per time.
- ``anomaly_score`` (ZTF): Fink's AAD isolation forests (fink-science 7.4.0's
  ``anomaly_detection_forest_AAD.zip``, two ONNX models of 18 features),
  loaded once per worker and run once per batch per band. The features of
  ``fid`` 1 fill their gaps with ``r_means.csv`` and go to ``forest_r``,
  those of ``fid`` 2 with ``g_means.csv`` to ``forest_g``, exactly as Fink
  pairs them; the score is the mean of the two forests' scores, lower is
  more anomalous, and 0.0 when the alert lacks a band (Fink's "no score").
"""

from __future__ import annotations

import csv
import io
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alertbench.broker.batch.science.arrow import struct_type
from alertbench.broker.batch.science.features import FEATURES, extract
from alertbench.broker.batch.science.module import ScienceModule

#: ZTF's bands as Fink names its feature columns: ``fid`` 1 is g, 2 is r.
ZTF_BANDS = {1: "g", 2: "r"}
#: Rubin's bands, in the order Fink lists them.
LSST_BANDS = ("u", "g", "r", "i", "z", "y")
#: ``is_source_behind``: a reference source within 1.5 px (fink-utils).
SOURCE_BEHIND_PIXELS = 1.5
#: The 18 features the forests read, in their input order (fink-science 7.4.0).
MODEL_COLUMNS = (
    "amplitude",
    "anderson_darling_normal",
    "beyond_1_std",
    "chi2",
    "cusum",
    "kurtosis",
    "linear_fit_slope",
    "linear_fit_slope_sigma",
    "linear_trend_noise",
    "linear_trend_sigma",
    "magnitude_percentage_ratio_20_10",
    "magnitude_percentage_ratio_40_5",
    "maximum_slope",
    "median",
    "median_absolute_deviation",
    "median_buffer_range_percentage_10",
    "skew",
    "stetson_K",
)
FEATURES_TYPE = struct_type(FEATURES)
_MODEL_DIR = "data/models/anomaly_detection"
MODEL_ZIP = f"{_MODEL_DIR}/anomaly_detection_forest_AAD.zip"
_ZTF_POINT_FIELDS = ("jd", "fid", "magpsf", "sigmapsf", "magnr", "sigmagnr", "isdiffpos", "distnr")
_LSST_POINT_FIELDS = ("midpointMjdTai", "psfFlux", "psfFluxErr", "band")


def _points(batch: pa.Table, history: str, fields: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """Each alert's history points then its detection: the alert index of each, and each field."""
    n = batch.num_rows
    prv = batch[history].combine_chunks()
    flat = None if pa.types.is_null(prv.type) else pc.list_flatten(prv)
    has_history = flat is not None and len(flat) > 0
    parents = [pc.list_parent_indices(prv).to_numpy()] if has_history else []
    values = {}
    for f in fields:
        parts = [pc.struct_field(flat, f)] if has_history else []
        current = batch[f].combine_chunks()
        parts = [p.cast(current.type) for p in parts] + [current]
        values[f] = pa.concat_arrays(parts)
    return np.concatenate([*parents, np.arange(n)]), values


def _floats(values: pa.Array) -> np.ndarray:
    return values.cast(pa.float64()).to_numpy(zero_copy_only=False)


def dc_magnitudes(magpsf, sigmapsf, magnr, sigmagnr, positive):
    """fink-utils' ``vect_dc_mag``: the apparent magnitude from the difference and the reference.

    ``positive``: the difference is science minus reference (``isdiffpos`` t or 1).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        magnr = np.where(magnr < 0.0, np.nan, magnr)
        difference_flux = 10 ** (-0.4 * magpsf)
        difference_sigflux = (sigmapsf / 1.0857) * difference_flux
        ref_flux = 10 ** (-0.4 * magnr)
        ref_sigflux = (sigmagnr / 1.0857) * ref_flux
        dc_flux = np.where(positive, ref_flux + difference_flux, ref_flux - difference_flux)
        dc_sigflux = np.sqrt(difference_sigflux**2 + ref_sigflux**2)
        return -2.5 * np.log10(dc_flux), dc_sigflux / dc_flux * 1.0857


def _band_features(
    n_curves: int, curve: np.ndarray, t: np.ndarray, m: np.ndarray, err: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Features of light curves ``0..n_curves-1`` from unsorted points.

    Returns the features (NaN for a light curve without a point), which light
    curves had a repeated time, and each one's number of points.
    """
    order = np.lexsort((t, curve))
    curve, t, m, err = curve[order], t[order], m[order], err[order]
    repeated = np.zeros(n_curves, dtype=bool)
    same = (np.diff(curve) == 0) & (np.diff(t) == 0)
    repeated[curve[1:][same]] = True
    counts = np.bincount(curve, minlength=n_curves)
    out = {name: np.full(n_curves, np.nan) for name in FEATURES}
    filled = counts > 0
    if filled.any():
        computed = extract(counts[filled], t, m, err)
        for name in FEATURES:
            out[name][filled] = computed[name]
    return out, repeated, counts


def _struct(features: dict[str, np.ndarray], valid: np.ndarray) -> pa.Array:
    """One band's features as a struct column, null where not ``valid``."""
    arrays = [pa.array(features[name], pa.float64()) for name in FEATURES]
    return pa.StructArray.from_arrays(arrays, names=list(FEATURES), mask=pa.array(~valid))


def ztf_features(batch: pa.Table) -> dict[str, pa.Array]:
    """``lc_features_g`` and ``lc_features_r`` of each ZTF alert, as Fink computes them."""
    n = batch.num_rows
    parent, v = _points(batch, "prv_candidates", _ZTF_POINT_FIELDS)
    fid = v["fid"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    jd, mag, sigma = _floats(v["jd"]), _floats(v["magpsf"]), _floats(v["sigmapsf"])
    # A band counts once the alert has a point in it, an upper limit included.
    present = {f: np.bincount(parent[fid == f], minlength=n) > 0 for f in ZTF_BANDS}
    valid = ~(np.isnan(mag) | np.isnan(sigma))
    distnr = _floats(v["distnr"])
    with np.errstate(invalid="ignore"):
        behind = valid & (distnr >= 0) & (distnr <= SOURCE_BEHIND_PIXELS)
    dc = (np.bincount(parent[behind], minlength=n) > 0)[parent] & valid
    if dc.any():
        positive = pc.is_in(v["isdiffpos"], pa.array(["t", "1"])).to_numpy(zero_copy_only=False)
        dmag, dsigma = dc_magnitudes(
            mag[dc], sigma[dc], _floats(v["magnr"])[dc], _floats(v["sigmagnr"])[dc], positive[dc]
        )
        mag[dc], sigma[dc] = dmag, dsigma
        valid &= ~(np.isnan(mag) | np.isnan(sigma))
    out = {}
    for f, band in ZTF_BANDS.items():
        keep = valid & (fid == f)
        features, repeated, _ = _band_features(n, parent[keep], jd[keep], mag[keep], sigma[keep])
        out[f"lc_features_{band}"] = _struct(features, present[f] & ~repeated)
    return out


def lsst_features(batch: pa.Table) -> dict[str, pa.Array]:
    """``lc_features_u`` to ``lc_features_y`` of each Rubin alert, on ``psfFlux`` (nJy)."""
    n = batch.num_rows
    parent, v = _points(batch, "prvDiaSources", _LSST_POINT_FIELDS)
    t, flux, err = _floats(v["midpointMjdTai"]), _floats(v["psfFlux"]), _floats(v["psfFluxErr"])
    band = v["band"].to_numpy(zero_copy_only=False)
    keep = ~(np.isnan(t) | np.isnan(flux) | np.isnan(err))
    parent, t, flux, err, band = parent[keep], t[keep], flux[keep], err[keep], band[keep]
    # One point per alert and time, the first in history order (Fink drops the repeats).
    order = np.lexsort((t, parent))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (np.diff(parent[order]) != 0) | (np.diff(t[order]) != 0)
    chosen = np.sort(order[first])
    parent, t, flux, err, band = (a[chosen] for a in (parent, t, flux, err, band))
    out = {}
    for name in LSST_BANDS:
        i = band == name
        features, _, counts = _band_features(n, parent[i], t[i], flux[i], err[i])
        out[f"lc_features_{name}"] = _struct(features, counts > 0)
    return out


def ad_features_module(survey: str) -> ScienceModule:
    """``ad_features``: Fink's light-curve features per band (see the module's docstring)."""
    if survey == "lsst":
        return ScienceModule(
            name="ad_features",
            reads=["prvDiaSources", *_LSST_POINT_FIELDS],
            adds={f"lc_features_{b}": FEATURES_TYPE for b in LSST_BANDS},
            fn=lsst_features,
            arrow=True,
            surveys=("lsst",),
        )
    return ScienceModule(
        name="ad_features",
        reads=["prv_candidates", *_ZTF_POINT_FIELDS],
        adds={f"lc_features_{b}": FEATURES_TYPE for b in ZTF_BANDS.values()},
        fn=ztf_features,
        arrow=True,
        surveys=("ztf",),
    )


def _model_files(_options: dict[str, Any]) -> list[Path]:
    root = files("fink_science")
    return [
        Path(str(root.joinpath(MODEL_ZIP))),
        Path(str(root.joinpath(f"{_MODEL_DIR}/g_means.csv"))),
        Path(str(root.joinpath(f"{_MODEL_DIR}/r_means.csv"))),
    ]


def _means(path: Path) -> np.ndarray:
    """A band's mean features (Fink's gap filling), in :data:`MODEL_COLUMNS` order."""
    rows = {name: float(value) for name, value in csv.reader(io.StringIO(path.read_text())) if name}
    missing = [c for c in MODEL_COLUMNS if c not in rows]
    if missing:
        raise ValueError(f"{path}: no mean for {', '.join(missing)}")
    return np.array([rows[c] for c in MODEL_COLUMNS])


class AnomalyModel:
    """Fink's two AAD forests and their gap fillers, loaded once per worker.

    Parameters
    ----------
    options : dict
        Unused; the models are fink-science's own.
    """

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        import onnxruntime as ort

        archive, g_means, r_means = _model_files(options or {})
        settings = ort.SessionOptions()
        # Spark gives each task one core; the forests must not take the others.
        settings.intra_op_num_threads = 1
        settings.inter_op_num_threads = 1
        # The models declare a 1-D output and return (n, 1): onnxruntime warns each run.
        settings.log_severity_level = 3
        with zipfile.ZipFile(archive) as z:
            self.forest_g = ort.InferenceSession(
                z.read("forest_g_AAD.onnx"), settings, providers=["CPUExecutionProvider"]
            )
            self.forest_r = ort.InferenceSession(
                z.read("forest_r_AAD.onnx"), settings, providers=["CPUExecutionProvider"]
            )
        self.g_means = _means(g_means)
        self.r_means = _means(r_means)

    def score(self, fid1: np.ndarray, fid2: np.ndarray) -> np.ndarray:
        """The anomaly score of rows of features (``MODEL_COLUMNS``) of ZTF fid 1 and fid 2."""
        x_r = np.where(np.isnan(fid1), self.r_means, fid1).astype(np.float32)
        x_g = np.where(np.isnan(fid2), self.g_means, fid2).astype(np.float32)
        if len(x_r) == 0:
            return np.zeros(0, dtype=np.float32)
        g = self.forest_g.run(None, {"X": x_g})[-1]
        r = self.forest_r.run(None, {"X": x_r})[-1]
        return ((g + r) / 2).reshape(-1)


def _model_inputs(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The rows' ``MODEL_COLUMNS`` features as a matrix, and which rows have the band."""
    struct = column.combine_chunks()
    valid = struct.is_valid().to_numpy(zero_copy_only=False)
    matrix = np.column_stack(
        [_floats(pc.struct_field(struct, name)) for name in MODEL_COLUMNS]
    ).reshape(len(struct), len(MODEL_COLUMNS))
    return matrix, valid


def anomaly_scores(batch: pa.Table, model: AnomalyModel) -> dict[str, np.ndarray]:
    """``anomaly_score`` of each ZTF alert from its ``lc_features_g`` and ``lc_features_r``."""
    g, has_g = _model_inputs(batch["lc_features_g"])
    r, has_r = _model_inputs(batch["lc_features_r"])
    # Fink scores an alert with both bands unless neither has a single feature.
    scored = has_g & has_r & ~(np.isnan(g).all(axis=1) & np.isnan(r).all(axis=1))
    out = np.zeros(batch.num_rows, dtype=np.float64)
    out[scored] = model.score(g[scored], r[scored])
    return {"anomaly_score": out}


def anomaly_module() -> ScienceModule:
    """``anomaly_score``: Fink's anomaly score of a ZTF alert (see the module's docstring)."""
    return ScienceModule(
        name="anomaly_score",
        reads=["lc_features_g", "lc_features_r"],
        adds={"anomaly_score": "double"},
        fn=anomaly_scores,
        arrow=True,
        setup=AnomalyModel,
        files=_model_files,
        requires=["ad_features"],
        surveys=("ztf",),
    )
