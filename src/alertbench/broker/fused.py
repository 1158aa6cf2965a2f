"""Fused mode: one streaming query does all three stages on each micro-batch.

Each batch is decoded once and written to raw Parquet, enriched and routed
to the distribution topics (the lowest latency from Kafka to Kafka), then
written to science Parquet. The staged mode keeps the stages independently
scalable, as Fink runs them; both write the same outputs.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.decode import DecodePlan, body_column
from alertbench.broker.distribute import BODY, Filter, send_batch
from alertbench.broker.raw2science import ROW_KEY, science_columns, with_science
from alertbench.broker.science import ScienceModule
from alertbench.broker.sink import BatchSink
from alertbench.broker.stream2raw import kafka_range, stage_raw, start_kafka_query


def offset_spans(folder: Path) -> dict[str, dict[int, tuple[int, int]]]:
    """``{topic: {partition: (first offset, last offset + 1)}}`` of the alerts in a Parquet folder.

    Read on the driver with pyarrow, three small columns of the staged raw
    files: a Spark aggregation would be one more job with a shuffle in
    every micro-batch's fixed cost.
    """
    import pyarrow.dataset as ds

    table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table(
        columns=["topic", "partition", "offset"]
    )
    spans = table.group_by(["topic", "partition"]).aggregate([("offset", "min"), ("offset", "max")])
    ranges: dict[str, dict[int, tuple[int, int]]] = {}
    for row in spans.to_pylist():
        ranges.setdefault(row["topic"], {})[row["partition"]] = (
            row["offset_min"],
            row["offset_max"] + 1,
        )
    return ranges


def _bodies(spark, folder: Path, plan: DecodePlan, servers: str, check_crcs: bool):
    """:data:`ROW_KEY` and the original Avro body of the alerts staged in ``folder`` (None if none).

    A batch read of Kafka at the offsets that they span, not a second scan
    of the micro-batch: Spark counts every scan of a micro-batch in its
    input rows.
    """
    ranges = offset_spans(folder)
    if not ranges:
        return None
    return kafka_range(spark, servers, ranges, check_crcs=check_crcs).select(
        *ROW_KEY, body_column(plan).alias(BODY)
    )


def process_batch(
    spark,
    df,
    batch_id: int,
    *,
    plan: DecodePlan,
    sink: BatchSink,
    raw_schema,
    cuts: str,
    modules: list[ScienceModule],
    filters: list[Filter],
    servers: str,
    check_crcs: bool = False,
) -> None:
    """Decode and store, enrich and distribute, then store the science of one micro-batch.

    Each alert is decoded once, into the raw Parquet; the modules read
    their columns back from it, once, and both the distribution and the
    science Parquet take their results. A distributed alert is its original
    Avro body from the Kafka batch followed by the added columns, so no
    whole alert is encoded again. Nothing large is held in Spark's cache:
    building a cache of 75 KB alerts cost more than writing them and
    reading them back from local Parquet. The distribution topics are
    written before the science Parquet, for the lowest send-to-topic
    latency; the batch commits when all are written.
    """
    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    stage_raw(sink, df, batch_id, plan)
    staged = sink.staged(batch_id, "raw")
    raw = spark.read.schema(raw_schema).parquet(str(staged))
    # Small (ids and a few columns per alert), and its times must be the same in both outputs.
    added = science_columns(raw, cuts, modules)[0].cache()
    try:
        added.count()
        bodies = _bodies(spark, staged, plan, servers, check_crcs) if filters else None
        if bodies is not None:
            send_batch(spark, with_science(raw, added), filters, servers, plan.schema, bodies)
        sink.stage(batch_id, "science", with_science(raw, added), ["night"])
    finally:
        added.unpersist()
    sink.commit(batch_id, ["raw", "quarantine", "science"])


def start(
    spark,
    plan: DecodePlan,
    *,
    servers: str,
    topics: list[str],
    out: Path,
    trigger: str,
    raw_schema,
    cuts: str,
    modules: list[ScienceModule],
    filters: list[Filter],
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = False,
):
    """Start the fused query.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    sink = BatchSink(out, "fused")
    return start_kafka_query(
        spark,
        "fused",
        lambda df, batch_id: process_batch(
            spark,
            df,
            batch_id,
            plan=plan,
            sink=sink,
            raw_schema=raw_schema,
            cuts=cuts,
            modules=modules,
            filters=filters,
            servers=servers,
            check_crcs=check_crcs,
        ),
        servers=servers,
        topics=topics,
        out=out,
        trigger=trigger,
        max_offsets=max_offsets,
        min_offsets=min_offsets,
        max_trigger_delay_s=max_trigger_delay_s,
        check_crcs=check_crcs,
    )
