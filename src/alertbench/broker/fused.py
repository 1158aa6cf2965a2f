"""Fused mode: one streaming query does all three stages on each micro-batch.

Each batch is decoded once and written to raw Parquet, enriched and routed
to the distribution topics (the lowest latency from Kafka to Kafka), then
written to science Parquet. The staged mode keeps the stages independently
scalable, as Fink runs them; both write the same outputs.

A batch is one Spark job: each task does its share of the per-alert work
(:func:`process_tables`) over Arrow, fed by Spark's Kafka source or reading
its offset range itself (:mod:`alertbench.broker.source`), and the driver
commits the staged files.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.broker.decode import DecodePlan
from alertbench.broker.raw import parquet_codec
from alertbench.broker.route import Routing, route, science_table
from alertbench.broker.science import ScienceModule
from alertbench.broker.sink import BatchSink
from alertbench.broker.source import KafkaInput, start_kafka_tasks_query
from alertbench.broker.stream2raw import start_kafka_query


def process_tables(
    tables,
    plan: DecodePlan,
    staging: Path,
    *,
    cuts: str,
    modules: list[ScienceModule],
    routing: Routing,
    compression: str,
    file_name,
) -> dict[str, int]:
    """The whole per-alert work of a fused micro-batch on a task's batches of Kafka records.

    ``tables``: Arrow tables of Spark's Kafka columns, or
    :class:`~alertbench.broker.records.KafkaRecords` from the task reader.

    Decode, cut and enrich, send each selected alert to its topics, then
    write raw (and quarantine) and science. Sending comes before the Parquet
    writes, which only count at the batch's commit: the alerts reach their
    topics a third of a chunk's work sooner. ``file_name(k)`` names the files
    of the ``k``-th table, the same whenever the task runs again.
    """
    from alertbench.broker.raw import decode_batch, write_batch, write_partitioned
    from alertbench.broker.send import Sender, TailEncoder

    encoder = TailEncoder(routing.tail)
    sender = Sender(routing.servers) if routing.filters else None
    rows = bad = 0
    for k, table in enumerate(tables):
        decoded = decode_batch(table, plan)
        name = file_name(k)
        bad += decoded.quarantined
        science = None
        if decoded.raw is not None:
            rows += decoded.raw.num_rows
            science, kept = science_table(decoded.raw, cuts, modules)
        if science is not None and sender is not None:

            def bodies(rows, decoded=decoded, kept=kept):
                return [decoded.bodies[kept[i]] for i in rows]

            sender.produce(route(science, bodies, routing, encoder))
        write_batch(decoded, staging / "raw", staging / "quarantine", name, compression)
        if science is not None:
            write_partitioned(science, staging / "science", name, compression)
    # Before the task ends: Spark commits the batch only after every task succeeded.
    sent = sender.flush() if sender is not None else 0
    return {"rows": rows, "quarantined": bad, "sent": sent}


def native_task(plan: DecodePlan, staging: Path, work: dict):
    """The ``mapInArrow`` function of a fused micro-batch: one task's whole share.

    ``work`` holds :func:`process_tables`'s cuts, modules, routing and compression.
    """

    def run(batches):
        import pyarrow as pa

        from alertbench.broker.raw import summary, task_file

        tables = (pa.Table.from_batches([b]) for b in batches)
        yield summary(**process_tables(tables, plan, staging, file_name=task_file, **work))

    return run


def process_batch(df, batch_id: int, *, plan: DecodePlan, sink: BatchSink, work: dict):
    """One fused micro-batch: one Spark job, then the exactly-once commit."""
    from alertbench.broker.raw import KAFKA_INPUT

    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    staging = sink.staged(batch_id, "raw").parent
    df.select(*KAFKA_INPUT).mapInArrow(
        native_task(plan, staging, work), "rows long, quarantined long, sent long"
    ).collect()
    sink.commit(batch_id, ["raw", "quarantine", "science"])


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
        confluent-kafka, :mod:`alertbench.broker.source`) or ``spark``
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

    outputs = ["raw", "quarantine", "science"]
    return start_kafka_tasks_query(spark, "fused", tasks_work, q, sink=sink, outputs=outputs)
