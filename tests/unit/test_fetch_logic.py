"""Pure parts of fetching Kafka: logging bindings, Maven error messages, the POM."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from alertbench.config import Settings, load_settings
from alertbench.errors import FetchError
from alertbench.kafka.fetch import RELOAD4J_VERSION, _pom, explain_maven_failure, logging_bindings
from alertbench.kafka.release import parse_release

KAFKA_4_JARS = [
    "org.apache.kafka.kafka_2.13-4.3.1.jar",
    "org.apache.kafka.kafka-clients-4.3.1.jar",
    "org.apache.logging.log4j.log4j-api-2.25.4.jar",
    "org.apache.logging.log4j.log4j-core-2.25.4.jar",
    "org.slf4j.slf4j-api-1.7.36.jar",
]

NOT_FOUND = (
    "[ERROR] Failed to execute goal on project kafka: Could not resolve dependencies for "
    "project alertbench.runtime:kafka:pom:1: Could not find artifact "
    "org.apache.kafka:kafka_2.13:jar:9.9.9 in alertbench (https://repo1.maven.org/maven2) "
    "-> [Help 1]"
)

UNREACHABLE = (
    "[ERROR] Plugin org.apache.maven.plugins:maven-dependency-plugin:3.8.1 or one of its "
    "dependencies could not be resolved: Failed to read artifact descriptor for "
    "org.apache.maven.plugins:maven-dependency-plugin:jar:3.8.1: Could not transfer artifact "
    "org.apache.maven.plugins:maven-dependency-plugin:pom:3.8.1 from/to alertbench "
    "(http://127.0.0.1:9): Connect to 127.0.0.1:9 [/127.0.0.1] failed: Connection refused "
    "-> [Help 1]"
)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name in list(os.environ):
        if name.upper().startswith("ALERTBENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return load_settings()


def test_kafka_4_with_slf4j_1_gets_log4j_slf4j_impl() -> None:
    assert logging_bindings(parse_release("4.3.1"), KAFKA_4_JARS) == [
        "org.apache.logging.log4j:log4j-slf4j-impl:2.25.4"
    ]


def test_kafka_4_with_slf4j_2_gets_log4j_slf4j2_impl() -> None:
    names = [n.replace("slf4j-api-1.7.36", "slf4j-api-2.0.17") for n in KAFKA_4_JARS]
    assert logging_bindings(parse_release("4.3.1"), names) == [
        "org.apache.logging.log4j:log4j-slf4j2-impl:2.25.4"
    ]


@pytest.mark.parametrize(
    "binding",
    [
        "org.apache.logging.log4j.log4j-slf4j-impl-2.25.4.jar",
        "org.apache.logging.log4j.log4j-slf4j2-impl-2.25.4.jar",
        "org.slf4j.slf4j-reload4j-1.7.36.jar",
        "org.slf4j.slf4j-log4j12-1.7.36.jar",
    ],
)
def test_binding_already_present(binding: str) -> None:
    assert logging_bindings(parse_release("4.3.1"), [*KAFKA_4_JARS, binding]) == []
    assert (
        logging_bindings(parse_release("3.9.2"), ["org.slf4j.slf4j-api-1.7.36.jar", binding]) == []
    )


def test_kafka_3_gets_reload4j() -> None:
    names = ["org.apache.kafka.kafka_2.13-3.9.2.jar", "org.slf4j.slf4j-api-1.7.36.jar"]
    assert logging_bindings(parse_release("3.9.2"), names) == [
        "org.slf4j:slf4j-reload4j:1.7.36",
        f"ch.qos.reload4j:reload4j:{RELOAD4J_VERSION}",
    ]
    assert RELOAD4J_VERSION == "1.2.25"


def test_kafka_3_without_slf4j_api_uses_1_7_36() -> None:
    assert logging_bindings(parse_release("3.9.2"), []) == [
        "org.slf4j:slf4j-reload4j:1.7.36",
        "ch.qos.reload4j:reload4j:1.2.25",
    ]


def test_kafka_4_without_log4j_core_is_an_error() -> None:
    names = [n for n in KAFKA_4_JARS if "log4j-core" not in n]
    with pytest.raises(FetchError, match=r"Kafka 4\.3\.1 resolved without log4j-core"):
        logging_bindings(parse_release("4.3.1"), names)


def test_explain_not_found(settings: Settings) -> None:
    message = explain_maven_failure(NOT_FOUND, ["org.apache.kafka:kafka_2.13:9.9.9"], settings)
    assert "org.apache.kafka:kafka_2.13:jar:9.9.9" in message
    assert "does not exist" in message
    assert message.startswith(
        "org.apache.kafka:kafka_2.13:jar:9.9.9 is not in https://repo1.maven.org/maven2"
    )
    assert "cannot reach" not in message


def test_explain_unreachable(settings: Settings) -> None:
    artifacts = ["org.apache.kafka:kafka_2.13:4.3.1", "org.apache.kafka:kafka-tools:4.3.1"]
    message = explain_maven_failure(UNREACHABLE, artifacts, settings)
    assert "cannot reach" in message
    assert settings.kafka.maven_repository in message
    assert "org.apache.kafka:kafka_2.13:4.3.1, org.apache.kafka:kafka-tools:4.3.1" in message
    assert "does not exist" not in message


def test_explain_unreachable_names_configured_mirror(settings: Settings) -> None:
    # `settings` cleaned the environment; build one with the mirror as a flag.
    mirror = load_settings(kafka={"maven_repository": "http://127.0.0.1:9"})
    message = explain_maven_failure(UNREACHABLE, ["g:a:1"], mirror)
    assert message.startswith(
        "cannot reach the Maven repository http://127.0.0.1:9 to fetch g:a:1."
    )


def test_explain_other_failure_keeps_error_lines(settings: Settings) -> None:
    output = "[INFO] scanning\n[ERROR] something odd happened\n[ERROR] and more\n"
    message = explain_maven_failure(output, ["g:a:1"], settings)
    assert message == (
        "Maven failed to resolve g:a:1:\n[ERROR] something odd happened\n[ERROR] and more"
    )


def test_pom_is_well_formed_with_the_dependency() -> None:
    root = ET.fromstring(_pom(["g:a:1"]))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    assert root.tag == "{http://maven.apache.org/POM/4.0.0}project"
    assert root.findtext("m:modelVersion", namespaces=ns) == "4.0.0"
    assert root.findtext("m:packaging", namespaces=ns) == "pom"
    deps = root.findall("m:dependencies/m:dependency", ns)
    assert [
        (
            d.findtext("m:groupId", namespaces=ns),
            d.findtext("m:artifactId", namespaces=ns),
            d.findtext("m:version", namespaces=ns),
        )
        for d in deps
    ] == [("g", "a", "1")]


def test_pom_escapes_and_keeps_order() -> None:
    root = ET.fromstring(_pom(["org.x:a&b:1<2", "org.y:c:2"]))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = root.findall("m:dependencies/m:dependency", ns)
    assert [d.findtext("m:artifactId", namespaces=ns) for d in deps] == ["a&b", "c"]
    assert deps[0].findtext("m:version", namespaces=ns) == "1<2"
