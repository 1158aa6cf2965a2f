"""ZooKeeper mode (Kafka 3.9.2) from a classic inventory: 3 ZooKeepers and 3 brokers.

The hosts are three loopback addresses of this machine, so each node listens on
the classic ports (ZooKeeper 24498, quorum 23333/23334, broker 24499) as it
would on its own host.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from alertbench.kafka.admin import create_topic, describe_cluster, describe_topic
from alertbench.kafka.client import consume, produce
from alertbench.kafka.readiness import zookeeper_mode
from alertbench.kafka.render import parse_properties
from alertbench.procs import LocalTransport

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HOSTS = {"127.0.0.21": "zk-master", "127.0.0.22": "zk-slave1", "127.0.0.23": "zk-slave2"}
CLASSIC_PORTS = (24498, 23333, 23334, 24499, 7071, 7072)


def scrape(address: str, port: int) -> dict[str, float]:
    """A JMX exporter agent's series, by name and labels as it prints them."""
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return {
        k: float(v) for k, v in (x.rsplit(" ", 1) for x in lines if x and not x.startswith("#"))
    }


def test_classic_inventory_ensemble_and_brokers_carry_real_alerts(
    tmp_path: Path, cli, kafka3, alert_files: list[Path]
):
    local = LocalTransport()
    busy = [(a, p) for a in HOSTS for p in CLASSIC_PORTS if local.port_in_use(a, p)]
    if busy:
        pytest.skip(f"classic ports already taken on this machine: {busy}")
    inventory = tmp_path / "hosts"
    inventory.write_text("# the cluster\n" + "".join(f"{a} {n}\n" for a, n in HOSTS.items()))
    run_dir = tmp_path / "run"
    files = alert_files[:120]
    try:
        up = cli(
            "kafka", "up", "--inventory", str(inventory), "--mode", "zookeeper", run_dir=run_dir
        )
        assert up.returncode == 0, up.stderr
        assert "Kafka 3.9.2" in up.stdout
        state = json.loads((run_dir / "kafka" / "state.json").read_text())
        bootstrap = state["bootstrap_servers"]
        assert bootstrap == "127.0.0.21:24499,127.0.0.22:24499,127.0.0.23:24499"
        zks = [n for n in state["nodes"] if n["kind"] == "zookeeper"]
        assert [n["name"] for n in zks] == ["zk-master-zk", "zk-slave1-zk", "zk-slave2-zk"]
        modes = sorted(zookeeper_mode(n["address"], 24498) for n in zks)
        assert modes == ["follower", "follower", "leader"]
        for zk in zks:
            cfg = parse_properties((Path(zk["home"]) / "config" / "zoo.cfg").read_text())
            assert cfg["server.1"] == "127.0.0.21:23333:23334"
            assert cfg["server.3"] == "127.0.0.23:23333:23334"
            assert (Path(cfg["dataDir"]) / "myid").read_text().strip() == str(zk["node_id"])
        broker = next(n for n in state["nodes"] if n["name"] == "zk-slave1")
        props = parse_properties(
            (Path(broker["home"]) / "config" / "server.properties").read_text()
        )
        assert props["broker.id"] == "2"
        assert props["listeners"] == "PLAINTEXT://127.0.0.22:24499"
        assert props["zookeeper.connect"] == "127.0.0.21:24498,127.0.0.22:24498,127.0.0.23:24498"
        info = describe_cluster(bootstrap)
        assert info.brokers == [1, 2, 3]

        create_topic(bootstrap, "ztf-zk", partitions=3, replication=3)
        assert describe_topic(bootstrap, "ztf-zk").replication_factor == 3
        packets = {f.name.encode(): f.read_bytes() for f in files}
        report = produce(bootstrap, "ztf-zk", packets.items())
        assert report.failed == []
        assert report.sent == len(files)
        received = {k: v for _, _, k, v in consume(bootstrap, "ztf-zk", count=len(files))}
        assert received == packets

        status = cli("kafka", "status", run_dir=run_dir)
        assert "zk-slave2-zk" in status.stdout
        assert "ztf-zk" in status.stdout

        # Every node serves its JMX metrics through the agent, on the classic ports.
        said = " ".join(status.stdout.split())
        for address in HOSTS:
            for port in (7071, 7072):
                assert f"http://{address}:{port}/metrics" in said
        states = []
        for zk in zks:
            found = scrape(zk["address"], 7072)
            (alive,) = [k for k in found if k.startswith("zookeeper_numaliveconnections{")]
            states.append(alive.split('state="')[1].split('"')[0])
        assert sorted(states) == ["Follower", "Follower", "Leader"]
        brokers = [scrape(a, 7071) for a in HOSTS]
        assert all(b["kafka_server_replicamanager_underreplicatedpartitions"] == 0 for b in brokers)
        # Each leader counts what it appended: the three count every alert once.
        topic_in = 'kafka_server_brokertopicmetrics_messagesin_total{topic="ztf-zk"}'
        assert sum(b.get(topic_in, 0) for b in brokers) == len(files)
    finally:
        down = cli("kafka", "down", "--purge", run_dir=run_dir)
    assert down.returncode == 0, down.stderr


def test_an_unreachable_remote_host_is_named(tmp_path: Path, cli):
    inventory = tmp_path / "hosts"
    # 192.0.2.0/24 is reserved for documentation: nothing answers there.
    inventory.write_text("192.0.2.1 kafka-master\n")
    up = cli("kafka", "up", "--inventory", str(inventory), run_dir=tmp_path / "run")
    assert up.returncode == 1
    message = " ".join(up.stderr.split())
    assert "kafka-master (192.0.2.1): " in message
    assert "not reachable over SSH" in message
    assert not (tmp_path / "run" / "kafka" / "state.json").exists()
