"""Getting Kafka: cached fetches work offline, bad versions and networks are explained."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from alertbench.config import load_settings
from alertbench.errors import ConfigError, FetchError
from alertbench.kafka.fetch import fetch_kafka, kafka_cache_dir, kafka_from_home, resolve_kafka

pytestmark = pytest.mark.kafka


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/maven2"


def test_fetched_kafka_has_broker_tools_and_logging(kafka4):
    names = [j.name for j in kafka4.jars]
    assert "org.apache.kafka.kafka_2.13-4.3.1.jar" in names
    assert "org.apache.kafka.kafka-tools-4.3.1.jar" in names  # ProducerPerformance
    assert any(n.startswith("org.apache.logging.log4j.log4j-slf4j-impl-") for n in names)
    manifest = json.loads((kafka4.lib_dir.parent / "manifest.json").read_text())
    assert manifest["jars"] == sorted(names)
    assert manifest["version"] == "4.3.1"


def test_zookeeper_line_has_zookeeper_and_reload4j(kafka3):
    names = [j.name for j in kafka3.jars]
    assert any(n.startswith("org.apache.zookeeper.zookeeper-3.") for n in names)
    assert any(n.startswith("org.slf4j.slf4j-reload4j-") for n in names)
    assert "ch.qos.reload4j.reload4j-1.2.25.jar" in names


def test_second_fetch_needs_no_network(kafka4, tmp_path: Path):
    offline = load_settings(run_dir=tmp_path, kafka={"maven_repository": _dead_url()})
    again = fetch_kafka(offline, "4.3.1")
    assert again.lib_dir == kafka4.lib_dir
    assert again.jars == kafka4.jars


def test_unknown_version_is_named(kafka4, tmp_path: Path):
    settings = load_settings(run_dir=tmp_path)
    with pytest.raises(FetchError, match=r"kafka_2\.13:jar:9\.9\.9.*does not exist"):
        fetch_kafka(settings, "9.9.9")
    assert not (kafka_cache_dir(settings, "9.9.9") / "manifest.json").exists()
    with pytest.raises(ConfigError, match=r"versions look like 4\.3\.1"):
        fetch_kafka(settings, "latest")


def test_unreachable_repository_is_named(tmp_path: Path):
    url = _dead_url()
    # A fresh cache: nothing can come from an earlier fetch.
    settings = load_settings(cache_dir=tmp_path / "cache", kafka={"maven_repository": url})
    with pytest.raises(FetchError) as err:
        fetch_kafka(settings, "4.3.1")
    message = str(err.value)
    assert url in message
    assert "cannot reach" in message or "cannot be downloaded" in message


def test_unpacked_distribution_is_used_as_is(kafka4, tmp_path: Path):
    home = tmp_path / "kafka_2.13-4.3.1"
    libs = home / "libs"
    libs.mkdir(parents=True)
    # The official tarball's layout: libs/ with plain artifact-version names.
    for jar in kafka4.jars:
        (libs / jar.name.removeprefix("org.apache.kafka.")).symlink_to(jar)
    install = kafka_from_home(home)
    assert install.release.version == "4.3.1"
    assert install.source == "home"
    settings = load_settings(run_dir=tmp_path, kafka={"home": home})
    assert resolve_kafka(settings).lib_dir == libs
    with pytest.raises(FetchError, match="not an unpacked Kafka distribution"):
        kafka_from_home(tmp_path)
