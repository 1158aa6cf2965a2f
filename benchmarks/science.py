"""The fink profile's modules against fink-science 7.4.0's own functions, as Fink runs them.

Both sides get the same real alerts (ALERTBENCH_ALERTS, cloned ``--copies``
times under new object ids so that a once-per-object module cannot serve
repeats from its cache):

- alertbench: each module over the raw rows in batches of 500, as a task
  runs them (``run_modules``), catalogues indexed once per worker (the
  setup is timed apart);
- Fink: the same module's pandas UDF in Spark on ``local[2]``
  (``crossmatch_other_catalog`` for VSX and GCVS, ``crossmatch_mangrove`` at
  60", ``roid_catcher``), each query run alone to a no-op sink; and the same
  function called directly on one pandas batch, without Spark.

Writes benchmarks/results/science-*.json: ms per alert per module for each.

    ALERTBENCH_ALERTS=../shared/data/ztf/night-20231018-v4.02 \\
        .venv/bin/python benchmarks/science.py --copies 5 --repeats 3
"""

from __future__ import annotations

import argparse
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

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.raw import records_raw
from alertbench.broker.batch.science import ScienceStats, resolve_modules, run_modules, usable
from alertbench.broker.batch.science import module as module_state
from output import alert_files, machine, write_result

MODULES = ["vsx", "gcvs", "mangrove", "brightstar", "roid"]


def raw_alerts(copies: int) -> pa.Table:
    """The alerts' raw rows as the broker decodes them, ``copies`` times under new objects."""
    records, schema = [], None
    for path in alert_files():
        with path.open("rb") as fh:
            reader = fastavro.reader(fh)
            records += list(reader)
            schema = Schema(reader.writer_schema)
    raw = records_raw(schema, records).drop_columns(
        ["cutoutScience", "cutoutTemplate", "cutoutDifference"]
    )
    parts = []
    for k in range(copies):
        ids = [f"{o}-{k}" for o in raw["objectId"].to_pylist()]
        parts.append(raw.set_column(raw.column_names.index("objectId"), "objectId", pa.array(ids)))
    return pa.concat_tables(parts)


def ours(raw: pa.Table, repeats: int) -> dict:
    """ms per alert of each module inside a task's loop, and its once-per-worker setup."""
    modules, _ = usable(resolve_modules(MODULES, survey="ztf"), raw.column_names, "ztf")
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
    jd_prv = raw["prv_candidates"].to_pylist()
    cjd, cmag = [], []
    for prv, jd, mag in zip(jd_prv, raw["jd"].to_pylist(), raw["magpsf"].to_pylist(), strict=True):
        prv = prv or []
        cjd.append([p["jd"] for p in prv] + [jd])
        cmag.append([np.nan if p["magpsf"] is None else p["magpsf"] for p in prv] + [mag])
    frame = raw.select(
        ["candid", "ra", "dec", "ndethist", "sgscore1", "ssdistnr", "distpsnr1"]
    ).to_pandas()
    frame["cjd"], frame["cmagpsf"] = cjd, cmag
    return frame


def fink_calls():
    from fink_science.ztf.asteroids.processor import roid_catcher
    from fink_science.ztf.xmatch.processor import crossmatch_mangrove, crossmatch_other_catalog

    return crossmatch_other_catalog, crossmatch_mangrove, roid_catcher


def fink_in_spark(frame: pd.DataFrame, folder: Path, repeats: int) -> dict:
    """ms per alert of each Fink UDF in Spark local[2], each query alone to a no-op sink."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    xmatch, mangrove, roid = fink_calls()
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
    }
    out = {}
    for name, column in columns.items():
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            df.select(column.alias(name)).write.format("noop").mode("overwrite").save()
            times.append((time.perf_counter() - began) * 1e3 / n)
        out[name] = {"ms_per_alert": statistics.median(times), "range": [min(times), max(times)]}
    spark.stop()
    return out


def fink_in_process(frame: pd.DataFrame, repeats: int) -> dict:
    """ms per alert of each Fink function called on one pandas batch, without Spark."""
    xmatch, mangrove, roid = fink_calls()
    n = len(frame)
    s = {c: frame[c] for c in frame.columns}
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
    }
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            call()
            times.append((time.perf_counter() - began) * 1e3 / n)
        out[name] = {"ms_per_alert": statistics.median(times), "range": [min(times), max(times)]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
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
    write_result(args.out, "science", result)


if __name__ == "__main__":
    main()
