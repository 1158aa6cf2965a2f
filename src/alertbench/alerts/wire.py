"""Kafka wire formats of alerts. Always chosen by configuration, never guessed.

* ``ztf``: an Avro object container file per message, schema embedded (ZTF).
* ``schemaless``: the bare Avro body; the schema is shared out of band.
* ``confluent``: byte 0, a 4-byte big-endian schema id, the bare body (Rubin).
  Ids resolve from a folder of ``<id>.avsc`` files or a Confluent-compatible
  Schema Registry.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any, Protocol

import fastavro

from alertbench.alerts.schema import OCF_MAGIC, Schema, SchemaError, zigzag

FORMATS = ("ztf", "schemaless", "confluent")
# Headers the simulator puts on every message and the broker and benchmarks read.
SENT_HEADER = "alertbench.sent_us"  # send time, microseconds since the epoch
VISIT_HEADER = "alertbench.visit"  # visit number
ALERT_ID_HEADER = (
    "alertbench.alert_id"  # the alert's id (candid, diaSourceId...), sent and distributed
)


class WireError(ValueError):
    """A message does not fit its wire format."""


class SchemaSource(Protocol):
    """Where Confluent schema ids come from."""

    def schema(self, schema_id: int) -> Schema:
        """The schema with id ``schema_id``."""

    def id_for(self, schema: Schema, subject: str) -> int:
        """The id of ``schema`` (registering it under ``subject`` if the source can)."""


class SchemaDirectory:
    """Schema ids from a folder of ``<id>.avsc`` files (e.g. ``900.avsc``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SchemaError(f"schema folder {self.folder} does not exist")
        self._by_id: dict[int, Schema] = {}
        for path in sorted(self.folder.glob("*.avsc")):
            if path.stem.isdigit():
                self._by_id[int(path.stem)] = Schema.from_avsc(path)
        if not self._by_id:
            raise SchemaError(
                f"no <id>.avsc files in {self.folder}: name each schema by its registry id, "
                "e.g. 900.avsc"
            )

    def schema(self, schema_id: int) -> Schema:  # noqa: D102
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise WireError(
                f"schema id {schema_id} is not in {self.folder} "
                f"(ids there: {', '.join(map(str, sorted(self._by_id)))})"
            ) from None

    def id_for(self, schema: Schema, subject: str) -> int:  # noqa: D102
        for schema_id, known in self._by_id.items():
            if known == schema:
                return schema_id
        raise WireError(
            f"{schema.name} ({schema.survey}) is in none of the <id>.avsc files of {self.folder}; "
            "add it there under the id consumers expect."
        )


class SchemaRegistry:
    """Schema ids from a Confluent-compatible Schema Registry (HTTP)."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        self._client = SchemaRegistryClient({"url": url})
        self._cache: dict[int, Schema] = {}

    def schema(self, schema_id: int) -> Schema:  # noqa: D102
        if schema_id not in self._cache:
            try:
                found = self._client.get_schema(schema_id)
            except Exception as exc:
                raise WireError(f"schema id {schema_id} not found at {self.url}: {exc}") from exc
            self._cache[schema_id] = Schema(json.loads(found.schema_str))
        return self._cache[schema_id]

    def id_for(self, schema: Schema, subject: str) -> int:  # noqa: D102
        from confluent_kafka.schema_registry import Schema as RegistrySchema

        try:
            schema_id = self._client.register_schema(
                subject, RegistrySchema(json.dumps(schema.definition), "AVRO")
            )
        except Exception as exc:
            raise WireError(f"cannot register {schema.name} at {self.url}: {exc}") from exc
        self._cache[schema_id] = schema
        return schema_id


class WireFormat(Protocol):
    """Turns encoded alert bodies into Kafka message values and back."""

    name: str

    def frame(self, body: bytes, schema: Schema) -> bytes:
        """The message value carrying ``body`` (written with ``schema``)."""

    def decode(self, message: bytes) -> tuple[dict[str, Any], Schema]:
        """The record in ``message`` and the schema it was written with."""


class ZtfFormat:
    """One Avro container file per message, schema embedded: what ZTF sends."""

    name = "ztf"

    def __init__(self) -> None:
        self._schemas: dict[bytes, Schema] = {}

    def frame(self, body: bytes, schema: Schema) -> bytes:  # noqa: D102
        return schema.container(body)

    def decode(self, message: bytes) -> tuple[dict[str, Any], Schema]:  # noqa: D102
        if not message.startswith(OCF_MAGIC):
            raise WireError("not an Avro container file (the ztf format's messages are)")
        try:
            reader = fastavro.reader(io.BytesIO(message))
            # Read to the end: fastavro checks a block's sync marker only after
            # yielding its records, and a truncated message must not pass.
            records = list(reader)
        except Exception as exc:
            raise WireError(f"corrupt Avro container file: {exc}") from exc
        if not records:
            raise WireError("Avro container file with no record")
        if len(records) > 1:
            raise WireError(
                f"Avro container file with {len(records)} records; the ztf format carries "
                "exactly one alert per message"
            )
        record = records[0]
        key = json.dumps(reader.writer_schema, sort_keys=True).encode()
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = Schema(reader.writer_schema)
        return record, schema


class SchemalessFormat:
    """The bare Avro body; consumers know the schema out of band."""

    name = "schemaless"

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def frame(self, body: bytes, schema: Schema) -> bytes:  # noqa: D102
        if schema != self.schema:
            raise WireError(
                f"schemaless messages all share one schema ({self.schema.name}); "
                f"this alert has {schema.name} ({schema.survey})"
            )
        return body

    def decode(self, message: bytes) -> tuple[dict[str, Any], Schema]:  # noqa: D102
        try:
            return self.schema.decode(message), self.schema
        except Exception as exc:
            raise WireError(f"not a {self.schema.name} body: {exc}") from exc


class ConfluentFormat:
    """Magic byte 0, 4-byte schema id, bare body: the Confluent framing Rubin uses."""

    name = "confluent"

    def __init__(self, source: SchemaSource, subject: str = "alerts-value") -> None:
        self.source = source
        self.subject = subject
        self._ids: dict[str, bytes] = {}

    def prefix(self, schema: Schema) -> bytes:
        """The 5 bytes that precede every body written with ``schema``."""
        found = self._ids.get(schema.fingerprint)
        if found is None:
            found = b"\x00" + struct.pack(">I", self.source.id_for(schema, self.subject))
            self._ids[schema.fingerprint] = found
        return found

    def frame(self, body: bytes, schema: Schema) -> bytes:  # noqa: D102
        return self.prefix(schema) + body

    def decode(self, message: bytes) -> tuple[dict[str, Any], Schema]:  # noqa: D102
        if len(message) < 5 or message[0] != 0:
            raise WireError("not Confluent-framed: expected byte 0 then a 4-byte schema id")
        schema = self.source.schema(struct.unpack(">I", message[1:5])[0])
        try:
            return schema.decode(message[5:]), schema
        except Exception as exc:
            raise WireError(f"body does not decode with schema {schema.name}: {exc}") from exc


def schema_source(location: str | Path) -> SchemaSource:
    """A schema id source from configuration: an ``http(s)://`` registry or a folder.

    The location is where ids live, which the user states; the alerts' format
    is never inferred from it.
    """
    text = str(location)
    if text.startswith(("http://", "https://")):
        return SchemaRegistry(text)
    return SchemaDirectory(Path(text))


def make_format(
    name: str,
    *,
    schema: Schema | None = None,
    registry: str | Path | None = None,
    subject: str = "alerts-value",
) -> WireFormat:
    """Build the wire format ``name`` from explicit configuration.

    Parameters
    ----------
    name : {"ztf", "schemaless", "confluent"}
        The format.
    schema : Schema, optional
        Required for ``schemaless``.
    registry : str or Path, optional
        Required for ``confluent``: a folder of ``<id>.avsc`` or a registry URL.
    subject : str
        Registry subject new schemas are registered under.

    Raises
    ------
    WireError
        For an unknown name or missing configuration.
    """
    if name == "ztf":
        return ZtfFormat()
    if name == "schemaless":
        if schema is None:
            raise WireError("the schemaless format needs the schema: give --schema FILE.avsc")
        return SchemalessFormat(schema)
    if name == "confluent":
        if registry is None:
            raise WireError(
                "the confluent format needs schema ids: give --schema-registry "
                "(a folder of <id>.avsc files or a registry URL)"
            )
        return ConfluentFormat(schema_source(registry), subject)
    raise WireError(f"unknown wire format {name!r}; choose one of {', '.join(FORMATS)}")


#: A block of one record: its count, zig-zag encoded.
_ONE = zigzag(1)[0]


def container_header(message: bytes) -> tuple[bytes, int, dict[str, Any]]:
    """Learn a container message's header: its prefix, its length and the writer schema.

    The prefix is the header without its sync marker, which each writer draws
    at random: messages of one writer schema share the prefix. fastavro reads
    the header.

    Raises
    ------
    WireError
        If the message is not an Avro container file.
    """
    if not message.startswith(OCF_MAGIC):
        raise WireError("not an Avro container file (no 'Obj\\x01' magic)")
    try:
        reader = fastavro.reader(io.BytesIO(message))
    except (ValueError, EOFError, fastavro.schema.SchemaParseException) as exc:
        raise WireError(f"unreadable Avro container header: {exc}") from None
    sync = message[-16:]
    header_len = message.find(sync) + 16
    return bytes(message[: header_len - 16]), header_len, reader.writer_schema


def container_body(
    value: bytes | memoryview, header_prefix: bytes, header_len: int
) -> bytes | memoryview | None:
    """The body of a container message of one record, or None when its framing differs.

    The message must be the header (``header_prefix``, then a sync marker), one
    block (a count of 1, the body's size, the body) and the sync marker again.
    Given a memoryview, the body is a view of the same memory: nothing is copied.
    """
    h = header_len
    # bytes(): a memoryview compares element by element, 30x slower than a copy and memcmp.
    if len(value) <= h + 17 or bytes(value[: h - 16]) != header_prefix:
        return None
    if bytes(value[h - 16 : h]) != bytes(value[-16:]) or value[h] != _ONE:
        return None
    # The body's size: a zig-zag varint of at most 5 bytes here, which must
    # account for every byte between it and the sync marker.
    acc = 0
    for size_len in range(1, 6):
        byte = value[h + size_len]
        acc |= (byte & 0x7F) << (7 * (size_len - 1))
        if not byte & 0x80:
            size = (acc >> 1) ^ -(acc & 1)
            if size == len(value) - h - 17 - size_len:
                return value[h + 1 + size_len : -16]
            return None
    return None
