"""ZooKeeper mode (Kafka 3.9.2): a 3-node ensemble and 3 brokers."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbench.kafka.admin import create_topic, describe_cluster, describe_topic
from alertbench.kafka.client import consume, produce
from alertbench.kafka.cluster import zookeeper_mode
from alertbench.kafka.render import parse_properties

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_ensemble_and_brokers_carry_real_alerts(kafka_cluster, kafka3, alert_files: list[Path]):
    files = alert_files[:120]
    with kafka_cluster(kafka3, nodes=3, mode="zookeeper") as rc:
        zks = [n for n in rc.state.nodes if n.kind == "zookeeper"]
        brokers = [n for n in rc.state.nodes if n.kind == "kafka"]
        assert len(zks) == 3
        assert len(brokers) == 3
        modes = sorted(zookeeper_mode(n.address, n.ports["zookeeper_client_port"]) for n in zks)
        assert modes == ["follower", "follower", "leader"]
        for zk in zks:
            cfg = parse_properties((zk.config_dir / "zoo.cfg").read_text())
            assert [k for k in cfg if k.startswith("server.")] == [
                "server.1",
                "server.2",
                "server.3",
            ]
            myid = Path(cfg["dataDir"]) / "myid"
            assert myid.read_text().strip() == str(zk.node_id)
        connect = parse_properties((brokers[0].config_dir / "server.properties").read_text())[
            "zookeeper.connect"
        ]
        assert connect == rc.state.zookeeper_connect
        assert len(connect.split(",")) == 3
        info = describe_cluster(rc.bootstrap)
        assert info.brokers == [1, 2, 3]
        assert info.controller in (1, 2, 3)

        create_topic(rc.bootstrap, "ztf-zk", partitions=3, replication=3)
        assert describe_topic(rc.bootstrap, "ztf-zk").replication_factor == 3
        packets = {f.name.encode(): f.read_bytes() for f in files}
        report = produce(rc.bootstrap, "ztf-zk", packets.items())
        assert report.failed == []
        assert report.sent == len(files)
        received = {k: v for _, _, k, v in consume(rc.bootstrap, "ztf-zk", count=len(files))}
        assert received == packets
