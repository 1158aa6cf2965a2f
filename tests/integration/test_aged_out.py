"""Offsets deleted before the broker read them: refused or skipped, and counted exactly.

Kafka's log start offset is moved with DeleteRecords (what retention does to
a partition's oldest segments), so the offsets that are gone are known
exactly; the broker's planner (driver side) and task reader (task side)
run as the broker runs them, without Spark.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from alertbench.broker.batch import loss
from alertbench.broker.batch.ranges import OffsetRange, read_range
from alertbench.broker.stream.offsets import OffsetPlanner
from alertbench.kafka.admin import create_topic

pytestmark = pytest.mark.kafka


def _topic_with(servers: str, n: int) -> str:
    topic = f"aged-{uuid.uuid4().hex[:8]}"
    create_topic(servers, topic, partitions=1)
    producer = Producer({"bootstrap.servers": servers, "log_level": 0})
    for i in range(n):
        producer.produce(topic, value=f"alert-{i}".encode())
    assert producer.flush(30) == 0
    return topic


def _delete_before(servers: str, topic: str, offset: int) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    futures = admin.delete_records([TopicPartition(topic, 0, offset)])
    for f in futures.values():
        assert f.result(timeout=30).low_watermark == offset


def test_the_planner_refuses_or_skips_offsets_that_aged_out_and_records_them(
    single_kafka, tmp_path
) -> None:
    servers = single_kafka.bootstrap
    topic = _topic_with(servers, 30)
    start = {topic: {"0": 0}}
    _delete_before(servers, topic, 12)

    strict = OffsetPlanner(servers, [topic], loss_root=tmp_path / "strict")
    end = strict.latest(start)
    assert end == {topic: {"0": 30}}
    with pytest.raises(loss.DataLossError) as err:
        strict.ranges(start, end)
    assert f"{topic}[0] offsets 0-11 (12)" in str(err.value)
    assert "fail_on_data_loss = false" in str(err.value)
    assert loss.read(tmp_path / "strict") == [loss.AgedOut(topic, 0, 0, 12)]
    strict.close()

    lenient = OffsetPlanner(
        servers, [topic], fail_on_data_loss=False, loss_root=tmp_path / "lenient"
    )
    # A batch Spark replays after a restart is planned without latest(): the same answer.
    ranges = lenient.ranges(start, end)
    assert [(r.start, r.end) for r in ranges] == [(12, 30)]
    ranges = lenient.ranges(start, lenient.latest(start))
    assert [(r.start, r.end) for r in ranges] == [(12, 30)]
    # Recorded once, however often the batch is planned.
    assert loss.read(tmp_path / "lenient") == [loss.AgedOut(topic, 0, 0, 12)]
    lenient.close()


def test_the_task_reader_skips_offsets_deleted_after_planning_and_counts_them(
    single_kafka, tmp_path
) -> None:
    servers = single_kafka.bootstrap
    topic = _topic_with(servers, 30)
    _delete_before(servers, topic, 18)
    r = OffsetRange(topic, 0, 10, 30, "batch")

    read = [
        (v.decode(), o)
        for records in read_range(servers, r, fail_on_data_loss=False, loss_root=tmp_path)
        for v, o in zip(records.values, records.coords["offset"].to_pylist(), strict=True)
    ]
    assert read == [(f"alert-{i}", i) for i in range(18, 30)]
    assert loss.read(tmp_path) == [loss.AgedOut(topic, 0, 10, 18)]

    with pytest.raises(loss.DataLossError, match=r"offsets 10-17 \(8\)"):
        list(read_range(servers, r, loss_root=tmp_path / "strict"))
    assert loss.read(tmp_path / "strict") == [loss.AgedOut(topic, 0, 10, 18)]
