"""Kafka read by the tasks themselves: a Spark Python streaming data source over offset ranges.

Spark keeps what it is good at: the offsets of each micro-batch in its
checkpoint, the trigger, the scheduling of tasks. Each partition of a
micro-batch is one Kafka partition's offset range, and the task that reads
it consumes the range with confluent-kafka and does the whole per-alert work
on it (the ``work`` function: decode, raw, science, send), so the 75 KB
alerts never cross from the JVM to Python. The task returns one small row per
alert (its Kafka coordinates), so Spark's progress counts alerts.

Offsets are ``{topic: {partition: next offset}}``, as Spark's Kafka source
writes them. A micro-batch waits for ``min_offsets`` new records for at most
``max_trigger_delay_s`` after the first of them arrived (the first batch
never waits) and takes at most ``max_offsets`` (shared among partitions by
their backlog).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from alertbench.broker.records import HEADERS, KafkaRecords
from alertbench.kafka.security import Connection

#: The rows a task returns: one per alert read.
ROWS_SCHEMA = "topic string, partition int, offset long, staging string"
_CONSUMERS: dict[str, Any] = {}


@dataclass
class OffsetRange:
    """One task's share of a micro-batch: ``[start, end)`` of one Kafka partition."""

    topic: str
    partition: int
    start: int
    end: int
    staging: str


def batch_key(start: dict, end: dict) -> str:
    """A name for a micro-batch's staging folder, the same whenever Spark replays it."""
    return hashlib.sha256(json.dumps([start, end], sort_keys=True).encode()).hexdigest()[:20]


