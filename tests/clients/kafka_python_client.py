"""kafka-python as its users run it: produce files, or consume records, with a client JSON.

    python kafka_python_client.py produce CONFIG.json TOPIC DIR
    python kafka_python_client.py consume CONFIG.json TOPIC GROUP COUNT TIMEOUT_S

CONFIG.json is the keyword arguments ``kafka user add --format kafka-python`` writes.
Each file of DIR is one record, keyed by its name's stem. A consumed record is
printed as a JSON line (key, sha256 and size of its value); an error as a last
line ``{"error": ...}``, with exit code 1. The matrix test reads both.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer


def produce(kwargs: dict, topic: str, folder: Path) -> None:
    producer = KafkaProducer(acks="all", max_request_size=4_000_000, **kwargs)
    files = sorted(folder.iterdir())
    for f in files:
        producer.send(topic, key=f.stem.encode(), value=f.read_bytes()).get(timeout=30)
    producer.close()
    print(json.dumps({"sent": len(files)}))


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
                value = r.value or b""
                digest = hashlib.sha256(value).hexdigest()
                print(json.dumps({"key": r.key.decode(), "sha256": digest, "size": len(value)}))
                seen += 1
    consumer.close()


def _give_up(_signum, _frame) -> None:
    raise TimeoutError("no answer in time (the client kept retrying)")


def main() -> int:
    verb, config, topic, *rest = sys.argv[1:]
    kwargs = json.loads(Path(config).read_text())
    # The client's constructor blocks while it retries a bootstrap it cannot reach.
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(int(float(rest[2])) + 5 if verb == "consume" else 90)
    try:
        if verb == "produce":
            produce(kwargs, topic, Path(rest[0]))
        else:
            consume(kwargs, topic, rest[0], int(rest[1]), float(rest[2]))
    except Exception as exc:  # the matrix records what failed, in the client's words
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
