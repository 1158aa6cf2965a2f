"""The native raw path (arrow-avro and pyarrow in Spark tasks) against the JVM path.

The same Kafka topic, holding real alerts and bad messages between them, goes
through stream2raw twice, once per decoder. The raw Parquet must be the same
table (ingest times aside), the quarantine the same messages, and the fused
mode on the native path must distribute every good alert.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from alertbench.alerts.reader import AlertReader
from alertbench.broker.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import produce
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from conftest import read_messages
from corrupt import bad_messages

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

N = 60


def _table(folder: Path):
    table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table()
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


def _run(single_kafka, tmp_path: Path, topic: str, decoder: str, fused: bool = False, **broker):
    settings = load_settings(
        run_dir=tmp_path / decoder,
        broker={
            "master": "local[2]",
            "topics": [topic],
            "trigger": "1 second",
            "decoder": decoder,
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


def test_native_raw_equals_the_jvm_raw(single_kafka, topic_with_bad_messages, tmp_path) -> None:
    topic, bad, files = topic_with_bad_messages
    jvm = _run(single_kafka, tmp_path, topic, "jvm")
    native = _run(single_kafka, tmp_path, topic, "native")
    a = _table(jvm.out / "raw").drop_columns(["ingest_time"])
    b = _table(native.out / "raw").drop_columns(["ingest_time"])
    assert a.num_rows == b.num_rows == N
    assert a.column_names == b.column_names
    sources = {x.record["candid"]: x.record for x in AlertReader().read(files)}
    assert sorted(b["candid"].to_pylist()) == sorted(sources)
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_timestamp(x.type):
            # Spark writes INT96 (UTC, no zone); pyarrow timestamp[us, UTC]: compare instants.
            x, y = (pc.cast(c, pa.timestamp("us")).cast(pa.int64()) for c in (x, y))
        assert x.to_pylist() == y.to_pylist(), name
    # Whole alerts: each raw row's history and cutouts are the source's.
    for row in b.select(["candid", "prv_candidates", "cutoutTemplate"]).to_pylist():
        src = sources[row["candid"]]
        assert row["prv_candidates"] == src["prv_candidates"]
        assert row["cutoutTemplate"] == src["cutoutTemplate"]
    qa, qb = _table(jvm.out / "quarantine"), _table(native.out / "quarantine")
    assert qb["offset"].to_pylist() == qa["offset"].to_pylist()
    assert [bytes(v) for v in qb["value"].to_pylist()] == bad
    assert qb["error"].to_pylist()[0] == qa["error"].to_pylist()[0]  # framing: same words
    assert all(
        e.startswith("Avro body does not decode") or "container" in e
        for e in qb["error"].to_pylist()
    )


def test_fused_on_the_native_path_distributes_every_good_alert(
    single_kafka, topic_with_bad_messages, tmp_path
) -> None:
    topic, bad, files = topic_with_bad_messages
    everything = f"{topic}-all"
    result = _run(single_kafka, tmp_path, topic, "native", fused=True, filters={everything: "true"})
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
        "native",
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
