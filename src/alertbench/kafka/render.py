"""Render every node's configuration files from an inventory.

KRaft: ``server.properties`` (``node.id``, ``process.roles``, a static
controller quorum, listeners, ``log.dirs``, replication that fits the cluster).
ZooKeeper mode: ``zoo.cfg`` with every ``server.X`` line, each host's ``myid``,
and each broker's ``server.properties`` with ``broker.id`` and
``zookeeper.connect``. Plus a logging configuration for each JVM.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import javaproperties

from alertbench.errors import ConfigError
from alertbench.kafka.inventory import Host, Inventory
from alertbench.kafka.jmx_exporter import RULES_FILE, rules
from alertbench.kafka.release import KafkaRelease
from alertbench.kafka.security import NodeSecurity
from alertbench.kafka.tls import KeyPair

# Where a node's TLS files live, relative to its config folder.
KEY_STORE = "tls/node.pem"
TRUST_STORE = "tls/ca.pem"

# Alerts with cutouts reach a few hundred KB; Rubin's can exceed Kafka's 1 MB
# default, so brokers accept up to 10 MiB messages.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
SOCKET_BUFFER_BYTES = 1024 * 1024


@dataclass
class HostFiles:
    """The rendered files of one host.

    Attributes
    ----------
    host : Host
        The inventory entry.
    node_id : int
        Its ``node.id`` / ``broker.id`` / ``myid``.
    files : dict of str to str
        File name to content, e.g. ``server.properties``, ``zoo.cfg``, ``myid``.
    """

    host: Host
    node_id: int
    files: dict[str, str] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)


@dataclass
class Secured:
    """Everything a secured cluster's nodes are rendered with.

    Attributes
    ----------
    security : NodeSecurity
        Protocols and the cluster's own secrets.
    ca_pem : str
        The CA certificate(s) every node and client trusts.
    pairs : dict of str to KeyPair
        Each host's key and certificate, by host name (TLS protocols only).
    config_dir_of : callable
        The config folder of a host's Kafka node on that host (key store paths
        in ``server.properties`` are absolute).
    """

    security: NodeSecurity
    ca_pem: str = ""
    pairs: dict[str, KeyPair] = field(default_factory=dict)
    config_dir_of: Callable[[Host], Path] = lambda h: Path(h.name) / "config"


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid()`` makes it.

    Url-safe base64 of 16 random bytes without padding; Kafka rejects ids that
    start with ``-``, so those are drawn again. Saves a JVM start over
    ``kafka-storage random-uuid``.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def replication(inv: Inventory) -> tuple[int, int]:
    """Replication factor and ``min.insync.replicas`` that fit the cluster.

    Up to three replicas, one fewer in sync (so one broker may be down); a
    single broker gets 1 and 1.
    """
    rf = min(3, len(inv.brokers))
    return rf, max(1, rf - 1)


def format_properties(props: dict[str, str | int], header: str = "") -> str:
    r"""Write Java properties, one ``key=value`` a line, in the given order.

    A value's backslashes are doubled, as ``java.util.Properties`` reads
    ``\\`` as one (a JAAS value's escapes would otherwise be lost).
    """
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines += [f"{k}={_escaped(str(v))}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\")


def parse_properties(text: str) -> dict[str, str]:
    """Read Java properties as ``java.util.Properties`` reads them (``javaproperties``)."""
    return dict(javaproperties.loads(text))


def listener_port(host: Host, protocol: str, main: str) -> int:
    """The port of ``host``'s listener for ``protocol`` (the main one is ``broker_port``).

    Raises
    ------
    ConfigError
        If an extra listener has no port in the host's ``listener_ports``.
    """
    if protocol == main:
        return host.broker_port
    if protocol not in host.listener_ports:
        raise ConfigError(
            f"host {host.name} has no port for its {protocol} listener; add "
            f"listener_ports = {{{protocol} = PORT}} to it, or to the inventory's defaults."
        )
    return host.listener_ports[protocol]


def server_properties(
    inv: Inventory,
    host: Host,
    release: KafkaRelease,
    *,
    overrides: dict[str, str | int] | None = None,
    secured: Secured | None = None,
) -> dict[str, str | int]:
    """The ``server.properties`` of one Kafka node, as an ordered dict.

    Parameters
    ----------
    inv : Inventory
        The whole cluster.
    host : Host
        The node (must have the ``broker`` or ``controller`` role).
    release : KafkaRelease
        Kafka version; decides which keys exist.
    overrides : dict, optional
        Extra or replacing properties (e.g. thread counts for a small machine).
    secured : Secured, optional
        Listeners, SASL, TLS and ACLs; PLAINTEXT without authorization if not given.

    Returns
    -------
    dict
        Property name to value.
    """
    rf, min_isr = replication(inv)
    node_id = inv.node_id(host)
    props: dict[str, str | int] = {}
    sec = secured.security if secured else NodeSecurity("plaintext")
    # One listener per protocol, named after it; the first carries the brokers' own traffic.
    names = [p.upper() for p in sec.protocols]
    broker_listeners = (
        [
            f"{p.upper()}://{host.address}:{listener_port(host, p, sec.protocol)}"
            for p in sec.protocols
        ]
        if host.has("broker")
        else []
    )
    protocol_map = {n: n for n in names}
    listeners = list(broker_listeners)
    if inv.mode == "kraft":
        roles = [r for r in ("broker", "controller") if host.has(r)]
        props["process.roles"] = ",".join(roles)
        props["node.id"] = node_id
        props["controller.quorum.voters"] = ",".join(
            f"{inv.node_id(c)}@{c.address}:{c.controller_port}" for c in inv.with_role("controller")
        )
        if host.has("controller"):
            listeners.append(f"CONTROLLER://{host.address}:{host.controller_port}")
        props["listeners"] = ",".join(listeners)
        if host.has("broker"):
            props["advertised.listeners"] = ",".join(broker_listeners)
            props["inter.broker.listener.name"] = names[0]
        props["controller.listener.names"] = "CONTROLLER"
        controller = sec.controller_protocol() if sec.secured else "PLAINTEXT"
        props["listener.security.protocol.map"] = ",".join(
            f"{k}:{v}" for k, v in {"CONTROLLER": controller, **protocol_map}.items()
        )
    else:
        props["broker.id"] = node_id
        props["listeners"] = ",".join(listeners)
        props["advertised.listeners"] = ",".join(broker_listeners)
        props["listener.security.protocol.map"] = ",".join(
            f"{k}:{v}" for k, v in protocol_map.items()
        )
        props["zookeeper.connect"] = inv.zookeeper_connect
        props["zookeeper.connection.timeout.ms"] = 18000
    if secured and sec.secured:
        tls = secured.config_dir_of(host)
        props.update(
            sec.server_properties(
                kraft=inv.mode == "kraft",
                node_names=[h.name for h in inv.hosts],
                key_store=tls / KEY_STORE,
                trust_store=tls / TRUST_STORE,
            )
        )
        if not host.has("broker"):
            props.pop("inter.broker.listener.name", None)
    props["log.dirs"] = str(host.data_dir)
    props["num.partitions"] = 1
    props["default.replication.factor"] = rf
    props["min.insync.replicas"] = min_isr
    props["offsets.topic.replication.factor"] = rf
    props["transaction.state.log.replication.factor"] = rf
    props["transaction.state.log.min.isr"] = min_isr
    if release.has_share_groups:
        props["share.coordinator.state.topic.replication.factor"] = rf
        props["share.coordinator.state.topic.min.isr"] = min_isr
    props["group.initial.rebalance.delay.ms"] = 0
    props["message.max.bytes"] = MAX_MESSAGE_BYTES
    props["replica.fetch.max.bytes"] = MAX_MESSAGE_BYTES
    # Kafka's 100 KB socket buffers are sized for small records, not 50-150 KB alerts.
    props["socket.send.buffer.bytes"] = SOCKET_BUFFER_BYTES
    props["socket.receive.buffer.bytes"] = SOCKET_BUFFER_BYTES
    props.update(overrides or {})
    return props


def zoo_cfg(inv: Inventory, host: Host) -> dict[str, str | int]:
    """The ``zoo.cfg`` of one ZooKeeper host, as an ordered dict."""
    props: dict[str, str | int] = {
        "tickTime": 2000,
        "initLimit": 10,
        "syncLimit": 5,
        "dataDir": str(host.zookeeper_data_dir),
        "clientPort": host.zookeeper_client_port,
        "clientPortAddress": host.address,
        "maxClientCnxns": 0,
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "ruok,srvr,mntr,stat",
    }
    for zk in inv.with_role("zookeeper"):
        props[f"server.{inv.node_id(zk)}"] = (
            f"{zk.address}:{zk.zookeeper_peer_port}:{zk.zookeeper_election_port}"
        )
    return props


LOG4J2 = """\
# Kafka 4 logs through log4j2; the folder comes from -Dkafka.logs.dir.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 100MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
"""

LOG4J1 = """\
# Kafka 3.x and ZooKeeper log through reload4j; the folder comes from -Dkafka.logs.dir.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.MaxFileSize=100MB
log4j.appender.file.MaxBackupIndex=5
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
"""


def log_config_name(release: KafkaRelease) -> str:
    """File name of the logging configuration for ``release``."""
    return "log4j2.properties" if release.uses_log4j2 else "log4j.properties"


def render_cluster(
    inv: Inventory,
    release: KafkaRelease,
    *,
    overrides: dict[str, str | int] | None = None,
    secured: Secured | None = None,
) -> list[HostFiles]:
    """Render the files of every host.

    Parameters
    ----------
    inv : Inventory
        The cluster.
    release : KafkaRelease
        Kafka version; must support ``inv.mode``.
    overrides : dict, optional
        Extra ``server.properties`` entries for every node.
    secured : Secured, optional
        Security; its secrets and keys go into files marked secret (mode 0600).

    Returns
    -------
    list of HostFiles
        In inventory order.
    """
    release.check_mode(inv.mode)
    out = []
    for host in inv.hosts:
        hf = HostFiles(host=host, node_id=inv.node_id(host))
        header = f"{host.name}: rendered by alertbench for Kafka {release.version} ({inv.mode})"
        if host.has("broker") or host.has("controller"):
            hf.files["server.properties"] = format_properties(
                server_properties(inv, host, release, overrides=overrides, secured=secured),
                header,
            )
            if secured and secured.security.secured:
                hf.secret.add("server.properties")
            # The JMX exporter agent's rules, for `-javaagent:...=PORT:jmx-exporter.yml`.
            hf.files[RULES_FILE["kafka"]] = rules("kafka")
            if secured and host.name in secured.pairs:
                hf.files[KEY_STORE] = secured.pairs[host.name].pem
                hf.files[TRUST_STORE] = secured.ca_pem
                hf.secret.add(KEY_STORE)
        if host.has("zookeeper"):
            hf.files["zoo.cfg"] = format_properties(zoo_cfg(inv, host), header)
            hf.files["myid"] = f"{hf.node_id}\n"
            hf.files[RULES_FILE["zookeeper"]] = rules("zookeeper")
        hf.files[log_config_name(release)] = LOG4J2 if release.uses_log4j2 else LOG4J1
        out.append(hf)
    return out


def write_rendered(
    inv: Inventory,
    release: KafkaRelease,
    out_dir: Path,
    *,
    cluster_id: str | None = None,
    secured: Secured | None = None,
) -> list[Path]:
    """Write every host's files under ``out_dir/<host name>/`` plus ``cluster.json``.

    Parameters
    ----------
    inv : Inventory
        The cluster.
    release : KafkaRelease
        Kafka version.
    out_dir : Path
        Destination folder (created).
    cluster_id : str, optional
        KRaft cluster id; a new one is made if not given.
    secured : Secured, optional
        Security; key stores and secrets are written with mode 0600. Their
        paths in ``server.properties`` are where a deploy puts the config
        (``<install_dir>/<host>/config``).

    Returns
    -------
    list of Path
        Every file written.
    """
    from alertbench.procs import LocalTransport

    written = []
    if secured is not None:
        secured.config_dir_of = lambda h: h.install_dir / h.name / "config"
    rendered = render_cluster(inv, release, secured=secured)
    local = LocalTransport()
    for hf in rendered:
        folder = out_dir / hf.host.name
        for name, text in hf.files.items():
            local.write_text(folder / name, text, secret=name in hf.secret)
            written.append(folder / name)
    summary = {
        "mode": inv.mode,
        "kafka_version": release.version,
        "cluster_id": (cluster_id or new_cluster_id()) if inv.mode == "kraft" else None,
        "bootstrap_servers": inv.bootstrap_servers,
        "security": secured.security.protocols if secured else ["plaintext"],
        "zookeeper_connect": inv.zookeeper_connect or None,
        "inventory": inv.source,
        "hosts": [
            {
                "name": hf.host.name,
                "address": hf.host.address,
                "id": hf.node_id,
                "roles": list(hf.host.roles),
                "files": sorted(hf.files),
            }
            for hf in rendered
        ],
    }
    (out_dir / "cluster.json").write_text(json.dumps(summary, indent=2) + "\n")
    written.append(out_dir / "cluster.json")
    return written
