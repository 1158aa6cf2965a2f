"""The task reader's CRC check on a record batch damaged on the Kafka node's disk.

Kafka serves its log files as they are (no CRC check on fetch), so a byte
flipped in a segment reaches every consumer. With ``check_crcs`` (the
default) the task reader refuses the range, naming the partition; without
it, the damaged alert is handed on as if it were data.
"""

from __future__ import annotations

import uuid

import pytest

from alertbench.broker.batch import ranges
from alertbench.broker.batch.ranges import CorruptRecordsError, OffsetRange, read_range
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import produce

pytestmark = [pytest.mark.kafka]


def test_a_damaged_record_batch_is_refused_not_decoded(single_kafka) -> None:
    topic = f"crc-{uuid.uuid4().hex[:8]}"
    create_topic(single_kafka.bootstrap, topic, partitions=1)
    # One message per batch (each produce flushed): only the damaged one fails its CRC.
    values = [f"alert-{i:03d}-".encode() * 200 for i in range(10)]
    for i, v in enumerate(values):
        report = produce(single_kafka.bootstrap, topic, [(str(i).encode(), v)])
        assert report.sent == 1
    (segment,) = single_kafka.run_dir.glob(f"**/{topic}-0/*.log")
    data = bytearray(segment.read_bytes())
    at = data.index(b"alert-004-") + 5
    data[at] ^= 0xFF  # "alert-004-" -> "alert\xd2004-", inside the record's value
    segment.write_bytes(bytes(data))
    whole = OffsetRange(topic, 0, 0, 10, "")
    try:
        with pytest.raises(CorruptRecordsError, match=rf"{topic}\[0\] near offset 4: .*CRC"):
            for _ in read_range(single_kafka.bootstrap, whole, check_crcs=True):
                pass
        # Unchecked, the damaged value is taken for an alert.
        got = [
            v for t in read_range(single_kafka.bootstrap, whole, check_crcs=False) for v in t.values
        ]
        assert len(got) == 10
        assert [i for i, (a, b) in enumerate(zip(got, values, strict=True)) if a != b] == [4]
    finally:
        for consumer in ranges._CONSUMERS.values():
            consumer.close()
        ranges._CONSUMERS.clear()
