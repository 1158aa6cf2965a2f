"""A secured KRaft node: SCRAM users, ACLs, TLS, and every refusal a real cluster makes."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError

from alertbench.errors import ClusterError, ConfigError
from alertbench.kafka.admin import create_topic, describe_cluster, list_topics
from alertbench.kafka.client import consume, produce
from alertbench.kafka.credentials import ADMIN_PROPERTIES, SECURITY_DIR
from alertbench.kafka.render import parse_properties
from alertbench.kafka.security import Connection, read_client_properties
from alertbench.kafka.tls import new_ca
from alertbench.kafka.users import Grant, add_user, list_users, remove_user
from conftest import running_cluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def secured(tmp_path_factory, kafka4):
    """One KRaft node: SASL_SSL (main) and SASL_PLAINTEXT listeners, ACLs on."""
    run = tmp_path_factory.mktemp("secured")
    with running_cluster(
        run, kafka4, nodes=1, mode="kraft", security="sasl_ssl", listeners=["sasl_plaintext"]
    ) as rc:
        create_topic(rc.admin, "granted", partitions=2)
        create_topic(rc.admin, "secret-topic", partitions=1)
        payloads = [f"alert-{i}".encode() * 100 for i in range(20)]
        report = produce(
            rc.admin, "granted", [(str(i).encode(), p) for i, p in enumerate(payloads)]
        )
        assert report.sent == 20
        assert not report.failed
        produce(rc.admin, "secret-topic", [(None, b"not for you")])
        yield rc, payloads


def _user(rc, tmp_path: Path, name: str, listener: str, **grant) -> Connection:
    out = tmp_path / f"{name}.properties"
    servers = rc.state.listeners[listener]
    ca = rc.cluster.state_dir / SECURITY_DIR / "ca.pem"
    add_user(
        rc.admin, name, Grant(**grant), protocol=listener, servers=servers, out=out, ca_file=ca
    )
    props = read_client_properties(out)
    return Connection.build(props.pop("bootstrap.servers"), props, source=out)


def test_secrets_are_private_and_stay_out_of_the_state_file(secured):
    rc, _ = secured
    admin_file = rc.cluster.state_dir / SECURITY_DIR / ADMIN_PROPERTIES
    password = read_client_properties(admin_file)["sasl.password"]
    node = rc.state.nodes[0]
    for secret in (
        admin_file,
        node.config_dir / "server.properties",
        node.config_dir / "tls" / "node.pem",
        rc.cluster.state_dir / SECURITY_DIR / "ca-key.pem",
    ):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert password not in rc.cluster.state_file.read_text()
    assert password not in (node.log_dir / "server.log").read_text()
    props = parse_properties((node.config_dir / "server.properties").read_text())
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"].startswith("CONTROLLER:SASL_SSL")
    assert set(rc.state.listeners) == {"sasl_ssl", "sasl_plaintext"}
    # The admin reaches the cluster over TLS with its SCRAM credentials.
    assert describe_cluster(rc.admin).brokers == [1]
    assert rc.admin.protocol == "sasl_ssl"


@pytest.mark.parametrize("listener", ["sasl_ssl", "sasl_plaintext"])
def test_a_user_reads_what_it_was_granted_and_nothing_else(secured, tmp_path, listener):
    rc, payloads = secured
    name = f"reader-{listener.replace('_', '-')}"
    user = _user(rc, tmp_path, name, listener, read=["gran*"], group_prefix=f"{name}-")
    assert stat.S_IMODE(Path(user.source).stat().st_mode) == 0o600
    got = consume(user, "granted", count=20, config={"group.id": f"{name}-g"})
    assert sorted(m[3] for m in got) == sorted(payloads)
    assert [t.name for t in list_topics(user)] == ["granted"]
    with pytest.raises(ClusterError, match=r"(?i)authoriz.*No ACL grants"):
        consume(user, "secret-topic", count=1, timeout=10, config={"group.id": f"{name}-g"})
    with pytest.raises(ClusterError, match=r"(?i)authoriz"):
        create_topic(user, "made-by-reader")
    # A group outside its prefix: the join is refused and no message is handed over.
    consumer = Consumer(user.conf({"group.id": "someone-else", "auto.offset.reset": "earliest"}))
    consumer.subscribe(["granted"])
    errors, messages = [], []
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        for m in consumer.consume(10, timeout=0.5):
            (errors if m.error() else messages).append(m)
    consumer.close()
    assert messages == []
    assert errors[0].error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_a_password_with_quotes_and_backslashes_reaches_librdkafka_and_java(
    secured, tmp_path, kafka4
):
    """Written raw into JAAS, this password would end early and add an option of its own."""
    import subprocess

    from alertbench.java import find_java
    from alertbench.kafka.render import format_properties

    rc, payloads = secured
    password = 'pa"ss\\word" required x="y\\'
    out = tmp_path / "quoted.properties"
    ca = rc.cluster.state_dir / SECURITY_DIR / "ca.pem"
    grant = Grant(read=["granted"], group_prefix="quoted-")
    servers = rc.state.listeners["sasl_ssl"]
    add_user(
        rc.admin, "quoted", grant, protocol="sasl_ssl", servers=servers, out=out,
        ca_file=ca, password=password,
    )  # fmt: skip
    props = read_client_properties(out)
    assert props["sasl.password"] == password
    user = Connection.build(props.pop("bootstrap.servers"), props, source=out)
    got = consume(user, "granted", count=20, config={"group.id": "quoted-librdkafka"})
    assert sorted(m[3] for m in got) == sorted(payloads)
    # Kafka's own Java consumer, given the Java client's properties as Spark gets them.
    java_file = tmp_path / "quoted-java.properties"
    java_file.write_text(format_properties(user.java_options(prefix="")))
    done = subprocess.run(
        [
            str(find_java().executable), "-cp", f"{kafka4.lib_dir}/*",
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server", servers, "--command-config", str(java_file),
            "--topic", "granted", "--group", "quoted-java", "--from-beginning",
            "--max-messages", "20", "--timeout-ms", "60000",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(done.stdout.split()) == sorted(p.decode() for p in payloads)
    # The same file, as a user would hand alertbench the one they use with Kafka's tools:
    # read as Java properties, its JAAS line and trust store translated for librdkafka.
    java_props = read_client_properties(java_file)
    assert java_props == {
        "bootstrap.servers": servers,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "quoted",
        "sasl.password": password,
        "ssl.ca.location": str(ca),
    }
    from_java_file = Connection.build(java_props.pop("bootstrap.servers"), java_props)
    got = consume(from_java_file, "granted", count=20, config={"group.id": "quoted-javafile"})
    assert sorted(m[3] for m in got) == sorted(payloads)
    # The password cut where a raw quote would end it is refused.
    wrong = Connection.build(servers, {**props, "sasl.password": "pa"})
    with pytest.raises(ClusterError, match="user name or password is wrong"):
        describe_cluster(wrong, timeout=10)
    with pytest.raises(ConfigError, match="line break"):
        add_user(
            rc.admin, "broken", grant, protocol="sasl_ssl", servers=servers,
            out=tmp_path / "broken.properties", ca_file=ca, password="two\nlines",
        )  # fmt: skip


def test_users_are_listed_and_removed(secured, tmp_path):
    rc, _ = secured
    user = _user(rc, tmp_path, "temp-user", "sasl_ssl", read=["granted"], write=["out-*"])
    found = {u.name: u for u in list_users(rc.admin)}
    assert found["temp-user"].mechanisms == ["SCRAM_SHA_512"]
    assert sorted(found["temp-user"].acls) == [
        "DESCRIBE topic granted",
        "DESCRIBE topic out-*",
        "READ group temp-user*",
        "READ topic granted",
        "WRITE topic out-*",
    ]
    assert "admin" in found
    assert remove_user(rc.admin, "temp-user") == 5
    assert "temp-user" not in {u.name for u in list_users(rc.admin)}
    with pytest.raises(ClusterError, match=r"(?i)authentication"):
        describe_cluster(user, timeout=10)
    with pytest.raises(ClusterError, match="no user 'temp-user'"):
        remove_user(rc.admin, "temp-user")


def test_wrong_password_unknown_user_and_anonymous_clients_are_refused(secured):
    rc, _ = secured
    good = rc.admin.props
    wrong = Connection.build(rc.bootstrap, {**good, "sasl.password": "not-the-password"})
    with pytest.raises(ClusterError, match="user name or password is wrong"):
        describe_cluster(wrong, timeout=10)
    stranger = Connection.build(rc.bootstrap, {**good, "sasl.username": "nobody"})
    with pytest.raises(ClusterError, match="user name or password is wrong"):
        describe_cluster(stranger, timeout=10)
    # No credentials at all, on either listener.
    for servers in rc.state.listeners.values():
        with pytest.raises(ClusterError, match="no Kafka broker answers"):
            describe_cluster(servers, timeout=5)


def test_a_client_that_does_not_trust_the_ca_is_refused(secured, tmp_path):
    rc, _ = secured
    other = tmp_path / "other-ca.pem"
    other.write_text(new_ca("someone else").cert)
    props = {**rc.admin.props, "ssl.ca.location": str(other)}
    with pytest.raises(ClusterError, match="does not trust the cluster's certificate"):
        describe_cluster(Connection.build(rc.bootstrap, props), timeout=8)


def test_kafka_commands_use_the_admin_found_in_the_run_dir(cli, tmp_path):
    """`kafka up --security` then `topic` and `user` commands with no credentials flag."""
    run = tmp_path / "run"
    up = cli("kafka", "up", "--security", "sasl_ssl", "--listener", "sasl_plaintext", run_dir=run)
    try:
        assert up.returncode == 0, up.stderr
        assert "SASL_SSL" in up.stdout
        assert "SASL_PLAINTEXT listener" in up.stdout
        admin_file = run / "kafka" / SECURITY_DIR / ADMIN_PROPERTIES
        password = read_client_properties(admin_file)["sasl.password"]
        assert password not in up.stdout + up.stderr
        made = cli("kafka", "topic", "create", "fink_x", "--partitions", "2", run_dir=run)
        assert made.returncode == 0, made.stderr
        added = cli(
            "kafka", "user", "add", "alice", "--read", "fink_*", "--listener", "sasl_plaintext",
            "--out", str(tmp_path / "alice.properties"), run_dir=run,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        alice = read_client_properties(tmp_path / "alice.properties")
        assert alice["security.protocol"] == "SASL_PLAINTEXT"
        assert alice["sasl.username"] == "alice"
        assert (
            alice["bootstrap.servers"]
            == json.loads((run / "kafka" / "state.json").read_text())["security"]["listeners"][
                "sasl_plaintext"
            ]
        )
        assert alice["sasl.password"] not in added.stdout
        listed = cli(
            "--client-config", str(tmp_path / "alice.properties"), "kafka", "topic", "list",
            run_dir=run,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "fink_x" in listed.stdout
        refused = cli(
            "--client-config", str(tmp_path / "alice.properties"), "kafka", "topic", "create",
            "nope", run_dir=run,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "No ACL grants this user that" in refused.stderr.replace("\n", " ")
        # A plain `up` confirms the secured cluster; status and the demo use the admin.
        again = cli("kafka", "up", run_dir=run)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        status = cli("kafka", "status", run_dir=run)
        assert status.returncode == 0, status.stderr
        assert "(SASL_SSL)" in status.stdout
        assert "fink_x" in status.stdout
        demo = cli("demo", "--count", "20", run_dir=run)
        assert demo.returncode == 0, demo.stderr
        said = " ".join(demo.stdout.split())
        assert "20 real alerts through Kafka topic 'alertbench-demo'" in said
        assert "every message read back equals its alert file, byte for byte" in said
        asked_other = cli("kafka", "up", "--security", "ssl", run_dir=run)
        assert asked_other.returncode == 1
        assert "you asked for ssl" in " ".join(asked_other.stderr.split())
        users = cli("kafka", "user", "list", run_dir=run)
        assert "alice" in users.stdout
        assert "READ topic fink_*" in users.stdout
        gone = cli("kafka", "user", "remove", "alice", run_dir=run)
        assert gone.returncode == 0
        assert "3 ACL(s)" in gone.stdout
    finally:
        down = cli("kafka", "down", "--purge", run_dir=run)
        assert down.returncode == 0, down.stderr


def test_bad_certificate_files_are_named_before_anything_starts(cli, tmp_path):
    run = tmp_path / "run"
    missing = tmp_path / "nowhere.pem"
    env = {"ALERTBENCH_KAFKA__TLS_CA_CERT": str(missing)}
    done = cli("kafka", "up", "--security", "sasl_ssl", run_dir=run, env=env)
    assert done.returncode == 1
    assert f"the CA certificate {missing} does not exist" in done.stderr.replace("\n", "")
    assert not (run / "kafka" / "state.json").exists()
    assert os.listdir(run / "kafka") == [] if (run / "kafka").exists() else True


def test_a_ca_of_your_own_signs_the_hosts(cli, tmp_path):
    """`tls_ca_cert` and `tls_ca_key`: alertbench issues host certificates with your CA."""
    from cryptography import x509

    ca = new_ca("our observatory CA")
    (tmp_path / "ca.pem").write_text(ca.cert)
    (tmp_path / "ca-key.pem").write_text(ca.key)
    run = tmp_path / "run"
    env = {
        "ALERTBENCH_KAFKA__TLS_CA_CERT": str(tmp_path / "ca.pem"),
        "ALERTBENCH_KAFKA__TLS_CA_KEY": str(tmp_path / "ca-key.pem"),
    }
    up = cli("kafka", "up", "--security", "sasl_ssl", run_dir=run, env=env)
    try:
        assert up.returncode == 0, up.stderr
        node_pem = (run / "kafka" / "node-1" / "config" / "tls" / "node.pem").read_text()
        host_cert, issuer = x509.load_pem_x509_certificates(node_pem.encode())
        assert issuer.subject.rfc4514_string() == "CN=our observatory CA"
        host_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert.encode()))
        listed = cli("kafka", "topic", "list", run_dir=run, env=env)
        assert listed.returncode == 0, listed.stderr
    finally:
        assert cli("kafka", "down", "--purge", run_dir=run).returncode == 0
