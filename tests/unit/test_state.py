"""Cluster state file and the local node layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertbench.errors import ClusterError
from alertbench.kafka.state import (
    STATE_FORMAT,
    ClusterState,
    Node,
    local_inventory,
    nodes_for,
    read_state,
)
from alertbench.procs import ProcessRecord


def make_state() -> ClusterState:
    return ClusterState(
        mode="zookeeper",
        kafka_version="3.9.2",
        lib_dir="/cache/kafka/3.9.2/libs",
        cluster_id=None,
        bootstrap_servers="127.0.0.1:20000",
        zookeeper_connect="127.0.0.1:20002",
        layout={"local": True, "heap": "512m"},
        nodes=[
            Node(
                name="node-1-zk",
                kind="zookeeper",
                host="node-1",
                address="127.0.0.1",
                node_id=1,
                roles=["zookeeper"],
                ports={"zookeeper_client_port": 20002, "zookeeper_peer_port": 20003},
                home=Path("/run/kafka/node-1"),
                proc=ProcessRecord(pid=1234, started=1718000000.5, host="node-1"),
            ),
            Node(
                name="node-1",
                kind="kafka",
                host="node-1",
                address="127.0.0.1",
                node_id=1,
                roles=["broker"],
                ports={"broker_port": 20000},
                home=Path("/run/kafka/node-1"),
                proc=None,
            ),
        ],
    )


def test_read_state_missing_file(tmp_path: Path) -> None:
    assert read_state(tmp_path / "state.json") is None


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"format": 1}'])
def test_read_state_unreadable(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ClusterError) as info:
        read_state(path)
    message = str(info.value)
    assert message.startswith(f"cannot read the cluster state file {path}: ")
    assert "down --purge" in message
    assert str(tmp_path) in message


def test_read_state_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    data = make_state().to_json()
    data["format"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ClusterError, match=r"state format 99, expected 1"):
        read_state(path)


def test_read_state_written_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(make_state().to_json()))
    assert read_state(path) == make_state()


def test_state_json_round_trip() -> None:
    state = make_state()
    data = json.loads(json.dumps(state.to_json()))
    assert data["format"] == STATE_FORMAT == 1
    assert data["nodes"][0]["home"] == "/run/kafka/node-1"
    assert data["nodes"][0]["proc"] == {"pid": 1234, "started": 1718000000.5, "host": "node-1"}
    assert data["nodes"][1]["proc"] is None

    back = ClusterState.from_json(data)
    for field in (
        "mode",
        "kafka_version",
        "lib_dir",
        "cluster_id",
        "bootstrap_servers",
        "zookeeper_connect",
        "layout",
    ):
        assert getattr(back, field) == getattr(state, field), field
    assert len(back.nodes) == 2
    for got, want in zip(back.nodes, state.nodes, strict=True):
        assert got.name == want.name
        assert got.kind == want.kind
        assert got.host == want.host
        assert got.address == want.address
        assert got.node_id == want.node_id
        assert got.roles == want.roles
        assert got.ports == want.ports
        assert got.home == want.home
        assert isinstance(got.home, Path)
        assert got.proc == want.proc
    assert back.nodes[0].proc == ProcessRecord(pid=1234, started=1718000000.5, host="node-1")
    assert back.nodes[1].proc is None
    assert back == state


def test_kraft_state_round_trip_keeps_cluster_id() -> None:
    state = make_state()
    state.mode, state.kafka_version, state.cluster_id, state.zookeeper_connect = (
        "kraft",
        "4.3.1",
        "MkU3OEVBNTcwNTJENDM2Qk",
        None,
    )
    back = ClusterState.from_json(json.loads(json.dumps(state.to_json())))
    assert back.cluster_id == "MkU3OEVBNTcwNTJENDM2Qk"
    assert back.zookeeper_connect is None
    assert back == state


def test_node_paths() -> None:
    node = make_state().nodes[0]
    assert node.config_dir == Path("/run/kafka/node-1/config")
    assert node.log_dir == Path("/run/kafka/node-1/logs/zookeeper")
    assert node.server_log == Path("/run/kafka/node-1/logs/zookeeper/server.log")
    assert node.console_log == Path("/run/kafka/node-1/logs/zookeeper/console.log")


def test_node_lookup() -> None:
    state = make_state()
    assert state.node("node-1").kind == "kafka"
    assert state.node("node-1-zk").kind == "zookeeper"
    with pytest.raises(ClusterError) as info:
        state.node("missing")
    assert str(info.value) == "no node 'missing' in this cluster (nodes: node-1-zk, node-1)."


def test_local_inventory_fixed_ports(tmp_path: Path) -> None:
    inv = local_inventory(tmp_path, nodes=3, mode="kraft", base_port=20000)
    assert inv.mode == "kraft"
    assert inv.source == "local:3"
    assert [h.name for h in inv.hosts] == ["node-1", "node-2", "node-3"]
    assert [h.broker_port for h in inv.hosts] == [20000, 20010, 20020]
    assert [h.controller_port for h in inv.hosts] == [20001, 20011, 20021]
    assert [h.zookeeper_client_port for h in inv.hosts] == [20002, 20012, 20022]
    assert [h.zookeeper_peer_port for h in inv.hosts] == [20003, 20013, 20023]
    assert [h.zookeeper_election_port for h in inv.hosts] == [20004, 20014, 20024]
    assert [h.metrics_port for h in inv.hosts] == [20005, 20015, 20025]
    assert [h.zookeeper_metrics_port for h in inv.hosts] == [20006, 20016, 20026]
    base = tmp_path.resolve()
    for i, h in enumerate(inv.hosts, start=1):
        assert h.address == "127.0.0.1"
        assert h.roles == ("controller", "broker")
        assert h.data_dir == base / f"node-{i}" / "data"
        assert h.data_dir.is_absolute()
        assert h.zookeeper_data_dir == base / f"node-{i}" / "zookeeper"
        assert inv.node_id(h) == i
    assert inv.bootstrap_servers == "127.0.0.1:20000,127.0.0.1:20010,127.0.0.1:20020"


def test_local_inventory_relative_state_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inv = local_inventory(Path(".alertbench/kafka"), nodes=1, mode="kraft", base_port=20000)
    assert inv.hosts[0].data_dir == tmp_path.resolve() / ".alertbench/kafka/node-1/data"


def test_local_inventory_free_ports_are_distinct(tmp_path: Path) -> None:
    inv = local_inventory(tmp_path, nodes=3, mode="zookeeper", base_port=0)
    ports = [
        getattr(h, k)
        for h in inv.hosts
        for k in (
            "broker_port",
            "controller_port",
            "zookeeper_client_port",
            "zookeeper_peer_port",
            "zookeeper_election_port",
            "metrics_port",
            "zookeeper_metrics_port",
        )
    ]
    assert len(ports) == 21
    assert len(set(ports)) == 21
    assert all(p > 0 for p in ports)


def test_local_inventory_zookeeper_roles(tmp_path: Path) -> None:
    inv = local_inventory(tmp_path, nodes=2, mode="zookeeper", base_port=21000)
    assert [h.roles for h in inv.hosts] == [("zookeeper", "broker"), ("zookeeper", "broker")]
    assert inv.zookeeper_connect == "127.0.0.1:21002,127.0.0.1:21012"


def test_nodes_with_the_jmx_exporter_agent_listen_on_their_metrics_ports(tmp_path: Path) -> None:
    from alertbench.kafka.jmx_exporter import RULES_FILE, agent_option, rules
    from alertbench.kafka.jvm import node_agent_option

    inv = local_inventory(tmp_path, nodes=1, mode="zookeeper", base_port=21000)
    plain = nodes_for(inv, lambda h: tmp_path / h.name)
    assert [(n.name, n.agent, n.metrics_url) for n in plain] == [
        ("node-1-zk", None, None),
        ("node-1", None, None),
    ]
    assert all("metrics_port" not in n.ports for n in plain)
    zk, kafka = nodes_for(inv, lambda h: tmp_path / h.name, agent_of=lambda h: "/opt/agent.jar")
    assert zk.ports["zookeeper_metrics_port"] == 21006
    assert kafka.ports["metrics_port"] == 21005
    assert zk.metrics_url == "http://127.0.0.1:21006/metrics"
    assert kafka.metrics_url == "http://127.0.0.1:21005/metrics"
    # The agent binds the node's address and reads the rules of its kind.
    home = tmp_path / "node-1"
    assert node_agent_option(kafka) == [
        f"-javaagent:/opt/agent.jar=127.0.0.1:21005:{home / 'config' / 'jmx-exporter.yml'}"
    ]
    assert agent_option("/a.jar", "10.0.0.5", 7072, home, "zookeeper") == (
        f"-javaagent:/a.jar=10.0.0.5:7072:{home / RULES_FILE['zookeeper']}"
    )
    assert "kafka_server_replicamanager_$1" in rules("kafka")
    assert "zookeeper_$4" in rules("zookeeper")
    # Recorded in the state file and read back.
    assert Node.from_json(json.loads(json.dumps(kafka.to_json()))) == kafka
