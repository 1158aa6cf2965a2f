"""The fink profile's modules against fink-science 7.4.0's own functions, as Fink runs them.

Both sides get the same real alerts (ALERTBENCH_ALERTS, cloned ``--copies``
times under new object ids so that a once-per-object module cannot serve
repeats from its cache):

- alertbench: each module over the raw rows in batches of 500, as a task
  runs them (``run_modules``), catalogues indexed once per worker (the
  setup is timed apart);
- Fink: the same module's pandas UDF in Spark on ``local[2]``
  (``crossmatch_other_catalog`` for VSX and GCVS, ``crossmatch_mangrove`` at
  60", ``roid_catcher``, ``extract_features_ad``, ``anomaly_score``), each
  query run alone to a no-op sink (the anomaly score over features computed
  and cached before); and the same function called directly on one pandas
  batch, without Spark. ``anomaly_score`` calls ``pandas.read_csv(squeeze=True)``,
  gone in pandas 2: it runs with that one keyword removed, nothing else.

Then each science profile's modules alone, on ZTF and on Rubin alerts
(``--lsst``: a folder of real Rubin alerts, cloned ``--lsst-copies`` times),
as the capacity model's per-profile costs.

Writes benchmarks/results/science-*.json: ms per alert per module for each;
with ``--costs FILE``, also the per-profile costs in the capacity model's
format (``src/alertbench/bench/science_costs.json`` is one such file).

    ALERTBENCH_ALERTS=../shared/data/ztf/night-20231018-v4.02 \\
        .venv/bin/python benchmarks/science.py --copies 5 --repeats 3 \\
        --lsst ../shared/data/lsst/lsstcam-20260306-v10.0 --lsst-copies 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alertbench.alerts.files import find_alert_files
from alertbench.alerts.schema import Schema
from alertbench.broker.batch.raw import records_raw
from alertbench.broker.batch.science import (
    PROFILES,
    ScienceStats,
    resolve_modules,
    run_modules,
    usable,
)
from alertbench.broker.batch.science import module as module_state
from alertbench.broker.batch.science.fink import OBJECT_KEYS
from output import alert_files, machine, write_result

MODULES = ["vsx", "gcvs", "mangrove", "brightstar", "roid", "ad_features", "anomaly_score"]
#: The per-alert arrays fink-broker's ``concat_col`` builds for the light-curve features.
HISTORY = ["jd", "fid", "magpsf", "sigmapsf", "magnr", "sigmagnr", "isdiffpos", "distnr"]
FEATURE_ARGS = ["cmagpsf", "cjd", "csigmapsf", "cfid", "objectId"]
FEATURE_ARGS += ["cdistnr", "cmagnr", "csigmagnr", "cisdiffpos"]


def raw_alerts(copies: int, files: list[Path] | None = None, survey: str = "ztf") -> pa.Table:
    """The alerts' raw rows as the broker decodes them, ``copies`` times under new objects."""
    records, schema = [], None
    for path in files or alert_files():
        with path.open("rb") as fh:
            reader = fastavro.reader(fh)
            records += list(reader)
            schema = Schema(reader.writer_schema)
    raw = records_raw(schema, records).drop_columns(
        ["cutoutScience", "cutoutTemplate", "cutoutDifference"]
    )
    key = OBJECT_KEYS[survey]
    objects = raw[key].to_pylist()
    number = {o: i for i, o in enumerate(dict.fromkeys(objects))}
    parts = []
    for k in range(copies):
        # New objects: ZTF names them, Rubin numbers them.
        ids = [f"{o}-{k}" if survey == "ztf" else k * len(number) + number[o] for o in objects]
        parts.append(raw.set_column(raw.column_names.index(key), key, pa.array(ids)))
    # One chunk, so that batches of 500 are cut from it, not one per source file.
    return pa.concat_tables(parts).combine_chunks()


def ours(raw: pa.Table, repeats: int, names: list[str] = MODULES, survey: str = "ztf") -> dict:
    """ms per alert of each module inside a task's loop, and its once-per-worker setup."""
    modules, _ = usable(resolve_modules(names, survey=survey), raw.column_names, survey)
    module_state._STATES.clear()
    runs: dict[str, list[float]] = {m.name: [] for m in modules}
    setup: dict[str, float] = {}
    for k in range(repeats + 1):
        module_state._OBJECTS.clear()  # every object new again, as in a fresh night
        stats = ScienceStats()
        for _ in run_modules(modules, iter(raw.to_batches(max_chunksize=500)), stats):
            pass
        for name, cost in stats.costs.items():
            if k == 0:
                setup[name] = cost.setup_seconds
            else:  # the first pass also builds the indexes: not counted
                runs[name].append(cost.seconds * 1e3 / cost.rows)
    return {
        name: {
            "ms_per_alert": statistics.median(v),
            "range": [min(v), max(v)],
            "setup_s": round(setup[name], 3),
        }
        for name, v in runs.items()
    }


