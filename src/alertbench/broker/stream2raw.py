"""stream2raw: Kafka topics -> decoded, flattened alerts in Parquet, by night.

Messages that do not decode go to ``quarantine/`` with their raw bytes, the
reason and their Kafka coordinates; the stream goes on. Output is written
exactly once per micro-batch (see :mod:`alertbench.broker.sink`).
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.decode import DECODE_FAILED, DecodePlan, decode_columns
from alertbench.broker.flatten import flatten
from alertbench.broker.sink import BatchSink

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "timestampType int, headers array<struct<key:string,value:binary>>"
)


def _consumer_options(servers: str, check_crcs: bool) -> dict[str, str]:
    """Options of Spark's Kafka reader, streaming or batch.

    ``check_crcs`` lets the consumer verify each record batch's CRC32C. Off
    by default: it cost a quarter of the read time on 2 cores (3,600 ->
    4,900 alerts/s without), TCP already checks the transfer, and a
    corrupted alert fails to decode and is quarantined anyway.
    """
    return {
        "kafka.bootstrap.servers": servers,
        "includeHeaders": "true",
        # Test clusters come and go; a missing offset must not kill the stream.
        "failOnDataLoss": "false",
        "kafka.max.partition.fetch.bytes": str(16 * 1024 * 1024),
        "kafka.fetch.max.bytes": str(64 * 1024 * 1024),
        # The client's 64 KB socket buffer starves on 75 KB alerts: 8 MB read
        # ~1.5x faster here (2,500 -> 3,700 alerts/s on 2 cores).
        "kafka.receive.buffer.bytes": str(8 * 1024 * 1024),
        "kafka.max.poll.records": "2000",
        # A live stream's every batch reads up to the newest offset, and each
        # task then waited out the consumer's fetch.max.wait.ms (500 ms) for
        # records not written yet: 550 ms per task for 3 alerts, 45 ms with
        # 10 ms. A fused batch of 10 alerts took 5.4 s, now 3.4 s.
        "kafka.fetch.max.wait.ms": "10",
        "kafka.check.crcs": str(check_crcs).lower(),
    }


def limit_options(
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
) -> dict[str, str]:
    """Options of Spark's Kafka source that size each micro-batch.

    Parameters
    ----------
    max_offsets : int, optional
        At most this many records per batch (back-pressure).
    min_offsets : int, optional
        Wait for this many new records before a batch starts, but not longer
        than ``max_trigger_delay_s`` since the last trigger. A survey's visit
        then makes one batch instead of a few alerts and the rest: each batch
        costs seconds whatever its size, and the whole visit waits for both.
    max_trigger_delay_s : float, optional
        The longest a batch waits for ``min_offsets`` (Spark's default: 15 minutes).
    """
    options = {}
    if max_offsets:
        options["maxOffsetsPerTrigger"] = str(max_offsets)
    if min_offsets:
        options["minOffsetsPerTrigger"] = str(min_offsets)
        if max_trigger_delay_s is not None:
            options["maxTriggerDelay"] = f"{round(max_trigger_delay_s * 1000)}ms"
    return options


def kafka_source(
    spark,
    servers: str,
    topics: list[str],
    *,
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = False,
):
    """The streaming Kafka source (earliest offsets, headers included).

    Parameters
    ----------
    max_offsets, min_offsets, max_trigger_delay_s
        The size of each micro-batch (see :func:`limit_options`).
    check_crcs : bool
        Let the consumer verify each record batch's CRC32C (see :func:`_consumer_options`).
    """
    return (
        spark.readStream.format("kafka")
        .options(**_consumer_options(servers, check_crcs))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .options(**limit_options(max_offsets, min_offsets, max_trigger_delay_s))
        .load()
    )


def kafka_range(
    spark, servers: str, ranges: dict[str, dict[int, tuple[int, int]]], check_crcs: bool = False
):
    """A batch read of Kafka: ``{topic: {partition: (first offset, last offset + 1)}}``."""
    import json

    def offsets(i: int) -> str:
        return json.dumps({t: {str(p): r[i] for p, r in ps.items()} for t, ps in ranges.items()})

    return (
        spark.read.format("kafka")
        .options(**_consumer_options(servers, check_crcs))
        .option("assign", json.dumps({t: sorted(parts) for t, parts in ranges.items()}))
        # Spark pools executors' consumers and their fetched records by group
        # id, for minutes. Its default, a new group per read, left every
        # batch's records in the pool until the heap ran out; one group keeps
        # one consumer per partition. It is never joined: partitions are
        # assigned and nothing is committed.
        .option("kafka.group.id", "alertbench-batch-read")
        .option("startingOffsets", offsets(0))
        .option("endingOffsets", offsets(1))
        .load()
    )


def decoded(df, plan: DecodePlan):
    """Kafka rows plus the decoded ``alert`` struct and its ``framing_error``."""
    alert, framing = decode_columns(plan)
    return df.withColumn("alert", alert).withColumn("framing_error", framing)


def _quarantined(frame, error):
    from pyspark.sql import functions as F

    return frame.select(
        "value",
        error.alias("error"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_time"),
        F.current_timestamp().alias("quarantined_at"),
    )


def _decoded_ok():
    """True for the rows of a decoded frame that hold an alert."""
    from pyspark.sql import functions as F

    return F.col("framing_error").isNull() & F.col("alert").isNotNull()


def split(dec, plan: DecodePlan):
    """(raw alerts, quarantined messages) of a decoded frame."""
    from pyspark.sql import functions as F

    ok = _decoded_ok()
    good = flatten(dec.filter(ok), plan.schema)
    error = F.coalesce(F.col("framing_error"), F.lit(DECODE_FAILED))
    return good, _quarantined(dec.filter(~ok), error)


def raw_schema(spark, plan: DecodePlan):
    """The schema of the raw Parquet, for readers that start before any file exists."""
    empty = spark.createDataFrame([], KAFKA_SCHEMA)
    return split(decoded(empty, plan), plan)[0].schema


def write_raw_batch(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Decode one micro-batch and write its alerts and its quarantine, exactly once."""
    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    stage_raw(sink, df, batch_id, plan)
    sink.commit(batch_id, ["raw", "quarantine"])


def stage_raw(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Stage the raw alerts and the quarantine of one micro-batch (not committed).

    One pass reads Kafka, decodes every alert once and writes the raw
    Parquet, while an observation counts the messages that did not decode.
    Nothing is cached: holding a batch of 75 KB messages in Spark's cache
    cost more than the rare second pass. Only a batch with a bad message
    reads its Kafka offsets again, to quarantine those messages.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    if plan.engine == "native":
        from alertbench.broker.raw import parquet_codec, stage_raw_native

        stage_raw_native(sink, df, batch_id, plan, parquet_codec(df.sparkSession))
        return
    # One task per core, not per Kafka partition: every task sets up Parquet
    # writers for ~600 nested columns. With 4 partitions on 2 cores, a fused
    # batch of 10 alerts took 3.3 s, 2.7 s coalesced; one of 5,000, 9.5 -> 9.2 s.
    df = df.coalesce(df.sparkSession.sparkContext.defaultParallelism)
    seen = Observation(f"decode-{batch_id}")
    counted = decoded(df, plan).observe(seen, F.count_if(~_decoded_ok()).alias("bad"))
    sink.stage(batch_id, "raw", flatten(counted.filter(_decoded_ok()), plan.schema), ["night"])
    if seen.get.get("bad", 0):
        sink.stage(batch_id, "quarantine", split(decoded(df, plan), plan)[1], [])


def start_kafka_query(
    spark,
    name: str,
    handle,
    *,
    servers: str,
    topics: list[str],
    out: Path,
    trigger: str,
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = False,
):
    """Start query ``name``: Kafka micro-batches to ``handle(df, batch_id)``, checkpointed.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    return (
        kafka_source(
            spark,
            servers,
            topics,
            max_offsets=max_offsets,
            min_offsets=min_offsets,
            max_trigger_delay_s=max_trigger_delay_s,
            check_crcs=check_crcs,
        )
        .writeStream.queryName(name)
        .foreachBatch(handle)
        .option("checkpointLocation", str(out.resolve() / "checkpoints" / name))
        .trigger(processingTime=trigger)
        .start()
    )


def start(
    spark,
    plan: DecodePlan,
    *,
    servers: str,
    topics: list[str],
    out: Path,
    trigger: str,
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = False,
):
    """Start the stream2raw query.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    sink = BatchSink(out, "stream2raw")
    return start_kafka_query(
        spark,
        "stream2raw",
        lambda df, batch_id: write_raw_batch(sink, df, batch_id, plan),
        servers=servers,
        topics=topics,
        out=out,
        trigger=trigger,
        max_offsets=max_offsets,
        min_offsets=min_offsets,
        max_trigger_delay_s=max_trigger_delay_s,
        check_crcs=check_crcs,
    )
