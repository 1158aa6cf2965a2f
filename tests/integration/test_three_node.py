"""Three KRaft nodes, replication 3, min.insync.replicas 2: a broker stops mid-stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from alertbench.kafka.admin import create_topic, describe_cluster, describe_topic
from alertbench.kafka.client import Watermarks, consume, end_offsets
from alertbench.kafka.render import parse_properties

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOTAL = 600


# Long: the bench's kafka-kill fault kills a node of 3 (replication 3, min ISR 2) while
# the simulator produces with acks=all, restarts it and checks nothing is lost.
@pytest.mark.long
def test_broker_stopped_and_restarted_while_producing_loses_nothing(
    kafka_cluster, kafka4, alert_files: list[Path]
):
    payloads = [f.read_bytes() for f in alert_files[:50]]
    with kafka_cluster(kafka4, nodes=3) as rc:
        props = parse_properties((rc.state.nodes[0].config_dir / "server.properties").read_text())
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        create_topic(rc.bootstrap, "ha", partitions=3)
        assert describe_topic(rc.bootstrap, "ha").replication_factor == 3

        producer = Producer(
            {
                "bootstrap.servers": rc.bootstrap,
                "acks": "all",
                "enable.idempotence": True,  # retries across the failover never duplicate
                "linger.ms": 5,
                "log_level": 0,
            }
        )
        delivered: list[int] = []
        failed: list[str] = []
        lock = threading.Lock()

        def on_delivery(err, msg):
            with lock:
                if err is None:
                    delivered.append(int(msg.key()))
                else:
                    failed.append(err.str())

        def wait_delivered(n: int, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while len(delivered) < n:
                producer.poll(0.1)
                assert time.monotonic() < deadline, f"only {len(delivered)} of {n} delivered"

        def produce_range(start: int, stop: int) -> None:
            for i in range(start, stop):
                producer.produce(
                    "ha",
                    key=str(i).encode(),
                    value=payloads[i % len(payloads)],
                    on_delivery=on_delivery,
                )
                producer.poll(0)
                time.sleep(0.002)

        victim = rc.state.node("node-2")
        # One client kept through the stop and restart, as the bench's sampler keeps its own.
        marks = Watermarks(rc.bootstrap)
        assert marks.end_offsets("ha", 3) == dict.fromkeys(range(3), 0)
        produce_range(0, 200)
        # Stop a broker while the first 200 are still in flight.
        rc.cluster.stop(rc.state, [victim], grace=20)
        assert victim.proc is None
        produce_range(200, 400)
        wait_delivered(400)
        info = describe_cluster(rc.bootstrap)
        assert info.brokers == [1, 3]

        rc.cluster.start(rc.state, timeout=120)
        assert describe_cluster(rc.bootstrap).brokers == [1, 2, 3]
        produce_range(400, TOTAL)
        assert producer.flush(120) == 0
        wait_delivered(TOTAL)

        assert failed == []
        messages = consume(rc.bootstrap, "ha", count=TOTAL, timeout=120)
        keys = sorted(int(k) for _, _, k, _ in messages)
        assert keys == list(range(TOTAL)), "every message exactly once"
        assert all(v == payloads[int(k) % len(payloads)] for _, _, k, v in messages)
        # No duplicate hides past the count: the log holds exactly TOTAL records.
        assert sum(end_offsets(rc.bootstrap, "ha", 3).values()) == TOTAL
        with marks:
            assert marks.end_offsets("ha", 3) == end_offsets(rc.bootstrap, "ha", 3)