def fink_inputs(raw: pa.Table) -> pd.DataFrame:
    """The columns Fink's functions take, as fink-broker builds them (histories as arrays)."""
    history = raw["prv_candidates"].to_pylist()
    current = raw.select(HISTORY).to_pylist()
    arrays: dict[str, list] = {f"c{f}": [] for f in HISTORY}
    for prv, now in zip(history, current, strict=True):
        for f in HISTORY:
            values = [p[f] for p in prv or []] + [now[f]]
            if f == "isdiffpos":
                arrays["cisdiffpos"].append([str(v) for v in values])
            elif f == "fid":
                arrays["cfid"].append(values)
            else:  # as Spark hands a pandas UDF a double array: NaN where missing
                arrays[f"c{f}"].append([np.nan if v is None else v for v in values])
    frame = raw.select(
        ["candid", "objectId", "ra", "dec", "ndethist", "sgscore1", "ssdistnr", "distpsnr1"]
    ).to_pandas()
    for column, values in arrays.items():
        frame[column] = values
    return frame


def fink_calls():
    from fink_science.ztf.ad_features.processor import extract_features_ad
    from fink_science.ztf.asteroids.processor import roid_catcher
    from fink_science.ztf.xmatch.processor import crossmatch_mangrove, crossmatch_other_catalog

    return crossmatch_other_catalog, crossmatch_mangrove, roid_catcher, extract_features_ad


def _without_squeeze() -> None:
    """Let fink-science's anomaly processor call ``read_csv(squeeze=True)`` under pandas 2."""
    if getattr(pd.read_csv, "alertbench_shim", False):
        return
    read_csv = pd.read_csv

    def shim(*args, squeeze=False, **kwargs):
        frame = read_csv(*args, **kwargs)
        return frame.squeeze("columns") if squeeze else frame

    shim.alertbench_shim = True
    pd.read_csv = shim


def fink_anomaly(lc_features: pd.Series) -> pd.Series:
    """fink-science's ``anomaly_score`` (the default model) on a batch of feature maps."""
    _without_squeeze()
    from fink_science.ztf.anomaly_detection.processor import anomaly_score

    return anomaly_score.func(lc_features.apply(lambda m: dict(m) if m is not None else {}))


def _forget_extracted_models() -> None:
    # fink-science unzips its forests into /tmp and reuses whatever it finds there.
    for name in ("forest_g_AAD.onnx", "forest_r_AAD.onnx"):
        Path(tempfile.gettempdir(), name).unlink(missing_ok=True)


