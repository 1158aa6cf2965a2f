"""The fink profile's light-curve features and anomaly score against Fink's own code.

Oracles:

- fink-science's own light-curve extractor (light-curve 0.9.6, the version
  Fink runs; GPL-3.0, a development dependency only) for the numpy
  features, light curve by light curve;
- fink-science 7.4.0's ``extract_features_ad_raw`` for ZTF alerts, fed each
  alert's arrays as fink-broker's ``concat_col`` builds them;
- golden anomaly scores made with fink-science 7.4.0's ``anomaly_score``
  unpatched, under pandas 1.5.3 and onnxruntime 1.16.3, and golden Rubin
  features made with fink-science's Rubin extractor (after 7.4.0), both in
  ``tests/data/fink`` beside the scripts that made them.

The alerts reach the modules as the broker hands them over: decoded by the
native decoder into raw rows, then run by ``run_modules``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from alertbench.alerts.files import find_alert_files
from alertbench.broker.batch.raw import records_raw
from alertbench.broker.batch.science import module as module_state
from alertbench.broker.batch.science import resolve_modules, run_modules, usable
from alertbench.broker.batch.science.features import FEATURES, extract
from alertbench.broker.batch.science.fink_lightcurve import (
    MODEL_COLUMNS,
    AnomalyModel,
    anomaly_scores,
)
from records import read_records

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent.parent / "data" / "fink"
#: The straight-line fits: light-curve sums times of about 2.46e6 days in another
#: order than numpy, so a fit of a nearly flat light curve differs from the sixth digit.
LINEAR = tuple(f for f in FEATURES if f.startswith("linear_"))
#: Our workers run each forest on one thread, which adds the 150 trees' scores in
#: another order than onnxruntime's default pool: a few float32 ulps.
SCORE_TOLERANCE = 1e-7


def _close(ours: float, theirs: float, name: str) -> bool:
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    rel = 1e-4 if name in LINEAR else 1e-9
    return math.isclose(ours, theirs, rel_tol=rel, abs_tol=1e-12)


def _science(raw: pa.Table, survey: str, names: list[str], chunk: int = 500) -> pa.Table:
    module_state._STATES.clear()
    module_state._OBJECTS.clear()
    modules, _ = usable(resolve_modules(names, survey=survey), raw.column_names, survey)
    return pa.Table.from_batches(list(run_modules(modules, iter(raw.to_batches(chunk)))))


def _golden_maker(name: str):
    """A script of tests/data/fink as a module: the tests call Fink as it did."""
    spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def night(alert_files):
    """The shared night: records, Fink's features of each alert, and the fink profile's columns."""
    schema, records = read_records(alert_files)
    maker = _golden_maker("make_anomaly_scores")
    fink = [maker.fink_features(r) for r in records]
    ours = _science(records_raw(schema, records), "ztf", ["ad_features", "anomaly_score"])
    return records, fink, ours


def _curves(records: list[dict]) -> list[np.ndarray]:
    """Real light curves (one band's detections of one alert, in strictly increasing jd), edges."""
    curves = []
    for r in records:
        points = [*(r["prv_candidates"] or []), r["candidate"]]
        for fid in (1, 2):
            band = sorted(
                (p["jd"], p["magpsf"], p["sigmapsf"])
                for p in points
                if p["fid"] == fid and p["magpsf"] is not None
            )
            if band and len({p[0] for p in band}) == len(band):
                curves.append(np.array(band))
    rng = np.random.default_rng(7)
    for n in range(1, 9):
        for _ in range(25):
            mag = rng.normal(18.0, 0.4, n)
            if rng.random() < 0.3:  # repeated magnitudes: ties in every quantile
                mag = np.round(mag, 1)
            t = 2460000.5 + np.cumsum(rng.uniform(0.001, 3.0, n))
            curves.append(np.column_stack([t, mag, rng.uniform(0.01, 0.3, n)]))
    curves.append(np.array([[1.0, 17.0, 0.1], [2.0, 17.0, 0.1], [3.0, 17.0, 0.2]]))  # flat
    return curves


def test_features_equal_light_curves_extractor(alert_files) -> None:
    _schema, records = read_records(alert_files)
    curves = _curves(records)
    # Fink's own extractor: the 22 light-curve features that give its 26 columns.
    from fink_science.ztf.ad_features.processor import create_extractor

    extractor = create_extractor()
    assert tuple(extractor.names) == FEATURES
    theirs = np.array([extractor(c[:, 0], c[:, 1], c[:, 2], fill_value=np.nan) for c in curves])
    flat = np.concatenate(curves)
    ours = extract(np.array([len(c) for c in curves]), flat[:, 0], flat[:, 1], flat[:, 2])
    assert len(curves) == 1270  # 1,069 of the night and 201 edges
    for j, name in enumerate(FEATURES):
        bad = [i for i in range(len(curves)) if not _close(ours[name][i], theirs[i, j], name)]
        assert not bad, (name, bad[:5], ours[name][bad[:5]], theirs[bad[:5], j])
    # Every feature was computed somewhere and refused (NaN) somewhere.
    for name in ("kurtosis", "skew", "anderson_darling_normal", "linear_fit_slope", "cusum"):
        assert np.isnan(ours[name]).any(), name
        assert (~np.isnan(ours[name])).sum() > 500, name


def test_ztf_features_equal_finks_extract_features_ad_raw(night) -> None:
    records, fink, ours = night
    shown = {"g": 0, "r": 0}
    for band, fid in (("g", 1), ("r", 2)):
        for i, row in enumerate(ours[f"lc_features_{band}"].to_pylist()):
            theirs = fink[i].get(fid)
            assert (row is None) == (theirs is None), (records[i]["candid"], band)
            if row is None:
                continue
            shown[band] += 1
            for name in FEATURES:
                assert _close(row[name], theirs[name], name), (records[i]["candid"], band, name)
    assert shown == {"g": 770, "r": 788}


def test_the_ztf_cases_fink_treats_apart_occur_on_the_shared_night(night) -> None:
    records, _fink, ours = night
    valid = lambda p: p["magpsf"] is not None and p["sigmapsf"] is not None  # noqa: E731
    dc = repeated = upper_limits_only = 0
    g = ours["lc_features_g"].to_pylist()
    for r, row in zip(records, g, strict=True):
        points = [*(r["prv_candidates"] or []), r["candidate"]]
        good = [p for p in points if valid(p)]
        dc += any(p["distnr"] is not None and 0 <= p["distnr"] <= 1.5 for p in good)
        band = [p["jd"] for p in good if p["fid"] == 1]
        if len(band) != len(set(band)):
            repeated += 1
            assert row is None  # light-curve refuses two detections at one time
        elif any(p["fid"] == 1 for p in points) and not band:
            upper_limits_only += 1
            assert row is not None
            assert all(math.isnan(row[f]) for f in FEATURES)
    # DC magnitudes, bands skipped and bands of upper limits only: all on this night.
    assert dc > 100
    assert repeated > 100
    assert upper_limits_only > 100


def _golden_scores() -> dict[int, tuple[str, float]]:
    with (GOLDEN / "anomaly_scores-20231018.csv").open() as fh:
        return {
            int(r["candid"]): (r["bands"], float(r["anomaly_score"])) for r in csv.DictReader(fh)
        }


def test_anomaly_scores_equal_finks_golden_scores(night) -> None:
    records, fink, ours = night
    golden = _golden_scores()
    scores = ours["anomaly_score"].to_pylist()
    assert len(golden) == len(records) == len(scores)
    for r, f, score in zip(records, fink, scores, strict=True):
        bands, expected = golden[r["candid"]]
        assert bands == " ".join(str(k) for k in sorted(f))
        assert abs(score - expected) <= SCORE_TOLERANCE, (r["candid"], score, expected)
        assert (score == 0.0) == (expected == 0.0)
    assert sum(s == 0.0 for s in scores) == 356
    assert min(scores) < -0.025


def _fink_features_table(fink: list[dict], pairing=(1, 2)) -> pa.Table:
    out = {}
    for band, fid in zip(("g", "r"), pairing, strict=True):
        values = [{n: f[fid][n] for n in FEATURES} if fid in f else None for f in fink]
        out[f"lc_features_{band}"] = pa.array(
            values, pa.struct([(n, pa.float64()) for n in FEATURES])
        )
    return pa.table(out)


def test_the_scorer_on_finks_own_features_gives_finks_scores_and_can_tell_a_swap(night) -> None:
    records, fink, _ours = night
    golden = _golden_scores()
    expected = np.array([golden[r["candid"]][1] for r in records])
    model = AnomalyModel()
    scores = anomaly_scores(_fink_features_table(fink), model)["anomaly_score"]
    assert np.abs(scores - expected).max() <= SCORE_TOLERANCE
    # Fink scores fid 1 with the "r" forest: the other pairing gives other scores.
    swapped = anomaly_scores(_fink_features_table(fink, pairing=(2, 1)), model)["anomaly_score"]
    assert np.abs(swapped - expected).max() > 100 * SCORE_TOLERANCE
    assert len(MODEL_COLUMNS) == 18
    assert set(MODEL_COLUMNS) <= set(FEATURES)


def test_rubin_features_equal_finks_golden_features(shared_data: Path) -> None:
    golden = {}
    with (GOLDEN / "rubin_features.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            golden[row["diaSourceId"]] = row["bands"]
    seen = 0
    for folder in ("simulated-v9.0", "lsstcam-20250906-v9.0", "lsstcam-20260306-v10.0"):
        schema, records = read_records(find_alert_files([shared_data / "lsst" / folder]))
        ours = _science(records_raw(schema, records), "lsst", ["ad_features"], chunk=50)
        for i, r in enumerate(records):
            expected = golden[r["diaSourceId"]]
            for band in "ugrizy":
                row = ours[f"lc_features_{band}"][i].as_py()
                assert (row is None) == (band not in expected), (r["diaSourceId"], band)
                for name in FEATURES if row is not None else ():
                    want = expected[band][name]
                    want = math.nan if want is None else want
                    assert _close(row[name], want, name), (r["diaSourceId"], band, name)
                    seen += 1
    assert len(golden) == 295
    assert seen > 295 * 26
