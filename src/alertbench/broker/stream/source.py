"""The broker's Spark Python streaming data sources, and the queries that run on them.

Spark keeps what it is good at: the offsets of each micro-batch in its
checkpoint, the trigger, the scheduling of tasks. Each partition of a
micro-batch is one task's share, planned on the driver
(:mod:`alertbench.broker.stream.offsets`): Kafka offset ranges, which the
task consumes with confluent-kafka (:mod:`alertbench.broker.batch.ranges`),
or the files an upstream stage committed. The task does the whole per-alert
work on it (the ``work`` function: decode, raw, science, send), so the 75 KB
alerts never cross from the JVM to Python, and returns one small row per
alert, so Spark's progress counts alerts. The driver commits what the tasks
staged, once per batch (:func:`commit_staged`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from alertbench.broker.batch.ranges import OffsetRange, read_range
from alertbench.broker.batch.records import KafkaRecords
from alertbench.broker.stream.offsets import CommitPlanner, FileShare, OffsetPlanner
from alertbench.kafka.security import Connection

#: The rows a task returns: one per alert read.
ROWS_SCHEMA = "topic string, partition int, offset long, staging string"


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
                fail_on_data_loss=options.get("fail_on_data_loss", "true") == "true",
                loss_root=Path(options["loss_root"]) if options.get("loss_root") else None,
            )
            self.check_crcs = options.get("check_crcs", "true") == "true"
            self.fail_on_data_loss = self.planner.fail_on_data_loss
            self.loss_root = self.planner.loss_root

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
                    for records in read_range(
                        self.servers,
                        r,
                        self.chunk,
                        check_crcs=self.check_crcs,
                        fail_on_data_loss=self.fail_on_data_loss,
                        loss_root=self.loss_root,
                    ):
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
        Let the Kafka consumer (the tasks' or Spark's) verify record batches' CRCs.
    fail_on_data_loss : bool
        Stop when offsets to read aged out of retention (else skip them); the
        task reader records each such range (:mod:`alertbench.broker.batch.loss`).
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
    check_crcs: bool = True
    fail_on_data_loss: bool = True
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
        .option("check_crcs", str(q.check_crcs).lower())
        .option("fail_on_data_loss", str(q.fail_on_data_loss).lower())
        .option("loss_root", str(Path(q.out).resolve()))
        .load()
    )
    return (
        reader.writeStream.queryName(name)
        .foreachBatch(commit_staged(sink, outputs))
        .option("checkpointLocation", q.checkpoint(name))
        .trigger(**q.trigger_options())
        .start()
    )
