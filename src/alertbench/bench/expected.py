"""What each distribution topic must hold: the filters applied to the science Parquet.

Run as ``python -m alertbench.bench.expected`` after the broker stopped: a
short local Spark job in its own process (the bench process forks producers
and keeps no JVM). It writes one ``topic,alert_id`` row per selected alert.
The SQL filters run in Spark SQL here, not in the DataFusion the broker's
tasks use: the check does not share the engine it checks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alertbench.broker.batch.filters import Filter
from alertbench.broker.batch.flatten import alert_id_column
from alertbench.errors import ConfigError


def _python_flags(frame, filters: list[Filter]):
    """Add a boolean column per Python filter (evaluated on Arrow batches)."""
    import pyarrow as pa
    from pyspark.sql.types import BooleanType, StructField, StructType

    py = [f for f in filters if f.function is not None]
    if not py:
        return frame
    schema = StructType(
        [*frame.schema.fields, *[StructField(f"_f{i}", BooleanType()) for i in range(len(py))]]
    )

    def flags(batches):
        for batch in batches:
            table = pa.Table.from_batches([batch])
            pdf = table.to_pandas()
            for i, f in enumerate(py):
                try:
                    values = pa.array(f.function(pdf), type=pa.bool_(), from_pandas=True)
                except Exception:
                    values = pa.nulls(table.num_rows, pa.bool_())
                table = table.append_column(f"_f{i}", values)
            yield from table.to_batches()

    return frame.mapInArrow(flags, schema)


def _chosen(frame, filters: list[Filter]):
    """``frame`` with ``_topics``, the topics whose filter each row passes (rows with none dropped).

    Every filter is evaluated in the same pass over the data.
    """
    from pyspark.sql import functions as F

    flagged = _python_flags(frame, filters)
    conds, i = [], 0
    for f in filters:
        if f.function is not None:
            cond, i = F.col(f"_f{i}"), i + 1
        else:
            cond = F.expr(f.sql)
        conds.append(F.when(F.coalesce(cond, F.lit(False)), F.lit(f.topic)))
    return flagged.withColumn("_topics", F.array_compact(F.array(*conds))).filter(
        F.size("_topics") > 0
    )


def selected(frame, filters: list[Filter]):
    """``(topic, alert_id)`` of every alert each filter selects: what the topics must hold."""
    from pyspark.sql import functions as F

    id_col = alert_id_column(frame.columns)
    if id_col is None:
        raise ConfigError(f"no alert id column (one of candid, alertId, diaSourceId) in {frame}")
    return _chosen(frame, filters).select(
        F.explode("_topics").alias("topic"), F.col(id_col).cast("string").alias("alert_id")
    )


def expected_routes(science: Path, filters: dict[str, str], out: Path, master: str) -> int:
    """Write the ``(topic, alert_id)`` pairs the filters select from ``science``; returns rows."""
    from alertbench.broker.batch.filters import parse_filters
    from alertbench.config import load_settings
    from alertbench.spark.session import build_session

    out.parent.mkdir(parents=True, exist_ok=True)
    files = list(science.rglob("*.parquet")) if science.exists() else []
    if not files:
        out.write_text("topic,alert_id\n")
        return 0
    spark = build_session(load_settings(broker={"master": master}), app_name="alertbench-expected")
    try:
        frame = spark.read.parquet(str(science))
        rows = selected(frame, parse_filters(filters)).toPandas()
    finally:
        spark.stop()
    rows.to_csv(out, index=False)
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--science DIR --filters JSON --out CSV [--master local[1]]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--science", type=Path, required=True)
    parser.add_argument("--filters", required=True, help="JSON: topic -> filter")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--master", default="local[1]")
    args = parser.parse_args(argv)
    expected_routes(args.science, json.loads(args.filters), args.out, args.master)


if __name__ == "__main__":
    main()
