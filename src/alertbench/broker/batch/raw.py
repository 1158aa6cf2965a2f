"""Raw alerts in native code: Kafka records -> bodies -> Arrow -> raw Parquet, inside Spark tasks.

Spark's Kafka source hands each task its records as Arrow batches
(``mapInArrow``); the task strips the wire framing, decodes the bodies with
:mod:`alertbench.broker.batch.avro`, flattens them into the raw columns
(:func:`alertbench.broker.batch.flatten.alert_columns`)
and writes Parquet with pyarrow into the micro-batch's staging folder. Messages
whose framing or body does not fit go to the quarantine with their bytes,
reason and Kafka coordinates; every other alert of the batch is written. The
driver commits the staged files exactly once (:mod:`alertbench.broker.stream.sink`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alertbench.alerts.schema import Schema
from alertbench.alerts.wire import SENT_HEADER, container_body
from alertbench.broker.batch.decode import DecodePlan, framing_reason
from alertbench.broker.batch.flatten import (
    DETECTION_FIELD,
    KAFKA_COLUMNS,
    alert_columns,
    observation_jd_source,
)
from alertbench.broker.batch.records import HEADERS, KafkaRecords

#: The Kafka columns a task reads from Spark's source.
KAFKA_INPUT = ["value", "topic", "partition", "offset", "timestamp", "headers"]
SUMMARY_SCHEMA = "rows long, quarantined long"
_TS = pa.timestamp("us", tz="UTC")
_DECODERS: dict[str, object] = {}


def body_of(value: bytes | memoryview | None, plan: DecodePlan) -> bytes | memoryview | None:
    """The Avro body of one message, or None when its framing does not fit the stream.

    Given a memoryview, the body is a view of the same memory: nothing is copied.
    """
    if value is None:
        return None
    if plan.format == "schemaless":
        return value
    if plan.format == "confluent":
        prefix = b"\x00" + plan.schema_id.to_bytes(4, "big")
        return value[5:] if bytes(value[:5]) == prefix else None
    return container_body(value, plan.header_prefix, plan.header_len)


def _views(column: pa.ChunkedArray) -> list[memoryview | None]:
    """Each value of a binary column as a view of Arrow's buffer (no copy of 75 KB alerts)."""
    out: list[memoryview | None] = []
    for chunk in column.chunks:
        offsets_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, offsets_type)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        # As unsigned bytes: pyarrow exports signed ones, which compare unequal to bytes.
        data = memoryview(data_buf).cast("B") if data_buf is not None else memoryview(b"")
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        out += [data[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(chunk))]
    return out


def _decoder(schema: Schema):
    """One decoder per schema per Python worker (Spark reuses its workers)."""
    from alertbench.broker.batch.avro import ArrowDecoder

    found = _DECODERS.get(schema.fingerprint)
    if found is None:
        found = _DECODERS[schema.fingerprint] = ArrowDecoder(schema)
    return found


def _sent_times(headers: pa.Array) -> pa.Array:
    """The simulator's send time (µs since the epoch, a header) of each message, as timestamps."""
    out: list[int | None] = []
    for hs in headers.to_pylist():
        value = next((h["value"] for h in hs or [] if h["key"] == SENT_HEADER), None)
        try:
            out.append(int(value) if value is not None else None)
        except ValueError:
            out.append(None)
    return pa.array(out, pa.int64()).cast(_TS)


def _night(table: pa.Table, schema: Schema) -> pa.Array:
    """``yyyyMMdd`` (UTC) of each alert's observation, ``unknown`` without one."""
    source = observation_jd_source(schema)
    if source is None:
        return pa.array(["unknown"] * table.num_rows)
    column, offset = source
    jd = pc.add(table[column].cast(pa.float64()), offset)
    micros = pc.multiply(pc.subtract(jd, 2440587.5), 86400e6)
    ts = pc.cast(pc.floor(micros), pa.int64()).cast(_TS)
    return pc.fill_null(pc.strftime(ts, format="%Y%m%d"), "unknown")


