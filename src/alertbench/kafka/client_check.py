"""What a user's client file can do on a cluster, step by step, and what to do when it cannot.

``alertbench kafka check-client FILE`` follows a client's way in, one step
at a time, so that a failure names the step: the bootstrap servers reached
over TCP, the cluster's certificate trusted (TLS), the broker speaking Kafka
(its ``ApiVersions`` answer, which also tells the 4.x line from earlier
ones), the credentials accepted (confluent-kafka, as alertbench's clients
connect), then the topics and groups the user may read or write, as the
brokers' authorizer reports them (KIP-430's authorized operations).

Kafka 4.x checks SCRAM's client-final nonce strictly, as RFC 5802 says
(CVE-2024-56128), while librdkafka before 2.6.1 sends the client nonce twice
(librdkafka #4895): every client built on such a librdkafka (kcat from
Debian 12 or Ubuntu 24.04, confluent-kafka before 2.6.1, node-rdkafka or
Rust rdkafka linking an old system librdkafka) fails on 4.x with "invalid
credentials" while its file is right. Kafka 3.8.1 to 3.9 accept the doubled
nonce. :func:`scram_warning` says so.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field

import confluent_kafka
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient

from alertbench.kafka.security import Connection, explain, uses_sasl, uses_tls

#: The first librdkafka whose SCRAM Kafka 4.x accepts.
SCRAM_FIXED_LIBRDKAFKA = (2, 6, 1)
_API_VERSIONS = 18
_FETCH = 1


def scram_warning(protocol: str, mechanism: str | None, kafka_4: bool | None) -> str | None:
    """The one-line warning for SCRAM on Kafka 4.x, or None when it does not apply."""
    if not kafka_4 or not uses_sasl(protocol) or not (mechanism or "SCRAM").startswith("SCRAM"):
        return None
    return (
        "this cluster runs Kafka 4.x, which checks SCRAM strictly: clients on librdkafka before "
        "2.6.1 (kcat from Debian 12 or Ubuntu 24.04, confluent-kafka < 2.6.1, others linking an "
        "old librdkafka) fail with 'invalid credentials' though the file is right; upgrade them "
        "to librdkafka >= 2.6.1, or run the 3.9 line (`kafka up --mode zookeeper`)."
    )


def api_versions(
    host: str, port: int, context: ssl.SSLContext | None, timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """A broker's ``ApiVersions`` answer: ``{api_key: (min, max)}``.

    Version 0 of the request, which every broker answers before any SASL
    exchange (a client asks it first, KIP-35); on a TLS listener after the
    handshake. Raises ``OSError`` (``ssl.SSLError`` included) as the socket does.
    """
    client_id = b"alertbench-check"
    body = struct.pack(">hhih", _API_VERSIONS, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = context.wrap_socket(raw, server_hostname=host) if context else raw
        try:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _read(sock, 4))[0]
            data = _read(sock, size)
        finally:
            if sock is not raw:
                sock.close()
    _correlation, error, count = struct.unpack(">ihi", data[:10])
    if error:
        raise OSError(f"the broker answered ApiVersions with error code {error}")
    apis = struct.iter_unpack(">hhh", data[10 : 10 + 6 * count])
    return {key: (low, high) for key, low, high in apis}


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise OSError("the broker closed the connection (is this a Kafka listener?)")
        out += chunk
    return out


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


def runs_kafka_4(conn: Connection, timeout: float = 5.0) -> bool | None:
    """Whether the cluster ``conn`` reaches runs Kafka 4.x; None if no server answers."""
    context = tls_context(conn.props) if uses_tls(conn.protocol) else None
    for server in conn.servers.split(","):
        try:
            return is_kafka_4(api_versions(*_host_port(server), context, timeout))
        except (OSError, ValueError):
            continue
    return None


def is_kafka_4(apis: dict[int, tuple[int, int]]) -> bool:
    """Whether a broker is of the 4.x line: it dropped Fetch v0-v3 (KIP-896).

    (Produce v0-v2 went too, and came back in 4.0 for librdkafka's sake.)
    """
    return apis.get(_FETCH, (0, 0))[0] >= 4


@dataclass
class Step:
    """One step of a check: its name, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass
class ClientCheck:
    """Every step a check took (it stops at the first that fails), and its warnings."""

    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kafka_4: bool | None = None

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return all(s.ok for s in self.steps)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        """Record a step; returns ``ok``."""
        self.steps.append(Step(name, ok, detail))
        return ok


def tls_context(props: dict[str, str]) -> ssl.SSLContext:
    """The TLS context a librdkafka client with ``props`` would trust and present."""
    context = ssl.create_default_context(cafile=props.get("ssl.ca.location"))
    if props.get("ssl.endpoint.identification.algorithm", "https") == "none":
        context.check_hostname = False
    if "ssl.certificate.location" in props:
        context.load_cert_chain(props["ssl.certificate.location"], props.get("ssl.key.location"))
    return context


def check_client(conn: Connection, timeout: float = 10.0) -> ClientCheck:
    """Check what a client with ``conn`` can do, step by step.

    Parameters
    ----------
    conn : Connection
        The client's servers and properties (a user's file, read).
    timeout : float
        Seconds each step may take.

    Returns
    -------
    ClientCheck
        The steps, up to the first that failed, and any warning.
    """
    check = ClientCheck()
    props = conn.props
    servers = [s.strip() for s in conn.servers.split(",") if s.strip()]
    context = tls_context(props) if uses_tls(conn.protocol) else None
    apis: dict[int, tuple[int, int]] | None = None
    for server in servers:
        try:
            host, port = _host_port(server)
            socket.create_connection((host, port), timeout=timeout).close()
        except (OSError, ValueError) as exc:
            check.add("reachable", False, f"{server}: {exc}; is the cluster up, and the port open?")
            continue
        try:
            apis = api_versions(host, port, context, timeout)
        except ssl.SSLError as exc:
            return _untrusted(check, server, exc)
        except OSError as exc:
            check.add("kafka", False, f"{server}: {exc}")
            return check
        break
    if apis is None:
        return check
    check.steps = [s for s in check.steps if s.ok]  # a later server answered
    check.add("reachable", True, f"{server} answers over TCP")
    if context is not None:
        check.add("trusted", True, f"{server}'s certificate is signed by a CA the file trusts")
    check.kafka_4 = is_kafka_4(apis)
    line = "4.x" if check.kafka_4 else "3.x or earlier"
    check.add("kafka", True, f"a Kafka broker of the {line} line ({len(apis)} APIs)")
    warning = scram_warning(conn.protocol, props.get("sasl.mechanism"), check.kafka_4)
    if warning:
        here = confluent_kafka.libversion()[0]
        check.warnings.append(f"{warning} (alertbench's client: librdkafka {here})")
    _authenticated(check, conn, timeout)
    return check


def _untrusted(check: ClientCheck, server: str, exc: ssl.SSLError) -> ClientCheck:
    check.add("reachable", True, f"{server} answers over TCP")
    check.add(
        "trusted",
        False,
        f"{server}: {exc.reason or exc}; point ssl.ca.location at the cluster's CA "
        "(`kafka up` keeps it in its state folder as security/ca.pem).",
    )
    return check


def _authenticated(check: ClientCheck, conn: Connection, timeout: float) -> None:
    # log_level 3: the answers come as results; librdkafka's own info lines (a purged
    # background queue as the client closes) would only clutter the report.
    admin = AdminClient(conn.conf({"socket.timeout.ms": int(timeout * 1000), "log_level": 3}))
    try:
        meta = admin.list_topics(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        check.add("authenticated", False, explain(exc))
        return
    user = conn.props.get("sasl.username")
    check.add(
        "authenticated",
        True,
        f"as {user}" if user else f"without credentials ({conn.protocol.upper()})",
    )
    topics = sorted(t for t in meta.topics if not t.startswith("__"))
    allowed: dict[str, set[str]] = {}
    if topics:
        futures = admin.describe_topics(
            TopicCollection(topics), request_timeout=timeout, include_authorized_operations=True
        )
        for name, future in futures.items():
            try:
                ops = future.result().authorized_operations or []
            except confluent_kafka.KafkaException:
                continue
            allowed[name] = {op.name for op in ops}
    check.add("topics", True, _may(allowed) or "none it may describe")
    groups = _groups(admin, timeout)
    check.add("groups", True, groups)


def _may(allowed: dict[str, set[str]]) -> str:
    parts = []
    for name, ops in sorted(allowed.items()):
        acts = [a.lower() for a in ("READ", "WRITE") if a in ops or "ALL" in ops]
        parts.append(f"{name} ({'/'.join(acts) or 'describe only'})")
    return ", ".join(parts)


def _groups(admin: AdminClient, timeout: float) -> str:
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout).result()
    except confluent_kafka.KafkaException as exc:
        return f"cannot list them: {explain(exc)}"
    names = sorted(g.group_id for g in listed.valid)
    if not names:
        return (
            "none it can see yet (a group appears once used; its ACLs show with "
            "`alertbench kafka user list`, as the admin)"
        )
    described = admin.describe_consumer_groups(
        names, request_timeout=timeout, include_authorized_operations=True
    )
    parts = []
    for name, future in described.items():
        try:
            ops = {op.name for op in future.result().authorized_operations or []}
        except confluent_kafka.KafkaException:
            ops = set()
        read = AclOperation.READ.name in ops or AclOperation.ALL.name in ops
        parts.append(f"{name} ({'read' if read else 'describe only'})")
    return ", ".join(sorted(parts))