def fink_in_spark(frame: pd.DataFrame, folder: Path, repeats: int) -> dict:
    """ms per alert of each Fink UDF in Spark local[2], each query alone to a no-op sink."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    xmatch, mangrove, roid, features = fink_calls()
    _forget_extracted_models()
    # The workers run this interpreter, with its packages (fink-science among them).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    path = folder / "fink-input.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    df = spark.read.parquet(str(path)).repartition(2).cache()
    n = df.count()
    columns = {
        "vsx": xmatch(df.candid, df.ra, df.dec, F.lit("vsx")),
        "gcvs": xmatch(df.candid, df.ra, df.dec, F.lit("gcvs")),
        "mangrove": mangrove(df.candid, df.ra, df.dec, F.lit(60.0)),
        "roid": roid(df.cjd, df.cmagpsf, df.ndethist, df.sgscore1, df.ssdistnr, df.distpsnr1),
        "ad_features": features(*[df[c] for c in FEATURE_ARGS]),
    }
    out = {}

    def timed(name, frame, column) -> None:
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            frame.select(column.alias(name)).write.format("noop").mode("overwrite").save()
            times.append((time.perf_counter() - began) * 1e3 / n)
        out[name] = {"ms_per_alert": statistics.median(times), "range": [min(times), max(times)]}

    for name, column in columns.items():
        timed(name, df, column)
    # The score alone, over features computed (and cached) before, as its own query.
    scored = df.select(columns["ad_features"].alias("lc_features")).cache()
    scored.count()
    timed("anomaly_score", scored, F.pandas_udf(fink_anomaly, DoubleType())("lc_features"))
    spark.stop()
    _forget_extracted_models()
    return out


def fink_in_process(frame: pd.DataFrame, repeats: int) -> dict:
    """ms per alert of each Fink function called on one pandas batch, without Spark."""
    from fink_science.ztf.ad_features.processor import extract_features_ad_raw

    xmatch, mangrove, roid, _ = fink_calls()
    n = len(frame)
    s = {c: frame[c] for c in frame.columns}
    rows = frame[FEATURE_ARGS].to_dict("records")

    def feature_maps() -> list:
        return [extract_features_ad_raw(*(np.asarray(r[c]) for c in FEATURE_ARGS)) for r in rows]

    maps = pd.Series(feature_maps())
    _forget_extracted_models()
    calls = {
        "vsx": lambda: xmatch.func(s["candid"], s["ra"], s["dec"], pd.Series(["vsx"] * n)),
        "gcvs": lambda: xmatch.func(s["candid"], s["ra"], s["dec"], pd.Series(["gcvs"] * n)),
        "mangrove": lambda: mangrove.func(s["candid"], s["ra"], s["dec"], pd.Series([60.0] * n)),
        "roid": lambda: roid.func(
            s["cjd"].apply(np.asarray),
            s["cmagpsf"].apply(lambda v: np.asarray(v, float)),
            s["ndethist"],
            s["sgscore1"],
            s["ssdistnr"],
            s["distpsnr1"],
        ),
        "ad_features": feature_maps,
        "anomaly_score": lambda: fink_anomaly(maps),
    }
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            call()
            times.append((time.perf_counter() - began) * 1e3 / n)
        out[name] = {"ms_per_alert": statistics.median(times), "range": [min(times), max(times)]}
    _forget_extracted_models()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--lsst", type=Path, help="a folder of real Rubin alerts")
    parser.add_argument("--lsst-copies", type=int, default=300)
    parser.add_argument("--costs", type=Path, help="write the per-profile costs here")
    args = parser.parse_args()
    raw = raw_alerts(args.copies)
    print(f"{raw.num_rows} alerts ({args.copies} copies)")
    mine = ours(raw, args.repeats)
    frame = fink_inputs(raw)
    with tempfile.TemporaryDirectory() as folder:
        spark = fink_in_spark(frame, Path(folder), args.repeats)
    alone = fink_in_process(frame, args.repeats)
    rows = {}
    for name in MODULES:
        rows[name] = {
            "alertbench_ms_per_alert": round(mine[name]["ms_per_alert"], 5),
            "alertbench_range": [round(v, 5) for v in mine[name]["range"]],
            "alertbench_setup_s": mine[name]["setup_s"],
        }
        if name in spark:
            rows[name].update(
                {
                    "fink_spark_ms_per_alert": round(spark[name]["ms_per_alert"], 5),
                    "fink_spark_range": [round(v, 5) for v in spark[name]["range"]],
                    "fink_pandas_ms_per_alert": round(alone[name]["ms_per_alert"], 5),
                    "speedup_vs_fink_spark": round(
                        spark[name]["ms_per_alert"] / mine[name]["ms_per_alert"], 1
                    ),
                }
            )
        print(name, rows[name])
    shared = [n for n in MODULES if n in spark]
    total_mine = sum(mine[n]["ms_per_alert"] for n in shared)
    total_fink = sum(spark[n]["ms_per_alert"] for n in shared)
    result = {
        "what": "fink profile modules vs fink-science 7.4.0's functions (pandas UDFs, local[2])",
        "machine": machine(),
        "alerts": raw.num_rows,
        "repeats": args.repeats,
        "modules": rows,
        "same_modules": shared,
        "alertbench_ms_per_alert": round(total_mine, 5),
        "fink_spark_ms_per_alert": round(total_fink, 5),
        "speedup": round(total_fink / total_mine, 1),
    }
    print(f"same modules: alertbench {total_mine:.4f} ms/alert, Fink in Spark {total_fink:.4f}")
    result["profiles"] = profile_costs(raw, args)
    write_result(args.out, "science", result)
    if args.costs:
        costs = {
            "what": "ms per alert of each science profile's modules, by survey "
            "(benchmarks/science.py); the capacity model's per-profile costs",
            "measured": {
                "date": time.strftime("%Y-%m-%d"),
                "machine": result["machine"],
                "command": " ".join(sys.argv),
            },
            "surveys": result["profiles"],
        }
        args.costs.write_text(json.dumps(costs, indent=2) + "\n")
        print(f"wrote {args.costs}")


def profile_costs(ztf: pa.Table, args: argparse.Namespace) -> dict:
    """Each profile's modules alone, per survey: ms per alert of each, and their alerts."""
    tables = {"ztf": ztf}
    if args.lsst:
        tables["lsst"] = raw_alerts(args.lsst_copies, find_alert_files([args.lsst]), "lsst")
    out: dict = {}
    for survey, raw in tables.items():
        out[survey] = {}
        for profile, names in PROFILES.items():
            # ours() runs only the modules that serve the survey: none may.
            costs = ours(raw, args.repeats, names, survey)
            out[survey][profile] = {
                "alerts": raw.num_rows,
                "modules": {n: round(c["ms_per_alert"], 5) for n, c in costs.items()},
                "ms_per_alert": round(sum(c["ms_per_alert"] for c in costs.values()), 5),
            }
            print(survey, profile, out[survey][profile])
    return out


if __name__ == "__main__":
    main()
