"""The decode plan of a stream: its wire format and writer schema, learnt from its first message.

:class:`DecodePlan` says how each message of the stream is framed:

* ``confluent``: a 5-byte prefix (magic byte, schema id) before the body;
* ``schemaless``: the value is the body;
* ``ztf``: each message is an Avro container file. Its header (magic,
  metadata with the schema, sync marker) has the same length for every
  message of one writer and schema, and the single block's body follows a
  count of 1 and a varint size, so the body is found by arithmetic on the
  message length (:func:`alertbench.broker.batch.raw.body_of`).

Messages that do not fit (another header, another schema id, a corrupt
body) go to quarantine with :func:`framing_reason` or the decoder's reason.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, TopicPartition

from alertbench.alerts.schema import OCF_MAGIC, Schema
from alertbench.alerts.wire import container_header, schema_source
from alertbench.errors import ClusterError, ConfigError
from alertbench.kafka.security import Connection, explain


@dataclass
class DecodePlan:
    """How to decode one stream.

    Attributes
    ----------
    format : str
        ``ztf``, ``schemaless`` or ``confluent``.
    schema : Schema
        The writer schema every decodable message of the stream has.
    header_prefix : bytes
        ``ztf``: the container header without its (per-writer random) sync marker.
    header_len : int
        ``ztf``: the full header length, sync marker included.
    schema_id : int
        ``confluent``: the id of ``schema``.
    """

    format: str
    schema: Schema
    header_prefix: bytes = b""
    header_len: int = 0
    schema_id: int = -1
    notes: list[str] = field(default_factory=list)


def first_message(servers: str | Connection, topics: list[str], *, timeout: float) -> bytes:
    """The earliest message of ``topics``, waiting up to ``timeout`` s for one to arrive.

    Raises
    ------
    ClusterError
        If none arrives in time.
    """
    consumer = Consumer(
        Connection.of(servers).conf(
            {"group.id": "alertbench-probe", "log_level": 0, "enable.auto.commit": False}
        )
    )
    try:
        deadline = time.monotonic() + timeout
        assigned = False
        while time.monotonic() < deadline:
            if not assigned:
                md = consumer.list_topics(timeout=5)
                parts = [
                    TopicPartition(t, p, 0)  # offset 0 clamps to the earliest kept
                    for t in topics
                    if t in md.topics and md.topics[t].error is None
                    for p in md.topics[t].partitions
                ]
                if parts:
                    for tp in parts:
                        low, _ = consumer.get_watermark_offsets(tp, timeout=5)
                        tp.offset = low
                    consumer.assign(parts)
                    assigned = True
                else:
                    time.sleep(0.5)
                    continue
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.value():
                return msg.value()
            if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                raise ClusterError(
                    f"reading {topics} at {Connection.of(servers).describe()}: "
                    f"{explain(msg.error())}"
                )
    finally:
        consumer.close()
    raise ClusterError(
        f"no alert arrived on {', '.join(topics)} at {Connection.of(servers).describe()} "
        f"within {timeout:.0f} s; the "
        "ztf format learns the writer's schema from the first message."
    )


def ztf_plan(message: bytes) -> DecodePlan:
    """Learn a ztf stream's header and schema from one of its messages.

    Raises
    ------
    ConfigError
        If the message is not an Avro container file.
    """
    if not message.startswith(OCF_MAGIC):
        raise ConfigError(
            "the first message is not an Avro container file: this topic is not in the ztf "
            "format (set broker.format to schemaless or confluent)."
        )
    prefix, header_len, writer = container_header(message)
    return DecodePlan("ztf", Schema(writer), header_prefix=prefix, header_len=header_len)


def make_plan(
    fmt: str,
    *,
    servers: str | Connection,
    topics: list[str],
    schema_file: str | None = None,
    registry: str | None = None,
    wait: float = 600.0,
) -> DecodePlan:
    """Build the decode plan of a stream from configuration (and, if needed, its first message).

    Raises
    ------
    ConfigError
        For missing configuration.
    """
    if fmt == "ztf":
        return ztf_plan(first_message(servers, topics, timeout=wait))
    if fmt == "schemaless":
        if not schema_file:
            raise ConfigError("the schemaless format needs broker.schema_file (an .avsc).")
        return DecodePlan("schemaless", Schema.from_avsc(schema_file))
    if fmt == "confluent":
        if not registry:
            raise ConfigError(
                "the confluent format needs broker.schema_registry (a folder of <id>.avsc or "
                "a registry URL)."
            )
        message = first_message(servers, topics, timeout=wait)
        if len(message) < 5 or message[0] != 0:
            raise ConfigError("the first message is not Confluent-framed (byte 0 + schema id).")
        schema_id = struct.unpack(">I", message[1:5])[0]
        return DecodePlan(
            "confluent", schema_source(registry).schema(schema_id), schema_id=schema_id
        )
    raise ConfigError(f"unknown wire format {fmt!r}: ztf, schemaless or confluent.")


def framing_reason(plan: DecodePlan) -> str | None:
    """Why a message's framing does not fit the stream (None: ``schemaless`` has no framing)."""
    return {
        "ztf": "not a whole container file with the stream's schema header",
        "confluent": f"not Confluent-framed with schema id {plan.schema_id}",
    }.get(plan.format)
