"""Each kind of fault: one act on a process or topic the bench started, and its heal.

Every act is taken on a process by its PID (checked against its start time,
so a recycled PID is never hit) and recorded, PIDs included, in the fault's
record, which the bench keeps in its state file while the fault is live.
"""

from __future__ import annotations

import io
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import psutil

from alertbench.bench.faults.spec import FaultSpec
from alertbench.errors import AlertbenchError
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes

if TYPE_CHECKING:
    from alertbench.bench.brokers import BrokerUnderTest, Wiring
    from alertbench.bench.session import Bench, Segment
    from alertbench.config import Settings


class FaultError(AlertbenchError):
    """A fault could not be injected or healed."""


@dataclass
class Target:
    """What a fault may act on in one segment of a run.

    Attributes
    ----------
    bench, seg, broker, wiring
        The run, its segment, the broker under test and where it reads.
    kafka_nodes : callable
        ``{node_id: ProcessRecord}`` of the embedded Kafka's brokers now.
    restart_kafka : callable
        Starts the embedded Kafka's nodes that are not running (its own
        launcher, as ``kafka up`` does) and returns their processes.
    """

    bench: Bench
    seg: Segment
    broker: BrokerUnderTest
    wiring: Wiring
    kafka_nodes: Callable[[], dict[int, ProcessRecord]]
    restart_kafka: Callable[[], dict[int, ProcessRecord]]


class Act(Protocol):
    """One injected fault."""

    def inject(self) -> dict[str, Any]:
        """Do it; returns what was done (PIDs, counts) for the record."""

    def heal(self) -> dict[str, Any]:
        """Undo it; returns what was done."""


def _pids(procs: list[ProcessRecord]) -> list[int]:
    return [p.pid for p in procs]


def _tree(proc: ProcessRecord) -> list[ProcessRecord]:
    """``proc`` and every descendant, each with its own start time, children first."""
    try:
        root = psutil.Process(proc.pid)
        kids = root.children(recursive=True)
    except psutil.Error:
        return [proc]
    found = []
    for k in reversed(kids):
        try:
            found.append(ProcessRecord(k.pid, k.create_time(), proc.host))
        except psutil.Error:
            continue
    return [*found, proc]


