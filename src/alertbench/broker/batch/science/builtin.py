"""Built-in science modules; none needs the network.

The rules are deliberately simple and stated: they make the broker's work
realistic and testable, not a classifier of record.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alertbench.broker.batch.science.module import science_module

# ZTF writes -999 for "no such neighbour".
SSO_MAX_DISTANCE_ARCSEC = 5.0
STAR_MAX_DISTANCE_ARCSEC = 1.5
STAR_MIN_SGSCORE = 0.7
GR_MAX_GAP_DAYS = 1.0


@science_module(
    "sso",
    reads=["ssdistnr", "ssmagnr", "ssnamenr"],
    adds={"sso_candidate": "boolean", "sso_name": "string"},
)
def sso(batch):
    """Solar System object association from the alert's nearest known asteroid.

    An alert is a candidate when ZTF found a known asteroid (``ssnamenr``)
    within 5 arcsec (``ssdistnr``) with a predicted magnitude (``ssmagnr``).
    """
    dist = batch["ssdistnr"].astype("float64")
    mag = batch["ssmagnr"].astype("float64")
    name = batch["ssnamenr"]
    hit = (
        (dist >= 0)
        & (dist < SSO_MAX_DISTANCE_ARCSEC)
        & (mag > 0)
        & name.notna()
        & (name.astype(str) != "null")
    ).fillna(False)
    return {"sso_candidate": hit.to_numpy(bool), "sso_name": name.where(hit, None).to_list()}


@science_module(
    "context",
    reads=["distpsnr1", "sgscore1"],
    adds={"ps1_distance": "double", "ps1_sgscore": "double", "near_star": "boolean"},
)
def context(batch):
    """Star/galaxy context from the nearest Pan-STARRS1 source.

    ``near_star``: a PS1 source within 1.5 arcsec whose star-galaxy score is
    above 0.7 (a point source): probably a variable star, not a transient.
    """
    dist = batch["distpsnr1"].astype("float64").where(lambda d: d >= 0)
    score = batch["sgscore1"].astype("float64").where(lambda s: s >= 0)
    near = ((dist < STAR_MAX_DISTANCE_ARCSEC) & (score > STAR_MIN_SGSCORE)).fillna(False)
    return {
        "ps1_distance": dist.to_numpy(float),
        "ps1_sgscore": score.to_numpy(float),
        "near_star": near.to_numpy(bool),
    }


def _flat_history(table: pa.Table, column: str, fields: list[str]):
    """Each history entry's fields as numpy arrays, plus the index of its alert."""
    hist = table[column].combine_chunks()
    if pa.types.is_null(hist.type):
        return np.array([], dtype=int), {f: np.array([]) for f in fields}
    parents = pc.list_parent_indices(hist).to_numpy()
    flat = pc.list_flatten(hist)
    out = {}
    for f in fields:
        values = pc.struct_field(flat, f)
        out[f] = values.to_numpy(zero_copy_only=False).astype(float)
    return parents, out


