"""One KRaft node: real ZTF alerts in and out, byte for byte; topic administration."""

from __future__ import annotations

import io
import time
from pathlib import Path

import fastavro
import pytest

from alertbench.errors import ClusterError
from alertbench.kafka.admin import create_topic, delete_topic, describe_topic, list_topics
from alertbench.kafka.client import Watermarks, consume, end_offsets, produce

pytestmark = pytest.mark.kafka


def test_node_logs_through_the_added_binding(single_kafka):
    node = single_kafka.state.nodes[0]
    log = node.server_log.read_text()
    # Without the SLF4J binding Kafka's POM leaves out, server.log stays empty.
    assert "Kafka Server started" in log
    assert "NOP" not in node.console_log.read_text()


def test_real_alerts_round_trip_byte_for_byte(single_kafka, alert_files: list[Path]):
    files = alert_files[:300]
    packets = {f.name.encode(): f.read_bytes() for f in files}
    create_topic(single_kafka.bootstrap, "ztf-roundtrip", partitions=3)

    report = produce(single_kafka.bootstrap, "ztf-roundtrip", packets.items())

    assert report.failed == []
    assert report.sent == len(files)
    assert report.bytes == sum(len(p) for p in packets.values())
    assert sum(end_offsets(single_kafka.bootstrap, "ztf-roundtrip", 3).values()) == len(files)
    messages = consume(single_kafka.bootstrap, "ztf-roundtrip", count=len(files))
    received = {key: value for _, _, key, value in messages}
    assert len(messages) == len(files)
    assert received.keys() == packets.keys()
    assert all(received[k] == packets[k] for k in packets)
    # The message is the alert: it decodes to the same candidate as the file.
    first = files[0]
    from_kafka = next(fastavro.reader(io.BytesIO(received[first.name.encode()])))
    with first.open("rb") as fh:
        from_file = next(fastavro.reader(fh))
    assert from_kafka["candid"] == from_file["candid"]
    assert from_kafka["objectId"] == from_file["objectId"]


def test_topic_create_describe_list_delete(single_kafka):
    servers = single_kafka.bootstrap
    create_topic(servers, "admin-topic", partitions=4, config={"retention.ms": "3600000"})

    topic = describe_topic(servers, "admin-topic")
    assert [p.id for p in topic.partitions] == [0, 1, 2, 3]
    assert topic.replication_factor == 1
    assert topic.config["retention.ms"] == "3600000"
    assert "admin-topic" in [t.name for t in list_topics(servers)]
    with pytest.raises(ClusterError, match="already exists"):
        create_topic(servers, "admin-topic", partitions=1)
    create_topic(servers, "admin-topic", partitions=1, exist_ok=True)

    delete_topic(servers, "admin-topic")
    deadline = time.monotonic() + 20
    while "admin-topic" in [t.name for t in list_topics(servers)]:
        assert time.monotonic() < deadline, "topic still listed 20 s after deletion"
        time.sleep(0.5)
    with pytest.raises(ClusterError, match="does not exist"):
        describe_topic(servers, "admin-topic")


def test_cli_status_and_topics(single_kafka, cli):
    run_dir = single_kafka.run_dir

    created = cli(
        "kafka",
        "topic",
        "create",
        "cli-topic",
        "--partitions",
        "2",
        "-c",
        "retention.ms=7200000",
        run_dir=run_dir,
    )
    assert created.returncode == 0, created.stderr
    listed = cli("kafka", "topic", "list", run_dir=run_dir)
    assert "cli-topic" in listed.stdout
    described = cli("kafka", "topic", "describe", "cli-topic", run_dir=run_dir)
    assert "retention.ms = 7200000" in described.stdout
    assert described.stdout.count("[1]") >= 2  # two partitions, replicas [1]
    status = cli("kafka", "status", run_dir=run_dir)
    assert status.returncode == 0, status.stderr
    assert "node-1" in status.stdout
    assert "running" in status.stdout, status.stdout + status.stderr
    assert "cli-topic" in status.stdout
    assert single_kafka.bootstrap in status.stdout
    deleted = cli("kafka", "topic", "delete", "cli-topic", run_dir=run_dir)
    assert deleted.returncode == 0, deleted.stderr

    bad = cli("kafka", "topic", "create", "x", "-c", "retention", run_dir=run_dir)
    assert bad.returncode == 1
    assert "KEY=VALUE" in bad.stderr


def test_end_offsets_of_a_topic_just_created_wait_for_its_leaders(single_kafka):
    # A broker under test creates its output topics while the bench watches
    # them: the topic is listed before its partitions have leaders.
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": single_kafka.bootstrap})
    with Watermarks(single_kafka.bootstrap) as marks:
        for n in range(5):
            name = f"just-created-{n}"
            admin.create_topics([NewTopic(name, num_partitions=24, replication_factor=1)])
            while name not in admin.list_topics(timeout=10).topics:
                pass
            assert marks.end_offsets(name, 24) == dict.fromkeys(range(24), 0)
