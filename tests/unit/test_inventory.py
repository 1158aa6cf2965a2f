"""Inventories: classic host lines and TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbench.errors import ConfigError
from alertbench.kafka.inventory import load_inventory, parse_hosts_lines, parse_toml

HOSTS = """\
# The Fink-era cluster
134.158.74.95 kafka-master master   # the first one

134.158.74.96   kafka-slave1
\t134.158.74.97 kafka-slave2 slave2 s2
"""


def test_hosts_lines_with_comments_blanks_and_aliases() -> None:
    inv = parse_hosts_lines(HOSTS, source="hosts", mode="kraft")
    assert inv.mode == "kraft"
    assert inv.source == "hosts"
    assert [(h.name, h.address) for h in inv.hosts] == [
        ("kafka-master", "134.158.74.95"),
        ("kafka-slave1", "134.158.74.96"),
        ("kafka-slave2", "134.158.74.97"),
    ]
    for h in inv.hosts:
        assert h.roles == ("controller", "broker")
        assert (h.broker_port, h.controller_port) == (24499, 24500)
        assert h.data_dir == Path("/data/kafka-logs")


def test_hosts_lines_zookeeper_mode_roles() -> None:
    inv = parse_hosts_lines(HOSTS, source="hosts", mode="zookeeper")
    assert [h.roles for h in inv.hosts] == [("zookeeper", "broker")] * 3
    assert inv.zookeeper_connect == ("134.158.74.95:24498,134.158.74.96:24498,134.158.74.97:24498")


def test_hosts_lines_ipv6() -> None:
    inv = parse_hosts_lines("::1 six\n", source="hosts", mode="kraft")
    assert inv.hosts[0].address == "::1"


def test_hosts_line_with_one_field_names_file_and_line() -> None:
    text = "# header\n134.158.74.95 kafka-master\nkafka-slave1\n"
    with pytest.raises(ConfigError) as info:
        parse_hosts_lines(text, source="/etc/cluster-hosts", mode="kraft")
    message = str(info.value)
    assert message.startswith("/etc/cluster-hosts, line 3: 'kafka-slave1': ")
    assert "only one field" in message


def test_hosts_line_with_bad_ip_names_file_and_line() -> None:
    text = "134.158.74.95 kafka-master\n\n134.158.74.300 kafka-slave1\n"
    with pytest.raises(ConfigError) as info:
        parse_hosts_lines(text, source="inv.txt", mode="kraft")
    message = str(info.value)
    assert message.startswith("inv.txt, line 3: '134.158.74.300 kafka-slave1': ")
    assert "'134.158.74.300' is not an IP address" in message


def test_names_swapped_with_addresses_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"line 1: .*'kafka-master' is not an IP address"):
        parse_hosts_lines("kafka-master 134.158.74.95\n", source="f", mode="kraft")


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing here\n   # or here\n"])
def test_empty_hosts_file(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^empty\.txt: no hosts found"):
        parse_hosts_lines(text, source="empty.txt", mode="kraft")


def test_duplicate_host_names() -> None:
    text = "10.0.0.1 kafka-1\n10.0.0.2 kafka-2\n10.0.0.3 kafka-1\n"
    with pytest.raises(ConfigError, match=r"^dup: host names must be unique; repeated: kafka-1$"):
        parse_hosts_lines(text, source="dup", mode="kraft")


def test_same_address_and_port_twice() -> None:
    text = "10.0.0.1 kafka-1\n10.0.0.1 kafka-2\n"
    with pytest.raises(ConfigError) as info:
        parse_hosts_lines(text, source="same", mode="kraft")
    assert str(info.value) == (
        "same: host kafka-2: broker_port 24499 on 10.0.0.1 is already used by kafka-1 (broker_port)"
    )


TOML = """\
mode = "kraft"

[defaults]
broker_port = 9092
controller_port = 9093
data_dir = "/srv/kafka"

[[hosts]]
name = "c1"
address = "10.0.0.1"
roles = ["controller"]

