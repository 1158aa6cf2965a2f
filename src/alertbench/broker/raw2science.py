"""raw2science: raw Parquet as a stream -> quality cuts -> science modules -> science Parquet."""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.science import ScienceModule, output_schema, run_modules, usable

# Fink's ZTF cuts: a real-bogus score of at least 0.55 and no bad pixels nearby.
DEFAULT_CUTS = {
    "ztf": "rb >= 0.55 AND nbad = 0",
    "lsst": "reliability >= 0.5 AND NOT pixelFlags_bad",
}


def default_cuts(survey: str) -> str:
    """The quality cuts applied when none are configured."""
    return DEFAULT_CUTS.get(survey, "true")


def science_frame(raw, cuts: str, modules: list[ScienceModule]):
    """Cut and enrich a raw frame (static or streaming); returns (frame, notes)."""
    from pyspark.sql import functions as F

    kept = raw.filter(F.expr(cuts))
    chosen, notes = usable(modules, kept.columns)
    schema = output_schema(kept.schema, chosen)
    science = kept.mapInArrow(lambda batches: run_modules(chosen, batches), schema)
    # The partition column comes last, where Spark's file source puts it on read.
    ordered = [c for c in science.columns if c != "night"] + ["night"]
    return science.select(*ordered), notes


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
    frame, notes = science_frame(raw, cuts, modules)
    query = (
        frame.writeStream.queryName("raw2science")
        .format("parquet")
        .partitionBy("night")
        .option("path", str(out / "science"))
        .option("checkpointLocation", str(out / "checkpoints" / "raw2science"))
        .trigger(processingTime=trigger)
        .start()
    )
    return query, notes
