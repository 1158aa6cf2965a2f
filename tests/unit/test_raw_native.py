"""The native raw path's pure parts: wire framing, flattening and the night, on real alerts."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alertbench.alerts.files import SAMPLE_DIR, find_alert_files
from alertbench.alerts.schema import Schema
from alertbench.alerts.wire import SENT_HEADER, ZtfFormat
from alertbench.broker.batch.avro import ArrowDecoder
from alertbench.broker.batch.decode import DecodePlan, ztf_plan
from alertbench.broker.batch.flatten import alert_columns
from alertbench.broker.batch.raw import (
    body_of,
    decode_batch,
    raw_schema,
    raw_table,
    read_partitioned,
    write_partitioned,
)
from alertbench.broker.batch.records import KafkaRecords
from alertbench.broker.batch.send import alert_bodies
from alertbench.broker.stream.stream2raw import raw_task
from corrupt import bad_messages
from records import read_records

FILES = find_alert_files([SAMPLE_DIR / "ztf"])


def _alerts(schema: Schema, records: list[dict]) -> pa.Table:
    """``records`` decoded by the native decoder."""
    decoder = ArrowDecoder(schema)
    try:
        return decoder.decode([schema.encode(r) for r in records]).table
    finally:
        decoder.close()


def _kafka(n: int, *, partition: int = 0, timestamp: int = 0, headers=None) -> pa.Table:
    """The Kafka columns of ``n`` messages at offsets 0 to n - 1."""
    header = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
    return pa.table(
        {
            "topic": ["t"] * n,
            "partition": pa.array([partition] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "timestamp": pa.array([timestamp] * n, pa.timestamp("us", tz="UTC")),
            "headers": pa.array(headers or [[]] * n, header),
        }
    )


def _raw(schema: Schema, records: list[dict]) -> pa.Table:
    """The raw rows of ``records`` as the broker builds them."""
    return raw_table(_alerts(schema, records), _kafka(len(records)), schema, 0)


def test_ztf_framing_is_stripped_to_the_exact_body() -> None:
    schema, records = read_records(FILES)
    fmt = ZtfFormat()
    messages = [fmt.frame(schema.encode(r), schema) for r in records]
    plan = ztf_plan(messages[0])
    for message, record in zip(messages, records, strict=True):
        assert body_of(message, plan) == schema.encode(record)


def test_messages_whose_framing_does_not_fit_have_no_body() -> None:
    schema, records = read_records(FILES)
    message = ZtfFormat().frame(schema.encode(records[0]), schema)
    plan = ztf_plan(message)
    spoiled_sync = message[:-1] + bytes([message[-1] ^ 1])
    h = plan.header_len
    # A byte more than the block's size says; a block of two records.
    longer = message[:-16] + b"\x00" + message[-16:]
    two = message[:h] + b"\x04" + message[h + 1 :]
    for bad in (*bad_messages(message), spoiled_sync, longer, two, b"", None):
        assert body_of(bad, plan) is None
    assert body_of(memoryview(message), plan) == schema.encode(records[0])
    body = schema.encode(records[0])
    confluent = DecodePlan("confluent", schema, schema_id=900)
    assert body_of(b"\x00\x00\x00\x03\x84" + body, confluent) == body
    assert body_of(b"\x00\x00\x00\x03\x85" + body, confluent) is None
    assert body_of(body, DecodePlan("schemaless", schema)) == body


def test_raw_table_flattens_the_detection_and_adds_kafka_columns_and_night() -> None:
    schema, records = read_records(FILES)
    n = len(records)
    sent_headers = [
        [{"key": SENT_HEADER, "value": str(1_700_000_000_000_000 + i).encode()}] for i in range(n)
    ]
    kafka = _kafka(n, partition=1, timestamp=1_700_000_000_000_000, headers=sent_headers)
    table = raw_table(_alerts(schema, records), kafka, schema, 1_800_000_000_000_000)
    expected = [name for name, _ in alert_columns(schema)]
    assert table.column_names == [
        *expected,
        *("topic", "partition", "offset", "kafka_time", "sent_time", "ingest_time", "night"),
    ]
    assert table["candid"].to_pylist() == [r["candid"] for r in records]
    assert table["magpsf"].to_pylist() == [r["candidate"]["magpsf"] for r in records]
    assert table["prv_candidates"].to_pylist() == [r["prv_candidates"] for r in records]
    sent = table["sent_time"].cast(pa.int64()).to_pylist()
    assert sent == [1_700_000_000_000_000 + i for i in range(n)]
    # JD 2460235.6... is 2023-10-18 UT; 2460236.1... is 2023-10-19 UT (JD days start at noon).
    nights = {
        r["candid"]: time.strftime(
            "%Y%m%d", time.gmtime((r["candidate"]["jd"] - 2440587.5) * 86400)
        )
        for r in records
    }
    assert dict(zip(table["candid"].to_pylist(), table["night"].to_pylist(), strict=True)) == nights
    assert set(nights.values()) == {"20231018", "20231019"}


@pytest.mark.parametrize("spoil", [False, True])
def test_a_task_writes_raw_per_night_and_quarantines_bad_messages(
    tmp_path: Path, spoil: bool
) -> None:
    schema, records = read_records(FILES)
    fmt = ZtfFormat()
    values = [fmt.frame(schema.encode(r), schema) for r in records]
    if spoil:
        values[4] = values[4][:1000]
    n = len(values)
    batch = pa.RecordBatch.from_pydict(
        {
            "value": pa.array(values, pa.binary()),
            "topic": ["t"] * n,
            "partition": pa.array([0] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "timestamp": pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            "headers": pa.array(
                [[]] * n, pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
            ),
        }
    )
    run = raw_task(ztf_plan(values[0]), tmp_path / "raw", tmp_path / "quarantine")
    (summary,) = list(run(iter([batch])))
    bad = 1 if spoil else 0
    assert summary.to_pydict() == {"rows": [n - bad], "quarantined": [bad]}
    written = pq.read_table(tmp_path / "raw", partitioning="hive")
    assert sorted(written["candid"].to_pylist()) == sorted(
        r["candid"] for i, r in enumerate(records) if not (spoil and i == 4)
    )
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "night=20231018",
        "night=20231019",
    ]
    if spoil:
        q = pq.read_table(tmp_path / "quarantine")
        assert q["offset"].to_pylist() == [4]
        assert q["value"].to_pylist() == [values[4]]
        assert q["error"].to_pylist() == [
            "not a whole container file with the stream's schema header"
        ]
    else:
        assert not (tmp_path / "quarantine").exists()


def test_records_as_bytes_decode_as_the_arrow_column_does() -> None:
    """Values as bytes (the task reader) and as Arrow (Spark): same rows, same quarantine."""
    schema, records = read_records(FILES)
    fmt = ZtfFormat()
    values: list = [fmt.frame(schema.encode(r), schema) for r in records]
    values[2] = values[2][:500]
    values[5] = None
    coords = _kafka(len(values))
    plan = ztf_plan(values[0])
    as_column = decode_batch(coords.append_column("value", pa.array(values, pa.binary())), plan)
    as_bytes = decode_batch(KafkaRecords(coords, values), plan)
    # Each decode has its own clock.
    ignore = ["ingest_time"]
    assert as_bytes.raw.drop_columns(ignore).equals(as_column.raw.drop_columns(ignore))
    assert as_bytes.raw["candid"].to_pylist() == [
        r["candid"] for i, r in enumerate(records) if i not in (2, 5)
    ]
    assert [bytes(b) for b in as_bytes.bodies] == [bytes(b) for b in as_column.bodies]
    ignore = ["quarantined_at"]
    assert as_bytes.quarantine.drop_columns(ignore).equals(
        as_column.quarantine.drop_columns(ignore)
    )
    assert as_bytes.quarantine["offset"].to_pylist() == [2, 5]
    assert as_bytes.quarantine["value"].to_pylist() == [values[2], None]


def test_raw_schema_is_the_schema_of_raw_rows() -> None:
    schema, records = read_records(FILES)
    assert raw_schema(schema) == _raw(schema, records).schema


def test_alert_bodies_encode_raw_rows_back_into_the_source_alerts() -> None:
    """What the staged distribute sends: each alert's record rebuilt from its flat columns."""
    schema, records = read_records(FILES)
    raw = _raw(schema, records)
    picked = [3, 0, 17]
    bodies = alert_bodies(raw.take(picked), schema)
    assert [schema.decode(b) for b in bodies] == [records[i] for i in picked]
    assert bodies == [schema.encode(records[i]) for i in picked]


def test_a_partitioned_file_is_read_with_its_night(tmp_path: Path) -> None:
    schema, records = read_records(FILES)
    raw = _raw(schema, records)
    write_partitioned(raw, tmp_path, "part-0.parquet", "none")
    back = pa.concat_tables(
        read_partitioned(p) for p in sorted(tmp_path.rglob("*.parquet"))
    ).sort_by("offset")
    assert back.equals(raw)


def test_a_batch_of_nothing_but_bad_messages_is_quarantined_whole() -> None:
    """A chunk of a task's range can hold only bad messages (a burst of them mid-visit)."""
    schema, records = read_records(FILES)
    good = ZtfFormat().frame(schema.encode(records[0]), schema)
    bad = bad_messages(good)
    batch = decode_batch(KafkaRecords(_kafka(len(bad)), bad), ztf_plan(good))
    assert batch.raw is None
    assert batch.bodies == []
    assert batch.quarantine is not None
    assert batch.quarantine["offset"].to_pylist() == list(range(len(bad)))
    assert batch.quarantine["value"].to_pylist() == bad
