"""Fused mode: one streaming query does all three stages on each micro-batch.

Each batch is decoded once, then written to raw Parquet, enriched and written
to science Parquet, and routed to the distribution topics: the lowest latency
from Kafka to Kafka. The staged mode keeps the stages independently
scalable, as Fink runs them; both write the same outputs.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.decode import DecodePlan
from alertbench.broker.distribute import Filter, send_batch
from alertbench.broker.raw2science import science_frame
from alertbench.broker.science import ScienceModule
from alertbench.broker.sink import BatchSink
from alertbench.broker.stream2raw import decoded, split, start_kafka_query


def process_batch(
    spark,
    df,
    batch_id: int,
    *,
    plan: DecodePlan,
    sink: BatchSink,
    cuts: str,
    modules: list[ScienceModule],
    filters: list[Filter],
    servers: str,
) -> None:
    """Decode, store, enrich, store and distribute one micro-batch."""
    if sink.done(batch_id):
        return
    dec = decoded(df, plan).persist()
    try:
        good, bad = split(dec, plan)
        science, _ = science_frame(good, cuts, modules)
        science = science.persist()
        try:
            outputs = {}
            if not good.isEmpty():
                outputs["raw"] = (good, ["night"])
            if not bad.isEmpty():
                outputs["quarantine"] = (bad, [])
            if not science.isEmpty():
                outputs["science"] = (science, ["night"])
                if filters:
                    send_batch(spark, science, filters, servers)
            sink.write(batch_id, outputs)
        finally:
            science.unpersist()
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
    cuts: str,
    modules: list[ScienceModule],
    filters: list[Filter],
    max_offsets: int | None = None,
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
            cuts=cuts,
            modules=modules,
            filters=filters,
            servers=servers,
        ),
        servers=servers,
        topics=topics,
        out=out,
        trigger=trigger,
        max_offsets=max_offsets,
    )
