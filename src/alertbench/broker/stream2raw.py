"""stream2raw: Kafka topics -> decoded, flattened alerts in Parquet, by night.

Messages that do not decode go to ``quarantine/`` with their raw bytes, the
reason and their Kafka coordinates; the stream goes on. Output is written
exactly once per micro-batch (see :mod:`alertbench.broker.sink`).
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.decode import DecodePlan, decode_columns
from alertbench.broker.flatten import flatten
from alertbench.broker.sink import BatchSink

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "timestampType int, headers array<struct<key:string,value:binary>>"
)


def kafka_source(spark, servers: str, topics: list[str], *, max_offsets: int | None = None):
    """The streaming Kafka source (earliest offsets, headers included)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        # Test clusters come and go; a missing offset must not kill the stream.
        .option("failOnDataLoss", "false")
        .option("kafka.max.partition.fetch.bytes", str(16 * 1024 * 1024))
        .option("kafka.fetch.max.bytes", str(64 * 1024 * 1024))
    )
    if max_offsets:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets))
    return reader.load()


def decoded(df, plan: DecodePlan):
    """Kafka rows plus the decoded ``alert`` struct and ``decode_error``."""
    alert, error = decode_columns(plan)
    return df.withColumn("alert", alert).withColumn("decode_error", error)


def split(dec, plan: DecodePlan):
    """(raw alerts, quarantined messages) of a decoded frame."""
    from pyspark.sql import functions as F

    good = flatten(dec.filter(F.col("decode_error").isNull()), plan.schema)
    bad = dec.filter(F.col("decode_error").isNotNull()).select(
        "value",
        F.col("decode_error").alias("error"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_time"),
        F.current_timestamp().alias("quarantined_at"),
    )
    return good, bad


def raw_schema(spark, plan: DecodePlan):
    """The schema of the raw Parquet, for readers that start before any file exists."""
    empty = spark.createDataFrame([], KAFKA_SCHEMA)
    return split(decoded(empty, plan), plan)[0].schema


def write_raw_batch(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Decode one micro-batch and write its alerts and its quarantine, exactly once."""
    if sink.done(batch_id):
        return
    dec = decoded(df, plan).persist()
    try:
        good, bad = split(dec, plan)
        outputs = {}
        if not good.isEmpty():
            outputs["raw"] = (good, ["night"])
        if not bad.isEmpty():
            outputs["quarantine"] = (bad, [])
        sink.write(batch_id, outputs)
    finally:
        dec.unpersist()


def start(
    spark,
    plan: DecodePlan,
    *,
    servers: str,
    topics: list[str],
    out: Path,
    trigger: str,
    max_offsets: int | None = None,
):
    """Start the stream2raw query.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    sink = BatchSink(out, "stream2raw")
    return (
        kafka_source(spark, servers, topics, max_offsets=max_offsets)
        .writeStream.queryName("stream2raw")
        .foreachBatch(lambda df, batch_id: write_raw_batch(sink, df, batch_id, plan))
        .option("checkpointLocation", str(out.resolve() / "checkpoints" / "stream2raw"))
        .trigger(processingTime=trigger)
        .start()
    )
