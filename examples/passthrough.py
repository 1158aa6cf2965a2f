"""A pass-through broker: every alert of one topic, copied to another.

The smallest broker one can benchmark with ``alertbench bench run
--broker-cmd``. It shares no code with alertbench: a plain confluent-kafka
consumer in a consumer group and a producer. It drops the message headers
(alertbench's alert id among them), so the bench must read each alert's id
from the message itself (``--id-format container`` for ZTF's Avro
containers). Delivery is at least once: offsets are committed after the
producer has flushed what was read before them.

``--max-rate N`` makes it a slower broker (at most N alerts a second), to see
how the bench judges a broker that cannot keep up.

Run it by hand::

    python examples/passthrough.py --servers HOST:PORT --input ztf-stream --output out --group g
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer


def client_properties(path: Path | None) -> dict[str, str]:
    """The client properties of a ``key=value`` file (credentials), if one is given."""
    if path is None:
        return {}
    props = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def main() -> None:
    """Copy ``--input`` to ``--output`` until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--client-config", type=Path, default=None)
    parser.add_argument(
        "--max-rate", type=float, default=None, help="Copy at most this many alerts a second."
    )
    args = parser.parse_args()
    common = {"bootstrap.servers": args.servers, **client_properties(args.client_config)}
    consumer = Consumer(
        common
        | {
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    producer = Producer(common | {"linger.ms": 5, "message.max.bytes": 10_000_000})
    running = True

    def stop(_sig: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([args.input])
    pending, committed = False, time.monotonic()
    started, copied = time.monotonic(), 0
    try:
        while running:
            if args.max_rate:
                # Read no more than the rate allows so far: the rest waits in Kafka.
                ahead = copied / args.max_rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(min(ahead, 0.2))
                    continue
                started += max(-ahead - 1.0, 0.0)  # idle time earns at most 1 s of credit
            for msg in consumer.consume(50 if args.max_rate else 500, timeout=0.2):
                if msg.error() is not None:
                    continue
                producer.produce(args.output, msg.value(), msg.key())
                producer.poll(0)
                pending = True
                copied += 1
            if pending and time.monotonic() - committed > 0.5:
                producer.flush()
                consumer.commit(asynchronous=False)
                pending, committed = False, time.monotonic()
    finally:
        producer.flush()
        if pending:
            consumer.commit(asynchronous=False)
        consumer.close()


if __name__ == "__main__":
    main()
