"""A task's Kafka offset range, read with confluent-kafka into Arrow coordinates and raw values.

The task reader's half that runs in the tasks: the driver plans the ranges
(:mod:`alertbench.broker.stream.offsets`), and each task consumes its own
with a consumer kept for the life of its Python worker, so the 75 KB alerts
never cross from the JVM to Python.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from alertbench.broker.batch.records import HEADERS, KafkaRecords
from alertbench.kafka.security import Connection

_CONSUMERS: dict[tuple[Connection, bool], Any] = {}


class CorruptRecordsError(RuntimeError):
    """A record batch of a range failed its CRC check."""


@dataclass
class OffsetRange:
    """One task's share of a micro-batch: ``[start, end)`` of one Kafka partition."""

    topic: str
    partition: int
    start: int
    end: int
    staging: str


def consumer_config(
    servers: str | Connection, group: str = "alertbench-ranges", *, check_crcs: bool = True
) -> dict[str, Any]:
    """confluent-kafka settings for reading offset ranges (assigned, never committed).

    ``check_crcs`` verifies each record batch's CRC32C, so a batch corrupted
    on a Kafka node's disk or on the wire fails loudly instead of being
    decoded as alerts; it costs 0.003 ms of CPU per alert
    (``benchmarks/check_crcs.py``), about 1% of a task's work.
    """
    return {
        **Connection.of(servers).conf(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.wait.max.ms": 10,
        "socket.receive.buffer.bytes": 8 * 1024 * 1024,
        "check.crcs": check_crcs,
        # A range whose start aged out between planning and reading must fail, not
        # jump to the partition's end (librdkafka's default) and read nothing.
        "auto.offset.reset": "error",
        # Prefetch up to 64 MB per partition (about 850 alerts of 75 KB): the
        # next chunk of 500 is there while a task works on this one. 256 MB
        # took lsst-peak's broker to 3.2 GB RSS.
        "queued.max.messages.kbytes": 64 * 1024,
        # When the prefetch is full, librdkafka waits this long before it
        # fetches again (default 1 s): with 64 or 128 MB, a task that had
        # drained it sat idle (stream2raw of a visit 1.8 s -> 2.9 s).
        "fetch.queue.backoff.ms": 10,
        "log_level": 3,
    }


def _consumer(servers: str | Connection, check_crcs: bool):
    """One consumer per Kafka cluster per Python worker (Spark reuses its workers).

    A new consumer costs a connection and a metadata round trip in every
    task: about a quarter of a second, most of a small micro-batch.
    """
    from confluent_kafka import Consumer

    conn = Connection.of(servers)
    key = (conn, check_crcs)
    found = _CONSUMERS.get(key)
    if found is None:
        found = _CONSUMERS[key] = Consumer(consumer_config(conn, check_crcs=check_crcs))
    return found


def read_range(
    servers: str | Connection,
    r: OffsetRange,
    chunk: int = 1000,
    *,
    check_crcs: bool = True,
    fail_on_data_loss: bool = True,
    loss_root: Path | None = None,
) -> Iterator[KafkaRecords]:
    """The records of ``r``, in batches of at most ``chunk``.

    Coordinates ``topic, partition, offset, timestamp, headers`` as Arrow,
    the values as the bytes the consumer returned. Offsets of the range that
    aged out of Kafka's retention before they were read (a broker stopped
    mid-batch past the retention) are recorded under ``loss_root``
    (:mod:`alertbench.broker.batch.loss`), then refused or skipped
    (``fail_on_data_loss``).

    Raises
    ------
    CorruptRecordsError
        When a record batch fails its CRC check (``check_crcs``): the
        partition's log is damaged, and no alert of it is guessed at or skipped.
    DataLossError
        When offsets of the range aged out and ``fail_on_data_loss`` is set.
    RuntimeError
        For any other error the consumer reports.
    """
    from confluent_kafka import KafkaError, TopicPartition

    consumer = _consumer(servers, check_crcs)
    try:
        consumer.assign([TopicPartition(r.topic, r.partition, r.start)])
        rows: dict[str, list] = {k: [] for k in ("value", "offset", "timestamp", "headers")}
        nxt = r.start
        deadline = time.monotonic() + 300
        while nxt < r.end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{r.topic}[{r.partition}]: offset {nxt} of {r.end} in 300 s")
            # consume() waits for its count or the timeout: ask for no more than
            # the range still holds (a small batch waited out every timeout) nor
            # than the prefetch queue holds (1,000 alerts waited out every timeout).
            for m in consumer.consume(min(200, r.end - nxt), timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.code() == KafkaError._AUTO_OFFSET_RESET:
                        nxt = _skip_aged_out(consumer, r, nxt, fail_on_data_loss, loss_root)
                        if nxt >= r.end:
                            break
                        continue
                    if err.code() == KafkaError._BAD_MSG:
                        raise CorruptRecordsError(
                            f"{r.topic}[{r.partition}] near offset {nxt}: {err.str()}. A record "
                            "batch failed its CRC check: the partition's log is damaged on the "
                            "Kafka node or in transit. Restore the partition from a healthy "
                            "replica (or delete the damaged segment) and restart the broker; "
                            "it resumes from its checkpoint."
                        )
                    raise RuntimeError(f"reading {r.topic}[{r.partition}]: {err.str()}")
                if m.offset() >= r.end:
                    nxt = r.end
                    break
                nxt = m.offset() + 1
                rows["value"].append(m.value())
                rows["offset"].append(m.offset())
                rows["timestamp"].append(m.timestamp()[1] * 1000)
                rows["headers"].append([{"key": k, "value": v} for k, v in m.headers() or []])
                if len(rows["value"]) >= chunk:
                    yield _table(r, rows)
                    rows = {k: [] for k in rows}
        if rows["value"]:
            yield _table(r, rows)
    finally:
        # Stop fetching past the range; the consumer waits for the worker's next task.
        consumer.unassign()


def _skip_aged_out(consumer, r: OffsetRange, nxt: int, fail: bool, root: Path | None) -> int:
    """Record the offsets of ``r`` from ``nxt`` that Kafka no longer keeps; where to go on."""
    from confluent_kafka import TopicPartition

    from alertbench.broker.batch import loss

    low, high = consumer.get_watermark_offsets(TopicPartition(r.topic, r.partition), timeout=10)
    # Below the earliest offset kept: aged out. Past the end: the log was cut back
    # (an unclean leader election) under offsets the driver saw; gone all the same.
    end = min(low, r.end) if low > nxt else r.end
    aged = [loss.AgedOut(r.topic, r.partition, nxt if low > nxt else max(nxt, high), end)]
    if root is not None:
        loss.record(root, aged)
    if fail:
        raise loss.refusal(aged)
    resume = aged[0].end
    if resume < r.end:
        consumer.assign([TopicPartition(r.topic, r.partition, resume)])
    return resume


def _table(r: OffsetRange, rows: dict[str, list]) -> KafkaRecords:
    n = len(rows["value"])
    coords = pa.table(
        {
            "topic": pa.array([r.topic] * n, pa.string()),
            "partition": pa.array([r.partition] * n, pa.int32()),
            "offset": pa.array(rows["offset"], pa.int64()),
            "timestamp": pa.array(rows["timestamp"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "headers": pa.array(rows["headers"], HEADERS),
        }
    )
    return KafkaRecords(coords, rows["value"])
