"""Kafka release lines: version parsing, modes, artifacts."""

from __future__ import annotations

import pytest

from alertbench.errors import ConfigError
from alertbench.kafka.release import KafkaRelease, parse_release


@pytest.mark.parametrize(
    ("text", "version", "major", "minor"),
    [("4.3.1", "4.3.1", 4, 3), ("3.9.2", "3.9.2", 3, 9), (" 3.3.0 \n", "3.3.0", 3, 3)],
)
def test_parse_release_valid(text: str, version: str, major: int, minor: int) -> None:
    assert parse_release(text) == KafkaRelease(version=version, major=major, minor=minor)


@pytest.mark.parametrize("text", ["4.3", "latest", "4.3.1-rc1", "", "v4.3.1", "4.3.1.0"])
def test_parse_release_invalid(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_release(text)
    message = str(info.value)
    assert f"unknown Kafka version {text!r}" in message
    assert "4.3.1" in message


@pytest.mark.parametrize(
    ("version", "kraft", "zookeeper", "log4j2", "share"),
    [
        ("4.3.1", True, False, True, True),
        ("4.0.0", True, False, True, True),
        ("3.9.2", True, True, False, False),
        ("3.3.0", True, True, False, False),
        ("3.2.3", False, True, False, False),
        ("2.8.2", False, True, False, False),
    ],
)
def test_release_capabilities(
    version: str, kraft: bool, zookeeper: bool, log4j2: bool, share: bool
) -> None:
    r = parse_release(version)
    assert r.supports_kraft is kraft
    assert r.supports_zookeeper is zookeeper
    assert r.uses_log4j2 is log4j2
    assert r.has_share_groups is share


def test_check_mode_zookeeper_on_kafka_4() -> None:
    with pytest.raises(ConfigError, match=r"Kafka 4\.3\.1 has no ZooKeeper mode") as info:
        parse_release("4.3.1").check_mode("zookeeper")
    assert "3.9.2" in str(info.value)


def test_check_mode_kraft_before_3_3() -> None:
    with pytest.raises(ConfigError, match=r"Kafka 3\.2\.0 predates production KRaft"):
        parse_release("3.2.0").check_mode("kraft")


@pytest.mark.parametrize(
    ("version", "mode"), [("4.3.1", "kraft"), ("3.9.2", "kraft"), ("3.9.2", "zookeeper")]
)
def test_check_mode_accepts_supported(version: str, mode: str) -> None:
    assert parse_release(version).check_mode(mode) is None


def test_artifacts() -> None:
    assert parse_release("4.3.1").artifacts() == [
        "org.apache.kafka:kafka_2.13:4.3.1",
        "org.apache.kafka:kafka-tools:4.3.1",
    ]
    assert parse_release("3.9.2").artifacts() == [
        "org.apache.kafka:kafka_2.13:3.9.2",
        "org.apache.kafka:kafka-tools:3.9.2",
    ]
