"""Every client the field uses, on alertbench's clusters: a compatibility matrix.

Each cell is one real client (none written here), one Kafka (4.3.1 in KRaft
mode, 3.9.2 in ZooKeeper mode) and one listener (PLAINTEXT, SASL_PLAINTEXT,
SASL_SSL with SCRAM-SHA-512 and alertbench's CA). In a cell the client, given
the file ``kafka user add`` wrote for its kind, reads 5 real ZTF alerts from a
granted topic (ids and SHA-256 of the bytes asserted), writes them to a
granted topic (read back by the admin, ids and bytes asserted), reads 0 from
an ungranted topic, and, on SASL_SSL, reads 0 when it trusts another CA. The
user's password holds ``"`` and ``\\``, which every file must carry.

Where a client cannot connect the cell asserts that, in the client's words:
Debian's kcat (librdkafka 2.0.2) on Kafka 4.x, whose strict SCRAM check
refuses librdkafka's doubled nonce; ``kafka check-client`` on the same file
confirms the credentials and names the cause. fink-client logs in over
SASL_PLAINTEXT only (it sets the protocol itself): no SASL_SSL cell.

The CI runs the cells of Kafka 4.3.1 over SASL_SSL (every client, the way
Rubin's and the brokers' streams are served) and kcat's on 3.9.2; the rest
are ``long``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import javaproperties
import pytest
from confluent_kafka import Consumer, Producer

from alertbench.config import load_settings
from alertbench.java import find_java
from alertbench.kafka.admin import admin_client, create_topic
from alertbench.kafka.client import produce
from alertbench.kafka.client_files import sibling, write_formats
from alertbench.kafka.credentials import CA_CERT, SECURITY_DIR
from alertbench.kafka.security import read_client_properties, write_client_properties
from alertbench.kafka.tls import new_ca
from alertbench.kafka.users import Grant, acl_bindings, add_user
from conftest import read_messages, running_cluster

CLIENTS_DIR = Path(__file__).parents[1] / "clients"
VERSIONS = {"4.3.1": "kraft", "3.9.2": "zookeeper"}
PROTOCOLS = ("plaintext", "sasl_plaintext", "sasl_ssl")
CLIENTS = ("confluent-kafka", "java", "kcat", "kafka-python", "aiokafka", "kafkajs", "fink-client")
KAFKAJS = "2.2.4"
N = 5
PASSWORD = 'm"atrix\\pass'
GRANT = Grant(
    read=["matrix-in", "matrix-fink", "matrix-out-*"],
    write=["matrix-out-*"],
    group_prefix="matrix-",
)
#: Cells whose client cannot log in, and the words it says it with.
REFUSED = {
    ("kcat", "4.3.1", proto): "invalid credentials with SASL mechanism SCRAM-SHA-512"
    for proto in ("sasl_plaintext", "sasl_ssl")
}
IN_CI = {(c, "4.3.1", "sasl_ssl") for c in CLIENTS} | {("kcat", "3.9.2", "sasl_ssl")}


@dataclass
class Read:
    """What a client read: ``(key, sha256 of the value)`` pairs, and its error if any."""

    records: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""


@dataclass
class Matrix:
    """One cluster of the matrix: its files per listener, and what it holds."""

    rc: object
    version: str
    lib_dir: Path
    files: dict[str, Path]
    untrusted: Path
    payloads: Path
    expected: dict[str, str]
    fink_expected: dict[int, str]


def _cells():
    for proto in PROTOCOLS:
        for client in CLIENTS:
            if client == "fink-client" and proto == "sasl_ssl":
                continue  # fink-client sets SASL_PLAINTEXT itself
            yield pytest.param(proto, client, id=f"{proto}-{client}")


@pytest.fixture(scope="module")
def kafkajs_home() -> Path:
    """kafkajs from the npm registry, installed once into alertbench's cache."""
    home = load_settings().cache_dir / "clients" / f"kafkajs-{KAFKAJS}"
    if not (home / "node_modules" / "kafkajs" / "package.json").exists():
        if shutil.which("npm") is None:
            pytest.skip("kafkajs needs Node.js and npm")
        subprocess.run(
            ["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund",
             f"kafkajs@{KAFKAJS}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return home


def _fink_record(path: Path) -> tuple[bytes, bytes, dict]:
    """An alert as Fink distributes it: the schema as key, the record schemaless."""
    with path.open("rb") as f:
        reader = fastavro.reader(f)
        schema, record = reader.writer_schema, next(reader)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return json.dumps(schema).encode(), out.getvalue(), record


def _files(path: Path, props: dict[str, str]) -> Path:
    write_client_properties(path, props)
    write_formats(path, props, ["java", "kafka-python"])
    return path


# One cluster per version, shared by its cells. (Parametrized here, not per cell:
# a module fixture is set up anew for every distinct parameter set of a test.)
@pytest.fixture(scope="module", params=list(VERSIONS))
def matrix(request, tmp_path_factory, alert_files) -> Iterator[Matrix]:
    version = request.param
    install = request.getfixturevalue("kafka4" if version.startswith("4") else "kafka3")
    root = tmp_path_factory.mktemp(f"matrix-{version}")
    with running_cluster(
        root / "run", install, nodes=1, mode=VERSIONS[version], security="sasl_ssl",
        listeners=["sasl_plaintext", "plaintext"],
    ) as rc:  # fmt: skip
        admin = rc.admin
        for topic in ("matrix-in", "matrix-fink", "matrix-ungranted"):
            create_topic(admin, topic, partitions=2)
        payloads = root / "payloads"
        payloads.mkdir()
        chosen = alert_files[:N]
        for f in chosen:
            (payloads / f"{f.stem}.avro").write_bytes(f.read_bytes())
        messages = [(f.stem.encode(), f.read_bytes()) for f in chosen]
        fink = [_fink_record(f) for f in chosen]
        for topic, batch in (
            ("matrix-in", messages),
            ("matrix-fink", [(k, v) for k, v, _ in fink]),
            ("matrix-ungranted", messages[:1]),
        ):
            report = produce(admin, topic, batch, config={"message.max.bytes": 4_000_000})
            assert not report.failed
        ca = rc.cluster.state_dir / SECURITY_DIR / CA_CERT
        files = {}
        for proto in ("sasl_plaintext", "sasl_ssl"):
            files[proto] = add_user(
                admin, "matrix", GRANT, protocol=proto, servers=rc.state.listeners[proto],
                out=root / f"matrix-{proto}.properties", ca_file=ca, password=PASSWORD,
                formats=["java", "kafka-python"],
            )  # fmt: skip
        # The PLAINTEXT listener's clients are anonymous: the same grant, to ANONYMOUS.
        client = admin_client(admin)  # kept until the futures resolve
        for future in client.create_acls(acl_bindings("ANONYMOUS", GRANT)).values():
            future.result(timeout=30)
        files["plaintext"] = _files(
            root / "matrix-plaintext.properties",
            {
                "bootstrap.servers": rc.state.listeners["plaintext"],
                "security.protocol": "PLAINTEXT",
            },
        )
        other_ca = root / "other-ca.pem"
        other_ca.write_text(new_ca("someone else's CA").cert)
        props = read_client_properties(files["sasl_ssl"])
        untrusted = _files(
            root / "untrusted.properties", {**props, "ssl.ca.location": str(other_ca)}
        )
        stamps = {r["candid"]: r["cutoutScience"]["stampData"] for *_, r in fink}
        yield Matrix(
            rc, version, install.lib_dir, files, untrusted, payloads,
            {k.decode(): hashlib.sha256(v).hexdigest() for k, v in messages},
            {k: hashlib.sha256(v).hexdigest() for k, v in stamps.items()},
        )  # fmt: skip


# --- each client, as its users run it -------------------------------------------------

SEP_KEY, SEP_RECORD = b"\x1f", b"\x1e--alertbench-record--\x1e"


def _run(argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired as exc:  # a client that retries for ever reads nothing
        return subprocess.CompletedProcess(argv, -9, exc.stdout or b"", exc.stderr or b"")


def _json_lines(done: subprocess.CompletedProcess[bytes]) -> Read:
    read = Read()
    for line in done.stdout.decode().splitlines():
        item = json.loads(line)
        if "error" in item:
            read.error = item["error"]
        elif "key" in item:
            read.records.append((item["key"], item["sha256"]))
    if done.returncode and not read.error:
        read.error = done.stderr.decode(errors="replace")[-2000:]
    return read


class Client:
    """One kind of client: reads and writes through a user's file of its format."""

    def __init__(self, name: str, m: Matrix, kafkajs_home: Path | None) -> None:
        self.name, self.m, self.kafkajs_home = name, m, kafkajs_home

    def file(self, base: Path) -> Path:
        fmt = {"java": "java", "kafka-python": "kafka-python", "aiokafka": "kafka-python"}
        fmt["kafkajs"] = "kafka-python"
        return sibling(base, fmt[self.name]) if self.name in fmt else base

    def consume(self, base: Path, topic: str, group: str, count: int, timeout: float) -> Read:
        f = self.file(base)
        if self.name == "confluent-kafka":
            return _confluent_consume(f, topic, group, count, timeout)
        if self.name == "fink-client":
            return _fink_consume(f, topic, group, count, timeout)
        if self.name == "java":
            return self._java_consume(f, topic, group, count, timeout)
        if self.name == "kcat":
            return _kcat_consume(f, topic, group, count, timeout)
        return _json_lines(
            _run(
                self._driver("consume", f, topic, group, count, timeout),
                timeout + 30,
                env=self._env(),
            )
        )

    def produce(self, base: Path, topic: str) -> str:
        """Write the payloads to ``topic``; the client's error, or ""."""
        f = self.file(base)
        if self.name == "confluent-kafka":
            return _confluent_produce(f, topic, self.m.payloads)
        if self.name == "java":
            return self._java_produce(f, topic)
        if self.name == "kcat":
            for p in sorted(self.m.payloads.iterdir()):
                done = _run(["kcat", "-F", str(f), "-P", "-t", topic, "-k", p.stem, str(p)], 60)
                if done.returncode:
                    return done.stderr.decode(errors="replace")
            return ""
        done = _run(self._driver("produce", f, topic, str(self.m.payloads)), 90, env=self._env())
        return _json_lines(done).error

    def _driver(self, *args) -> list[str]:
        if self.name == "kafkajs":
            return ["node", str(CLIENTS_DIR / "kafkajs_client.mjs"), *map(str, args)]
        script = CLIENTS_DIR / f"{self.name.replace('-', '_')}_client.py"
        return [sys.executable, str(script), *map(str, args)]

    def _env(self) -> dict[str, str]:
        return dict(os.environ, KAFKAJS_HOME=str(self.kafkajs_home or ""))

    def _java(self, main: str) -> list[str]:
        return [str(find_java().executable), "-cp", f"{self.m.lib_dir}/*", main]

    @property
    def _kafka4(self) -> bool:
        return self.m.version.startswith("4")

    def _java_consume(self, f: Path, topic: str, group: str, count: int, timeout: float) -> Read:
        # Kafka 4 renamed the options (--command-config, --formatter-property).
        config = "--command-config" if self._kafka4 else "--consumer.config"
        prop = "--formatter-property" if self._kafka4 else "--property"
        servers = javaproperties.loads(f.read_text())["bootstrap.servers"]
        done = _run(
            [
                *self._java("org.apache.kafka.tools.consumer.ConsoleConsumer"),
                "--bootstrap-server", servers, config, str(f), "--topic", topic,
                "--group", group, "--from-beginning", "--max-messages", str(count),
                "--timeout-ms", str(int(timeout * 1000)),
                prop, "print.key=true", prop, f"key.separator={SEP_KEY.decode()}",
                prop, f"line.separator={SEP_RECORD.decode()}",
            ],
            timeout + 60,
        )  # fmt: skip
        read, other = Read(), []
        for part in done.stdout.split(SEP_RECORD):
            if SEP_KEY in part:
                key, value = part.split(SEP_KEY, 1)
                read.records.append((key.decode(), hashlib.sha256(value).hexdigest()))
            elif part.strip():  # what the tool printed that is not a record
                other.append(part.decode(errors="replace"))
        errors = [ln for ln in done.stderr.decode().splitlines() if "Exception" in ln]
        read.error = "\n".join(errors + other)
        return read

    def _java_produce(self, f: Path, topic: str) -> str:
        # The console producer reads text lines: each alert goes as KEY<TAB>base64.
        config = "--command-config" if self._kafka4 else "--producer.config"
        reader = "--reader-property" if self._kafka4 else "--property"
        main = (
            "org.apache.kafka.tools.ConsoleProducer"
            if self._kafka4
            else "kafka.tools.ConsoleProducer"
        )
        lines = "".join(
            f"{p.stem}\t{base64.b64encode(p.read_bytes()).decode()}\n"
            for p in sorted(self.m.payloads.iterdir())
        )
        servers = javaproperties.loads(f.read_text())["bootstrap.servers"]
        done = _run(
            [
                *self._java(main), "--bootstrap-server", servers, config, str(f),
                "--topic", topic, reader, "parse.key=true", reader, "key.separator=\t",
            ],
            120, input=lines.encode(),
        )  # fmt: skip
        errors = [
            ln for ln in done.stderr.decode().splitlines() if "Exception" in ln or "ERROR" in ln
        ]
        return "\n".join(errors) or ("" if done.returncode == 0 else f"exit {done.returncode}")


def _confluent_conf(f: Path) -> dict[str, str]:
    return read_client_properties(f)


def _confluent_consume(f: Path, topic: str, group: str, count: int, timeout: float) -> Read:
    consumer = Consumer({**_confluent_conf(f), "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = Read()
    deadline = time.monotonic() + timeout
    try:
        while len(read.records) < count and time.monotonic() < deadline:
            for m in consumer.consume(10, timeout=0.5):
                if m.error():
                    read.error = m.error().str()
                    return read  # refused: no record will follow
                else:
                    read.records.append((m.key().decode(), hashlib.sha256(m.value()).hexdigest()))
    finally:
        consumer.close()
    return read


def _confluent_produce(f: Path, topic: str, payloads: Path) -> str:
    errors: list[str] = []
    producer = Producer({**_confluent_conf(f), "message.max.bytes": 4_000_000})
    for p in sorted(payloads.iterdir()):
        producer.produce(
            topic, key=p.stem.encode(), value=p.read_bytes(),
            on_delivery=lambda err, _m: errors.append(err.str()) if err else None,
        )  # fmt: skip
    left = producer.flush(60)
    return "; ".join(errors) or (f"{left} undelivered" if left else "")


def _fink_consume(f: Path, topic: str, group: str, count: int, timeout: float) -> Read:
    """Fink's client reads alerts decoded, so a record is (candid, sha256 of its cutout)."""
    from fink_client.consumer import AlertConsumer

    props = read_client_properties(f)
    config = {"bootstrap.servers": props["bootstrap.servers"], "group.id": group}
    if "sasl.username" in props:
        config.update(username=props["sasl.username"], password=props["sasl.password"])
    read = Read()
    deadline = time.monotonic() + timeout
    with AlertConsumer([topic], config, survey="ztf") as consumer:
        while len(read.records) < count and time.monotonic() < deadline:
            try:
                _topic, alert, _key = consumer.poll(timeout=1)
            except Exception as exc:  # fink-client raises on a message error
                read.error = str(exc)
                break
            if alert is not None:
                stamp = alert["cutoutScience"]["stampData"]
                read.records.append((str(alert["candid"]), hashlib.sha256(stamp).hexdigest()))
    return read


def _kcat_consume(f: Path, topic: str, group: str, count: int, timeout: float) -> Read:
    # kcat's balanced consumer (-G), printing each record as KEY, SIZE, then its bytes.
    done = _run(
        ["kcat", "-F", str(f), "-G", group, "-o", "beginning", "-e", "-c", str(count),
         "-f", "%k\n%S\n%s", topic],
        timeout,
    )  # fmt: skip
    read, data = Read(), done.stdout
    while data:
        key, size, rest = data.split(b"\n", 2)
        value, data = rest[: int(size)], rest[int(size) :]
        read.records.append((key.decode(), hashlib.sha256(value).hexdigest()))
    read.error = "\n".join(
        ln for ln in done.stderr.decode(errors="replace").splitlines() if "error" in ln.lower()
    )
    return read


# --- the cells ---------------------------------------------------------------------------


def _admin_read(m: Matrix, topic: str, java: bool) -> dict[str, str]:
    """What reached ``topic``: key -> sha256 of the alert (base64 undone for Java's lines)."""
    got = {}
    for msg in read_messages(m.rc.admin, topic, count=N):
        value = base64.b64decode(msg.value()) if java else msg.value()
        got[msg.key().decode()] = hashlib.sha256(value).hexdigest()
    return got


@pytest.mark.parametrize(("proto", "client"), list(_cells()))
def test_client_reads_and_writes_real_alerts_where_granted_and_nowhere_else(
    matrix: Matrix, proto: str, client: str, request: pytest.FixtureRequest
):
    if (client, matrix.version, proto) not in IN_CI and os.environ.get(
        "ALERTBENCH_LONG_TESTS"
    ) != "1":
        pytest.skip("long: set ALERTBENCH_LONG_TESTS=1 to run it")
    if client == "kcat" and shutil.which("kcat") is None:
        pytest.skip("kcat is Debian's package kcat (.ci/run installs it)")
    home = request.getfixturevalue("kafkajs_home") if client == "kafkajs" else None
    c, m = Client(client, matrix, home), matrix
    base = m.files[proto]
    cell = f"{client}-{proto}".replace("_", "-")
    refusal = REFUSED.get((client, m.version, proto))
    topic, expected = (
        ("matrix-fink", m.fink_expected) if client == "fink-client" else ("matrix-in", m.expected)
    )
    expected = {str(k): v for k, v in expected.items()}

    got = c.consume(base, topic, f"matrix-{cell}", N, timeout=20 if refusal else 60)
    if refusal:
        assert got.records == []
        assert refusal in got.error, got.error
        return
    assert sorted(got.records) == sorted(expected.items()), got.error
    if client != "fink-client":  # a consumer only
        out = f"matrix-out-{cell}"
        create_topic(m.rc.admin, out)
        assert c.produce(base, out) == ""
        assert _admin_read(m, out, java=client == "java") == m.expected
    # Nothing from a topic no ACL grants.
    denied = c.consume(base, "matrix-ungranted", f"matrix-{cell}-denied", 1, timeout=8)
    assert denied.records == []
    if proto == "sasl_ssl":  # nothing when the client trusts another CA
        refused = c.consume(m.untrusted, topic, f"matrix-{cell}-untrusted", 1, timeout=8)
        assert refused.records == []


# --- the diagnosis -------------------------------------------------------------------------


def test_user_add_and_check_client_name_the_scram_trap_on_kafka_4_only(matrix, cli, tmp_path):
    """As a user would: `kafka user add` then `kafka check-client` on kcat's file."""
    kafka4 = matrix.version.startswith("4")
    create_topic(matrix.rc.admin, "matrix-out-check")
    added = cli(
        "kafka", "user", "add", "carol", "--read", "matrix-in", "--listener", "sasl_ssl",
        "--format", "java", run_dir=matrix.rc.run_dir, cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "java client config written to" in added.stdout
    assert ("librdkafka before 2.6.1" in added.stdout) is kafka4, added.stdout
    for name in ("carol.properties", "carol.java.properties"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600

    # The file kcat used in the matrix: the credentials are right, the client is old.
    checked = cli("kafka", "check-client", str(matrix.files["sasl_ssl"]), cwd=tmp_path)
    out = checked.stdout
    assert checked.returncode == 0, out + checked.stderr
    for step in ("reachable", "trusted", "kafka", "authenticated", "topics", "groups"):
        assert f"ok   {step}" in out, out
    line = "4.x" if kafka4 else "3.x or earlier"
    assert f"a Kafka broker of the {line} line" in out
    assert "as matrix" in out
    assert "matrix-in (read)" in out
    assert "matrix-out-check (read/write)" in out
    assert "matrix-ungranted" not in out
    assert ("librdkafka before 2.6.1" in out) is kafka4
    if kafka4:
        assert "librdkafka >= 2.6.1, or run the 3.9 line" in out

    # Java's file is read too; a file trusting another CA stops at "trusted".
    java = cli("kafka", "check-client", str(sibling(matrix.files["sasl_ssl"], "java")))
    assert java.returncode == 0
    assert "ok   authenticated as matrix" in java.stdout
    untrusted = cli("kafka", "check-client", str(matrix.untrusted))
    assert untrusted.returncode == 1
    assert "FAIL trusted" in untrusted.stdout
    assert "ssl.ca.location" in untrusted.stdout
    assert "authenticated" not in untrusted.stdout
