"""Faults in the input: malformed messages and duplicated alerts written between the good ones."""

from __future__ import annotations

import io
import os
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import FaultError, Target

#: How far past the input topic's max.message.bytes the oversized message goes.
OVERSIZED_BY = 2**20


def _wrong_magic(value: bytes, wire: str) -> bytes:
    """``value`` with its format's magic changed: Confluent's byte 0, Avro's version byte."""
    if wire == "confluent":
        return b"\x01" + value[1:]
    return value[:3] + b"\x02" + value[4:]


def _with_trailing(value: bytes, wire: str, extra: bytes) -> bytes:
    """``value`` with ``extra`` after its Avro record, its framing still valid.

    A Confluent-framed message ends with its record: the bytes go at the end.
    A container's one block is written again with its size grown, so that the
    framing check passes and the decoder meets the bytes.
    """
    if wire == "confluent":
        return value + extra
    from alertbench.alerts.schema import zigzag
    from alertbench.alerts.wire import container_body, container_header

    prefix, h, _ = container_header(value)
    body = container_body(value, prefix, h)
    if body is None:
        raise FaultError("an alert of the input is not a one-record container")
    return value[:h] + zigzag(1) + zigzag(len(body) + len(extra)) + body + extra + value[-16:]


def _wrong_schema_id(value: bytes) -> bytes:
    """A Confluent-framed ``value`` behind a schema id no registry of the run holds."""
    return value[:1] + struct.pack(">I", 2**31 - 1) + value[5:]


@dataclass
class BadInputBurst:
    """Malformed messages and duplicated alerts written to the input, between the good ones.

    Besides random bytes, truncated alerts, good alerts with bytes after their
    record and another schema's container, good alerts go in with their wire
    format's magic changed and (Confluent
    framing only) behind a schema id nobody registered; and a message 1 MiB
    larger than the input topic's ``max.message.bytes``, which Kafka must
    refuse (the producer's own limit is raised so that Kafka decides). Its
    bytes are random behind a first byte no framing starts with, so that
    a Kafka that took it after all hands the broker a message to quarantine.
    """

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        from confluent_kafka import Consumer, Producer, TopicPartition

        from alertbench.alerts.wire import ALERT_ID_HEADER, SENT_HEADER
        from alertbench.simulator.producer import producer_config

        bench, topic = self.target.bench, self.target.wiring.topic
        wire = bench.scenario.wire
        n = {k: int(self.spec.value(k)) for k in self.spec.kind.keys}
        if wire != "confluent":
            n["wrong_schema_id"] = 0  # only Confluent framing carries a schema id
        # Good alerts to cut and to send again: the first ones of the input (the warm-up's).
        consumer = Consumer(
            bench.servers.conf({"group.id": f"alertbench-fault-{uuid.uuid4().hex[:8]}"})
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            good = []
            deadline = time.monotonic() + 30
            cut = ("truncated", "trailing", "duplicates", "wrong_magic", "wrong_schema_id")
            need = max(*(n[k] for k in cut), 1)
            while len(good) < need and time.monotonic() < deadline:
                good += [m for m in consumer.consume(need, timeout=1.0) if m.error() is None]
        finally:
            consumer.close()
        if not good:
            raise FaultError(f"no alert could be read back from {topic} to corrupt")
        from alertbench.kafka.admin import topic_setting

        limit = int(topic_setting(bench.servers, topic, "max.message.bytes") or 1048588)
        size = limit + OVERSIZED_BY
        # Kafka, not the client, must be the one to refuse an oversized message.
        extra = {"message.max.bytes": 2 * size}
        producer = Producer(
            producer_config(bench.servers, acks="all", compression="none", extra=extra)
        )
        failed: list[str] = []
        refused: list[str] = []

        def send(value: bytes, key: bytes | None, alert_id: str | None = None, into=failed) -> None:
            headers = [(SENT_HEADER, str(int(time.time() * 1e6)).encode())]
            if alert_id is not None:
                headers.append((ALERT_ID_HEADER, alert_id.encode()))
            producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=lambda err, _m: err is not None and into.append(err.str()),
            )

        for _ in range(n["random"]):
            send(os.urandom(2048), None)
        for m in good[: n["truncated"]]:
            send(m.value()[: len(m.value()) // 2], m.key())
        for m in good[: n["trailing"]]:
            send(_with_trailing(m.value(), wire, b"\x00" * 8), m.key())
        other = _other_schema_container()
        for _ in range(n["wrong_schema"]):
            send(other, None)
        for m in good[: n["wrong_magic"]]:
            send(_wrong_magic(m.value(), wire), m.key())
        for m in good[: n["wrong_schema_id"]]:
            send(_wrong_schema_id(m.value()), m.key())
        for _ in range(n["oversized"]):
            send(b"\xff" + os.urandom(size - 1), None, into=refused)
        ids = []
        for m in good[: n["duplicates"]]:
            alert_id = dict(m.headers() or []).get(ALERT_ID_HEADER)
            ids.append(alert_id.decode() if alert_id else None)
            send(m.value(), m.key(), ids[-1])
        producer.flush(30)
        if failed:
            raise FaultError(f"the burst was not all written: {failed[0]}")
        malformed = [k for k in n if k not in ("duplicates", "oversized")]
        return {
            "malformed": {
                **{k: n[k] for k in malformed},
                # Written only where the topic took it: then the broker must quarantine it.
                "oversized": n["oversized"] - len(refused),
            },
            "duplicates": len(ids),
            "duplicated_ids": ids,
            "oversized": {
                "bytes": size,
                "topic_limit": limit,
                "sent": n["oversized"],
                "refused": len(refused),
                "error": refused[0] if refused else None,
            },
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
