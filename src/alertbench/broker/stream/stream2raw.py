"""stream2raw: Kafka topics -> decoded, flattened alerts in Parquet, by night.

Each task reads its Kafka offset range with confluent-kafka
(:mod:`alertbench.broker.stream.source`), or Spark's Kafka source hands it its
records as Arrow (``broker.kafka_reader = "spark"``); the task decodes and
writes them in native code (:mod:`alertbench.broker.batch.raw`). Messages that
do not decode go to ``quarantine/`` with their raw bytes, the reason and
their Kafka coordinates; the stream goes on. Output is written exactly once
per micro-batch (see :mod:`alertbench.broker.stream.sink`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from alertbench.broker.batch.decode import DecodePlan
from alertbench.broker.batch.raw import summary, write_tables
from alertbench.broker.stream.sink import BatchSink
from alertbench.broker.stream.source import KafkaInput
from alertbench.kafka.security import Connection


def task_file(k: int) -> str:
    """The name of the file a task writes for its ``k``-th Arrow batch.

    Named by the task's partition, so a retried task overwrites what a
    failed attempt left instead of adding to it.
    """
    from pyspark import TaskContext

    task = TaskContext.get()
    part = task.partitionId() if task is not None else 0
    return f"part-{part:05d}-{k:05d}.parquet"


def raw_task(plan: DecodePlan, staged: Path, quarantine: Path, compression: str = "none"):
    """The ``mapInArrow`` function that writes one task's raw alerts and quarantine."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        tables = (pa.Table.from_batches([b]) for b in batches)
        yield summary(
            **write_tables(
                tables, plan, staged, quarantine, compression=compression, file_name=task_file
            )
        )

    return run


def _consumer_options(
    servers: str | Connection, check_crcs: bool, fail_on_data_loss: bool = True
) -> dict[str, str]:
    """Options of Spark's Kafka reader, streaming or batch.

    ``check_crcs`` lets the consumer verify each record batch's CRC32C. On
    by default, as with the task reader: a batch damaged on a node's disk
    passes TCP's checks and can decode as wrong alerts. Spark's consumer pays
    a quarter of its read time for it on 2 cores (3,600 -> 4,900 alerts/s
    without); turn it off with ``broker.check_crcs = false``.
    """
    return {
        # Servers and security, in the Java client's names.
        **Connection.of(servers).java_options(),
        "includeHeaders": "true",
        # Spark's own: offsets aged out stop the query, or are skipped with a
        # warning in the driver's log (Spark counts them nowhere).
        "failOnDataLoss": str(fail_on_data_loss).lower(),
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
    servers: str | Connection,
    topics: list[str],
    *,
    max_offsets: int | None = None,
    min_offsets: int | None = None,
    max_trigger_delay_s: float | None = None,
    check_crcs: bool = True,
    fail_on_data_loss: bool = True,
):
    """The streaming Kafka source (earliest offsets, headers included).

    Parameters
    ----------
    max_offsets, min_offsets, max_trigger_delay_s
        The size of each micro-batch (see :func:`limit_options`).
    check_crcs : bool
        Let the consumer verify each record batch's CRC32C (see :func:`_consumer_options`).
    fail_on_data_loss : bool
        Spark's ``failOnDataLoss``.
    """
    return (
        spark.readStream.format("kafka")
        .options(**_consumer_options(servers, check_crcs, fail_on_data_loss))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .options(**limit_options(max_offsets, min_offsets, max_trigger_delay_s))
        .load()
    )


def write_raw_batch(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Decode one micro-batch and write its alerts and its quarantine, exactly once."""
    if sink.done(batch_id):
        return
    sink.begin(batch_id)
    stage_raw(sink, df, batch_id, plan)
    sink.commit(batch_id, ["raw", "quarantine"])


def stage_raw(sink: BatchSink, df, batch_id: int, plan: DecodePlan) -> None:
    """Stage the raw alerts and the quarantine of one micro-batch (not committed).

    One Spark job: each task strips the framing of its share of the
    records, decodes them and writes them (:func:`raw_task`).
    """
    from alertbench.broker.batch.raw import KAFKA_INPUT, SUMMARY_SCHEMA
    from alertbench.broker.stream.sink import parquet_codec

    staged = sink.staged(batch_id, "raw")
    quarantine = sink.staged(batch_id, "quarantine")
    task = raw_task(plan, staged, quarantine, parquet_codec(df.sparkSession))
    df.select(*KAFKA_INPUT).mapInArrow(task, SUMMARY_SCHEMA).collect()


def start_kafka_query(spark, name: str, handle, q: KafkaInput):
    """Start query ``name``: Spark's Kafka micro-batches to ``handle(df, batch_id)``, checkpointed.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    return (
        kafka_source(
            spark,
            q.servers,
            q.topics,
            max_offsets=q.max_offsets,
            min_offsets=q.min_offsets,
            max_trigger_delay_s=q.max_trigger_delay_s,
            check_crcs=q.check_crcs,
            fail_on_data_loss=q.fail_on_data_loss,
        )
        .writeStream.queryName(name)
        .foreachBatch(handle)
        .option("checkpointLocation", q.checkpoint(name))
        .trigger(**q.trigger_options())
        .start()
    )


def start(spark, plan: DecodePlan, q: KafkaInput, *, reader: str = "tasks"):
    """Start the stream2raw query.

    Parameters
    ----------
    q : KafkaInput
        The topics, the checkpoint's folder, the micro-batches' size.
    reader : str
        Who reads Kafka: ``tasks`` (each task reads its offset range with
        confluent-kafka, :mod:`alertbench.broker.stream.source`) or ``spark``
        (Spark's Kafka source hands each task its records as Arrow).

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    sink = BatchSink(q.out, "stream2raw")
    if reader == "spark":
        return start_kafka_query(
            spark, "stream2raw", lambda df, batch_id: write_raw_batch(sink, df, batch_id, plan), q
        )
    from alertbench.broker.stream.sink import parquet_codec
    from alertbench.broker.stream.source import start_kafka_tasks_query

    compression = parquet_codec(spark)

    def work(tables, staging: Path, file_name) -> None:
        # Imported here, not captured: the process that plans the batches
        # unpickles this function too, and need not import the raw path.
        from alertbench.broker.batch.raw import write_tables

        write_tables(
            tables,
            plan,
            staging / "raw",
            staging / "quarantine",
            compression=compression,
            file_name=file_name,
        )

    return start_kafka_tasks_query(
        spark, "stream2raw", work, q, sink=sink, outputs=["raw", "quarantine"]
    )
