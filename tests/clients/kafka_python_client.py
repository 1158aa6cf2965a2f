"""kafka-python as its users run it: produce files, or consume records (see driver.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from driver import main, record
from kafka import KafkaConsumer, KafkaProducer


def produce(kwargs: dict, topic: str, folder: Path) -> int:
    producer = KafkaProducer(acks="all", max_request_size=4_000_000, **kwargs)
    files = sorted(folder.iterdir())
    for f in files:
        producer.send(topic, key=f.stem.encode(), value=f.read_bytes()).get(timeout=30)
    producer.close()
    return len(files)


def consume(kwargs: dict, topic: str, group: str, count: int, timeout: float) -> None:
    consumer = KafkaConsumer(
        group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **kwargs
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                record(r.key, r.value)
                seen += 1
    consumer.close()


if __name__ == "__main__":
    sys.exit(main(lambda path: json.loads(Path(path).read_text()), produce, consume))
