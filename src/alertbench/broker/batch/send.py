"""Send distributed alerts from a Spark task with confluent-kafka.

A distributed alert is the survey's record followed by the broker's columns
(:func:`alertbench.broker.stream.distribute.distribution_schema`). Avro encodes a
record as its fields in order, so the message is the alert's original body,
as it came from Kafka, followed by fastavro's encoding of the added columns
against the published tail schema: no whole alert is encoded again. Delivery
is at least once: a task whose sends fail raises, and Spark runs it again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import fastavro

from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
from alertbench.kafka.security import Connection

# The producer settings of Spark's Kafka writer before: 75 KB alerts, batched.
PRODUCER_CONFIG = {
    "message.max.bytes": 10 * 1024 * 1024,
    "batch.size": 1024 * 1024,
    "linger.ms": 10,
    # Bounded: a task flushes at its end; a larger queue only adds to each worker's memory.
    "queue.buffering.max.kbytes": 64 * 1024,
    "socket.send.buffer.bytes": 4 * 1024 * 1024,
    # Java's partitioner, as Spark's Kafka writer partitioned by key.
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    # A worker's cached producer outlives test clusters; failed sends raise anyway.
    "log_level": 2,
}
_PRODUCERS: dict[str, Any] = {}


class SendError(RuntimeError):
    """Alerts that Kafka did not acknowledge (the task fails and Spark retries it)."""


class TailEncoder:
    """Encode the broker's columns of an alert against the published tail schema.

    Parameters
    ----------
    tail : dict
        The record schema of the added columns (``distribution_schema``'s second part).
    """

    def __init__(self, tail: dict[str, Any]) -> None:
        self.fields = [f["name"] for f in tail.get("fields") or []]
        # No added columns (no filters to send to): nothing to encode.
        self.schema = fastavro.parse_schema(json.loads(json.dumps(tail))) if self.fields else None

    def encode(self, rows: Iterable[dict[str, Any]]) -> list[bytes]:
        """The encoding of each row's added columns."""
        if self.schema is None:
            return [b"" for _ in rows]
        out = []
        for row in rows:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, self.schema, row)
            out.append(buf.getvalue())
        return out


def alert_bodies(table, schema) -> list[bytes]:
    """Each row's survey record encoded again from its flattened columns (the staged path's bodies).

    The inverse of :func:`alertbench.broker.batch.flatten.alert_columns`: the
    detection record is rebuilt from its top-level columns. Only the staged
    distribute stage needs it, for the few alerts the filters select; fused
    mode sends the bodies it read from Kafka.

    Parameters
    ----------
    table : pyarrow.Table
        Raw or science rows.
    schema : Schema
        The survey's alert schema.
    """
    from alertbench.broker.batch.flatten import DETECTION_FIELD, detection_fields

    detection = DETECTION_FIELD.get(schema.survey.survey)
    inner = detection_fields(schema)
    top = [n for n in schema.field_names if n != detection]
    rows = table.select(list(dict.fromkeys([*top, *inner]))).to_pylist()
    out = []
    for row in rows:
        record = {name: row[name] for name in top}
        if detection is not None:
            record[detection] = {name: row[name] for name in inner}
        out.append(schema.encode(record))
    return out


def producer(servers: str | Connection):
    """One producer per Kafka cluster per Python worker (Spark reuses its workers)."""
    from confluent_kafka import Producer

    key = Connection.of(servers)
    found = _PRODUCERS.get(key)
    if found is None:
        found = _PRODUCERS[key] = Producer(key.conf(PRODUCER_CONFIG))
    return found


def headers(sent_us: int | None, alert_id: Any) -> list[tuple[str, bytes]]:
    """The send time and alert id headers a timing consumer reads from a distribution topic."""
    sent = b"" if sent_us is None else str(sent_us).encode()
    ident = b"" if alert_id is None else str(alert_id).encode()
    return [(SENT_HEADER, sent), (ALERT_ID_HEADER, ident)]


class Sender:
    """Produce a task's messages as it goes; wait for every acknowledgement once, at its end.

    A task's chunks are sent without waiting on Kafka in between: waiting
    after each chunk of 500 alerts left a worker idle for a round trip per
    chunk, a tenth of a visit's batch here. Delivery stays at least once:
    :meth:`flush` raises if anything was not acknowledged, and the task fails.

    Parameters
    ----------
    servers : str or Connection
        The Kafka cluster of the distribution topics.
    """

    def __init__(self, servers: str | Connection) -> None:
        self.producer = producer(servers)
        self.count = 0
        self.failures: list[str] = []

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()}: {err.str()}")

    def produce(self, messages: Iterable[tuple[str, bytes, bytes, list]]) -> int:
        """Queue ``(topic, key, value, headers)`` messages; how many were queued."""
        prod = self.producer
        count = 0
        for topic, key, value, hdrs in messages:
            while True:
                try:
                    prod.produce(topic, value, key, headers=hdrs, on_delivery=self._delivered)
                    break
                except BufferError:
                    prod.poll(0.05)  # the local queue is full: let deliveries drain it
            prod.poll(0)
            count += 1
        self.count += count
        return count

    def flush(self) -> int:
        """Wait until every queued message is acknowledged; how many were sent.

        Raises
        ------
        SendError
            Naming how many failed and the first reason.
        """
        left = self.producer.flush(120)
        if left:
            self.failures.append(f"{left} message(s) still queued after 120 s")
        if self.failures:
            raise SendError(f"{len(self.failures)} alert(s) not delivered: {self.failures[0]}")
        return self.count


def send(servers: str | Connection, messages: Iterable[tuple[str, bytes, bytes, list]]) -> int:
    """Produce ``(topic, key, value, headers)`` messages and wait until all are acknowledged.

    Raises
    ------
    SendError
        Naming how many failed and the first reason.
    """
    sender = Sender(servers)
    sender.produce(messages)
    return sender.flush()
