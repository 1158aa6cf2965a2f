"""A broker alertbench did not build, as the bench sees it from outside.

What can be known without its code: the process alertbench started for it
(its PID, its log, its exit), how far its consumer group has read the input
topic (Kafka's admin API), and which topics it writes (a pattern over the
cluster's topics). Its output is timed by the ids read from the messages
(:mod:`alertbench.alerts.ids`).
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import Consumer, KafkaException, TopicPartition

from alertbench.errors import AlertbenchError, ConfigError
from alertbench.kafka.admin import TopicInfo, list_topics
from alertbench.kafka.client import Watermarks
from alertbench.kafka.security import Connection, Kafka, explain
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes

PLACEHOLDERS = ("servers", "input_topic", "client_config")


class BrokerUnderTestError(AlertbenchError):
    """The broker under test crashed, or never consumed."""


def group_offsets(kafka: Kafka, group: str, topic: str, partitions: int) -> int:
    """Offsets of ``topic`` that ``group`` has read or can no longer read, summed.

    See :func:`group_partition_offsets`.
    """
    return sum(group_partition_offsets(kafka, group, topic, partitions).values())


def group_partition_offsets(
    kafka: Kafka, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """Offsets of ``topic`` that ``group`` has read or can no longer read, per partition.

    Per partition, the group's committed offset, or the partition's log start
    when retention has deleted records the group had not yet read (0 where the
    group has committed nothing). Those records are lost to the broker, and the
    run counts them by id. A group that has nothing left to read has no reason
    to commit again, and a drain that waited for the deleted records would wait
    until its timeout.

    Kafka's OffsetFetch, asked through a consumer that never joins the group:
    confluent-kafka 2.16.1's ``AdminClient.list_consumer_group_offsets``
    crashed the process (SIGSEGV) when the cluster had no group coordinator
    yet, as on a fresh cluster.

    Raises
    ------
    BrokerUnderTestError
        If the cluster refuses the request (the group's ACLs, say).
    """
    consumer = Consumer(
        Connection.of(kafka).conf({"group.id": group, "enable.auto.commit": False, "log_level": 0})
    )
    try:
        found = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        starts = [
            consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[0]
            if tp.error is None and tp.offset >= 0
            else 0
            for tp in found
        ]
    except KafkaException as exc:
        raise BrokerUnderTestError(f"cannot read consumer group {group!r}: {explain(exc)}") from exc
    finally:
        consumer.close()
    for tp in found:
        if tp.error is not None:
            raise BrokerUnderTestError(
                f"cannot read consumer group {group!r} on {topic}: {explain(tp.error)}"
            )
    return {tp.partition: max(tp.offset, start, 0) for tp, start in zip(found, starts, strict=True)}


def command_argv(cmd: str, **values: str) -> list[str]:
    """``cmd`` with ``{servers}``, ``{input_topic}`` and ``{client_config}`` filled, split.

    Raises
    ------
    ConfigError
        For a placeholder alertbench does not fill, or an unbalanced quote.
    """
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise ConfigError(f"cannot split the broker command {cmd!r}: {exc}") from None
    known = {k: values.get(k, "") for k in PLACEHOLDERS}
    try:
        return [part.format(**known) for part in argv]
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"the broker command {cmd!r} names {exc}; the placeholders are "
            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            + " (double braces for a literal one)."
        ) from None


@dataclass
class ExternalBroker:
    """A broker under test that alertbench starts (``cmd``) or finds running.

    Attributes
    ----------
    outputs : str
        Its output topics: a regular expression a whole topic name matches.
    cmd : str or None
        The command that starts it; ``None``: it already runs.
    group : str or None
        Its consumer group on the input topic, for its progress and lag.
    log : Path or None
        Where its output goes, when alertbench starts it.
    proc : ProcessRecord or None
        The process alertbench started.
    """

    outputs: str
    cmd: str | None = None
    group: str | None = None
    log: Path | None = None
    proc: ProcessRecord | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.outputs)
        except re.error as exc:
            raise ConfigError(
                f"--output-topics {self.outputs!r} is not a regular expression: {exc}"
            ) from None

    def _matching(self, kafka: Kafka, exclude: str | None) -> list[TopicInfo]:
        return [
            t for t in list_topics(kafka) if self._pattern.fullmatch(t.name) and t.name != exclude
        ]

    def output_topics(self, kafka: Kafka, *, exclude: str | None = None) -> list[str]:
        """The cluster's topics the output pattern names (never the input topic)."""
        return sorted(t.name for t in self._matching(kafka, exclude))

    def start(self, log: Path, cwd: Path, **values: str) -> ProcessRecord | None:
        """Start the command (if any) as a tracked process writing to ``log``."""
        if self.cmd is None:
            return None
        self.log = log
        self.proc = LocalTransport().spawn(command_argv(self.cmd, **values), log=log, cwd=cwd)
        return self.proc

    def check(self) -> None:
        """Raise if the process alertbench started has exited.

        Raises
        ------
        BrokerUnderTestError
            With the last lines of its log.
        """
        local = LocalTransport()
        if self.proc is not None and not local.is_running(self.proc):
            raise BrokerUnderTestError(
                f"the broker under test (pid {self.proc.pid}) exited during the run; its log "
                f"{self.log} ends with:\n{local.tail(self.log, 15) if self.log else ''}"
            )

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process and every process it started, by PID."""
        if self.proc is None:
            return
        local = LocalTransport()
        family = []
        if local.is_running(self.proc):
            try:
                children = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            family = [ProcessRecord(c.pid, c.create_time()) for c in children]
        stop_processes(local, [self.proc, *family], grace=grace)

    def wait_consuming(
        self,
        kafka: Kafka,
        topic: str,
        partitions: int,
        target: int,
        timeout: float,
        *,
        fail: bool = True,
    ) -> bool:
        """Wait until the group has committed ``target`` offsets of ``topic``.

        Returns False if it timed out having consumed something, and ``fail`` is false.

        Raises
        ------
        BrokerUnderTestError
            If it exits, or commits nothing at all within ``timeout`` ("never
            consumed"), or (with ``fail``) stops short of ``target``.
        """
        if self.group is None:
            raise ConfigError("waiting on the broker's progress needs its group (--broker-group).")
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            self.check()
            done = group_offsets(kafka, self.group, topic, partitions)
            if done >= target:
                return True
            time.sleep(0.5)
        if done == 0:
            raise BrokerUnderTestError(
                f"the broker under test never consumed: its group {self.group!r} committed no "
                f"offset of {topic} in {timeout:.0f} s. Check that it reads {topic} with that "
                "group and commits its offsets."
            )
        if fail:
            raise BrokerUnderTestError(
                f"the broker under test consumed {done} of {target} alerts of {topic} in "
                f"{timeout:.0f} s."
            )
        return False

    def written(self, kafka: Kafka, marks: Watermarks, *, exclude: str | None = None) -> int:
        """Messages in the output topics now (their end offsets, summed, asked of ``marks``)."""
        found = self._matching(kafka, exclude)
        return sum(sum(marks.end_offsets(t.name, len(t.partitions)).values()) for t in found)

    def wait_quiet(
        self,
        kafka: Kafka,
        timeout: float,
        *,
        quiet: float,
        exclude: str | None = None,
        fail: bool = True,
    ) -> bool:
        """Without a group to watch: wait until the outputs have grown, then stayed still.

        Done when they hold messages and none came for ``quiet`` seconds.
        Returns False on a timeout when ``fail`` is false.

        Raises
        ------
        BrokerUnderTestError
            If it exits, or writes nothing at all within ``timeout``, or (with
            ``fail``) is still writing at ``timeout``.
        """
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        # One client for every poll, not a fresh one (and its bootstrap) twice a second.
        with Watermarks(kafka) as marks:
            while time.monotonic() < deadline:
                self.check()
                now, count = time.monotonic(), self.written(kafka, marks, exclude=exclude)
                if count != last:
                    last, since = count, now
                elif count > 0 and now - since >= quiet:
                    return True
                time.sleep(0.5)
        if last <= 0:
            raise BrokerUnderTestError(
                f"the broker under test wrote nothing to topics matching {self.outputs!r} in "
                f"{timeout:.0f} s. Check its log and its output topics, or name its "
                "consumer group (--broker-group) to follow its progress."
            )
        if fail:
            raise BrokerUnderTestError(
                f"the broker under test was still writing to {self.outputs!r} after "
                f"{timeout:.0f} s ({last} messages)."
            )
        return False
