"""Each kind of client's file, and the SCRAM warning, from one user's properties."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import javaproperties
import pytest

from alertbench.errors import ConfigError
from alertbench.kafka.client_check import is_kafka_4, scram_warning
from alertbench.kafka.client_files import (
    java_text,
    kafka_python_kwargs,
    sibling,
    write_formats,
)
from alertbench.kafka.java_client import from_java

PASSWORD = 'p"a\\ss: w=ré'
PROPS = {
    "bootstrap.servers": "h1:24499,h2:24499",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "bob",
    "sasl.password": PASSWORD,
    "ssl.ca.location": "/etc/kafka/ca.pem",
}


def test_the_java_file_reads_back_as_java_reads_it_and_translates_to_the_same_properties():
    text = java_text(PROPS, header="Kafka user bob")
    assert text.startswith("# Kafka user bob\n")
    assert text.isascii()  # Kafka's tools read the file as ISO-8859-1: é is \\u00e9
    java = javaproperties.loads(text)
    assert java == {
        "bootstrap.servers": "h1:24499,h2:24499",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="bob" password="p\\"a\\\\ss: w=ré";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/kafka/ca.pem",
    }
    assert from_java(text, "bob.java.properties") == PROPS


def test_kafka_pythons_arguments_name_the_same_facts():
    assert kafka_python_kwargs(PROPS) == {
        "bootstrap_servers": ["h1:24499", "h2:24499"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "bob",
        "sasl_plain_password": PASSWORD,
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_check_hostname": True,
    }
    plain = {"bootstrap.servers": "h:1", "security.protocol": "PLAINTEXT"}
    assert kafka_python_kwargs(plain) == {
        "bootstrap_servers": ["h:1"],
        "security_protocol": "PLAINTEXT",
    }
    unchecked = {**PROPS, "ssl.endpoint.identification.algorithm": "none"}
    assert kafka_python_kwargs(unchecked)["ssl_check_hostname"] is False


def test_the_files_go_beside_the_librdkafka_one_private(tmp_path: Path):
    base = tmp_path / "bob.properties"
    written = write_formats(base, PROPS, ["librdkafka", "java", "kafka-python", "java"])
    assert written == [tmp_path / "bob.java.properties", tmp_path / "bob.kafka-python.json"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(written[1].read_text())["sasl_plain_password"] == PASSWORD
    assert sibling(tmp_path / "x.cfg", "java") == tmp_path / "x.cfg.java.properties"
    with pytest.raises(ConfigError, match=r"unknown client file format 'yaml'.*java"):
        write_formats(base, PROPS, ["yaml"])


def test_the_scram_warning_is_for_scram_on_kafka_4_only():
    warning = scram_warning("sasl_ssl", "SCRAM-SHA-512", kafka_4=True)
    assert "librdkafka before 2.6.1" in warning
    assert "kcat from Debian 12" in warning
    assert "--mode zookeeper" in warning
    assert scram_warning("sasl_ssl", "SCRAM-SHA-512", kafka_4=False) is None
    assert scram_warning("sasl_ssl", "SCRAM-SHA-512", kafka_4=None) is None
    assert scram_warning("sasl_plaintext", "PLAIN", kafka_4=True) is None
    assert scram_warning("ssl", None, kafka_4=True) is None


def test_kafka_4_is_told_by_the_fetch_versions_it_dropped():
    # ApiVersions answers seen from Kafka 4.3.1 and 3.9.2 (Fetch is API key 1).
    assert is_kafka_4({0: (0, 13), 1: (4, 18), 18: (0, 4)})
    assert not is_kafka_4({0: (0, 11), 1: (0, 17), 18: (0, 4)})
