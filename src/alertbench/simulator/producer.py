"""The send path: one producer process sends its share of the stream on schedule.

Producer ``j`` of ``P`` sends alerts ``j, j+P, j+2P, ...``, so each visit is
split evenly and every process follows the same wall-clock grid. Every
message carries its send time and visit number in headers (and as its Kafka
timestamp), for end-to-end latency downstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER, VISIT_HEADER
from alertbench.kafka.security import Connection
from alertbench.simulator.schedule import Schedule
from alertbench.simulator.source import Message


class Source(Protocol):
    """Anything that gives message ``i`` of the stream."""

    def message(self, i: int) -> Message:
        """Message ``i``."""


def producer_config(
    bootstrap_servers: str | Connection,
    *,
    acks: str,
    compression: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Producer settings (librdkafka) for 50-150 KB alerts.

    Large batches and a deep local queue keep the broker fed with few requests;
    idempotence makes retries after a broker failure exactly-once per partition.
    """
    conf: dict[str, Any] = {
        **Connection.of(bootstrap_servers).conf(),
        "acks": acks,
        "enable.idempotence": acks in ("all", "-1"),
        "compression.type": compression,
        "linger.ms": 5,
        "batch.size": 8 * 1024 * 1024,
        "batch.num.messages": 10_000,
        "queue.buffering.max.kbytes": 2 * 1024 * 1024,
        "queue.buffering.max.messages": 1_000_000,
        "message.max.bytes": 10 * 1024 * 1024,
        "socket.send.buffer.bytes": 4 * 1024 * 1024,
        "log_level": 3,
    }
    conf.update(extra or {})
    return conf


@dataclass
class VisitStats:
    """One visit as one producer saw it (times in seconds since the epoch)."""

    visit: int
    due: float
    alerts: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    last_ack: float = 0.0
    acked: int = 0


@dataclass
class ProducerStats:
    """Everything one producer process measured."""

    producer: int
    sent: int = 0
    acked: int = 0
    bytes: int = 0
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)
    visits: dict[int, VisitStats] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0

    def snapshot(self) -> tuple[int, int, int, int, float]:
        """(acked, bytes, failures, current visit, its lateness in s) for live progress."""
        if not self.visits:
            return self.acked, self.bytes, self.failures, 0, 0.0
        v = self.visits[max(self.visits)]
        return self.acked, self.bytes, self.failures, v.visit, v.first_send - v.due

    def to_json(self) -> dict[str, Any]:
        """Plain data (sent between processes)."""
        return {
            "producer": self.producer,
            "sent": self.sent,
            "acked": self.acked,
            "bytes": self.bytes,
            "failures": self.failures,
            "failure_samples": self.failure_samples,
            "started": self.started,
            "finished": self.finished,
            "visits": {v: vars(s) for v, s in self.visits.items()},
        }


@dataclass
class Plan:
    """What one producer must send, and when."""

    topic: str
    count: int
    schedule: Schedule
    t0: float
    duration: float | None = None
    replay_offsets: list[float] | None = None
    replay_span: float = 0.0
    # Each producer appends ``alert_id,sent_us,ack_us,error,partition,offset`` lines.
    ack_log: str | None = None


Progress = Callable[[ProducerStats], None]


def run_producer(
    j: int,
    producers: int,
    source: Source,
    plan: Plan,
    conf: dict[str, Any],
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ProducerStats:
    """Send alerts ``j, j+P, ...`` of the plan on schedule and wait for every ack.

    Parameters
    ----------
    j, producers : int
        This producer's number and how many share the stream.
    source : Source
        The messages.
    plan : Plan
        Topic, count, schedule, start time.
    conf : dict
        librdkafka producer settings.
    progress : callable, optional
        Called with the running stats about twice a second.
    should_stop : callable, optional
        Polled between messages; True ends the stream early (Ctrl-C).

    Returns
    -------
    ProducerStats
    """
    stats = ProducerStats(producer=j)
    producer = Producer(conf)

    acks: list[str] | None = [] if plan.ack_log else None

    def on_delivery(
        err: KafkaError | None, msg: Any, visit: VisitStats, alert_id: str | None, sent: int
    ) -> None:
        if acks is not None:
            # Who was acknowledged and when: a fault's loss is counted per id from this.
            # Where it was written too: an id lost to retention is told from one lost
            # to a fault by its offset.
            reason = err.name() if err is not None else ""
            where = f"{msg.partition()},{msg.offset()}" if err is None else "-1,-1"
            acks.append(f"{alert_id or ''},{sent},{int(time.time() * 1e6)},{reason},{where}\n")
        if err is not None:
            stats.failures += 1
            if len(stats.failure_samples) < 10:
                stats.failure_samples.append(f"{msg.topic()}: {err.str()}")
            return
        stats.acked += 1
        stats.bytes += len(msg.value())
        visit.acked += 1
        visit.last_ack = time.time()

    schedule = plan.schedule
    last_report = 0.0
    stats.started = time.time()
    for i in range(j, plan.count, producers):
        due = plan.t0 + schedule.due(i, plan.replay_offsets, plan.replay_span)
        now = time.time()
        if plan.duration is not None and max(now, due) - plan.t0 > plan.duration:
            break
        while now < due:
            # Serve delivery reports while waiting instead of sleeping blind.
            producer.poll(min(0.05, due - now))
            now = time.time()
        if should_stop is not None and should_stop():
            break
        v = schedule.visit(i)
        visit = stats.visits.get(v)
        if visit is None:
            visit = stats.visits[v] = VisitStats(
                visit=v,
                due=plan.t0
                + schedule.visit(i)
                * (schedule.visit_interval if schedule.mode == "visits" else 0.0),
                first_send=now,
            )
        msg = source.message(i)
        sent_us = int(now * 1e6)
        headers = [(SENT_HEADER, str(sent_us).encode()), (VISIT_HEADER, str(v).encode())]
        if msg.alert_id is not None:
            # Lets a timing consumer match any broker's output to this send, by id.
            headers.append((ALERT_ID_HEADER, msg.alert_id.encode()))
        while True:
            try:
                producer.produce(
                    plan.topic,
                    value=msg.value,
                    key=msg.key,
                    headers=headers,
                    timestamp=sent_us // 1000,
                    # Delivery reports carry no headers: bind the visit here.
                    on_delivery=lambda err, m, v=visit, a=msg.alert_id, t=sent_us: on_delivery(
                        err, m, v, a, t
                    ),
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        stats.sent += 1
        visit.alerts += 1
        visit.last_send = now
        if progress is not None and now - last_report > 0.5:
            last_report = now
            progress(stats)
    while producer.flush(0.5) > 0:
        if progress is not None:
            progress(stats)
    stats.finished = time.time()
    if acks:
        with open(f"{plan.ack_log}.{j}.csv", "a") as f:
            f.writelines(acks)
    if progress is not None:
        progress(stats)
    return stats
