"""Rendered node configuration: zoo.cfg, myid, server.properties, cluster.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alertbench.errors import ConfigError
from alertbench.kafka.inventory import Inventory, parse_hosts_lines, parse_toml
from alertbench.kafka.jmx_exporter import rules
from alertbench.kafka.release import parse_release
from alertbench.kafka.render import (
    MAX_MESSAGE_BYTES,
    HostFiles,
    format_properties,
    new_cluster_id,
    parse_properties,
    render_cluster,
    write_rendered,
)

ADDRESSES = ["134.158.74.95", "134.158.74.96", "134.158.74.97", "134.158.74.98", "134.158.74.99"]
NAMES = ["kafka-master", "kafka-slave1", "kafka-slave2", "kafka-slave3", "kafka-slave4"]
FIVE_HOSTS = "".join(f"{a} {n}\n" for a, n in zip(ADDRESSES, NAMES, strict=True))

SPLIT_TOML = """\
mode = "kraft"

[[hosts]]
name = "ctl-1"
address = "10.1.0.1"
roles = ["controller"]

[[hosts]]
name = "ctl-2"
address = "10.1.0.2"
roles = ["controller"]

[[hosts]]
name = "ctl-3"
address = "10.1.0.3"
roles = ["controller"]

[[hosts]]
name = "brk-1"
address = "10.1.0.4"
roles = ["broker"]

