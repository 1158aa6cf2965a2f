"""Which Spark master the broker uses, the address executors reach the driver at, and
the pure parts of deploying Spark to an inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbench.config import load_settings
from alertbench.errors import ConfigError
from alertbench.kafka.inventory import parse_toml
from alertbench.procs import ProcessRecord
from alertbench.spark.hosts import memory_notes, roles_of, spark_dir_of, worker_name
from alertbench.spark.session import driver_host, master_endpoint, resolve_master
from alertbench.spark.state import SparkCluster
from alertbench.ssh import SSHTarget

SPARK_INVENTORY = """
[defaults]
spark_port = 7177
[[hosts]]
name = "m"
address = "10.1.2.3"
roles = ["controller", "broker", "spark-master"]
[[hosts]]
name = "w1"
address = "10.1.2.4"
roles = ["spark-worker"]
spark_worker_memory = "1g"
[[hosts]]
name = "w2"
address = "10.1.2.5"
roles = ["spark-worker"]
spark_dir = "/scratch/spark"
"""

KAFKA_ONLY = """
[[hosts]]
name = "k1"
address = "10.1.2.3"
"""


pytestmark = pytest.mark.usefixtures("clean_env")


def inventory(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def test_the_default_master_is_local() -> None:
    assert resolve_master(load_settings()) == "local[*]"


def test_an_inventory_with_spark_hosts_gives_its_master(tmp_path: Path) -> None:
    settings = load_settings(inventory=inventory(tmp_path, SPARK_INVENTORY))
    assert resolve_master(settings) == "spark://10.1.2.3:7177"


def test_an_inventory_without_spark_roles_keeps_the_local_master(tmp_path: Path) -> None:
    settings = load_settings(inventory=inventory(tmp_path, KAFKA_ONLY))
    assert resolve_master(settings) == "local[*]"


def test_an_explicit_master_wins_over_the_inventory(tmp_path: Path) -> None:
    path = inventory(tmp_path, SPARK_INVENTORY)
    assert (
        resolve_master(load_settings(inventory=path, broker={"master": "local[2]"})) == "local[2]"
    )


def test_a_master_set_in_the_environment_or_toml_counts_as_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = inventory(tmp_path, SPARK_INVENTORY)
    monkeypatch.setenv("ALERTBENCH_INVENTORY", str(path))
    assert resolve_master(load_settings()) == "spark://10.1.2.3:7177"
    # Even set to its default value, an explicit master is what the user asked for.
    (tmp_path / "alertbench.toml").write_text('[broker]\nmaster = "local[*]"\n')
    assert resolve_master(load_settings()) == "local[*]"
    monkeypatch.setenv("ALERTBENCH_BROKER__MASTER", "spark://elsewhere:7077")
    assert resolve_master(load_settings()) == "spark://elsewhere:7077"


def test_master_endpoints_are_parsed() -> None:
    assert master_endpoint("local[*]") is None
    assert master_endpoint("spark://10.0.0.1:7077") == ("10.0.0.1", 7077)
    assert master_endpoint("spark://m1:7078,m2:7078") == ("m1", 7078)  # HA: the first
    assert master_endpoint("spark://master") == ("master", 7077)


def test_the_driver_of_a_local_master_stays_on_loopback() -> None:
    assert driver_host(load_settings(), "local[2]") == "127.0.0.1"


def test_the_driver_host_is_the_address_on_the_route_to_the_master() -> None:
    # Towards a loopback master, the kernel picks the loopback address.
    assert driver_host(load_settings(), "spark://127.0.0.1:7077") == "127.0.0.1"


def test_a_configured_driver_host_wins() -> None:
    settings = load_settings(broker={"driver_host": "192.0.2.7"})
    assert driver_host(settings, "spark://127.0.0.1:7077") == "192.0.2.7"
    # ... but a local master never needs it.
    assert driver_host(settings, "local[*]") == "127.0.0.1"


def test_a_master_that_does_not_resolve_asks_for_driver_host() -> None:
    with pytest.raises(ConfigError, match=r"no-such-host\.invalid.*broker\.driver_host"):
        driver_host(load_settings(), "spark://no-such-host.invalid:7077")


def test_roles_and_dirs_come_from_the_inventory() -> None:
    inv = parse_toml(SPARK_INVENTORY, source="hosts.toml")
    assert roles_of(inv) == {"m": ["master"], "w1": ["worker"], "w2": ["worker"]}
    hosts = {h.name: h for h in inv.hosts}
    assert spark_dir_of(hosts["w1"]) == Path("/opt/alertbench/spark")
    assert spark_dir_of(hosts["w2"]) == Path("/scratch/spark")
    assert worker_name("w1") == "worker-w1"


def test_a_one_host_inventory_runs_master_and_worker_together() -> None:
    inv = parse_toml(KAFKA_ONLY, source="hosts.toml")
    assert roles_of(inv) == {"k1": ["master", "worker"]}


def test_workers_too_small_for_an_executor_are_named() -> None:
    inv = parse_toml(SPARK_INVENTORY, source="hosts.toml")
    workers = inv.spark_workers
    (note,) = memory_notes("2g", workers)
    assert "w1" in note
    assert "w2" not in note
    assert memory_notes("1024m", workers) == []
    assert memory_notes("512m", workers) == []


def test_a_deployed_cluster_survives_the_state_file() -> None:
    cluster = SparkCluster(
        master_url="spark://10.1.2.3:7077",
        ui_url="http://10.1.2.3:8080",
        workers=1,
        cores_per_worker=None,
        memory_per_worker="3g",
        procs={"master": ProcessRecord(41, 1000.5, "m")},
        logs={"master": "/opt/alertbench/spark/logs/master.log"},
        targets={"m": SSHTarget("m", "10.1.2.3", key_file=Path("/k"))},
        hosts={"m": {"address": "10.1.2.3", "roles": ["master"], "java": "17.0.15"}},
        source="hosts.toml",
    )
    again = SparkCluster.from_json(cluster.to_json())
    assert again == cluster
    assert again.address_of("m") == "10.1.2.3"
    assert again.address_of("localhost") == "127.0.0.1"
