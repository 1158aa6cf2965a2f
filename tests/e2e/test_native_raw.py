"""The raw path (arrow-avro and pyarrow in Spark tasks) against fastavro, and fused mode.

A Kafka topic holds real alerts and bad messages between them. Each raw row
must be its message as fastavro reads it, flattened, with the message's
Kafka coordinates and times; the bad messages must be quarantined with their
bytes and reasons; the fused mode must distribute every good alert.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from alertbench.alerts.reader import AlertReader
from alertbench.broker.stream.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import produce
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from compare import same
from conftest import read_messages
from corrupt import bad_messages

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

N = 60
KAFKA = ["topic", "partition", "offset", "kafka_time", "sent_time", "ingest_time"]


def _table(folder: Path):
    # The night is a string, as the broker writes it: not the integer a reader would guess.
    nights = ds.partitioning(pa.schema([("night", pa.string())]), flavor="hive")
    table = ds.dataset(str(folder), format="parquet", partitioning=nights).to_table()
    return table.sort_by(
        [("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
    )


@pytest.fixture(scope="module")
def topic_with_bad_messages(single_kafka, alert_files) -> tuple[str, list[bytes], list[Path]]:
    files = alert_files[:N]
    topic = "e2e-native"
    create_topic(single_kafka.bootstrap, topic, partitions=2)
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    bad = bad_messages(files[0].read_bytes())
    assert produce(single_kafka.bootstrap, topic, [(b"k", v) for v in bad]).failed == []
    return topic, bad, files


def _run(single_kafka, tmp_path: Path, topic: str, name: str, fused: bool = False, **broker):
    settings = load_settings(
        run_dir=tmp_path / name,
        broker={
            "master": "local[2]",
            "topics": [topic],
            "trigger": "1 second",
            "cuts": "true",
            **broker,
        },
    )
    return run_broker(
        settings,
        servers=single_kafka.bootstrap,
        stages=["stream2raw"],
        fused=fused,
        until_idle=5,
        timeout=300,
    )


@pytest.mark.parametrize("reader", ["tasks", "spark"])
def test_raw_equals_fastavros_records_of_the_messages(
    single_kafka, topic_with_bad_messages, tmp_path, reader: str
) -> None:
    """Each raw row is its message as fastavro reads it, flattened; the bad ones are quarantined.

    stream2raw with either Kafka reader: its tasks read their offset ranges, or Spark's source.
    """
    topic, bad, _ = topic_with_bad_messages
    result = _run(single_kafka, tmp_path, topic, "raw", kafka_reader=reader)
    raw = _table(result.out / "raw")
    messages = read_messages(single_kafka.bootstrap, topic, count=N + len(bad))
    good = {(m.partition(), m.offset()): m for m in messages if m.value() not in bad}
    assert raw.num_rows == len(good) == N
    detection = None
    for row in raw.to_pylist():
        m = good.pop((row["partition"], row["offset"]))
        reader = fastavro.reader(io.BytesIO(m.value()))
        (record,) = list(reader)
        detection = record["candidate"]
        # Flattened independently: the candidate's fields at the top, its candid once.
        expected = {k: v for k, v in record.items() if k != "candidate"}
        expected.update({k: v for k, v in detection.items() if k not in expected})
        got = {k: row[k] for k in expected}
        assert list(got) == list(expected)
        assert [k for k in row if k not in expected] == [*KAFKA, "night"]
        for k in expected:
            assert same(got[k], expected[k]), (k, got[k], expected[k])
        assert row["topic"] == topic
        assert row["kafka_time"] == datetime.fromtimestamp(m.timestamp()[1] / 1e3, UTC)
        sent_us = int(dict(m.headers())["alertbench.sent_us"])
        assert row["sent_time"] == datetime.fromtimestamp(0, UTC) + timedelta(microseconds=sent_us)
        assert row["ingest_time"] >= row["sent_time"]
        assert row["night"] == time.strftime(
            "%Y%m%d", time.gmtime((detection["jd"] - 2440587.5) * 86400)
        )
    assert not good
    quarantine = _table(result.out / "quarantine")
    where = sorted((m.partition(), m.offset()) for m in messages if m.value() in bad)
    assert (
        list(
            zip(quarantine["partition"].to_pylist(), quarantine["offset"].to_pylist(), strict=True)
        )
        == where
    )
    assert [bytes(v) for v in quarantine["value"].to_pylist()] == bad
    errors = quarantine["error"].to_pylist()
    assert errors[0] == "not a whole container file with the stream's schema header"
    assert all(e.startswith("Avro body does not decode") or "container" in e for e in errors)


def test_fused_with_sparks_kafka_source_distributes_every_good_alert(
    single_kafka, topic_with_bad_messages, tmp_path
) -> None:
    topic, bad, files = topic_with_bad_messages
    everything = f"{topic}-all"
    result = _run(
        single_kafka,
        tmp_path,
        topic,
        "fused",
        fused=True,
        filters={everything: "true"},
        kafka_reader="spark",
    )
    raw = _table(result.out / "raw")
    science = _table(result.out / "science")
    quarantine = _table(result.out / "quarantine")
    candids = {x.record["candid"] for x in AlertReader().read(files)}
    assert sorted(raw["candid"].to_pylist()) == sorted(candids)
    assert sorted(science["candid"].to_pylist()) == sorted(candids)
    assert quarantine.num_rows == len(bad)
    sent = read_messages(single_kafka.bootstrap, everything, quiet=3)
    assert sorted(int(dict(m.headers())["alertbench.alert_id"]) for m in sent) == sorted(candids)
    progress = [json.loads(x) for x in (result.out / "progress.jsonl").read_text().splitlines()]
    assert sum(p.get("rows", 0) for p in progress if p.get("query") == "fused") >= N


def test_fused_with_tasks_reading_kafka_distributes_every_good_alert(
    single_kafka, topic_with_bad_messages, tmp_path
) -> None:
    topic, bad, files = topic_with_bad_messages
    everything = f"{topic}-tasks-all"
    result = _run(
        single_kafka,
        tmp_path,
        topic,
        "tasks",
        fused=True,
        filters={everything: "true"},
        kafka_reader="tasks",
    )
    raw = _table(result.out / "raw")
    candids = {x.record["candid"] for x in AlertReader().read(files)}
    assert sorted(raw["candid"].to_pylist()) == sorted(candids)
    assert sorted(_table(result.out / "science")["candid"].to_pylist()) == sorted(candids)
    quarantine = _table(result.out / "quarantine")
    assert [bytes(v) for v in quarantine["value"].to_pylist()] == bad
    sent = read_messages(single_kafka.bootstrap, everything, quiet=3)
    assert sorted(int(dict(m.headers())["alertbench.alert_id"]) for m in sent) == sorted(candids)
    # Spark counts alerts, and its progress holds the Kafka offsets as its Kafka source does.
    progress = [json.loads(x) for x in (result.out / "progress.jsonl").read_text().splitlines()]
    assert sum(p.get("rows") or 0 for p in progress if p.get("query") == "fused") == N + len(bad)
    from alertbench.bench.sampler import processed_offsets

    assert processed_offsets(result.out / "progress.jsonl", topic) == N + len(bad)
    # Nothing is left staged once every batch is committed.
    assert not any((result.out / "_staging" / "fused").iterdir())


def test_tasks_reading_kafka_restart_mid_stream_without_loss_or_duplicates(
    single_kafka, alert_files, tmp_path
) -> None:
    topic = "e2e-tasks-restart"
    files = alert_files[:120]
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            partitions=2,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    settings = load_settings(
        run_dir=tmp_path,
        broker={
            "master": "local[2]",
            "topics": [topic],
            "trigger": "1 second",
            "kafka_reader": "tasks",
            "max_offsets_per_trigger": 30,
            "filters": {f"{topic}-all": "true"},
            "cuts": "true",
        },
    )
    first = run_broker(
        settings, servers=single_kafka.bootstrap, fused=True, stop_after_rows=50, timeout=300
    )
    assert 50 <= first.rows["fused"] < 120, "stopped mid-stream"
    progress = [json.loads(x) for x in (first.out / "progress.jsonl").read_text().splitlines()]
    assert all((p.get("rows") or 0) <= 30 for p in progress), "max_offsets_per_trigger caps"
    run_broker(settings, servers=single_kafka.bootstrap, fused=True, until_idle=5, timeout=300)
    raw = _table(tmp_path / "broker" / "raw")
    want = {a.record["candid"] for a in AlertReader().read(files)}
    assert raw.num_rows == 120
    assert set(raw["candid"].to_pylist()) == want
    assert _table(tmp_path / "broker" / "science").num_rows == 120
