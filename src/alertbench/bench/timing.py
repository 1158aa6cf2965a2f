"""The timing consumer: when each alert arrives in the distribution topics.

It runs in a process of its own (``python -m alertbench.bench.timing``), so
neither the simulator nor the bench's samplers share its interpreter, and
records for every message the arrival time on this machine's clock with the
alert's id and send time. alertbench's broker carries both as headers. Any
other broker is read by what it writes (``--id-format``, see
:class:`~alertbench.alerts.ids.IdReader`): the id comes from the message, and
the send time from the input topic (``--input-topic``), whose every message
carries the simulator's send time and the alert's id as headers. An output
message whose id was never sent keeps an empty send time, and one whose id
cannot be read an empty id: both are counted, not dropped. It stops when the
bench writes the topics' final end offsets to ``--targets`` and it has read
up to them (or on SIGTERM), then writes one CSV row per message.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from alertbench.alerts.ids import OUTPUT_FORMATS, IdReader, IdReadError
from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
from alertbench.kafka.security import Connection, read_client_properties

COLUMNS = ["topic", "alert_id", "sent_us", "arrival_us", "partition", "offset"]


def read_arrivals(
    servers: str | Connection,
    topics: list[str],
    out: Path,
    targets: Path,
    *,
    reader: IdReader | None = None,
    input_topic: str | None = None,
    pattern: str | None = None,
    observe: Callable[[str, float], None] | None = None,
) -> int:
    """Consume ``topics`` from the beginning until ``targets`` is reached; returns messages.

    Parameters
    ----------
    servers : str or Connection
        The cluster.
    topics : list of str
        The broker's output topics.
    out : Path
        The CSV to write (``COLUMNS``).
    targets : Path
        JSON ``{topic: {partition: end offset}}`` the bench writes once the
        load is in; reading stops there.
    reader : IdReader, optional
        How to read an id from an output message; alertbench's headers by default.
    input_topic : str, optional
        With ``reader``: the topic the simulator wrote, read for send times by id.
    pattern : str, optional
        A regular expression: every topic whose whole name it matches is an output
        too, also one created during the run (never the input topic, nor Kafka's own).
    observe : callable, optional
        Hears ``(topic, seconds from send to arrival)`` of each alert as soon as
        both are known (live metrics); an id read from the content waits for
        its send time from the input topic.
    """
    reader = reader or IdReader("header")
    by_content = reader.fmt != "header"
    if by_content and not input_topic:
        raise ValueError("reading ids from the messages needs the input topic for send times")
    sent_by_id: dict[str, int] = {}
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
    wanted = [*topics, *([input_topic] if by_content else [])]
    matches = re.compile(pattern).fullmatch if pattern else None
    unreadable = 0
    waiting: dict[str, list[tuple[str, int]]] = {}  # id -> (topic, arrival) without a send time
    try:
        while not stop:
            now = time.monotonic()
            if now - checked > 0.5:
                checked = now
                if matches is not None or len(assigned) < len(wanted):
                    _assign_new(consumer, wanted, assigned, matches, input_topic)
                if goal is None and targets.exists():
                    goal = {
                        (t, int(p)): end
                        for t, parts in json.loads(targets.read_text()).items()
                        for p, end in parts.items()
                    }
                if goal is not None and _reached(consumer, goal, assigned):
                    break
            batch = consumer.consume(1000, timeout=0.1)
            # Received now, all of them: reading their ids after must not make them late.
            arrival = time.time_ns() // 1000
            for msg in batch:
                if msg.error() is not None:
                    continue
                headers = dict(msg.headers() or [])
                if by_content and msg.topic() == input_topic:
                    ident, sent = headers.get(ALERT_ID_HEADER), headers.get(SENT_HEADER, b"")
                    if ident and sent.isdigit():
                        sent_by_id[ident.decode()] = int(sent)
                        for topic, came in waiting.pop(ident.decode(), []) if observe else []:
                            observe(topic, (came - int(sent)) / 1e6)
                    continue
                try:
                    ident = reader.read(msg.key(), msg.value(), headers)
                except IdReadError as exc:
                    ident = ""
                    unreadable += 1
                    if unreadable <= 5:  # why, for the run's log; the rest are counted
                        print(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}", flush=True)
                # From the header, or (by content) looked up by id once the input is read.
                sent = b"" if by_content else headers.get(SENT_HEADER) or b""
                if observe is not None and ident:
                    known = sent_by_id.get(ident) if by_content else None
                    if sent.isdigit() or known is not None:
                        observe(msg.topic(), (arrival - (known or int(sent))) / 1e6)
                    elif by_content:
                        waiting.setdefault(ident, []).append((msg.topic(), arrival))
                rows.append(
                    (
                        msg.topic(),
                        ident,
                        int(sent) if sent.isdigit() else "",
                        arrival,
                        msg.partition(),
                        msg.offset(),
                    )
                )
    finally:
        consumer.close()
        if by_content:
            rows = with_send_times(rows, sent_by_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return len(rows)


def with_send_times(rows: list[tuple], sent_by_id: dict[str, int]) -> list[tuple]:
    """Arrival rows with each alert's send time, looked up by its id (empty if never sent)."""
    return [(t, i, sent_by_id.get(i, "") if i else "", *rest) for t, i, _s, *rest in rows]


def _assign_new(
    consumer: Consumer,
    topics: list[str],
    assigned: set[str],
    matches: Callable[[str], object] | None = None,
    input_topic: str | None = None,
) -> None:
    try:
        md = consumer.list_topics(timeout=5)
    except KafkaException:
        return  # no metadata now (a node stopped or failing over): asked again next poll
    found = list(topics)
    if matches is not None:
        found += [
            t
            for t in md.topics
            if matches(t) and t != input_topic and not t.startswith("__") and t not in found
        ]
    new = [
        TopicPartition(t, p, OFFSET_BEGINNING)
        for t in found
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
    parser.add_argument("--topics", default="", help="Output topics, comma-separated.")
    parser.add_argument("--topic-pattern", default=None, help="Output topics by regex.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--client-config", type=Path, default=None)
    parser.add_argument("--id-format", default="header", choices=OUTPUT_FORMATS)
    parser.add_argument("--id-field", default=None)
    parser.add_argument("--schemas", type=Path, default=None)
    parser.add_argument("--input-topic", default=None)
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="Serve latency metrics (0: a free port)."
    )
    parser.add_argument(
        "--metrics-file", type=Path, default=None, help="Where to write HOST:PORT once serving."
    )
    args = parser.parse_args(argv)
    observe = None
    if args.metrics_port is not None:
        observe = _serve_latency(args.metrics_port, args.metrics_file)
    props = read_client_properties(args.client_config) if args.client_config else {}
    conn = Connection.build(args.servers, props)
    reader = IdReader(args.id_format, field=args.id_field, schemas=args.schemas)
    read_arrivals(
        conn,
        [t for t in args.topics.split(",") if t],
        args.out,
        args.targets,
        reader=reader,
        input_topic=args.input_topic,
        pattern=args.topic_pattern,
        observe=observe,
    )


def _serve_latency(port: int, where: Path | None) -> Callable[[str, float], None]:
    """Serve the latency histogram per output topic; returns what observes one alert."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from alertbench.observe.buckets import LATENCY_BUCKETS
    from alertbench.observe.endpoint import serve
    from alertbench.observe.targets import write_atomically

    registry = CollectorRegistry()
    latency = Histogram(
        "alertbench_alert_latency_seconds",
        "Seconds from an alert's send to its arrival in an output topic",
        ["topic"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    out = Counter(
        "alertbench_alerts_out",
        "Alerts read from an output topic and timed",
        ["topic"],
        registry=registry,
    )
    endpoint = serve(registry, port)
    if where is not None:
        write_atomically(where, endpoint.target)

    def observe(topic: str, seconds: float) -> None:
        latency.labels(topic).observe(seconds)
        out.labels(topic).inc()

    return observe


if __name__ == "__main__":
    main()