def consumer_config(servers: str | Connection, group: str = "alertbench-ranges") -> dict[str, Any]:
    """confluent-kafka settings for reading offset ranges (assigned, never committed)."""
    return {
        **Connection.of(servers).conf(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.wait.max.ms": 10,
        "socket.receive.buffer.bytes": 8 * 1024 * 1024,
        "check.crcs": False,
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


def _consumer(servers: str | Connection):
    """One consumer per Kafka cluster per Python worker (Spark reuses its workers).

    A new consumer costs a connection and a metadata round trip in every
    task: about a quarter of a second, most of a small micro-batch.
    """
    from confluent_kafka import Consumer

    key = Connection.of(servers)
    found = _CONSUMERS.get(key)
    if found is None:
        found = _CONSUMERS[key] = Consumer(consumer_config(key))
    return found


def read_range(
    servers: str | Connection, r: OffsetRange, chunk: int = 1000
) -> Iterator[KafkaRecords]:
    """The records of ``r``, in batches of at most ``chunk``.

    Coordinates ``topic, partition, offset, timestamp, headers`` as Arrow,
    the values as the bytes the consumer returned.
    """
    from confluent_kafka import KafkaError, TopicPartition

    consumer = _consumer(servers)
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


def balance(items: list, size: Callable[[Any], int], slots: int) -> list[list]:
    """``items`` in at most ``slots`` groups of about equal total ``size``.

    Largest first, each to the lightest group so far; no group is empty.
    """
    groups: list[list] = [[] for _ in range(min(max(slots, 1), len(items)))]
    loads = [0] * len(groups)
    for item in sorted(items, key=size, reverse=True):
        k = loads.index(min(loads))
        groups[k].append(item)
        loads[k] += size(item)
    return groups


class OffsetPlanner:
    """The driver side: which offsets the next micro-batch reads.

    Parameters
    ----------
    servers, topics
        The Kafka cluster and the topics to read.
    min_offsets, max_offsets, max_trigger_delay_s
        The size of a micro-batch (see the module's docstring).
    """

    def __init__(
        self,
        servers: str | Connection,
        topics: list[str],
        *,
        min_offsets: int | None = None,
        max_offsets: int | None = None,
        max_trigger_delay_s: float = 10.0,
    ) -> None:
        self.servers = servers
        self.topics = topics
        self.min_offsets = min_offsets
        self.max_offsets = max_offsets
        self.delay = max_trigger_delay_s
        self.last_batch: float | None = None
        self.first_new: float | None = None
        self.stop_at: dict | None = None
        self._consumer = None

    def _watermarks(self) -> dict[str, dict[str, tuple[int, int]]]:
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(consumer_config(self.servers, "alertbench-planner"))
        md = self._consumer.list_topics(timeout=10)
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for t in self.topics:
            topic = md.topics.get(t)
            if topic is None or topic.error is not None:
                continue
            out[t] = {
                str(p): self._consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                for p in topic.partitions
            }
        return out

    def close(self) -> None:
        """Close the consumer that asks for watermarks."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def initial(self) -> dict:
        """The earliest offsets kept of every partition."""
        return {t: {p: low for p, (low, _) in ps.items()} for t, ps in self._watermarks().items()}

    def latest(self, start: dict) -> dict:
        """The end of the next micro-batch: ``start`` itself when it should wait."""
        marks = self._watermarks()
        # A partition unknown to ``start`` starts at its earliest offset; one whose
        # records expired starts where its records start.
        begin = {
            t: {p: max(start.get(t, {}).get(p, low), low) for p, (low, _) in ps.items()}
            for t, ps in marks.items()
        }
        end = {t: {p: high for p, (_, high) in ps.items()} for t, ps in marks.items()}
        if self.stop_at is not None:
            end = {
                t: {p: min(v, self.stop_at.get(t, {}).get(p, v)) for p, v in ps.items()}
                for t, ps in end.items()
            }
        new = {t: {p: max(end[t][p] - begin[t][p], 0) for p in ps} for t, ps in begin.items()}
        total = sum(v for ps in new.values() for v in ps.values())
        now = time.monotonic()
        if total == 0:
            self.first_new = None
            return start
        if self.first_new is None:
            self.first_new = now
        # The clock starts at the first new record, not at the last batch: after
        # a quiet spell, a visit's first alerts wait for the rest of it.
        waited = self.last_batch is not None and now - self.first_new < self.delay
        if self.min_offsets and total < self.min_offsets and waited:
            return start
        if self.max_offsets and total > self.max_offsets:
            # Shared by backlog: each partition gets its part of the cap, rounded down.
            end = {
                t: {p: begin[t][p] + new[t][p] * self.max_offsets // total for p in ps}
                for t, ps in begin.items()
            }
        self.last_batch = now
        self.first_new = None
        return end

    def ranges(self, start: dict, end: dict) -> list[OffsetRange]:
        """One range per partition that has records between ``start`` and ``end``."""
        key = batch_key(start, end)
        return [
            OffsetRange(t, int(p), start.get(t, {}).get(p, 0), e, key)
            for t, ps in end.items()
            for p, e in ps.items()
            if e > start.get(t, {}).get(p, 0)
        ]

    def tasks(self, start: dict, end: dict, slots: int) -> list[list[OffsetRange]]:
        """The ranges of a micro-batch in at most ``slots`` tasks of about equal size.

        A task costs a fixed part (Spark scheduling it, its Python worker's
        turn) whatever it reads: with 4 partitions on 2 cores, a batch of a
        second's alerts spent more on four tasks' fixed parts than on its
        alerts.
        """
        return balance(self.ranges(start, end), lambda r: r.end - r.start, slots)


def kafka_alert_source(work: Callable[[OffsetRange, Iterator[KafkaRecords]], None], name: str):
    """A Spark Python data source class whose tasks read offset ranges and run ``work`` on them.

    Parameters
    ----------
    work : callable
        ``work(offset_range, tables)``: the per-alert work on a range's records
        (decode, write, send); it must consume ``tables``.
    name : str
        The format name to register.
    """
    from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
    from pyspark.sql.streaming.datasource import SupportsTriggerAvailableNow

    class RangePartition(InputPartition):
        def __init__(self, ranges: list[OffsetRange]) -> None:
            super().__init__(ranges)
            self.ranges = ranges

    class Reader(DataSourceStreamReader, SupportsTriggerAvailableNow):
        def __init__(self, options) -> None:
            self.servers = Connection.build(
                options["servers"], json.loads(options.get("client") or "{}")
            )
            self.chunk = int(options.get("chunk") or 1000)
            self.slots = int(options.get("tasks") or 0) or 1_000_000
            self.planner = OffsetPlanner(
                self.servers,
                json.loads(options["topics"]),
                min_offsets=int(options.get("min_offsets") or 0) or None,
                max_offsets=int(options.get("max_offsets") or 0) or None,
                max_trigger_delay_s=float(options.get("max_trigger_delay_s") or 10.0),
            )

        def initialOffset(self) -> dict:  # noqa: N802 (Spark's name)
            return self.planner.initial()

        def latestOffset(self, start: dict, limit) -> dict:  # noqa: N802
            return self.planner.latest(start)

        def prepareForTriggerAvailableNow(self) -> None:  # noqa: N802
            marks = self.planner._watermarks()
            self.planner.stop_at = {
                t: {p: h for p, (_, h) in ps.items()} for t, ps in marks.items()
            }
            self.planner.min_offsets = None

        def partitions(self, start: dict, end: dict):
            return [RangePartition(g) for g in self.planner.tasks(start, end, self.slots)]

        def read(self, partition):
            for r in partition.ranges:
                offsets: list[int] = []

                def tables(r=r, offsets=offsets) -> Iterator[KafkaRecords]:
                    for records in read_range(self.servers, r, self.chunk):
                        offsets.extend(records.coords["offset"].to_pylist())
                        yield records

                work(r, tables())
                n = len(offsets)
                yield pa.RecordBatch.from_pydict(
                    {
                        "topic": pa.array([r.topic] * n, pa.string()),
                        "partition": pa.array([r.partition] * n, pa.int32()),
                        "offset": pa.array(offsets, pa.int64()),
                        "staging": pa.array([r.staging] * n, pa.string()),
                    }
                )

        def commit(self, end: dict) -> None:
            pass

        def stop(self) -> None:
            self.planner.close()

    class Source(DataSource):
        @classmethod
        def name(cls) -> str:
            return name

        def schema(self) -> str:
            return ROWS_SCHEMA

        def streamReader(self, schema):  # noqa: N802
            return Reader(self.options)

    return Source


@dataclass
class FileShare:
    """One task's share of a staged micro-batch: files an upstream stage committed."""

    files: list[str]
    staging: str


class CommitPlanner:
    """The driver side of a staged stage: which upstream batches the next micro-batch takes.

    Offsets are ``{"batch": n}``, the newest upstream batch taken. Only
    batches whose commit mark exists are taken, in order, so a downstream
    stage never reads a file an upstream attempt may still move or remove;
    the marks name the batches' files (:meth:`~alertbench.broker.sink.BatchSink.committed_files`).

    Parameters
    ----------
    root : Path
        The broker's output root.
    upstream : str
        The stage that writes the files (``stream2raw``, ``raw2science``).
    output : str
        Its output folder (``raw``, ``science``).
    tasks : int
        How many tasks share a micro-batch's files.
    """

    def __init__(self, root, upstream: str, output: str, tasks: int) -> None:
        from alertbench.broker.sink import BatchSink

        self.upstream = BatchSink(Path(root), upstream)
        self.output = output
        self.tasks = max(tasks, 1)

    def latest(self, start: dict) -> dict:
        """The newest upstream batch committed with every one before it."""
        n = start["batch"]
        while self.upstream.done(n + 1):
            n += 1
        return {"batch": n}

    def shares(self, start: dict, end: dict) -> list[FileShare]:
        """The files of the upstream batches after ``start`` up to ``end``, shared by size."""
        files = self.upstream.committed_files(self.output, start["batch"] + 1, end["batch"])
        sizes = {f: f.stat().st_size for f in files}
        key = batch_key(start, end)
        groups = balance(files, sizes.__getitem__, self.tasks)
        return [FileShare(sorted(str(f) for f in g), key) for g in groups]


def committed_files_source(work: Callable[[FileShare], int], name: str):
    """A Spark Python data source whose tasks run ``work`` on an upstream stage's committed files.

    Parameters
    ----------
    work : callable
        ``work(share) -> rows``: the per-alert work on a share's files; it
        returns how many alerts it read.
    name : str
        The format name to register. Options: ``root``, ``upstream``,
        ``output`` and ``tasks`` (see :class:`CommitPlanner`).
    """
    from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition

    class SharePartition(InputPartition):
        def __init__(self, share: FileShare) -> None:
            super().__init__(share)
            self.share = share

    class Reader(DataSourceStreamReader):
        def __init__(self, options) -> None:
            self.planner = CommitPlanner(
                options["root"], options["upstream"], options["output"], int(options["tasks"])
            )

        def initialOffset(self) -> dict:  # noqa: N802 (Spark's name)
            return {"batch": -1}

        def latestOffset(self, start: dict, limit) -> dict:  # noqa: N802
            return self.planner.latest(start)

        def partitions(self, start: dict, end: dict):
            return [SharePartition(s) for s in self.planner.shares(start, end)]

        def read(self, partition):
            share = partition.share
            n = work(share)
            # One row per alert read, so Spark's progress counts alerts.
            yield pa.RecordBatch.from_pydict(
                {"staging": pa.array([share.staging] * n, pa.string())}
            )

        def commit(self, end: dict) -> None:
            pass

    class Source(DataSource):
        @classmethod
        def name(cls) -> str:
            return name

        def schema(self) -> str:
            return "staging string"

        def streamReader(self, schema):  # noqa: N802
            return Reader(self.options)

    return Source


def commit_staged(sink, outputs: list[str]):
    """The ``foreachBatch`` of a query whose tasks staged the outputs themselves.

    The tasks name the staging folder by the batch's offsets (they do not
    know the batch id) and return it in every row; the driver commits it
    under the batch id, once.
    """

    def handle(df, batch_id: int) -> None:
        if sink.done(batch_id):
            return
        keys = {row["staging"] for row in df.select("staging").collect()}
        stage = sink.staging / keys.pop() if keys else None
        sink.commit(batch_id, outputs, stage)

    return handle


def start_files_query(
    spark, name: str, work, *, sink, upstream: str, output: str, outputs: list[str], trigger: str
):
    """Start query ``name`` over the files stage ``upstream`` committed into ``output``.

    Each task runs ``work`` on its share of a micro-batch's files (see
    :func:`committed_files_source`) and stages ``outputs``; the driver commits them.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    spark.dataSource.register(committed_files_source(work, f"alertbench_{name}"))
    return (
        spark.readStream.format(f"alertbench_{name}")
        .option("root", str(sink.root))
        .option("upstream", upstream)
        .option("output", output)
        .option("tasks", str(spark.sparkContext.defaultParallelism))
        .load()
        .writeStream.queryName(name)
        .foreachBatch(commit_staged(sink, outputs))
        .option("checkpointLocation", str(sink.root / "checkpoints" / name))
        .trigger(processingTime=trigger)
        .start()
    )


@dataclass(frozen=True)
class KafkaInput:
    """What a Kafka query reads, where it checkpoints, and how it sizes its micro-batches.

    Attributes
    ----------
    servers, topics
        The Kafka cluster and the topics to read.
    out : Path
        The broker's output folder (checkpoints under ``out/checkpoints``).
    trigger : str
        The micro-batch trigger interval.
    max_offsets, min_offsets, max_trigger_delay_s
        The size of each micro-batch: a cap, a minimum to wait for, and the
        longest wait for it.
    check_crcs : bool
        Let Spark's Kafka consumer verify record CRCs.
    available_now : bool
        Read what the topics hold at the start, then stop (benchmarks).
    """

    servers: str | Connection
    topics: list[str]
    out: Path
    trigger: str = "1 second"
    max_offsets: int | None = None
    min_offsets: int | None = None
    max_trigger_delay_s: float | None = None
    check_crcs: bool = False
    available_now: bool = False

    def checkpoint(self, name: str) -> str:
        """The checkpoint folder of query ``name``."""
        return str(Path(self.out).resolve() / "checkpoints" / name)

    def trigger_options(self) -> dict:
        """``DataStreamWriter.trigger``'s arguments."""
        return {"availableNow": True} if self.available_now else {"processingTime": self.trigger}


def start_kafka_tasks_query(
    spark,
    name: str,
    work: Callable[[Iterator[KafkaRecords], Path, Callable[[int], str]], None],
    q: KafkaInput,
    *,
    sink,
    outputs: list[str],
):
    """Start query ``name`` whose tasks read their Kafka offset ranges with confluent-kafka.

    Each task runs ``work(records, staging, file_name)`` on each of its
    ranges: it stages ``outputs`` in ``staging``, its ``k``-th file named
    ``file_name(k)`` (the same whenever the task runs again). The staging
    folder is named by the batch's offsets (the tasks know them, not the
    batch id); the driver commits it under the batch id, once.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
    """
    staging_root = sink.staging

    def run(r: OffsetRange, records: Iterator[KafkaRecords]) -> None:
        work(
            records,
            staging_root / r.staging,
            lambda k: f"{r.topic}-{r.partition}-{r.start}-{k:05d}.parquet",
        )

    source = kafka_alert_source(run, f"alertbench_kafka_{name}")
    spark.dataSource.register(source)
    reader = (
        spark.readStream.format(f"alertbench_kafka_{name}")
        .option("servers", Connection.of(q.servers).servers)
        # Spark redacts option values that mention a password in its plans and logs.
        .option("client", json.dumps(Connection.of(q.servers).props))
        .option("topics", json.dumps(q.topics))
        .option("min_offsets", str(q.min_offsets or 0))
        .option("max_offsets", str(q.max_offsets or 0))
        .option("max_trigger_delay_s", str(q.max_trigger_delay_s or 10.0))
        .option("chunk", spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "1000"))
        .option("tasks", str(spark.sparkContext.defaultParallelism))
        .load()
    )
    return (
        reader.writeStream.queryName(name)
        .foreachBatch(commit_staged(sink, outputs))
        .option("checkpointLocation", q.checkpoint(name))
        .trigger(**q.trigger_options())
        .start()
    )