def raw_table(alerts: pa.Table, kafka: pa.Table, schema: Schema, ingest_us: int) -> pa.Table:
    """The raw rows: the alert columns (detection record flattened), Kafka's and times, night.

    Parameters
    ----------
    alerts : pyarrow.Table
        Decoded alerts (the writer schema's fields).
    kafka : pyarrow.Table
        ``topic, partition, offset, timestamp, headers`` of the same messages, in order.
    schema : Schema
        The writer schema.
    ingest_us : int
        The broker's ingest time, µs since the epoch.
    """
    detection = DETECTION_FIELD.get(schema.survey.survey)
    names, arrays = [], []
    struct = None
    for name, path in alert_columns(schema):
        if path.startswith(f"alert.`{detection}`."):
            if struct is None:  # once, not once per field (ZTF's candidate has 100)
                struct = alerts[detection].combine_chunks()
            arrays.append(pc.struct_field(struct, name))
        else:
            arrays.append(alerts[name])
        names.append(name)
    n = alerts.num_rows
    names += KAFKA_COLUMNS
    arrays += [
        kafka["topic"],
        kafka["partition"],
        kafka["offset"],
        kafka["timestamp"].cast(_TS),
        _sent_times(kafka["headers"].combine_chunks()),
        pa.array(np.full(n, ingest_us, dtype=np.int64)).cast(_TS),
    ]
    table = pa.table(dict(zip(names, arrays, strict=True)))
    return table.append_column("night", _night(table, schema))


