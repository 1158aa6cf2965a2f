"""What a task of each stage does to its share of a micro-batch, put together from the batch path.

Spark hands each task its share (Kafka records, or the files an upstream
stage committed); these functions do the whole per-alert work on it and
stage their outputs, and the driver commits them
(:mod:`alertbench.broker.stream`). stream2raw's task is
:func:`alertbench.broker.batch.raw.write_tables`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from alertbench.alerts.schema import Schema
from alertbench.broker.batch.decode import DecodePlan
from alertbench.broker.batch.raw import (
    decode_batch,
    read_partitioned,
    write_batch,
    write_partitioned,
)
from alertbench.broker.batch.route import Routing, route, science_table
from alertbench.broker.batch.science import ScienceModule, ScienceStats
from alertbench.broker.batch.send import Sender, TailEncoder, alert_bodies

#: The output that holds each science module's cost per task and batch
#: (``module, rows, processed, seconds, failed``), committed with the batch.
STATS_OUTPUT = "science-stats"


def write_stats(stats: ScienceStats, folder: Path, name: str) -> None:
    """Stage the modules' costs on one batch of a task, named as its Parquet files are."""
    if stats.costs:
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(stats.table(), folder / name)


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
    :class:`~alertbench.broker.batch.records.KafkaRecords` from the task reader.

    Decode, cut and enrich, send each selected alert to its topics, then
    write raw (and quarantine) and science. Sending comes before the Parquet
    writes, which only count at the batch's commit: the alerts reach their
    topics a third of a chunk's work sooner. ``file_name(k)`` names the files
    of the ``k``-th table, the same whenever the task runs again.
    """
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
            stats = ScienceStats()
            science, kept = science_table(decoded.raw, cuts, modules, stats)
            write_stats(stats, staging / STATS_OUTPUT, name)
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


def science_work(staging: Path, *, cuts: str, modules: list[ScienceModule], compression: str):
    """The work of a raw2science task: its share of raw files -> cuts and modules -> science.

    Each raw file is one Arrow batch of a stream2raw task; its science rows
    go into the micro-batch's staging folder under the same name, by night.
    """

    def work(share) -> int:
        rows = 0
        for f in share.files:
            raw = read_partitioned(f)
            rows += raw.num_rows
            stats = ScienceStats()
            science, _ = science_table(raw, cuts, modules, stats)
            write_stats(stats, staging / share.staging / STATS_OUTPUT, Path(f).name)
            if science is not None:
                write_partitioned(
                    science, staging / share.staging / "science", Path(f).name, compression
                )
        return rows

    return work


def distribute_work(routing, schema: Schema):
    """The work of a distribute task: its share of science files -> filters -> topics.

    The selected alerts' bodies are encoded again from their columns
    (:func:`~alertbench.broker.batch.send.alert_bodies`): a science file does not
    keep the Kafka message it came from.
    """

    def work(share) -> int:
        encoder = TailEncoder(routing.tail)
        sender = Sender(routing.servers)
        rows = 0
        for f in share.files:
            science = pq.read_table(f)
            rows += science.num_rows

            def bodies(chosen, science=science):
                return alert_bodies(science.take(chosen), schema)

            sender.produce(route(science, bodies, routing, encoder))
        sender.flush()
        return rows

    return work
