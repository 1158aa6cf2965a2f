"""Security without a JVM: rendered properties, client properties, certificates, ACLs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alertbench.errors import ConfigError
from alertbench.kafka.release import parse_release
from alertbench.kafka.render import Secured, server_properties
from alertbench.kafka.security import (
    Connection,
    NodeSecurity,
    java_properties,
    read_client_properties,
    scram_credential,
)
from alertbench.kafka.state import local_inventory
from alertbench.kafka.tls import issue, load_ca, load_host_pair, new_ca
from alertbench.kafka.users import Grant, acl_bindings

K4 = parse_release("4.3.1")
K3 = parse_release("3.9.2")


def _props(tmp_path, mode="kraft", protocol="sasl_ssl", listeners=("sasl_plaintext",), nodes=1):
    inv = local_inventory(
        tmp_path, nodes=nodes, mode=mode, base_port=30000, listeners=list(listeners)
    )
    sec = NodeSecurity(protocol, list(listeners), "adminpw", "ctrlpw")
    secured = Secured(sec, config_dir_of=lambda h: tmp_path / h.name / "config")
    release = K4 if mode == "kraft" else K3
    return inv, [server_properties(inv, h, release, secured=secured) for h in inv.hosts]


def test_kraft_sasl_ssl_node_has_a_listener_per_protocol_and_acls(tmp_path):
    _, (props,) = _props(tmp_path)
    assert props["listeners"] == (
        "SASL_SSL://127.0.0.1:30000,SASL_PLAINTEXT://127.0.0.1:30007,CONTROLLER://127.0.0.1:30001"
    )
    assert (
        props["advertised.listeners"]
        == "SASL_SSL://127.0.0.1:30000,SASL_PLAINTEXT://127.0.0.1:30007"
    )
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    for listener in ("sasl_ssl", "sasl_plaintext"):
        jaas = props[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
        assert jaas == (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="admin" password="adminpw";'
        )
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="controller" password="ctrlpw" user_controller="ctrlpw";'
    )
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["super.users"] == "User:admin;User:controller"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(tmp_path / "node-1/config/tls/node.pem")
    assert props["ssl.truststore.location"] == str(tmp_path / "node-1/config/tls/ca.pem")


def test_zookeeper_mode_uses_the_acl_authorizer_and_no_controller_listener(tmp_path):
    _, props = _props(tmp_path, mode="zookeeper", listeners=())
    assert props[0]["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
    assert props[0]["listeners"] == "SASL_SSL://127.0.0.1:30000"
    assert props[0]["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL"
    assert "sasl.mechanism.controller.protocol" not in props[0]
    assert props[0]["super.users"] == "User:admin"


def test_mutual_tls_makes_node_certificates_super_users(tmp_path):
    _, props = _props(tmp_path, protocol="ssl", listeners=(), nodes=3)
    for p in props:
        assert p["listener.security.protocol.map"] == "CONTROLLER:SSL,SSL:SSL"
        assert p["ssl.client.auth"] == "required"
        assert p["ssl.principal.mapping.rules"] == "RULE:^CN=([^,]+)$/$1/,DEFAULT"
        assert p["super.users"] == "User:admin;User:node-1;User:node-2;User:node-3"
        assert "sasl.enabled.mechanisms" not in p


def test_plaintext_stays_as_it_was(tmp_path):
    inv = local_inventory(tmp_path, nodes=1, mode="kraft", base_port=30000)
    props = server_properties(inv, inv.hosts[0], K4)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert "authorizer.class.name" not in props


def test_an_extra_listener_without_a_port_names_the_host(tmp_path):
    inv = local_inventory(tmp_path, nodes=1, mode="kraft", base_port=30000)
    secured = Secured(NodeSecurity("sasl_ssl", ["sasl_plaintext"]))
    with pytest.raises(ConfigError, match=r"host node-1 has no port for its sasl_plaintext"):
        server_properties(inv, inv.hosts[0], K4, secured=secured)


def test_secured_extras_need_a_secured_main_listener():
    with pytest.raises(ConfigError, match="alertbench's own clients"):
        NodeSecurity("plaintext", ["sasl_ssl"]).check()
    with pytest.raises(ConfigError, match="unknown security protocol 'sasl_tls'"):
        NodeSecurity("sasl_tls").check()


def test_java_client_properties_carry_the_same_credentials():
    props = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }
    assert java_properties(props) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="alice" password="pw";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/ca.pem",
    }
    mtls = java_properties(
        {
            "security.protocol": "ssl",
            "ssl.ca.location": "/ca.pem",
            "ssl.certificate.location": "/me.pem",
            "ssl.key.location": "/me.pem",
        }
    )
    assert mtls["ssl.keystore.type"] == "PEM"
    assert mtls["ssl.keystore.location"] == "/me.pem"
    conn = Connection.build("h:1", props)
    assert conn.java_options()["kafka.bootstrap.servers"] == "h:1"
    assert conn.java_options()["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    with pytest.raises(ConfigError, match="GSSAPI cannot be handed to Spark"):
        java_properties({"security.protocol": "sasl_ssl", "sasl.mechanism": "GSSAPI"})


def test_a_connection_never_shows_its_password():
    conn = Connection.build("h:1", {"security.protocol": "SASL_SSL", "sasl.password": "s3cret"})
    assert "s3cret" not in repr(conn)
    assert "s3cret" not in conn.describe()
    assert conn.redacted()["sasl.password"] == "[hidden]"
    assert conn.conf()["sasl.password"] == "s3cret"
    assert Connection.of("h:2") == Connection("h:2")


def test_scram_credential_is_rfc5802_salted_password():
    cred = scram_credential("pencil", iterations=4096)
    salt = base64.b64decode(cred["salt"])
    assert len(salt) == 32
    assert base64.b64decode(cred["saltedpassword"]) == hashlib.pbkdf2_hmac(
        "sha512", b"pencil", salt, 4096
    )
    assert cred["iterations"] == "4096"


def test_client_properties_errors_name_the_file_and_line(tmp_path):
    f = tmp_path / "c.properties"
    f.write_text("# comment\nsecurity.protocol=SASL_SSL\nno equals here\n")
    with pytest.raises(ConfigError, match=rf"{f}, line 3: expected key=value"):
        read_client_properties(f)
    f.write_text("security.protocol=kerberos\n")
    with pytest.raises(ConfigError, match="unknown security protocol 'kerberos'"):
        read_client_properties(f)
    with pytest.raises(ConfigError, match="does not exist"):
        read_client_properties(tmp_path / "nope.properties")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_issued_certificates_name_the_host_and_chain_to_the_ca(tmp_path):
    ca = new_ca()
    pair = issue(ca, "node-1", ["10.0.0.7", "kafka-1.example"])
    cert, ca_cert = x509.load_pem_x509_certificates(pair.cert.encode())
    cert.verify_directly_issued_by(ca_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert sans.get_values_for_type(x509.DNSName) == ["kafka-1.example"]
    assert cert.subject.rfc4514_string() == "CN=node-1"
    got = load_host_pair(
        _write(tmp_path / "c.pem", pair.cert),
        _write(tmp_path / "k.pem", pair.key),
        "10.0.0.7",
        ca.cert,
    )
    assert got.cert == pair.cert


def _expired_pair(ca_pem_key) -> tuple[str, str]:
    ca_key = serialization.load_pem_private_key(ca_pem_key.key.encode(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_pem_key.cert.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("old.example")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_bad_certificate_files_are_refused_with_what_to_fix(tmp_path):
    ca = new_ca()
    pair = issue(ca, "node-1", ["10.0.0.7"])
    other = issue(ca, "node-2", ["10.0.0.8"])
    cert = _write(tmp_path / "cert.pem", pair.cert)
    key = _write(tmp_path / "key.pem", pair.key)
    with pytest.raises(ConfigError, match=r"certificate .*missing.pem does not exist"):
        load_host_pair(tmp_path / "missing.pem", key, "10.0.0.7", ca.cert)
    with pytest.raises(ConfigError, match=r"cannot be read"):
        load_host_pair(tmp_path, key, "10.0.0.7", ca.cert)
    with pytest.raises(ConfigError, match=r"does not belong to the certificate"):
        load_host_pair(cert, _write(tmp_path / "k2.pem", other.key), "10.0.0.7", ca.cert)
    with pytest.raises(ConfigError, match=r"does not name the host's address 10\.0\.0\.9"):
        load_host_pair(cert, key, "10.0.0.9", ca.cert)
    with pytest.raises(ConfigError, match=r"not by the CA clients are told to trust"):
        load_host_pair(cert, key, "10.0.0.7", new_ca("another").cert)
    old_cert, old_key = _expired_pair(ca)
    with pytest.raises(ConfigError, match=r"expired on"):
        load_host_pair(
            _write(tmp_path / "old.pem", old_cert),
            _write(tmp_path / "old-key.pem", old_key),
            "old.example",
            ca.cert,
        )
    with pytest.raises(ConfigError, match=r"holds no PEM certificate"):
        load_host_pair(_write(tmp_path / "junk.pem", "hello"), key, "10.0.0.7", ca.cert)
    with pytest.raises(ConfigError, match=r"does not belong to the certificate"):
        load_ca(_write(tmp_path / "ca.pem", ca.cert), _write(tmp_path / "ca-key.pem", pair.key))


def test_acls_give_exactly_what_was_granted():
    bindings = acl_bindings("alice", Grant(read=["fink_*", "exact"], write=["out"]))
    seen = {
        f"{b.operation.name} {b.restype.name} {b.resource_pattern_type.name} {b.name}"
        for b in bindings
    }
    assert {b.principal for b in bindings} == {"User:alice"}
    assert seen == {
        "READ TOPIC PREFIXED fink_",
        "DESCRIBE TOPIC PREFIXED fink_",
        "READ TOPIC LITERAL exact",
        "DESCRIBE TOPIC LITERAL exact",
        "WRITE TOPIC LITERAL out",
        "DESCRIBE TOPIC LITERAL out",
        "READ GROUP PREFIXED alice",
    }


def test_kafka_config_renders_a_secured_inventory_with_private_key_stores(tmp_path):
    import json
    import stat

    from typer.testing import CliRunner

    from alertbench.cli import app
    from alertbench.kafka.render import parse_properties

    inv = tmp_path / "inv.toml"
    inv.write_text(
        'mode = "kraft"\nsecurity = "sasl_ssl"\nlisteners = ["sasl_plaintext"]\n'
        '[defaults]\nlistener_ports = { sasl_plaintext = 24502 }\ninstall_dir = "/opt/ab"\n'
        '[[hosts]]\nname = "k1"\naddress = "10.0.0.1"\n'
        '[[hosts]]\nname = "k2"\naddress = "10.0.0.2"\n'
    )
    out = tmp_path / "cfg"
    done = CliRunner().invoke(
        app, ["--run-dir", str(tmp_path / "run"), "kafka", "config", "-i", str(inv), "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    props = parse_properties((out / "k2" / "server.properties").read_text())
    assert props["listeners"] == (
        "SASL_SSL://10.0.0.2:24499,SASL_PLAINTEXT://10.0.0.2:24502,CONTROLLER://10.0.0.2:24500"
    )
    assert props["ssl.keystore.location"] == "/opt/ab/k2/config/tls/node.pem"
    for secret in ("k2/server.properties", "k2/tls/node.pem", "security/ca-key.pem"):
        assert stat.S_IMODE((out / secret).stat().st_mode) == 0o600, secret
    cert = x509.load_pem_x509_certificates((out / "k2" / "tls" / "node.pem").read_bytes())[0]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.2"]
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["security"] == ["sasl_ssl", "sasl_plaintext"]
    admin = read_client_properties(out / "security" / "admin.properties")
    assert admin["bootstrap.servers"] == "10.0.0.1:24499,10.0.0.2:24499"
    assert admin["sasl.password"] not in done.output


def test_jaas_values_are_escaped_as_kafkas_parser_reads_them() -> None:
    from alertbench.kafka.security import jaas

    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert jaas(module, "bob", 'a"b\\c') == (
        f'{module} required username="bob" password="a\\"b\\\\c";'
    )
    with pytest.raises(ConfigError, match="password has a line break"):
        jaas(module, "bob", "a\nb")


def test_properties_files_double_backslashes_and_read_back_whole() -> None:
    from alertbench.kafka.render import format_properties, parse_properties

    props = {"sasl.jaas.config": 'M required password="a\\"b\\\\c";', "log.dirs": "/data/x"}
    text = format_properties(props)
    assert text == 'sasl.jaas.config=M required password="a\\\\"b\\\\\\\\c";\nlog.dirs=/data/x\n'
    assert parse_properties(text) == props


def test_a_topic_read_and_written_is_described_once():
    # Kafka's admin refuses a request holding the same binding twice.
    bindings = acl_bindings("bob", Grant(read=["out-*"], write=["out-*"], group_prefix="b"))
    assert sorted(f"{b.operation.name} {b.name}" for b in bindings) == [
        "DESCRIBE out-",
        "READ b",
        "READ out-",
        "WRITE out-",
    ]
