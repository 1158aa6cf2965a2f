"""Fused mode: one streaming query does all three stages on each micro-batch.

Each batch is decoded once and written to raw Parquet, enriched and routed
to the distribution topics (the lowest latency from Kafka to Kafka), then
written to science Parquet. The staged mode keeps the stages independently
scalable, as Fink runs them; both write the same outputs.

A batch is one Spark job: each task does its share of the per-alert work
(:func:`~alertbench.broker.batch.tasks.process_tables`) over Arrow, fed by
Spark's Kafka source or reading its offset range itself
(:mod:`alertbench.broker.stream.source`), and the driver commits the staged
files.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.batch.decode import DecodePlan
from alertbench.broker.batch.route import Routing
from alertbench.broker.batch.science import ScienceModule
from alertbench.broker.batch.tasks import STATS_OUTPUT, process_tables
from alertbench.broker.stream.sink import BatchSink, parquet_codec
from alertbench.broker.stream.source import KafkaInput, start_kafka_tasks_query
from alertbench.broker.stream.stream2raw import start_kafka_query


def native_task(plan: DecodePlan, staging: Path, work: dict):
    """The ``mapInArrow`` function of a fused micro-batch: one task's whole share.

    ``work`` holds the cuts, modules, routing and compression of
    :func:`~alertbench.broker.batch.tasks.process_tables`.
    """

    def run(batches):
        import pyarrow as pa

        from alertbench.broker.batch.raw import summary
        from alertbench.broker.stream.stream2raw import task_file

        tables = (pa.Table.from_batches([b]) for b in batches)
        yield summary(**process_tables(tables, plan, staging, file_name=task_file, **work))

    return run


def process_batch(df, batch_id: int, *, plan: DecodePlan, sink: BatchSink, work: dict):
    """One fused micro-batch: one Spark job, then the exactly-once commit."""
    from alertbench.broker.batch.raw import KAFKA_INPUT

    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    staging = sink.staged(batch_id, "raw").parent
    df.select(*KAFKA_INPUT).mapInArrow(
        native_task(plan, staging, work), "rows long, quarantined long, sent long"
    ).collect()
    sink.commit(batch_id, ["raw", "quarantine", "science", STATS_OUTPUT])


def start(
    spark,
    plan: DecodePlan,
    q: KafkaInput,
    *,
    cuts: str,
    modules: list[ScienceModule],
    routing: Routing,
    reader: str = "tasks",
):
    """Start the fused query.

    Parameters
    ----------
    q : KafkaInput
        The topics, the checkpoint's folder, the micro-batches' size.
    routing : Routing
        The filters, the published tail schema (the broker's columns are
        encoded with it) and the distribution cluster.
    reader : str
        Who reads Kafka: ``tasks`` (each task reads its offset range with
        confluent-kafka, :mod:`alertbench.broker.stream.source`) or ``spark``
        (Spark's Kafka source hands each task its records as Arrow).

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    sink = BatchSink(q.out, "fused")
    work = {
        "cuts": cuts,
        "modules": modules,
        "routing": routing,
        "compression": parquet_codec(spark),
    }
    if reader == "spark":
        return start_kafka_query(
            spark,
            "fused",
            lambda df, batch_id: process_batch(df, batch_id, plan=plan, sink=sink, work=work),
            q,
        )

    def tasks_work(tables, staging: Path, file_name) -> None:
        process_tables(tables, plan, staging, file_name=file_name, **work)

    outputs = ["raw", "quarantine", "science", STATS_OUTPUT]
    return start_kafka_tasks_query(spark, "fused", tasks_work, q, sink=sink, outputs=outputs)