[[hosts]]
name = "b1"
address = "10.0.0.2"
roles = ["broker"]
broker_port = 19092
data_dir = "/fast/kafka"

[[hosts]]
name = "both"
address = "10.0.0.3"
"""


def test_toml_defaults_and_per_host_settings() -> None:
    inv = parse_toml(TOML, source="inv.toml")
    assert inv.mode == "kraft"
    c1, b1, both = inv.hosts
    assert (c1.name, c1.address, c1.roles) == ("c1", "10.0.0.1", ("controller",))
    assert (c1.broker_port, c1.controller_port, c1.data_dir) == (9092, 9093, Path("/srv/kafka"))
    assert (b1.roles, b1.broker_port, b1.data_dir) == (("broker",), 19092, Path("/fast/kafka"))
    # No roles given: every role of the mode.
    assert both.roles == ("controller", "broker")
    assert (both.broker_port, both.controller_port) == (9092, 9093)
    # Defaults not set in the file keep the classic values.
    assert c1.zookeeper_client_port == 24498
    assert [h.name for h in inv.brokers] == ["b1", "both"]
    assert [h.name for h in inv.with_role("controller")] == ["c1", "both"]
    assert inv.bootstrap_servers == "10.0.0.2:19092,10.0.0.3:9092"
    assert inv.zookeeper_connect == ""
    assert [inv.node_id(h) for h in inv.hosts] == [1, 2, 3]


def test_toml_default_roles() -> None:
    text = (
        '[defaults]\nroles = ["broker"]\n'
        '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\nroles = ["controller"]\n'
        '[[hosts]]\nname = "b"\naddress = "10.0.0.2"\n'
    )
    inv = parse_toml(text, source="x.toml")
    assert [h.roles for h in inv.hosts] == [("controller",), ("broker",)]


def test_toml_mode_argument_overrides_file() -> None:
    text = 'mode = "kraft"\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
    inv = parse_toml(text, source="x.toml", mode="zookeeper")
    assert inv.mode == "zookeeper"
    assert inv.hosts[0].roles == ("zookeeper", "broker")


def test_toml_role_not_in_mode_names_the_host() -> None:
    text = (
        'mode = "kraft"\n'
        '[[hosts]]\nname = "ok"\naddress = "10.0.0.1"\n'
        '[[hosts]]\nname = "zk-host"\naddress = "10.0.0.2"\nroles = ["zookeeper", "broker"]\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_toml(text, source="inv.toml")
    assert str(info.value) == (
        "inv.toml: host zk-host: role(s) zookeeper do not exist in kraft mode "
        "(allowed: controller, broker, spark-master, spark-worker)"
    )


def test_spark_layout_defaults_to_master_on_the_first_host() -> None:
    inv = parse_hosts_lines("10.0.0.1 a\n10.0.0.2 b\n10.0.0.3 c\n", source="h", mode="kraft")
    assert not inv.declares_spark
    assert inv.spark_master.name == "a"
    assert [h.name for h in inv.spark_workers] == ["b", "c"]
    assert inv.spark_master_url == "spark://10.0.0.1:7077"
    one = parse_hosts_lines("10.0.0.1 solo\n", source="h", mode="kraft")
    assert [h.name for h in one.spark_workers] == ["solo"]


def test_declared_spark_roles_win_and_spark_only_hosts_run_no_kafka() -> None:
    text = (
        "[defaults]\nspark_port = 7177\n"
        '[[hosts]]\nname = "k1"\naddress = "10.0.0.1"\n'
        'roles = ["controller", "broker", "spark-worker"]\n'
        '[[hosts]]\nname = "s1"\naddress = "10.0.0.2"\nroles = ["spark-master"]\n'
        '[[hosts]]\nname = "s2"\naddress = "10.0.0.3"\nroles = ["spark-worker"]\n'
    )
    inv = parse_toml(text, source="inv.toml")
    assert inv.declares_spark
    assert inv.spark_master_url == "spark://10.0.0.2:7177"
    assert [h.name for h in inv.spark_workers] == ["k1", "s2"]
    assert inv.bootstrap_servers == "10.0.0.1:24499"


def test_spark_workers_without_a_master_are_refused() -> None:
    text = (
        '[[hosts]]\nname = "k"\naddress = "10.0.0.1"\n'
        'roles = ["controller", "broker", "spark-worker"]\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_toml(text, source="inv.toml")
    assert "need exactly one host with role 'spark-master', found 0" in str(info.value)


def test_spark_ports_must_not_collide_with_kafka_ports() -> None:
    text = (
        '[[hosts]]\nname = "k"\naddress = "10.0.0.1"\n'
        'roles = ["controller", "broker", "spark-master"]\nspark_port = 24499\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_toml(text, source="inv.toml")
    assert "spark_port 24499 on 10.0.0.1 is already used by k (broker_port)" in str(info.value)


def test_toml_controller_role_in_zookeeper_mode() -> None:
    text = 'mode = "zookeeper"\n[[hosts]]\nname = "h"\naddress = "10.0.0.1"\n'
    text += 'roles = ["controller", "broker", "zookeeper"]\n'
    with pytest.raises(ConfigError, match=r"host h: role\(s\) controller do not exist"):
        parse_toml(text, source="inv.toml")


def test_toml_kraft_without_controller() -> None:
    text = '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\nroles = ["broker"]\n'
    with pytest.raises(
        ConfigError, match=r"^inv\.toml: kraft mode needs at least one host with role 'controller'"
    ):
        parse_toml(text, source="inv.toml")


def test_toml_zookeeper_without_broker() -> None:
    text = 'mode = "zookeeper"\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
    text += 'roles = ["zookeeper"]\n'
    with pytest.raises(
        ConfigError, match=r"zookeeper mode needs at least one host with role 'broker'"
    ):
        parse_toml(text, source="inv.toml")


def test_toml_port_clash_between_roles() -> None:
    text = (
        '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\nbroker_port = 5000\n'
        '[[hosts]]\nname = "b"\naddress = "10.0.0.1"\nbroker_port = 6000\ncontroller_port = 5000\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_toml(text, source="inv.toml")
    assert str(info.value) == (
        "inv.toml: host b: controller_port 5000 on 10.0.0.1 is already used by a (broker_port)"
    )


def test_toml_same_port_on_different_addresses_is_fine() -> None:
    text = (
        '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n[[hosts]]\nname = "b"\naddress = "10.0.0.2"\n'
    )
    assert len(parse_toml(text, source="inv.toml").hosts) == 2


def test_toml_unknown_top_level_key() -> None:
    text = 'brokers = 3\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
    with pytest.raises(ConfigError, match=r"^inv\.toml: unknown key\(s\) brokers;"):
        parse_toml(text, source="inv.toml")


def test_toml_unknown_host_key() -> None:
    text = '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\nbroker_prot = 1\n'
    with pytest.raises(ConfigError, match=r"^inv\.toml: hosts\.0\.broker_prot: Extra inputs"):
        parse_toml(text, source="inv.toml")


def test_toml_unknown_default_key() -> None:
    text = '[defaults]\nheap = "1g"\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
    with pytest.raises(ConfigError, match=r"^inv\.toml: \[defaults\] heap: Extra inputs"):
        parse_toml(text, source="inv.toml")


def test_toml_bad_port_value() -> None:
    text = '[[hosts]]\nname = "a"\naddress = "10.0.0.1"\nbroker_port = 70000\n'
    with pytest.raises(ConfigError, match=r"hosts\.0\.broker_port: Input should be less than"):
        parse_toml(text, source="inv.toml")


def test_toml_bad_mode() -> None:
    text = 'mode = "sharded"\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n'
    with pytest.raises(ConfigError, match=r"mode must be 'kraft' or 'zookeeper', not 'sharded'"):
        parse_toml(text, source="inv.toml")


def test_toml_without_hosts() -> None:
    with pytest.raises(ConfigError, match=r"^inv\.toml: no \[\[hosts\]\] entries"):
        parse_toml('mode = "kraft"\n', source="inv.toml")


def test_toml_syntax_error_names_file() -> None:
    with pytest.raises(ConfigError, match=r"^broken\.toml: not valid TOML: "):
        parse_toml("[[hosts]\n", source="broken.toml")


def test_load_inventory_picks_toml_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('mode = "zookeeper"\n[[hosts]]\nname = "a"\naddress = "10.0.0.1"\n')
    inv = load_inventory(path)
    assert inv.mode == "zookeeper"
    assert inv.source == str(path)
    assert inv.hosts[0].name == "a"


def test_load_inventory_reads_host_lines_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    inv = load_inventory(path)
    assert inv.mode == "kraft"
    assert inv.source == str(path)
    assert [h.name for h in inv.hosts] == ["kafka-master", "kafka-slave1", "kafka-slave2"]
    assert load_inventory(path, mode="zookeeper").hosts[0].roles == ("zookeeper", "broker")


def test_load_inventory_host_lines_in_txt_are_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "cluster.txt"
    path.write_text('[[hosts]]\nname = "a"\n')
    with pytest.raises(ConfigError, match=rf"^{path}, line 1: "):
        load_inventory(path)


def test_load_inventory_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(ConfigError, match=rf"^cannot read inventory {path}: No such file"):
        load_inventory(path)


def test_bootstrap_servers_and_node_ids() -> None:
    text = "10.0.0.1 a\n10.0.0.2 b\n10.0.0.3 c\n"
    inv = parse_hosts_lines(text, source="h", mode="zookeeper")
    assert inv.bootstrap_servers == "10.0.0.1:24499,10.0.0.2:24499,10.0.0.3:24499"
    assert inv.zookeeper_connect == "10.0.0.1:24498,10.0.0.2:24498,10.0.0.3:24498"
    assert [inv.node_id(h) for h in inv.hosts] == [1, 2, 3]
    assert inv.node_id(inv.hosts[2]) == 3


def test_ssh_settings_per_host_and_their_targets() -> None:
    from alertbench.kafka.remote import java_of, ssh_target

    inv = parse_toml(
        """
