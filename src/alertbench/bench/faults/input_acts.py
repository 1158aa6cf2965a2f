"""Faults in the input: malformed messages and duplicated alerts written between the good ones."""

from __future__ import annotations

import io
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import FaultError, Target


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
