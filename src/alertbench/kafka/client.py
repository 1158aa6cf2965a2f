"""Plain produce and consume helpers over confluent-kafka, with delivery accounting."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from alertbench.errors import ClusterError
from alertbench.kafka.security import Connection, Kafka, explain, kafka_error


@dataclass
class DeliveryReport:
    """What happened to produced messages.

    Attributes
    ----------
    sent : int
        Messages acknowledged by the cluster.
    bytes : int
        Their value bytes.
    failed : list of str
        One line per message that could not be delivered.
    seconds : float
        Wall time from the first produce call to the end of the flush.
    """

    sent: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def produce(
    bootstrap_servers: Kafka,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    *,
    config: dict[str, object] | None = None,
    flush_timeout: float = 120.0,
) -> DeliveryReport:
    """Produce ``(key, value)`` messages and wait until every one is acknowledged or failed.

    Parameters
    ----------
    bootstrap_servers : str or Connection
        Where to connect, and with which credentials.
    topic : str
        Destination topic.
    messages : iterable of (bytes or None, bytes)
        Keys and values.
    config : dict, optional
        Extra librdkafka producer settings (``acks``, ``enable.idempotence``...).
    flush_timeout : float
        Seconds to wait for outstanding deliveries at the end.

    Returns
    -------
    DeliveryReport
    """
    conf: dict[str, object] = {
        **Connection.of(bootstrap_servers).conf(),
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": 10 * 1024 * 1024,
        # Retries (e.g. while a coordinator loads) are expected; report errors only.
        "log_level": 3,
    }
    conf.update(config or {})
    producer = Producer(conf)
    report = DeliveryReport()

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            report.failed.append(f"{topic}: {err.str()}")
        else:
            report.sent += 1
            report.bytes += len(msg.value())  # type: ignore[attr-defined]

    start = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                # Local queue full: let deliveries drain, then retry this message.
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(flush_timeout)
    report.seconds = time.perf_counter() - start
    if left:
        report.failed.append(f"{topic}: {left} message(s) not delivered within {flush_timeout} s")
    return report


def consume(
    bootstrap_servers: Kafka,
    topic: str,
    *,
    count: int,
    timeout: float = 60.0,
    config: dict[str, object] | None = None,
) -> list[tuple[int, int, bytes | None, bytes]]:
    """Read ``count`` messages of ``topic`` from the beginning.

    Parameters
    ----------
    bootstrap_servers : str or Connection
        Where to connect, and with which credentials.
    topic : str
        Topic to read.
    count : int
        Stop after this many messages.
    timeout : float
        Give up after this many seconds without reaching ``count``.
    config : dict, optional
        Extra librdkafka consumer settings.

    Returns
    -------
    list of (partition, offset, key, value)
        In arrival order.

    Raises
    ------
    ClusterError
        If fewer than ``count`` messages arrive in time, or the consumer fails.
    """
    conf: dict[str, object] = {
        **Connection.of(bootstrap_servers).conf(),
        "group.id": f"alertbench-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
    }
    conf.update(config or {})
    consumer = Consumer(conf)
    out: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        # Assign every partition from the start: no group join to wait for.
        found = consumer.list_topics(topic, timeout=10).topics[topic]
        if found.error is not None:
            raise ClusterError(f"consuming {topic}: {explain(found.error)}")
        partitions = found.partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=min(500, count - len(out)), timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ClusterError(f"consuming {topic}: {explain(msg.error())}")
                out.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    if len(out) < count:
        raise ClusterError(
            f"read only {len(out)} of {count} messages from {topic} in {timeout:.0f} s."
        )
    return out


# What a partition answers between its topic's creation and its leader's election.
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)


class Watermarks:
    """End offsets of topics, asked again and again through one consumer.

    A sampler polling every second would otherwise open (and bootstrap) a
    new Kafka client for every sample.

    Parameters
    ----------
    bootstrap_servers : str or Connection
        Where to connect, and with which credentials.
    """

    #: Seconds of unanswered lookups after which the consumer is made anew.
    RENEW_AFTER_S = 3.0

    def __init__(self, bootstrap_servers: Kafka) -> None:
        self._conf = Connection.of(bootstrap_servers).conf(
            # It joins no group: a coordinator connection that drops (SASL
            # re-authentication on a secured cluster) is not its error, and
            # failed lookups raise from the calls themselves.
            {"group.id": "alertbench-offsets", "log_level": 0}
        )
        self._consumer = Consumer(self._conf)
        # The bench's sampler thread and its main thread share one instance.
        self._lock = threading.Lock()

    def end_offsets(self, topic: str, partitions: int, timeout: float = 10) -> dict[int, int]:
        """The high watermark of each partition of ``topic``.

        Raises
        ------
        ClusterError
            If a partition still has no leader after ``timeout`` seconds.
        """
        with self._lock:
            return {p: self._end_offset(topic, p, timeout) for p in range(partitions)}

    def _end_offset(self, topic: str, partition: int, timeout: float) -> int:
        # A topic created a moment ago (by a broker under test, say) is listed
        # before its partitions' leaders know they lead; asking then is retried
        # until ``timeout`` rather than failing the caller.
        # A consumer that lived through a node's kill and restart can keep
        # answering "Unknown partition" from its own metadata while a new
        # client finds the leader at once (seen after a kafka-kill fault): one
        # that has not been answered for a few seconds is replaced.
        start = time.monotonic()
        deadline, renewed = start + timeout, False
        while True:
            left = max(min(deadline - time.monotonic(), self.RENEW_AFTER_S), 0.1)
            try:
                tp = TopicPartition(topic, partition)
                return self._consumer.get_watermark_offsets(tp, timeout=left)[1]
            except KafkaException as exc:
                err = kafka_error(exc)
                # A call is capped at a few seconds: its timeout is one more try.
                if err is None or err.code() not in {*_NO_LEADER_YET, KafkaError._TIMED_OUT}:
                    raise
                if not renewed and time.monotonic() - start >= self.RENEW_AFTER_S:
                    self._consumer.close()
                    self._consumer = Consumer(self._conf)
                    renewed = True
                    continue
                if time.monotonic() >= deadline:
                    raise ClusterError(
                        f"partition {partition} of {topic} has no leader after "
                        f"{timeout:.0f} s: {explain(exc)}. Check that every Kafka node is up."
                    ) from exc
            time.sleep(0.2)

    def close(self) -> None:
        """Close the consumer."""
        with self._lock:
            self._consumer.close()

    def __enter__(self) -> Watermarks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def end_offsets(bootstrap_servers: Kafka, topic: str, partitions: int) -> dict[int, int]:
    """The high watermark of each partition of ``topic`` (one short-lived consumer)."""
    with Watermarks(bootstrap_servers) as marks:
        return marks.end_offsets(topic, partitions)