[defaults]
ssh_key = "/keys/cluster"
user = "kafka"

[[hosts]]
name = "k1"
address = "10.1.0.1"

[[hosts]]
name = "k2"
address = "10.1.0.2"
user = "ops"
ssh_port = 2222
sudo = true
java_home = "/opt/jdk-17"
""",
        source="ssh.toml",
    )
    k1, k2 = (ssh_target(h) for h in inv.hosts)
    assert (k1.host, k1.address, k1.user, k1.port, k1.key_file, k1.sudo) == (
        "k1",
        "10.1.0.1",
        "kafka",
        22,
        Path("/keys/cluster"),
        False,
    )
    assert (k2.user, k2.port, k2.key_file, k2.sudo) == ("ops", 2222, Path("/keys/cluster"), True)
    assert [java_of(h) for h in inv.hosts] == ["java", "/opt/jdk-17/bin/java"]


def test_a_misspelt_ssh_field_is_named() -> None:
    with pytest.raises(ConfigError, match="ssh_keys"):
        parse_toml('[[hosts]]\nname = "k1"\naddress = "10.1.0.1"\nssh_keys = "/k"\n', source="x")


def test_an_inventory_of_spark_hosts_only_runs_no_kafka() -> None:
    text = (
        '[[hosts]]\nname = "m"\naddress = "10.0.0.1"\nroles = ["spark-master"]\n'
        '[[hosts]]\nname = "w"\naddress = "10.0.0.2"\nroles = ["spark-worker"]\n'
    )
    inv = parse_toml(text, source="spark.toml")
    assert inv.brokers == []
    assert inv.bootstrap_servers == ""
    assert inv.spark_master_url == "spark://10.0.0.1:7077"
    # One Kafka role makes it a Kafka inventory, which then needs every role of its mode.
    with pytest.raises(ConfigError, match="kraft mode needs at least one host with role 'broker'"):
        parse_toml(text.replace('["spark-worker"]', '["controller"]'), source="k.toml")
