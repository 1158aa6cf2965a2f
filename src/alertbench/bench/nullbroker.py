"""The null broker: reads a topic in a consumer group and commits, nothing else.

``max-throughput`` runs its steps against it (``ceiling = true``) to measure
the harness's own ceiling on the machine: what the producers, Kafka and one
consumer reach when the broker costs nothing. A broker's highest held rate
is then read as a share of that ceiling. It fetches every message in full
(librdkafka has no header-only fetch) and commits after each batch it read.

Run as ``python -m alertbench.bench.nullbroker --servers S --topic T --group G``.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from confluent_kafka import Consumer

from alertbench.kafka.security import read_client_properties


def main(argv: list[str] | None = None) -> None:
    """Consume ``--topic`` as ``--group`` and commit until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    # Empty when the cluster needs no credentials (the bench fills it in either way).
    parser.add_argument("--client-config", default="")
    args = parser.parse_args(argv)
    conf = {
        "bootstrap.servers": args.servers,
        **(read_client_properties(Path(args.client_config)) if args.client_config else {}),
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 20,
    }
    consumer = Consumer(conf)
    running = True

    def stop(_sig: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([args.topic])
    try:
        while running:
            if consumer.consume(1000, timeout=0.2):
                consumer.commit(asynchronous=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
