"""The driver's side of the broker's sources: which records each micro-batch takes, in what tasks.

Offsets are ``{topic: {partition: next offset}}``, as Spark's Kafka source
writes them. A micro-batch waits for ``min_offsets`` new records for at most
``max_trigger_delay_s`` after the first of them arrived (the first batch
never waits) and takes at most ``max_offsets`` (shared among partitions by
their backlog). A staged stage's offsets are ``{"batch": n}``, the newest
upstream batch committed (:class:`CommitPlanner`). Nothing here imports
Spark: the data sources of :mod:`alertbench.broker.stream.source` call it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertbench.broker.batch import loss
from alertbench.broker.batch.ranges import OffsetRange, consumer_config
from alertbench.kafka.security import Connection


def batch_key(start: dict, end: dict) -> str:
    """A name for a micro-batch's staging folder, the same whenever Spark replays it."""
    return hashlib.sha256(json.dumps([start, end], sort_keys=True).encode()).hexdigest()[:20]


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


#: How long the planner waits for one partition's watermarks before it leaves the
#: partition out of the next micro-batch (a leader that died answers no more).
PARTITION_TIMEOUT_S = 2.0


class OffsetPlanner:
    """The driver side: which offsets the next micro-batch reads.

    Parameters
    ----------
    servers, topics
        The Kafka cluster and the topics to read.
    min_offsets, max_offsets, max_trigger_delay_s
        The size of a micro-batch (see the module's docstring).
    fail_on_data_loss : bool
        When a micro-batch's start offsets aged out of Kafka's retention,
        raise :class:`~alertbench.broker.batch.loss.DataLossError` (else read
        from the earliest offset kept).
    loss_root : Path, optional
        Where such ranges are recorded (:func:`alertbench.broker.batch.loss.record`).
    """

    def __init__(
        self,
        servers: str | Connection,
        topics: list[str],
        *,
        min_offsets: int | None = None,
        max_offsets: int | None = None,
        max_trigger_delay_s: float = 10.0,
        fail_on_data_loss: bool = True,
        loss_root: Path | None = None,
    ) -> None:
        self.servers = servers
        self.fail_on_data_loss = fail_on_data_loss
        self.loss_root = loss_root
        self._lows: dict[str, dict[str, int]] | None = None
        self.topics = topics
        self.min_offsets = min_offsets
        self.max_offsets = max_offsets
        self.delay = max_trigger_delay_s
        self.last_batch: float | None = None
        self.first_new: float | None = None
        self.stop_at: dict | None = None
        self._consumer = None

    def _watermarks(self, *, strict: bool = True) -> dict[str, dict[str, tuple[int, int]]]:
        """Each partition's (low, high) watermarks.

        With ``strict`` off, a partition whose leader does not answer in
        ``PARTITION_TIMEOUT_S`` (a node died and its leadership is moving) is
        left out instead of failing the call: the next micro-batch waits for
        it, and the query rides out the failover.
        """
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(consumer_config(self.servers, "alertbench-planner"))
        md = self._consumer.list_topics(timeout=10)
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for t in self.topics:
            topic = md.topics.get(t)
            if topic is None or topic.error is not None:
                continue
            found = {}
            for p, info in topic.partitions.items():
                if not strict and info.leader < 0:
                    continue  # no leader yet: nothing to ask
                try:
                    found[str(p)] = self._consumer.get_watermark_offsets(
                        TopicPartition(t, p), timeout=10 if strict else PARTITION_TIMEOUT_S
                    )
                except KafkaException:
                    if strict:
                        raise
            out[t] = found
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
        """The end of the next micro-batch: ``start`` itself when it should wait.

        A partition that does not answer (its leader is failing over) keeps
        its start offset in this batch: it is read by a later one.
        """
        from confluent_kafka import KafkaException

        try:
            marks = self._watermarks(strict=False)
        except KafkaException:
            return start  # no metadata at all: ask again at the next trigger
        self._lows = {t: {p: low for p, (low, _) in ps.items()} for t, ps in marks.items()}
        # Partitions that did not answer stay where they are.
        for t, ps in start.items():
            known = marks.setdefault(t, {})
            for p, offset in ps.items():
                known.setdefault(p, (offset, offset))
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
        """One range per partition that has records between ``start`` and ``end``.

        Offsets between ``start`` and what Kafka still keeps aged out of its
        retention: they are recorded, then refused or skipped
        (``fail_on_data_loss``).

        Raises
        ------
        DataLossError
            When offsets aged out and ``fail_on_data_loss`` is set.
        """
        key = batch_key(start, end)
        lows, self._lows = self._lows, None
        if lows is None:  # a batch Spark replays after a restart was planned before it
            from confluent_kafka import KafkaException

            try:
                marks = self._watermarks(strict=False)
            except KafkaException:
                marks = {}
            lows = {t: {p: low for p, (low, _) in ps.items()} for t, ps in marks.items()}
        aged, out = [], []
        for t, ps in end.items():
            for p, e in ps.items():
                s = start.get(t, {}).get(p, 0)
                low = lows.get(t, {}).get(p, s)
                if low > s and e > s:
                    aged.append(loss.AgedOut(t, int(p), s, min(low, e)))
                    s = min(low, e)
                if e > s:
                    out.append(OffsetRange(t, int(p), s, e, key))
        if aged:
            if self.loss_root is not None:
                loss.record(self.loss_root, aged)
            if self.fail_on_data_loss:
                raise loss.refusal(aged)
        return out

    def tasks(self, start: dict, end: dict, slots: int) -> list[list[OffsetRange]]:
        """The ranges of a micro-batch in at most ``slots`` tasks of about equal size.

        A task costs a fixed part (Spark scheduling it, its Python worker's
        turn) whatever it reads: with 4 partitions on 2 cores, a batch of a
        second's alerts spent more on four tasks' fixed parts than on its
        alerts.
        """
        return balance(self.ranges(start, end), lambda r: r.end - r.start, slots)


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
    the marks name the batches' files (:meth:`BatchSink.committed_files
    <alertbench.broker.stream.sink.BatchSink.committed_files>`).

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
        from alertbench.broker.stream.sink import BatchSink

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