@science_module(
    "lightcurve",
    reads=["jd", "fid", "magpsf", "jdstarthist", "prv_candidates"],
    adds={
        "ndet_g": "int",
        "ndet_r": "int",
        "duration": "double",
        "rise_rate": "double",
        "fade_rate": "double",
        "color_gr": "double",
    },
    arrow=True,
)
def lightcurve(table: pa.Table):
    """Light-curve features from the alert and its 30-day history.

    ``ndet_g`` / ``ndet_r``: detections in g (fid 1) and r (fid 2), this one
    included. ``duration``: days since the first detection (``jdstarthist``).
    ``rise_rate`` / ``fade_rate``: mag/day of brightening / fading since the
    last detection in the same band (0 when it went the other way, null with
    no earlier detection). ``color_gr``: g - r from the latest detection in
    each band up to the alert's time (the alert itself in its own band), when
    they are less than a day apart.
    """
    n = table.num_rows
    jd = table["jd"].to_numpy().astype(float)
    fid = table["fid"].to_numpy().astype(float)
    mag = table["magpsf"].to_numpy(zero_copy_only=False).astype(float)
    parent, h = _flat_history(table, "prv_candidates", ["jd", "fid", "magpsf"])
    det = ~np.isnan(h["magpsf"]) if len(parent) else np.array([], bool)
    ndet = {}
    for band, f in (("g", 1), ("r", 2)):
        counts = np.bincount(parent[det & (h["fid"] == f)], minlength=n) if len(parent) else 0
        ndet[band] = (counts + (fid == f)).astype(np.int32)
    last_same = np.full(n, np.nan)
    last_same_jd = np.full(n, np.nan)
    latest = {
        1: (np.full(n, np.nan), np.full(n, np.nan)),
        2: (np.full(n, np.nan), np.full(n, np.nan)),
    }
    for f, (lmag, ljd) in latest.items():
        cur = fid == f
        lmag[cur], ljd[cur] = mag[cur], jd[cur]
    if len(parent):
        order = np.argsort(h["jd"], kind="stable")
        for i in order[det[order]]:
            p, hj = parent[i], h["jd"][i]
            if h["fid"][i] == fid[p] and hj < jd[p]:
                last_same[p], last_same_jd[p] = h["magpsf"][i], hj
            lmag, ljd = latest.get(int(h["fid"][i]), (None, None))
            # The other band's latest detection up to the alert: never the future.
            other_band = lmag is not None and fid[p] != h["fid"][i] and hj <= jd[p]
            if other_band and (np.isnan(ljd[p]) or hj > ljd[p]):
                lmag[p], ljd[p] = h["magpsf"][i], hj
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (mag - last_same) / (jd - last_same_jd)
    rise = np.where(np.isnan(slope), np.nan, np.maximum(0.0, -slope))
    fade = np.where(np.isnan(slope), np.nan, np.maximum(0.0, slope))
    (gmag, gjd), (rmag, rjd) = latest[1], latest[2]
    color = np.where(np.abs(gjd - rjd) < GR_MAX_GAP_DAYS, gmag - rmag, np.nan)
    start = table["jdstarthist"].to_numpy(zero_copy_only=False).astype(float)
    return {
        "ndet_g": ndet["g"],
        "ndet_r": ndet["r"],
        "duration": jd - start,
        "rise_rate": pa.array(rise, from_pandas=True),
        "fade_rate": pa.array(fade, from_pandas=True),
        "color_gr": pa.array(color, from_pandas=True),
    }


@science_module(
    "early_sn",
    reads=["isdiffpos", "duration", "rise_rate", "ndet_g", "ndet_r", "near_star", "sso_candidate"],
    adds={"early_sn_score": "double"},
)
def early_sn(batch):
    """An early-supernova candidate score in [0, 1], built on the other modules.

    A logistic of: a positive difference (``isdiffpos`` t), young (under 20
    days since the first detection), rising, at least two detections, and
    neither a point source nor a known asteroid (those score 0).
    """
    positive = batch["isdiffpos"].astype(str).isin(["t", "1"]).to_numpy(float)
    young = (batch["duration"].astype(float) < 20).fillna(False).to_numpy(float)
    rising = (batch["rise_rate"].astype(float) > 0).fillna(False).to_numpy(float)
    several = ((batch["ndet_g"] + batch["ndet_r"]) >= 2).to_numpy(float)
    logit = -3.0 + 1.5 * positive + 1.5 * young + 2.0 * rising + 1.0 * several
    score = 1.0 / (1.0 + np.exp(-logit))
    vetoed = (batch["near_star"].fillna(False) | batch["sso_candidate"].fillna(False)).to_numpy(
        bool
    )
    return {"early_sn_score": np.where(vetoed, 0.0, score)}


MODULES = [sso, context, lightcurve, early_sn]
