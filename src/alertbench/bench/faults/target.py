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
