"""Faults on the Kafka the bench started: its nodes paused, killed or restarted, retention cut."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import (
    FaultError,
    Target,
    leader_id,
    pids,
    running_broker,
)
from alertbench.errors import AlertbenchError
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes

if TYPE_CHECKING:
    from alertbench.kafka.state import Node


def leader_node(target: Target, partition: int) -> Node:
    """The embedded Kafka's node leading ``partition`` of the input (its ports, its process)."""
    leader = leader_id(target, partition)
    node = target.kafka_nodes().get(leader)
    if node is None:
        raise FaultError(f"partition {partition}'s leader, node {leader}, is not one the bench ran")
    return node


def _leader(target: Target, partition: int) -> tuple[int, ProcessRecord]:
    """The node leading ``partition`` of the input topic, and its process."""
    node = leader_node(target, partition)
    return node.node_id, node.proc


@dataclass
class KafkaPause:
    """SIGSTOP the leader of an input partition; SIGCONT it to heal."""

    spec: FaultSpec
    target: Target
    proc: ProcessRecord | None = None

    def inject(self) -> dict[str, Any]:  # noqa: D102
        node, self.proc = _leader(self.target, int(self.spec.value("partition")))
        LocalTransport().send_signal(self.proc, signal.SIGSTOP)
        return {"node": node, "pids": [self.proc.pid], "signal": "SIGSTOP"}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        if self.proc is None:
            return {}
        LocalTransport().send_signal(self.proc, signal.SIGCONT)
        return {"pids": [self.proc.pid], "signal": "SIGCONT"}


def _wait_isr_full(target: Target, timeout: float = 120) -> bool:
    """Wait until every replica of every input partition is back in its ISR."""
    from alertbench.kafka.admin import list_topics

    topic, deadline = target.wiring.topic, time.monotonic() + timeout
    while True:
        try:
            info = next((t for t in list_topics(target.bench.servers) if t.name == topic), None)
        except AlertbenchError:
            info = None  # the cluster is between leaders: ask again
        if info is not None and all(set(p.isr) == set(p.replicas) for p in info.partitions):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


@dataclass
class KafkaKill:
    """SIGKILL the leader of an input partition; restart it through the launcher to heal."""

    spec: FaultSpec
    target: Target
    node: int | None = None

    def inject(self) -> dict[str, Any]:  # noqa: D102
        self.node, proc = _leader(self.target, int(self.spec.value("partition")))
        local = LocalTransport()
        local.send_signal(proc, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while local.is_running(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"node": self.node, "pids": [proc.pid], "signal": "SIGKILL"}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        started = self.target.restart_kafka()
        # Healed once the restarted node is back in every input partition's ISR.
        return {
            "node": self.node,
            "restarted_pid": started[self.node].pid if self.node in started else None,
            "isr_full": _wait_isr_full(self.target),
        }


@dataclass
class KafkaRollingRestart:
    """Every Kafka node in turn: SIGTERM, wait for its exit, restart, wait for a full ISR.

    The way an operator upgrades a cluster: one node at a time, the next only
    once every input partition has all its replicas in sync again.
    """

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        local = LocalTransport()
        grace = float(self.spec.value("grace_s"))
        steps = []
        for node in sorted(self.target.kafka_nodes()):
            proc = self.target.kafka_nodes()[node].proc
            began = time.time()
            killed = stop_processes(local, [proc], grace=grace)
            stopped = time.time()
            started = self.target.restart_kafka()
            full = _wait_isr_full(self.target)
            steps.append(
                {
                    "node": node,
                    "pid": proc.pid,
                    "signal": "SIGKILL" if killed else "SIGTERM",
                    "stop_s": round(stopped - began, 3),
                    "restarted_pid": started[node].pid if node in started else None,
                    "back_s": round(time.time() - stopped, 3),
                    "isr_full": full,
                }
            )
            if not full:
                raise FaultError(
                    f"node {node} restarted but the input's ISR was not full again in 120 s: "
                    "the rolling restart stopped there"
                )
        return {"nodes": steps}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        return {}


@dataclass
class RetentionOverrun:
    """The broker under test paused (SIGSTOP) past a short input retention, then resumed.

    The input topic's retention is cut to ``retention_ms`` (and its segments
    roll every second, so they close and can be deleted; a cap on their size
    would refuse the producers' larger batches) while the broker is stopped; the
    records it had still to read age out. At the heal the topic's retention
    is restored and the broker resumed: it must stop, naming the offsets
    (``fail_on_data_loss``), or skip them and count them, exactly.
    """

    spec: FaultSpec
    target: Target
    paused: list[ProcessRecord] = field(default_factory=list)

    def _lows(self) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        topic, n = self.target.wiring.topic, self.target.wiring.partitions
        consumer = Consumer(self.target.bench.servers.conf({"group.id": "alertbench-fault"}))
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in range(n)
            }
        finally:
            consumer.close()

    def inject(self) -> dict[str, Any]:  # noqa: D102
        from alertbench.kafka.admin import alter_topic_config

        local = LocalTransport()
        self.paused = running_broker(self.target)
        for p in self.paused:
            local.send_signal(p, signal.SIGSTOP)
        retention = str(int(self.spec.value("retention_ms")))
        alter_topic_config(
            self.target.bench.servers,
            self.target.wiring.topic,
            {"retention.ms": retention, "segment.ms": "1000"},
        )
        return {
            "pids": pids(self.paused),
            "signal": "SIGSTOP",
            "retention_ms": int(retention),
            "earliest_offsets": self._lows(),
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        from alertbench.kafka.admin import alter_topic_config

        lows = self._lows()
        alter_topic_config(
            self.target.bench.servers,
            self.target.wiring.topic,
            {"retention.ms": None, "segment.ms": None},
        )
        local = LocalTransport()
        for p in reversed(self.paused):
            local.send_signal(p, signal.SIGCONT)
        return {"pids": pids(self.paused), "signal": "SIGCONT", "earliest_offsets": lows}