def raw_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of the raw rows of a stream whose writer schema is ``schema``."""
    alerts = _decoder(schema).arrow_schema().empty_table()
    kafka = pa.schema(
        [
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("timestamp", _TS),
            ("headers", HEADERS),
        ]
    ).empty_table()
    return raw_table(alerts, kafka, schema, 0).schema


def quarantine_table(kafka: pa.Table, reasons: list[str], now_us: int) -> pa.Table:
    """Quarantine rows: the message bytes, why, where it was, when."""
    return pa.table(
        {
            "value": kafka["value"],
            "error": pa.array(reasons, pa.string()),
            "topic": kafka["topic"],
            "partition": kafka["partition"],
            "offset": kafka["offset"],
            "kafka_time": kafka["timestamp"].cast(_TS),
            "quarantined_at": pa.array(np.full(kafka.num_rows, now_us, np.int64)).cast(_TS),
        }
    )


def write_partitioned(table: pa.Table, folder: Path, name: str, compression: str) -> None:
    """Write ``table`` under ``folder/night=X/name``, one file per night."""
    nights = pc.unique(table["night"]).to_pylist() if table.num_rows else []
    for night in nights:
        # A visit is one night: copy the rows of a night only when there are several.
        rows = table if len(nights) == 1 else table.filter(pc.equal(table["night"], night))
        part = rows.drop_columns(["night"])
        dest = folder / f"night={night}"
        dest.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            part, dest / name, compression=compression, use_dictionary=False, write_statistics=False
        )


def records_raw(schema: Schema, records: list[dict]) -> pa.Table:
    """Raw rows of ``records`` as the broker builds them, without Kafka (no ``night``).

    The records are encoded with ``schema`` and decoded by the native
    decoder, as a task decodes a batch; their Kafka coordinates are those of
    one partition at offsets 0 to n - 1. For measuring and testing the batch
    path offline.
    """
    from alertbench.broker.batch.avro import ArrowDecoder

    decoder = ArrowDecoder(schema)
    try:
        alerts = decoder.decode([schema.encode(r) for r in records]).table
    finally:
        decoder.close()
    n = len(records)
    kafka = pa.table(
        {
            "topic": pa.array(["offline"] * n, pa.string()),
            "partition": pa.array([0] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "timestamp": pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            "headers": pa.array([[]] * n, HEADERS),
        }
    )
    return raw_table(alerts, kafka, schema, 0).drop_columns(["night"])


def read_partitioned(path: str | Path) -> pa.Table:
    """One Parquet file of a night-partitioned folder, with its ``night`` column back."""
    path = Path(path)
    table = pq.read_table(path)
    key, _, night = path.parent.name.partition("=")
    if key == "night":
        table = table.append_column("night", pa.array([night] * table.num_rows, pa.string()))
    return table


@dataclass
class RawBatch:
    """One Arrow batch of Kafka records, decoded.

    Attributes
    ----------
    raw : pyarrow.Table or None
        The raw rows of the messages that decoded (None if none did).
    bodies : list of bytes
        The Avro body of each raw row, in order (what distribution sends on).
    quarantine : pyarrow.Table or None
        The messages that did not decode, with why (None if all did).
    """

    raw: pa.Table | None
    bodies: list[bytes]
    quarantine: pa.Table | None

    @property
    def quarantined(self) -> int:
        """How many messages went to the quarantine."""
        return self.quarantine.num_rows if self.quarantine is not None else 0


def decode_batch(kafka: pa.Table | KafkaRecords, plan: DecodePlan) -> RawBatch:
    """Strip the framing of a batch of Kafka records, decode them and flatten the alerts.

    ``kafka`` holds Spark's Kafka columns (:data:`KAFKA_INPUT`), or is a :class:`KafkaRecords`.
    """
    if isinstance(kafka, KafkaRecords):
        values = kafka.values
        kafka = kafka.coords
    else:
        values = _views(kafka["value"])
    bodies = [body_of(v, plan) for v in values]
    ok = [i for i, b in enumerate(bodies) if b is not None]
    decoded = _decoder(plan.schema).decode([bodies[i] for i in ok])
    good = [ok[r] for r in decoded.rows]
    reasons = {i: framing_reason(plan) for i, b in enumerate(bodies) if b is None}
    reasons.update({ok[j]: why for j, why in decoded.failed.items()})
    now = int(time.time() * 1e6)
    # The Kafka columns without the 75 KB values (only quarantined ones are copied).
    coords = kafka.select([c for c in KAFKA_INPUT if c != "value"])
    # Typed indices: an empty list would be a null array, which take() refuses.
    kept = coords.take(pa.array(good, pa.int64())) if len(good) != len(values) else coords
    raw = raw_table(decoded.table, kept, plan.schema, now) if good else None
    quarantine = None
    if reasons:
        where = sorted(reasons)
        bad = coords.take(pa.array(where, pa.int64())).append_column(
            "value",
            pa.array([None if values[i] is None else bytes(values[i]) for i in where], pa.binary()),
        )
        quarantine = quarantine_table(bad, [reasons[i] for i in where], now)
    return RawBatch(raw, [bodies[i] for i in good], quarantine)  # type: ignore[misc]


def write_batch(
    batch: RawBatch, staged: Path, quarantine: Path, name: str, compression: str
) -> None:
    """Write a decoded batch's raw rows (by night) and quarantine into the staging folders."""
    if batch.raw is not None:
        write_partitioned(batch.raw, staged, name, compression)
    if batch.quarantine is not None:
        quarantine.mkdir(parents=True, exist_ok=True)
        pq.write_table(batch.quarantine, quarantine / name, compression=compression)


def write_tables(
    tables, plan: DecodePlan, staged: Path, quarantine: Path, *, compression: str, file_name
) -> dict[str, int]:
    """A task's raw work on its batches of Kafka records: decode, write raw and quarantine.

    ``tables``: Arrow tables of Spark's Kafka columns, or :class:`KafkaRecords`.
    ``file_name(k)`` names the files of the ``k``-th batch.
    """
    rows = bad = 0
    for k, table in enumerate(tables):
        decoded = decode_batch(table, plan)
        write_batch(decoded, staged, quarantine, file_name(k), compression)
        rows += len(decoded.bodies)
        bad += decoded.quarantined
    return {"rows": rows, "quarantined": bad}


def summary(**counts: int) -> pa.RecordBatch:
    """A task's counts, the one row it returns to the driver."""
    return pa.RecordBatch.from_pydict({k: pa.array([v], pa.int64()) for k, v in counts.items()})