[[hosts]]
name = "brk-2"
address = "10.1.0.5"
roles = ["broker"]
"""


def five(mode: str) -> Inventory:
    return parse_hosts_lines(FIVE_HOSTS, source="hosts", mode=mode)  # type: ignore[arg-type]


def props(hf: HostFiles, name: str = "server.properties") -> dict[str, str]:
    return parse_properties(hf.files[name])


# -- ZooKeeper mode, Kafka 3.9.2 -------------------------------------------------------


@pytest.fixture(scope="module")
def zk_rendered() -> list[HostFiles]:
    return render_cluster(five("zookeeper"), parse_release("3.9.2"))


def test_zookeeper_files_per_host(zk_rendered: list[HostFiles]) -> None:
    assert [hf.host.name for hf in zk_rendered] == NAMES
    assert [hf.node_id for hf in zk_rendered] == [1, 2, 3, 4, 5]
    for hf in zk_rendered:
        assert sorted(hf.files) == [
            "jmx-exporter-zookeeper.yml",
            "jmx-exporter.yml",
            "log4j.properties",
            "myid",
            "server.properties",
            "zoo.cfg",
        ]


def test_zookeeper_zoo_cfg(zk_rendered: list[HostFiles]) -> None:
    servers = {f"server.{i}": f"{a}:23333:23334" for i, a in enumerate(ADDRESSES, start=1)}
    for hf in zk_rendered:
        cfg = props(hf, "zoo.cfg")
        assert {k: v for k, v in cfg.items() if k.startswith("server.")} == servers
        assert cfg["clientPort"] == "24498"
        assert cfg["clientPortAddress"] == hf.host.address
        assert cfg["dataDir"] == "/data/zookeeper"
        assert cfg["tickTime"] == "2000"
        assert cfg["initLimit"] == "10"
        assert cfg["syncLimit"] == "5"


def test_zookeeper_server_lines_in_order(zk_rendered: list[HostFiles]) -> None:
    lines = [ln for ln in zk_rendered[0].files["zoo.cfg"].splitlines() if ln.startswith("server.")]
    assert lines == [f"server.{i}={a}:23333:23334" for i, a in enumerate(ADDRESSES, start=1)]


def test_zookeeper_myid(zk_rendered: list[HostFiles]) -> None:
    assert [hf.files["myid"] for hf in zk_rendered] == ["1\n", "2\n", "3\n", "4\n", "5\n"]


def test_zookeeper_server_properties(zk_rendered: list[HostFiles]) -> None:
    connect = ",".join(f"{a}:24498" for a in ADDRESSES)
    for i, hf in enumerate(zk_rendered, start=1):
        p = props(hf)
        address = ADDRESSES[i - 1]
        assert p["broker.id"] == str(i)
        assert p["listeners"] == f"PLAINTEXT://{address}:24499"
        assert p["advertised.listeners"] == f"PLAINTEXT://{address}:24499"
        assert p["log.dirs"] == "/data/kafka-logs"
        assert p["zookeeper.connect"] == connect
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["message.max.bytes"] == str(MAX_MESSAGE_BYTES)
        assert not [k for k in p if k.startswith("share.coordinator.")]
        for absent in ("process.roles", "node.id", "controller.quorum.voters"):
            assert absent not in p
        assert not [k for k in p if k.startswith("controller.")]


def test_zookeeper_header_names_host_and_version(zk_rendered: list[HostFiles]) -> None:
    first = zk_rendered[1].files["server.properties"].splitlines()[0]
    assert first == "# kafka-slave1: rendered by alertbench for Kafka 3.9.2 (zookeeper)"


def test_zookeeper_logging_is_log4j1(zk_rendered: list[HostFiles]) -> None:
    text = zk_rendered[0].files["log4j.properties"]
    assert "log4j.rootLogger=INFO, file" in text
    assert "${kafka.logs.dir}/server.log" in text


def test_zookeeper_mode_on_kafka_4_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Kafka 4\.3\.1 has no ZooKeeper mode"):
        render_cluster(five("zookeeper"), parse_release("4.3.1"))


# -- KRaft mode, Kafka 4.3.1 -----------------------------------------------------------


@pytest.fixture(scope="module")
def kraft_rendered() -> list[HostFiles]:
    return render_cluster(five("kraft"), parse_release("4.3.1"))


def test_kraft_files_per_host(kraft_rendered: list[HostFiles]) -> None:
    for hf in kraft_rendered:
        assert sorted(hf.files) == ["jmx-exporter.yml", "log4j2.properties", "server.properties"]


def test_kraft_server_properties(kraft_rendered: list[HostFiles]) -> None:
    voters = ",".join(f"{i}@{a}:24500" for i, a in enumerate(ADDRESSES, start=1))
    assert voters.startswith("1@134.158.74.95:24500,2@134.158.74.96:24500")
    assert voters.endswith("5@134.158.74.99:24500")
    for i, hf in enumerate(kraft_rendered, start=1):
        p = props(hf)
        address = ADDRESSES[i - 1]
        assert p["process.roles"] == "broker,controller"
        assert p["node.id"] == str(i)
        assert p["controller.quorum.voters"] == voters
        assert p["listeners"] == f"PLAINTEXT://{address}:24499,CONTROLLER://{address}:24500"
        assert p["advertised.listeners"] == f"PLAINTEXT://{address}:24499"
        assert p["controller.listener.names"] == "CONTROLLER"
        assert p["inter.broker.listener.name"] == "PLAINTEXT"
        assert p["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        assert p["log.dirs"] == "/data/kafka-logs"
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["share.coordinator.state.topic.replication.factor"] == "3"
        assert p["share.coordinator.state.topic.min.isr"] == "2"
        for absent in ("zookeeper.connect", "broker.id", "zookeeper.connection.timeout.ms"):
            assert absent not in p


def test_kraft_logging_is_log4j2(kraft_rendered: list[HostFiles]) -> None:
    text = kraft_rendered[0].files["log4j2.properties"]
    assert "appender.file.fileName = ${sys:kafka.logs.dir}/server.log" in text


def test_kraft_on_kafka_3_9_has_no_share_keys() -> None:
    for hf in render_cluster(five("kraft"), parse_release("3.9.2")):
        p = props(hf)
        assert p["process.roles"] == "broker,controller"
        assert not [k for k in p if k.startswith("share.")]
        assert "log4j.properties" in hf.files


def test_kraft_on_kafka_3_2_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Kafka 3\.2\.0 predates production KRaft"):
        render_cluster(five("kraft"), parse_release("3.2.0"))


@pytest.mark.parametrize(("mode", "version"), [("kraft", "4.3.1"), ("zookeeper", "3.9.2")])
def test_single_host_replication_is_one(mode: str, version: str) -> None:
    inv = parse_hosts_lines("10.0.0.1 solo\n", source="h", mode=mode)  # type: ignore[arg-type]
    (hf,) = render_cluster(inv, parse_release(version))
    p = props(hf)
    replication = {k: v for k, v in p.items() if "replication.factor" in k or "isr" in k}
    assert replication
    assert set(replication.values()) == {"1"}
    assert p["default.replication.factor"] == "1"
    assert p["min.insync.replicas"] == "1"
    assert p["offsets.topic.replication.factor"] == "1"


def test_two_brokers_replication() -> None:
    inv = parse_hosts_lines("10.0.0.1 a\n10.0.0.2 b\n", source="h", mode="kraft")
    for hf in render_cluster(inv, parse_release("4.3.1")):
        p = props(hf)
        assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("2", "1")


@pytest.fixture(scope="module")
def split_rendered() -> list[HostFiles]:
    return render_cluster(parse_toml(SPLIT_TOML, source="split.toml"), parse_release("4.3.1"))


def test_split_roles_controllers(split_rendered: list[HostFiles]) -> None:
    voters = "1@10.1.0.1:24500,2@10.1.0.2:24500,3@10.1.0.3:24500"
    for i, hf in enumerate(split_rendered[:3], start=1):
        p = props(hf)
        address = f"10.1.0.{i}"
        assert p["process.roles"] == "controller"
        assert p["node.id"] == str(i)
        assert p["listeners"] == f"CONTROLLER://{address}:24500"
        assert "PLAINTEXT://" not in p["listeners"]
        assert "advertised.listeners" not in p
        assert "inter.broker.listener.name" not in p
        assert p["controller.quorum.voters"] == voters


def test_split_roles_brokers(split_rendered: list[HostFiles]) -> None:
    voters = "1@10.1.0.1:24500,2@10.1.0.2:24500,3@10.1.0.3:24500"
    for i, hf in enumerate(split_rendered[3:], start=4):
        p = props(hf)
        address = f"10.1.0.{i}"
        assert p["process.roles"] == "broker"
        assert p["node.id"] == str(i)
        assert p["listeners"] == f"PLAINTEXT://{address}:24499"
        assert "CONTROLLER://" not in p["listeners"]
        assert p["advertised.listeners"] == f"PLAINTEXT://{address}:24499"
        assert p["controller.quorum.voters"] == voters


def test_split_roles_replication_fits_brokers(split_rendered: list[HostFiles]) -> None:
    for hf in split_rendered:
        p = props(hf)
        assert p["default.replication.factor"] == "2"
        assert p["min.insync.replicas"] == "1"
        assert p["offsets.topic.replication.factor"] == "2"
        assert p["share.coordinator.state.topic.replication.factor"] == "2"
        assert p["share.coordinator.state.topic.min.isr"] == "1"


def test_overrides_replace_and_add() -> None:
    inv = parse_hosts_lines("10.0.0.1 solo\n", source="h", mode="kraft")
    (hf,) = render_cluster(
        inv, parse_release("4.3.1"), overrides={"num.io.threads": 4, "num.partitions": 6}
    )
    p = props(hf)
    assert p["num.io.threads"] == "4"
    assert p["num.partitions"] == "6"


# -- write_rendered and cluster.json -----------------------------------------------------


def test_write_rendered_zookeeper(tmp_path: Path) -> None:
    written = write_rendered(five("zookeeper"), parse_release("3.9.2"), tmp_path / "out")
    out = tmp_path / "out"
    expected = {
        out / n / f
        for n in NAMES
        for f in (
            "server.properties",
            "zoo.cfg",
            "myid",
            "log4j.properties",
            "jmx-exporter.yml",
            "jmx-exporter-zookeeper.yml",
        )
    } | {out / "cluster.json"}
    assert set(written) == expected
    assert len(written) == len(expected)
    assert (out / "kafka-slave3" / "myid").read_text() == "4\n"
    p = parse_properties((out / "kafka-slave3" / "server.properties").read_text())
    assert p["broker.id"] == "4"
    assert p["listeners"] == "PLAINTEXT://134.158.74.98:24499"

    summary = json.loads((out / "cluster.json").read_text())
    assert summary["mode"] == "zookeeper"
    assert summary["kafka_version"] == "3.9.2"
    assert summary["cluster_id"] is None
    assert summary["bootstrap_servers"] == ",".join(f"{a}:24499" for a in ADDRESSES)
    assert summary["zookeeper_connect"] == ",".join(f"{a}:24498" for a in ADDRESSES)
    assert summary["inventory"] == "hosts"
    assert [(h["name"], h["id"], h["address"]) for h in summary["hosts"]] == [
        (n, i, a) for i, (n, a) in enumerate(zip(NAMES, ADDRESSES, strict=True), start=1)
    ]
    assert summary["hosts"][0]["roles"] == ["zookeeper", "broker"]
    assert summary["hosts"][0]["files"] == [
        "jmx-exporter-zookeeper.yml",
        "jmx-exporter.yml",
        "log4j.properties",
        "myid",
        "server.properties",
        "zoo.cfg",
    ]


def test_write_rendered_kraft(tmp_path: Path) -> None:
    written = write_rendered(five("kraft"), parse_release("4.3.1"), tmp_path)
    assert len(written) == 5 * 3 + 1
    assert not list(tmp_path.rglob("zoo.cfg"))
    assert not list(tmp_path.rglob("myid"))
    p = parse_properties((tmp_path / "kafka-master" / "server.properties").read_text())
    assert p["node.id"] == "1"

    summary = json.loads((tmp_path / "cluster.json").read_text())
    assert summary["mode"] == "kraft"
    assert summary["kafka_version"] == "4.3.1"
    assert isinstance(summary["cluster_id"], str)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", summary["cluster_id"])
    assert summary["zookeeper_connect"] is None
    assert summary["bootstrap_servers"] == ",".join(f"{a}:24499" for a in ADDRESSES)
    assert [h["name"] for h in summary["hosts"]] == NAMES
    assert [h["id"] for h in summary["hosts"]] == [1, 2, 3, 4, 5]
    assert summary["hosts"][4]["roles"] == ["controller", "broker"]
    assert summary["hosts"][4]["files"] == [
        "jmx-exporter.yml",
        "log4j2.properties",
        "server.properties",
    ]
    # The JMX exporter agent's rules, for a node started by hand with the agent.
    assert (tmp_path / "kafka-master" / "jmx-exporter.yml").read_text() == rules("kafka")


def test_write_rendered_keeps_given_cluster_id(tmp_path: Path) -> None:
    write_rendered(
        five("kraft"), parse_release("4.3.1"), tmp_path, cluster_id="MkU3OEVBNTcwNTJENDM2Qk"
    )
    assert json.loads((tmp_path / "cluster.json").read_text())["cluster_id"] == (
        "MkU3OEVBNTcwNTJENDM2Qk"
    )


def test_write_rendered_refuses_zookeeper_on_kafka_4(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no ZooKeeper mode"):
        write_rendered(five("zookeeper"), parse_release("4.3.1"), tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- helpers --------------------------------------------------------------------------------


def test_new_cluster_id() -> None:
    ids = [new_cluster_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for cid in ids:
        assert len(cid) == 22
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")


def test_format_and_parse_properties_round_trip() -> None:
    text = format_properties({"a.b": 1, "c": "x=y", "empty": ""}, header="line one\nline two")
    assert text == "# line one\n# line two\na.b=1\nc=x=y\nempty=\n"
    assert parse_properties(text) == {"a.b": "1", "c": "x=y", "empty": ""}


def test_parse_properties_reads_as_java_reads() -> None:
    # java.util.Properties: comments skipped, a value's trailing blanks kept, a lone key
    # empty, ':' a separator, a line continued by a backslash, escapes undone.
    text = "# c\n! also a comment\n\n  key = value  \nno-equals-sign\na:b\nlong=x\\\n  y\nq=\\\\\n"
    assert parse_properties(text) == {
        "key": "value  ",
        "no-equals-sign": "",
        "a": "b",
        "long": "xy",
        "q": "\\",
    }
