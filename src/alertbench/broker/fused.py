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
    """The whole per-alert work of a fused micro-batch on a task's Arrow tables of Kafka records.

    Decode and write raw (and quarantine), cut and enrich, send each selected
    alert to its topics, then write science. ``file_name(k)`` names the files
    of the ``k``-th table, the same whenever the task runs again.
    """
    from alertbench.broker.raw import decode_batch, write_batch, write_partitioned
    from alertbench.broker.send import TailEncoder, send

    encoder = TailEncoder(routing.tail)
    rows = bad = sent = 0
    for k, table in enumerate(tables):
        decoded = decode_batch(table, plan)
        name = file_name(k)
        write_batch(decoded, staging / "raw", staging / "quarantine", name, compression)
        bad += decoded.quarantined
        if decoded.raw is None:
            continue
        rows += decoded.raw.num_rows
        science, kept = science_table(decoded.raw, cuts, modules)
        if science is None:
            continue
        if routing.filters:

            def bodies(rows, decoded=decoded, kept=kept):
                return [decoded.bodies[kept[i]] for i in rows]

            sent += send(routing.servers, route(science, bodies, routing, encoder))
        write_partitioned(science, staging / "science", name, compression)
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


def start_task_reader_query(
    spark,
    *,
    plan: DecodePlan,
    sink: BatchSink,
    servers: str,
    topics: list[str],
    out: Path,
    trigger: str,
    work_options: dict,
    max_offsets: int | None,
    min_offsets: int | None,
    max_trigger_delay_s: float | None,
    available_now: bool = False,
):
    """The fused query on the task reader: each task reads its offset range with confluent-kafka.

    ``available_now`` reads what the topics hold at the start, then stops (benchmarks).

    The micro-batch's staging folder is named by its offsets (the tasks know
    them, not the batch id); the driver commits it under the batch id, once.
    """
    import json as _json

    from alertbench.broker.source import commit_staged, kafka_alert_source

    staging_root = sink.staging

    def work(r, tables) -> None:
        staging = staging_root / r.staging
        process_tables(
            tables,
            plan,
            staging,
            file_name=lambda k, r=r: f"{r.topic}-{r.partition}-{r.start}-{k:05d}.parquet",
            **work_options,
        )

    source = kafka_alert_source(work, "alertbench_kafka")
    spark.dataSource.register(source)

    reader = (
        spark.readStream.format("alertbench_kafka")
        .option("servers", servers)
        .option("topics", _json.dumps(topics))
        .option("min_offsets", str(min_offsets or 0))
        .option("max_offsets", str(max_offsets or 0))
        .option("max_trigger_delay_s", str(max_trigger_delay_s or 10.0))
        .option("chunk", spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "1000"))
        .load()
    )
    return (
        reader.writeStream.queryName("fused")
        .foreachBatch(commit_staged(sink, ["raw", "quarantine", "science"]))
        .option("checkpointLocation", str(out.resolve() / "checkpoints" / "fused"))
        .trigger(**({"availableNow": True} if available_now else {"processingTime": trigger}))
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
    cuts: str,
    modules: list[ScienceModule],
    routing: Routing,
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = False,
    reader: str = "tasks",
):
    """Start the fused query.

    Parameters
    ----------
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
    sink = BatchSink(out, "fused")
    work = {
        "cuts": cuts,
        "modules": modules,
        "routing": routing,
        "compression": parquet_codec(spark),
    }
    if reader == "tasks":
        return start_task_reader_query(
            spark,
            plan=plan,
            sink=sink,
            servers=servers,
            topics=topics,
            out=out,
            trigger=trigger,
            work_options=work,
            max_offsets=max_offsets,
            min_offsets=min_offsets,
            max_trigger_delay_s=max_trigger_delay_s,
        )
    return start_kafka_query(
        spark,
        "fused",
        lambda df, batch_id: process_batch(df, batch_id, plan=plan, sink=sink, work=work),
        servers=servers,
        topics=topics,
        out=out,
        trigger=trigger,
        max_offsets=max_offsets,
        min_offsets=min_offsets,
        max_trigger_delay_s=max_trigger_delay_s,
        check_crcs=check_crcs,
    )
