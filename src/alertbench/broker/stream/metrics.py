"""The broker's live metrics: its micro-batches, and its Kafka input under Kafka Exporter's names.

Served by ``alertbench broker run --metrics-port N`` from the driver. Every
micro-batch the query listener hears counts once: batches, rows and batch
time per query (a histogram), and each query's input offsets. A Spark query
keeps its offsets in its checkpoint, not in a consumer group, so each query
reading Kafka is shown as a consumer group of its own name
(``kafka_consumergroup_lag{consumergroup="fused",...}``), its lag the input's
end offsets, asked at each scrape, minus the offsets its last batch reached.

Given the broker's output folder, each committed batch's outputs are counted
too, as the batch's commit recorded them: the alerts quarantined, each
science module's rows, seconds and failures (its ``science-stats`` files),
and the age of every alert a batch wrote to raw Parquet when the batch
committed, counted from the alert's Kafka record timestamp (the survey's
publication, or the simulator's send): a histogram with Rubin's 60 s among
its buckets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric

from alertbench.observe.buckets import LATENCY_BUCKETS
from alertbench.observe.kafka_names import Offsets, families

#: Batch-time buckets (s): a visit's micro-batch takes from a fraction of a second to minutes.
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


def batch_offsets(record: dict[str, Any]) -> dict[str, dict[int, int]]:
    """Per topic, the offsets a batch record's Kafka sources reached (their ``endOffset``).

    Spark gives a source's end offset as JSON text, or, read back from the
    progress file, as a mapping: both are taken.
    """
    found: dict[str, dict[int, int]] = {}
    for source in record.get("sources") or []:
        end = source.get("end")
        if isinstance(end, str):
            try:
                end = json.loads(end)
            except json.JSONDecodeError:
                continue
        if isinstance(end, dict):
            for topic, parts in end.items():
                if isinstance(parts, dict):
                    found[topic] = {int(p): int(o) for p, o in parts.items()}
    return found


class BrokerMetrics:
    """The broker's registry; :meth:`observe` takes each batch record of the query listener.

    Parameters
    ----------
    topics : list of str
        The input topics.
    end_offsets : callable
        ``end_offsets(topic)``: each partition's end offset now (asked at scrape).
    out : Path, optional
        The broker's output folder: each batch's committed quarantine and
        science costs are counted from it.
    """

    def __init__(
        self,
        topics: list[str],
        end_offsets: Callable[[str], dict[int, int]],
        out: Path | None = None,
    ) -> None:
        self.topics = topics
        self.end_offsets = end_offsets
        self.out = out
        self.registry = CollectorRegistry(auto_describe=False)
        self.batches = Counter(
            "alertbench_broker_batches",
            "Micro-batches a query has completed",
            ["query"],
            registry=self.registry,
        )
        self.rows = Counter(
            "alertbench_broker_rows",
            "Rows (alerts) a query has read",
            ["query"],
            registry=self.registry,
        )
        self.batch_time = Histogram(
            "alertbench_broker_batch_duration_seconds",
            "Wall time of a query's micro-batch",
            ["query"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.quarantined = Counter(
            "alertbench_broker_quarantined",
            "Alerts a query set aside in quarantine (undecodable, with the reason)",
            ["query"],
            registry=self.registry,
        )
        module = {"labelnames": ["module"], "registry": self.registry}
        self.module_rows = Counter(
            "alertbench_science_module_rows", "Alerts a science module was given", **module
        )
        self.module_seconds = Counter(
            "alertbench_science_module_seconds",
            "Seconds a science module worked on its batches (summed over tasks)",
            **module,
        )
        self.module_failures = Counter(
            "alertbench_science_module_failures",
            "Batches on which a science module failed (its columns left empty)",
            **module,
        )
        self.age = Histogram(
            "alertbench_broker_alert_age_seconds",
            "Seconds from an alert's Kafka record timestamp to the commit of the batch that "
            "wrote it to raw Parquet",
            ["query"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._read: dict[str, dict[str, dict[int, int]]] = {}  # query -> topic -> offsets
        self._lock = threading.Lock()
        self.registry.register(self)  # type: ignore[arg-type]

    def observe(self, record: dict[str, Any]) -> None:
        """Count one batch record (:func:`alertbench.broker.stream.listener.batch_record`)."""
        query = str(record.get("query"))
        self.batches.labels(query).inc()
        self.rows.labels(query).inc(int(record.get("rows") or 0))
        if record.get("batch_ms") is not None:
            self.batch_time.labels(query).observe(record["batch_ms"] / 1000)
        read = {t: o for t, o in batch_offsets(record).items() if t in self.topics}
        if read:
            with self._lock:
                self._read.setdefault(query, {}).update(read)
        if self.out is not None and record.get("batch") is not None:
            self._count_outputs(query, int(record["batch"]), time.time())

    def _count_outputs(self, query: str, batch: int, now: float) -> None:
        """Count what batch ``batch`` of ``query`` committed: quarantine and science costs."""
        # Here, not at the top: the bench reads batch records with this module's
        # batch_offsets and needs none of the broker's batch code.
        import pyarrow.parquet as pq

        from alertbench.broker.batch.tasks import STATS_OUTPUT
        from alertbench.broker.stream.sink import BatchSink

        sink = BatchSink(self.out, query)  # type: ignore[arg-type]
        try:
            quarantined = sink.committed_files("quarantine", batch, batch)
            stats = sink.committed_files(STATS_OUTPUT, batch, batch)
            raw = sink.committed_files("raw", batch, batch)
        except (FileNotFoundError, ValueError):  # not committed (an empty batch), or torn
            return
        self.quarantined.labels(query).inc(
            sum(pq.ParquetFile(f).metadata.num_rows for f in quarantined)
        )
        for f in raw:
            appended = pq.read_table(f, columns=["kafka_time"])["kafka_time"]
            seconds = appended.cast("int64").to_numpy(zero_copy_only=False) / 1e6
            observe = self.age.labels(query).observe
            for age in (now - seconds).tolist():
                observe(age)
        for f in stats:
            for row in pq.read_table(f).to_pylist():
                self.module_rows.labels(row["module"]).inc(row["rows"])
                self.module_seconds.labels(row["module"]).inc(row["seconds"])
                self.module_failures.labels(row["module"]).inc(row["failed"])

    def describe(self) -> list[Metric]:
        """No families ahead of a collection: they depend on what the queries read."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The input's offsets and each Kafka query's lag, under Kafka Exporter's names."""
        with self._lock:
            read = {q: dict(t) for q, t in self._read.items()}
        snaps = []
        for topic in self.topics:
            end = self.end_offsets(topic)
            snaps.append(Offsets(topic, end))
            snaps += [Offsets(topic, end, q, t[topic]) for q, t in read.items() if topic in t]
        yield from families(snaps)