def _leader(target: Target, partition: int) -> tuple[int, ProcessRecord]:
    """The node leading ``partition`` of the input topic, and its process."""
    from alertbench.kafka.admin import list_topics

    topic = target.wiring.topic
    info = next((t for t in list_topics(target.bench.servers) if t.name == topic), None)
    if info is None or partition >= len(info.partitions):
        raise FaultError(f"the input topic {topic} has no partition {partition}")
    leader = next(p.leader for p in info.partitions if p.id == partition)
    nodes = target.kafka_nodes()
    if leader not in nodes:
        raise FaultError(f"partition {partition}'s leader, node {leader}, is not one the bench ran")
    return leader, nodes[leader]


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
        self.target.bench.kafka_pids = [p.pid for p in started.values()]
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
            proc = self.target.kafka_nodes()[node]
            began = time.time()
            killed = stop_processes(local, [proc], grace=grace)
            stopped = time.time()
            started = self.target.restart_kafka()
            self.target.bench.kafka_pids = [p.pid for p in started.values()]
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
        procs = [p for root in self.target.broker.procs() for p in _tree(root)]
        self.paused = [p for p in procs if local.is_running(p)]
        if not self.paused:
            raise FaultError(
                "the broker under test was not running when the fault struck: it had "
                f"stopped by itself (see {self.target.wiring.log})"
            )
        for p in self.paused:
            local.send_signal(p, signal.SIGSTOP)
        retention = str(int(self.spec.value("retention_ms")))
        alter_topic_config(
            self.target.bench.servers,
            self.target.wiring.topic,
            {"retention.ms": retention, "segment.ms": "1000"},
        )
        return {
            "pids": _pids(self.paused),
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
        return {"pids": _pids(self.paused), "signal": "SIGCONT", "earliest_offsets": lows}


@dataclass
class DriverKill:
    """SIGKILL alertbench's broker (driver, JVM, Python workers); start it again to heal."""

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        local = LocalTransport()
        killed = [p for root in self.target.broker.procs() for p in _tree(root)]
        killed = [p for p in killed if local.is_running(p)]
        if not killed:
            # Restarting it would hide that it died by itself: the run must say so.
            raise FaultError(
                "the broker under test was not running when the fault struck: it had "
                f"stopped by itself (see {self.target.wiring.log})"
            )
        for p in killed:
            local.send_signal(p, signal.SIGKILL)
        return {"pids": _pids(killed), "signal": "SIGKILL"}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        t = self.target
        t.broker.start(t.bench, t.seg, t.wiring)  # the same folder: the same checkpoint
        t.bench.track_broker(t.seg.tag, t.broker.procs())
        return {"restarted_pids": _pids(t.broker.procs())}


#: The class a standalone worker runs each executor as (its own child JVM).
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def standalone_worker(settings: Settings, master: str | None, worker: int) -> ProcessRecord:
    """The process of worker ``worker`` of the standalone cluster that runs ``master``.

    Only a cluster that ``alertbench spark up`` started on this machine
    qualifies: its state file holds the worker's PID and start time.

    Raises
    ------
    FaultError
        Naming what differs: no cluster recorded, another master, a remote
        or stopped worker, no such worker.
    """
    from alertbench.spark.state import read_state, state_dir

    cluster = read_state(settings)
    if cluster is None or not cluster.procs:
        raise FaultError(
            f"no Spark standalone cluster is recorded in {state_dir(settings)}: start one here "
            "with alertbench spark up (the same settings and run_dir as the bench)"
        )
    if cluster.master_url != master:
        raise FaultError(
            f"the broker runs on {master}, but the cluster alertbench started runs "
            f"{cluster.master_url}: run with --master {cluster.master_url}"
        )
    name = f"worker-{worker}"
    proc = cluster.procs.get(name)
    if proc is None:
        raise FaultError(f"the cluster has no {name} (workers: {cluster.workers})")
    if cluster.targets:
        raise FaultError(
            f"{name} runs on {proc.host}, over SSH: worker-kill acts on workers on this machine"
        )
    if not LocalTransport().is_running(proc):
        raise FaultError(f"{name} (PID {proc.pid}) is not running: see {cluster.logs.get(name)}")
    return proc


def _executors(worker: ProcessRecord) -> list[ProcessRecord]:
    """The executor JVMs that ``worker`` runs now (its children of :data:`EXECUTOR_CLASS`)."""
    try:
        kids = psutil.Process(worker.pid).children()
    except psutil.Error:
        return []
    found = []
    for k in kids:
        try:
            if EXECUTOR_CLASS in k.cmdline():
                found.append(ProcessRecord(k.pid, k.create_time(), worker.host))
        except psutil.Error:
            continue
    return found


@dataclass
class WorkerKill:
    """SIGKILL the executor a standalone worker runs for the broker; Spark replaces it.

    The executor is found as a child of the worker's recorded PID, never by
    name across the machine; its Python workers die with it. The act lasts
    until the worker runs a new executor (Spark's master asks for one when
    the worker reports the loss), so "healed" is when Spark had replaced it.
    """

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        bench = self.target.bench
        n = int(self.spec.value("worker"))
        worker = standalone_worker(bench.settings, bench.master, n)
        deadline = time.monotonic() + 30
        while not (execs := _executors(worker)):
            if time.monotonic() >= deadline:
                raise FaultError(
                    f"worker-{n} (PID {worker.pid}) ran no executor in 30 s: the broker "
                    "has none there (is --master this cluster's?)"
                )
            time.sleep(0.2)
        killed = [p for e in execs for p in _tree(e)]
        local = LocalTransport()
        for p in killed:
            local.send_signal(p, signal.SIGKILL)
        gone, old = time.monotonic(), {e.pid for e in execs}
        replaced = None
        while time.monotonic() - gone < 120:
            new = [e for e in _executors(worker) if e.pid not in old]
            if new:
                replaced = new[0].pid
                break
            time.sleep(0.2)
        return {
            "worker": f"worker-{n}",
            "worker_pid": worker.pid,
            "executor_pids": sorted(old),
            "pids": _pids(killed),
            "signal": "SIGKILL",
            "replaced_pid": replaced,
            "replaced_after_s": round(time.monotonic() - gone, 3) if replaced else None,
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        return {}


@dataclass
class BadInputBurst:
    """Malformed messages and duplicated alerts written to the input, between the good ones."""

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        from confluent_kafka import Consumer, Producer, TopicPartition

        from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
        from alertbench.simulator.producer import producer_config

        bench, topic = self.target.bench, self.target.wiring.topic
        n = {
            k: int(self.spec.value(k))
            for k in ("random", "truncated", "wrong_schema", "duplicates")
        }
        # Good alerts to cut and to send again: the first ones of the input (the warm-up's).
        consumer = Consumer(
            bench.servers.conf({"group.id": f"alertbench-fault-{uuid.uuid4().hex[:8]}"})
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            good = []
            deadline = time.monotonic() + 30
            need = max(n["truncated"], n["duplicates"], 1)
            while len(good) < need and time.monotonic() < deadline:
                good += [m for m in consumer.consume(need, timeout=1.0) if m.error() is None]
        finally:
            consumer.close()
        if not good:
            raise FaultError(f"no alert could be read back from {topic} to corrupt")
        producer = Producer(producer_config(bench.servers, acks="all", compression="none"))
        failed: list[str] = []

        def send(value: bytes, key: bytes | None, alert_id: str | None = None) -> None:
            headers = [(SENT_HEADER, str(int(time.time() * 1e6)).encode())]
            if alert_id is not None:
                headers.append((ALERT_ID_HEADER, alert_id.encode()))
            producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=lambda err, _m: err is not None and failed.append(err.str()),
            )

        for _ in range(n["random"]):
            send(os.urandom(2048), None)
        for m in good[: n["truncated"]]:
            send(m.value()[: len(m.value()) // 2], m.key())
        other = _other_schema_container()
        for _ in range(n["wrong_schema"]):
            send(other, None)
        ids = []
        for m in good[: n["duplicates"]]:
            alert_id = dict(m.headers() or []).get(ALERT_ID_HEADER)
            ids.append(alert_id.decode() if alert_id else None)
            send(m.value(), m.key(), ids[-1])
        producer.flush(30)
        if failed:
            raise FaultError(f"the burst was not all written: {failed[0]}")
        return {
            "malformed": {k: n[k] for k in ("random", "truncated", "wrong_schema")},
            "duplicates": len(ids),
            "duplicated_ids": ids,
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        return {}


def _other_schema_container() -> bytes:
    """A valid Avro container of a schema no survey uses."""
    import fastavro

    with io.BytesIO() as buf:
        fastavro.writer(
            buf,
            {"type": "record", "name": "x", "fields": [{"name": "a", "type": "int"}]},
            [{"a": 1}],
        )
        return buf.getvalue()


ACTS: dict[str, Callable[[FaultSpec, Target], Act]] = {
    "kafka-pause": KafkaPause,
    "kafka-kill": KafkaKill,
    "kafka-rolling-restart": KafkaRollingRestart,
    "retention-overrun": RetentionOverrun,
    "driver-kill": DriverKill,
    "worker-kill": WorkerKill,
    "bad-input-burst": BadInputBurst,
}
