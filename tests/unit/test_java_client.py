"""A Java client's properties file (Kafka's tools' format) read for alertbench's clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertbench.errors import ConfigError
from alertbench.kafka.java_client import from_java, jaas_options
from alertbench.kafka.render import format_properties, parse_properties
from alertbench.kafka.security import jaas, read_client_properties

# As a user keeps it for kafka-console-consumer: a continued JAAS line, a ':' separator,
# Java's escapes (the password is p\w"d;x, in JAAS's quoting, in a properties file).
JAVA_FILE = r"""# consumer.properties
bootstrap.servers=host1\:24499,host2\:24499
security.protocol : SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="alice" \
    password="p\\\\w\\"d;x";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/ca.pem
ssl.endpoint.identification.algorithm=
client.id=alice-laptop
"""


def test_a_java_clients_file_is_read_as_java_reads_it_and_translated(tmp_path: Path) -> None:
    path = tmp_path / "consumer.properties"
    path.write_text(JAVA_FILE)
    assert read_client_properties(path) == {
        "bootstrap.servers": "host1:24499,host2:24499",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": 'p\\w"d;x',
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.endpoint.identification.algorithm": "none",
        "client.id": "alice-laptop",
    }


def test_librdkafkas_own_files_keep_their_values_as_they_are(tmp_path: Path) -> None:
    # What `kafka user add` writes: librdkafka reads values literally, backslashes and all.
    path = tmp_path / "user.properties"
    path.write_text('security.protocol=sasl_ssl\nsasl.username=bob\nsasl.password=a\\b"c\n')
    assert read_client_properties(path)["sasl.password"] == 'a\\b"c'


def test_what_alertbench_writes_for_java_reads_back_whole() -> None:
    password = 'pa"ss\\word" required x="y\\'
    line = jaas("org.apache.kafka.common.security.scram.ScramLoginModule", "q", password)
    text = format_properties({"sasl.jaas.config": line, "listeners": "SASL_SSL://h:1"})
    assert parse_properties(text) == {"sasl.jaas.config": line, "listeners": "SASL_SSL://h:1"}
    assert jaas_options(line) == {"username": "q", "password": password}
    assert from_java(text, "f")["sasl.password"] == password


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "ssl.truststore.location=/etc/kafka/truststore.jks\n",
            r"ssl.truststore.location is a JKS store.*keytool -exportcert -rfc",
        ),
        (
            "sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n",
            "alertbench's clients log in with SCRAM or PLAIN",
        ),
        (
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required;\n",
            "names no username and password",
        ),
    ],
)
def test_what_librdkafka_cannot_take_is_named(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"^client.properties: .*{says}"):
        from_java(text, "client.properties")


def test_a_pkcs12_key_store_passes_to_librdkafka() -> None:
    text = (
        "ssl.keystore.type=PKCS12\nssl.keystore.location=/k/me.p12\nssl.keystore.password=s\n"
        "ssl.truststore.type=PEM\nssl.truststore.location=/k/ca.pem\n"
    )
    assert from_java(text, "f") == {
        "ssl.keystore.location": "/k/me.p12",
        "ssl.keystore.password": "s",
        "ssl.ca.location": "/k/ca.pem",
    }
