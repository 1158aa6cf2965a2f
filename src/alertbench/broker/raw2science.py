"""raw2science: raw Parquet as a stream -> quality cuts -> science modules -> science Parquet.

Each micro-batch of new raw files is written exactly once through a
:class:`~alertbench.broker.sink.BatchSink`, like stream2raw.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.science import ScienceModule, output_schema, run_modules, usable
from alertbench.broker.sink import BatchSink

# Fink's ZTF cuts: a real-bogus score of at least 0.55 and no bad pixels nearby.
DEFAULT_CUTS = {
    "ztf": "rb >= 0.55 AND nbad = 0",
    "lsst": "reliability >= 0.5 AND NOT pixelFlags_bad",
}


def default_cuts(survey: str) -> str:
    """The quality cuts applied when none are configured."""
    return DEFAULT_CUTS.get(survey, "true")


#: Identifies a row within a batch: where its alert was in Kafka.
ROW_KEY = ["topic", "partition", "offset"]


def science_columns(raw, cuts: str, modules: list[ScienceModule]):
    """What the modules add to the rows of a static frame that pass the cuts; (frame, notes).

    The frame holds :data:`ROW_KEY` and the added columns, one row per alert
    that passes. Only the columns the modules read go through Python:
    sending whole 75 KB alerts (cutouts, history) through Arrow to Python
    and back cost more than the modules themselves.
    """
    from pyspark.sql import functions as F

    kept = raw.filter(F.expr(cuts))
    chosen, notes = usable(modules, kept.columns)
    reads = [c for c in dict.fromkeys(c for m in chosen for c in m.reads) if c in kept.columns]
    narrow = kept.select(*ROW_KEY, *reads)
    schema = output_schema(narrow.schema, chosen)
    added = narrow.mapInArrow(lambda batches: run_modules(chosen, batches), schema).drop(*reads)
    return added, notes


def with_science(raw, added):
    """The rows of ``raw`` that ``added`` has (those that passed the cuts), with its columns.

    Raw columns come in their order, then the added ones, and the partition
    column last, where Spark's file source puts it on read.
    """
    from pyspark.sql import functions as F

    science = raw.join(F.broadcast(added), ROW_KEY)
    extra = [c for c in added.columns if c not in ROW_KEY]
    ordered = [c for c in raw.columns if c != "night"] + extra
    return science.select(*ordered, *(["night"] if "night" in raw.columns else []))


def science_frame(raw, cuts: str, modules: list[ScienceModule]):
    """Cut and enrich a static raw frame; returns (frame, notes).

    The modules' results are joined back (broadcast) onto the full rows.
    """
    added, notes = science_columns(raw, cuts, modules)
    return with_science(raw, added), notes


def write_science_batch(sink: BatchSink, df, batch_id: int, cuts: str, modules) -> None:
    """Cut, enrich and write one micro-batch of raw rows, exactly once."""
    if sink.done(batch_id):
        return
    sink.write(batch_id, {"science": (science_frame(df, cuts, modules)[0], ["night"])})


def start(
    spark,
    *,
    raw_schema,
    cuts: str,
    modules: list[ScienceModule],
    out: Path,
    trigger: str,
):
    """Start the raw2science query over ``out/raw``.

    Returns
    -------
    tuple
        The StreamingQuery and notes about skipped modules.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    out = out.resolve()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    schema = StructType([*raw_schema.fields])
    if "night" not in schema.fieldNames():
        schema = StructType([*schema.fields, StructField("night", StringType())])
    raw = spark.readStream.schema(schema).option("maxFilesPerTrigger", 64).parquet(str(out / "raw"))
    _, notes = science_frame(spark.createDataFrame([], schema), cuts, modules)
    sink = BatchSink(out, "raw2science")
    query = (
        raw.writeStream.queryName("raw2science")
        .foreachBatch(lambda df, batch_id: write_science_batch(sink, df, batch_id, cuts, modules))
        .option("checkpointLocation", str(out / "checkpoints" / "raw2science"))
        .trigger(processingTime=trigger)
        .start()
    )
    return query, notes
