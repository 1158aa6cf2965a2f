"""The timing consumer: when each alert arrives in the distribution topics.

It runs in a process of its own (``python -m alertbench.bench.timing``), so
neither the simulator nor the bench's samplers share its interpreter, and
records for every message the arrival time on this machine's clock with the
alert id and send time that travel as headers. It stops when the bench
writes the topics' final end offsets to ``--targets`` and it has read up to
them (or on SIGTERM), then writes one CSV row per message.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
from alertbench.kafka.security import Connection, read_client_properties

COLUMNS = ["topic", "alert_id", "sent_us", "arrival_us", "partition", "offset"]


def read_arrivals(servers: str | Connection, topics: list[str], out: Path, targets: Path) -> int:
    """Consume ``topics`` from the beginning until ``targets`` is reached; returns messages."""
    consumer = Consumer(
        Connection.of(servers).conf()
        | {
            "group.id": f"alertbench-timing-{time.time_ns()}",
            "enable.auto.commit": False,
            # Small fetch waits: a message is timed when it can be read, not 500 ms later.
            "fetch.wait.max.ms": 20,
            "log_level": 0,
        }
    )
    stop = False

    def on_term(_sig, _frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    rows: list[tuple] = []
    assigned: set[str] = set()
    goal: dict[tuple[str, int], int] | None = None
    checked = 0.0
    try:
        while not stop:
            now = time.monotonic()
            if now - checked > 0.5:
                checked = now
                if len(assigned) < len(topics):
                    _assign_new(consumer, topics, assigned)
                if goal is None and targets.exists():
                    goal = {
                        (t, int(p)): end
                        for t, parts in json.loads(targets.read_text()).items()
                        for p, end in parts.items()
                    }
                if goal is not None and _reached(consumer, goal, assigned):
                    break
            for msg in consumer.consume(1000, timeout=0.1):
                if msg.error() is not None:
                    continue
                arrival = time.time_ns() // 1000
                headers = dict(msg.headers() or [])
                sent = headers.get(SENT_HEADER, b"") or b""
                rows.append(
                    (
                        msg.topic(),
                        (headers.get(ALERT_ID_HEADER) or b"").decode(),
                        int(sent) if sent.isdigit() else "",
                        arrival,
                        msg.partition(),
                        msg.offset(),
                    )
                )
    finally:
        consumer.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return len(rows)


def _assign_new(consumer: Consumer, topics: list[str], assigned: set[str]) -> None:
    md = consumer.list_topics(timeout=5)
    new = [
        TopicPartition(t, p, OFFSET_BEGINNING)
        for t in topics
        if t not in assigned and t in md.topics and md.topics[t].error is None
        for p in md.topics[t].partitions
    ]
    if new:
        consumer.incremental_assign(new)
        assigned.update(tp.topic for tp in new)


def _reached(consumer: Consumer, goal: dict[tuple[str, int], int], assigned: set[str]) -> bool:
    if any(t not in assigned for t, _ in goal):
        return False
    parts = [TopicPartition(t, p) for (t, p), end in goal.items() if end > 0]
    if not parts:
        return True
    # Position is the next offset to read; before any read it is negative.
    return all(tp.offset >= goal[tp.topic, tp.partition] for tp in consumer.position(parts))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--servers --topics a,b --out arrivals.csv --targets targets.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", required=True)
    parser.add_argument("--topics", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--client-config", type=Path, default=None)
    args = parser.parse_args(argv)
    props = read_client_properties(args.client_config) if args.client_config else {}
    conn = Connection.build(args.servers, props)
    read_arrivals(conn, args.topics.split(","), args.out, args.targets)


if __name__ == "__main__":
    main()
