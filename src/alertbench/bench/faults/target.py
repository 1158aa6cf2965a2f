"""What a fault acts on, the one interface every kind of fault implements, and their error.

Every act is taken on a process by its PID (checked against its start time,
so a recycled PID is never hit) and recorded, PIDs included, in the fault's
record, which the bench keeps in its state file while the fault is live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import psutil

from alertbench.errors import AlertbenchError
from alertbench.procs import ProcessRecord

if TYPE_CHECKING:
    from alertbench.bench.brokers import BrokerUnderTest, Wiring
    from alertbench.bench.session import Bench, Segment
    from alertbench.kafka.state import ClusterState, Node


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
        ``{node_id: Node}`` of the embedded Kafka's running brokers now (each
        with its ports and process, as its state file records them).
    restart_kafka : callable
        Starts the embedded Kafka's nodes that are not running (its own
        launcher, as ``kafka up`` does), records their PIDs as the bench's
        Kafka, and returns their processes.
    deployed : ClusterState or None
        The run's Kafka when ``kafka up`` deployed it on an inventory's hosts
        (its state file: nodes, their hosts and how to reach them over SSH).
    """

    bench: Bench
    seg: Segment
    broker: BrokerUnderTest
    wiring: Wiring
    kafka_nodes: Callable[[], dict[int, Node]]
    restart_kafka: Callable[[], dict[int, ProcessRecord]]
    deployed: ClusterState | None = None


class Act(Protocol):
    """One injected fault."""

    def inject(self) -> dict[str, Any]:
        """Do it; returns what was done (PIDs, counts) for the record."""

    def heal(self) -> dict[str, Any]:
        """Undo it; returns what was done."""


def pids(procs: list[ProcessRecord]) -> list[int]:
    """The PIDs of ``procs``, for a fault's record."""
    return [p.pid for p in procs]


def tree(proc: ProcessRecord) -> list[ProcessRecord]:
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


def running_broker(target: Target) -> list[ProcessRecord]:
    """Every running process of the broker under test (each root and its descendants).

    Raises
    ------
    FaultError
        When none runs: the broker had stopped by itself before the fault,
        which acting on it (or restarting it) would hide.
    """
    from alertbench.procs import LocalTransport

    local = LocalTransport()
    procs = [p for root in target.broker.procs() for p in tree(root)]
    running = [p for p in procs if local.is_running(p)]
    if not running:
        raise FaultError(
            "the broker under test was not running when the fault struck: it had "
            f"stopped by itself (see {target.wiring.log})"
        )
    return running


def restart_broker(target: Target) -> list[int]:
    """Start the broker under test again in its folder (its checkpoint); returns its PIDs."""
    target.broker.start(target.bench, target.seg, target.wiring)
    target.bench.track_broker(target.seg.tag, target.broker.procs())
    return pids(target.broker.procs())


def leader_id(target: Target, partition: int) -> int:
    """The id of the node leading ``partition`` of the input topic."""
    from alertbench.kafka.admin import list_topics

    topic = target.wiring.topic
    info = next((t for t in list_topics(target.bench.servers) if t.name == topic), None)
    if info is None or partition >= len(info.partitions):
        raise FaultError(f"the input topic {topic} has no partition {partition}")
    return next(p.leader for p in info.partitions if p.id == partition)
