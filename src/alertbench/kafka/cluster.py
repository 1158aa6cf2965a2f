"""Run a Kafka cluster: plan its nodes, format, start in order, wait, stop by PID.

A cluster is an :class:`~alertbench.kafka.inventory.Inventory` plus a Kafka
install. Each host runs one Kafka JVM (broker, controller or both) and, in
ZooKeeper mode, a ZooKeeper JVM. Every JVM is started through the host's
:class:`~alertbench.procs.Transport` and recorded with its PID in a JSON state
file, written after each start so that a crash half-way never leaves an
untracked process. :func:`local_inventory` lays out N nodes on this machine;
remote hosts only need another transport.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alertbench.errors import ClusterError
from alertbench.java import Java
from alertbench.kafka import credentials
from alertbench.kafka.admin import ClusterInfo, describe_cluster
from alertbench.kafka.fetch import KafkaInstall
from alertbench.kafka.inventory import Host, Inventory, Mode
from alertbench.kafka.release import parse_release
from alertbench.kafka.remote import java_of
from alertbench.kafka.render import (
    HostFiles,
    Secured,
    listener_port,
    log_config_name,
    new_cluster_id,
    render_cluster,
)
from alertbench.kafka.security import MECHANISM, Connection, scram_credential
from alertbench.procs import LocalTransport, ProcessRecord, Transport, free_ports, stop_processes
from alertbench.ssh import HostPool, SSHTarget

STATE_FORMAT = 1
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL)\b|Exception|Error:")
STATE_FILE = "state.json"
Progress = Callable[[str], None]

# Threads trimmed for a small machine: defaults (3 network, 8 io, 10 background)
# only add context switches when brokers, Spark and producers share 2 cores.
SMALL_MACHINE = {
    "num.network.threads": 2,
    "num.io.threads": 4,
    "background.threads": 4,
    "num.recovery.threads.per.data.dir": 1,
    "num.replica.fetchers": 1,
    "log.cleaner.threads": 1,
}

_PORT_NAMES = {
    "broker_port": "broker listener",
    "controller_port": "controller listener",
    "zookeeper_client_port": "ZooKeeper client port",
    "zookeeper_peer_port": "ZooKeeper quorum port",
    "zookeeper_election_port": "ZooKeeper election port",
}


@dataclass
class Node:
    """One JVM of the cluster.

    Attributes
    ----------
    name : str
        ``<host>`` for Kafka, ``<host>-zk`` for ZooKeeper.
    kind : {"kafka", "zookeeper"}
        What it runs.
    host : str
        Inventory host name.
    address : str
        Host address.
    node_id : int
        ``node.id`` / ``broker.id`` / ``myid``.
    roles : list of str
        For Kafka nodes: ``broker`` and/or ``controller``.
    ports : dict of str to int
        The ports it listens on, by purpose.
    home : Path
        The node's folder on its host (config, logs).
    proc : ProcessRecord or None
        The running process, if started.
    data_dir : str or None
        Its data folder when it lies outside ``home`` (remote hosts).
    lib_dir : str or None
        Kafka's jars on its host; ``None``: the cluster's ``lib_dir``.
    java : str or None
        The java command on its host; ``None``: the cluster's JDK.
    """

    name: str
    kind: str
    host: str
    address: str
    node_id: int
    roles: list[str]
    ports: dict[str, int]
    home: Path
    proc: ProcessRecord | None = None
    data_dir: str | None = None
    lib_dir: str | None = None
    java: str | None = None

    @property
    def config_dir(self) -> Path:
        """Where the node's rendered files live."""
        return self.home / "config"

    @property
    def log_dir(self) -> Path:
        """Where the node's JVM writes ``server.log`` and its console output."""
        return self.home / "logs" / self.kind

    @property
    def server_log(self) -> Path:
        """The node's main log."""
        return self.log_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """Standard output and error of the JVM (start-up failures land here)."""
        return self.log_dir / "console.log"

    def to_json(self) -> dict[str, object]:
        """The node as JSON data for the state file."""
        data = asdict(self)
        data["home"] = str(self.home)
        data["proc"] = self.proc.to_json() if self.proc else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Node:
        """Rebuild a node from :meth:`to_json` output."""
        proc = data.get("proc")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            host=str(data["host"]),
            address=str(data["address"]),
            node_id=int(data["node_id"]),  # type: ignore[arg-type]
            roles=list(data["roles"]),  # type: ignore[arg-type]
            ports=dict(data["ports"]),  # type: ignore[arg-type]
            home=Path(str(data["home"])),
            proc=ProcessRecord.from_json(proc) if isinstance(proc, dict) else None,
            data_dir=data.get("data_dir"),  # type: ignore[arg-type]
            lib_dir=data.get("lib_dir"),  # type: ignore[arg-type]
            java=data.get("java"),  # type: ignore[arg-type]
        )


@dataclass
class ClusterState:
    """Everything needed to find, restart and stop a cluster; saved as JSON.

    ``hosts`` holds how to reach each remote host (:class:`SSHTarget` data),
    so that ``status`` and ``down`` need nothing but this file.
    """

    mode: str
    kafka_version: str
    lib_dir: str
    cluster_id: str | None
    bootstrap_servers: str
    zookeeper_connect: str | None
    layout: dict[str, object]
    nodes: list[Node] = field(default_factory=list)
    hosts: dict[str, dict[str, object]] = field(default_factory=dict)
    security: dict[str, object] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        """The main listener's security protocol."""
        return str(self.security.get("protocol", "plaintext"))

    @property
    def listeners(self) -> dict[str, str]:
        """Bootstrap servers of every listener, by protocol (the main one first)."""
        found = self.security.get("listeners")
        return dict(found) if isinstance(found, dict) else {self.protocol: self.bootstrap_servers}

    def to_json(self) -> dict[str, object]:
        """The state as JSON data."""
        data = {k: v for k, v in asdict(self).items() if k != "nodes"}
        data["format"] = STATE_FORMAT
        data["nodes"] = [n.to_json() for n in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ClusterState:
        """Rebuild the state from :meth:`to_json` output."""
        return cls(
            mode=str(data["mode"]),
            kafka_version=str(data["kafka_version"]),
            lib_dir=str(data["lib_dir"]),
            cluster_id=data.get("cluster_id"),  # type: ignore[arg-type]
            bootstrap_servers=str(data["bootstrap_servers"]),
            zookeeper_connect=data.get("zookeeper_connect"),  # type: ignore[arg-type]
            layout=dict(data.get("layout") or {}),  # type: ignore[arg-type]
            nodes=[Node.from_json(n) for n in data["nodes"]],  # type: ignore[union-attr]
            hosts=dict(data.get("hosts") or {}),  # type: ignore[arg-type]
            security=dict(data.get("security") or {}),  # type: ignore[arg-type]
        )

    def targets(self) -> dict[str, SSHTarget]:
        """The SSH targets of the remote hosts, by host name."""
        return {name: SSHTarget.from_json(t) for name, t in self.hosts.items()}

    def node(self, name: str) -> Node:
        """The node called ``name``.

        Raises
        ------
        ClusterError
            If there is none.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        names = ", ".join(n.name for n in self.nodes)
        raise ClusterError(f"no node {name!r} in this cluster (nodes: {names}).")


def local_inventory(
    state_dir: Path,
    *,
    nodes: int,
    mode: Mode,
    address: str = "127.0.0.1",
    base_port: int = 0,
    listeners: list[str] | None = None,
) -> Inventory:
    """Lay out ``nodes`` hosts on this machine, each with its own ports and dirs.

    Parameters
    ----------
    state_dir : Path
        Folder of the cluster; node ``i`` lives in ``state_dir/node-i``.
    nodes : int
        Number of hosts; in ZooKeeper mode each runs ZooKeeper and a broker.
    mode : {"kraft", "zookeeper"}
        Cluster mode.
    address : str
        Address every node listens on.
    base_port : int
        0 picks free ports; otherwise node ``i`` (from 0) uses
        ``base_port + 10*i`` (broker), ``+1`` (controller), ``+2`` (ZooKeeper
        client), ``+3`` and ``+4`` (ZooKeeper quorum and election), ``+5``...
        (the further listeners).
    listeners : list of str, optional
        Protocols of listeners beyond the main one; each gets a port.

    Returns
    -------
    Inventory
    """
    roles = ("controller", "broker") if mode == "kraft" else ("zookeeper", "broker")
    extras = list(listeners or [])
    keys = list(_PORT_NAMES) + [f"listener:{p}" for p in extras]
    ports = (
        free_ports(nodes * len(keys), address)
        if base_port == 0
        else [base_port + 10 * i + j for i in range(nodes) for j in range(len(keys))]
    )
    hosts = []
    state_dir = state_dir.resolve()
    for i in range(nodes):
        name = f"node-{i + 1}"
        mine = dict(zip(keys, ports[i * len(keys) : (i + 1) * len(keys)], strict=True))
        extra_ports = {k.split(":", 1)[1]: mine.pop(k) for k in list(mine) if ":" in k}
        hosts.append(
            Host(
                name=name,
                address=address,
                roles=roles,
                data_dir=state_dir / name / "data",
                zookeeper_data_dir=state_dir / name / "zookeeper",
                install_dir=state_dir,
                listener_ports=extra_ports,
                **mine,
            )
        )
    return Inventory(mode=mode, hosts=hosts, source=f"local:{nodes}")


def _nodes_for(
    inv: Inventory, home_of: Callable[[Host], Path], protocols: list[str] | None = None
) -> list[Node]:
    nodes = []
    for host in inv.hosts:
        node_id = inv.node_id(host)
        if host.has("zookeeper"):
            nodes.append(
                Node(
                    name=f"{host.name}-zk",
                    kind="zookeeper",
                    host=host.name,
                    address=host.address,
                    node_id=node_id,
                    roles=["zookeeper"],
                    ports={
                        k: getattr(host, k)
                        for k in (
                            "zookeeper_client_port",
                            "zookeeper_peer_port",
                            "zookeeper_election_port",
                        )
                    },
                    home=home_of(host),
                )
            )
        kafka_roles = [r for r in ("broker", "controller") if host.has(r)]
        if kafka_roles:
            ports = {"broker_port": host.broker_port} if host.has("broker") else {}
            if host.has("broker"):
                for proto in (protocols or [])[1:]:
                    ports[f"{proto} listener"] = listener_port(host, proto, protocols[0])
            if host.has("controller"):
                ports["controller_port"] = host.controller_port
            nodes.append(
                Node(
                    name=host.name,
                    kind="kafka",
                    host=host.name,
                    address=host.address,
                    node_id=node_id,
                    roles=kafka_roles,
                    ports=ports,
                    home=home_of(host),
                )
            )
    return nodes


class KafkaCluster:
    """A Kafka cluster described by a state file, started and stopped by PID.

    Parameters
    ----------
    state_dir : Path
        Folder of ``state.json`` (and, for local clusters, of the nodes).
    java : Java
        The JDK the nodes run on.
    heap : str
        Heap of each Kafka JVM, e.g. ``512m``.
    zookeeper_heap : str
        Heap of each ZooKeeper JVM.
    transport_for : callable, optional
        Gives the transport of a host. By default, hosts recorded with an SSH
        target (in the state file, or given to :meth:`plan`) are reached over
        SSH and every other host is this machine.
    """

    def __init__(
        self,
        state_dir: Path,
        java: Java,
        *,
        heap: str = "512m",
        zookeeper_heap: str = "256m",
        transport_for: Callable[[str], Transport] | None = None,
    ) -> None:
        # Absolute: nodes run with their own folder as working directory.
        self.state_dir = state_dir.resolve()
        self.java = java
        self.heap = heap
        self.zookeeper_heap = zookeeper_heap
        self._local = LocalTransport()
        self.pool = HostPool({})
        self._transport_for = transport_for or self.pool
        self.unreachable: dict[str, str] = {}

    def close(self) -> None:
        """Close the SSH connections this cluster opened."""
        self.pool.close()

    @property
    def state_file(self) -> Path:
        """The JSON file recording the cluster and its PIDs."""
        return self.state_dir / STATE_FILE

    # -- state -----------------------------------------------------------------

    def load_state(self) -> ClusterState | None:
        """Read this cluster's state file (see :func:`read_state`)."""
        state = read_state(self.state_file)
        if state is not None:
            self.pool.targets.update(state.targets())
        return state

    def save_state(self, state: ClusterState) -> None:
        """Write the state file atomically."""
        self._local.write_text(self.state_file, json.dumps(state.to_json(), indent=2) + "\n")

    def running(self, state: ClusterState) -> list[Node]:
        """Nodes of ``state`` whose process is alive."""
        return [n for n in state.nodes if self._alive(n)]

    def stale(self, state: ClusterState) -> list[Node]:
        """Nodes recorded as started whose process is gone (or whose host is unreachable)."""
        return [n for n in state.nodes if n.proc and not self._alive(n)]

    def _t(self, node: Node) -> Transport:
        return self._transport_for(node.host)

    def connection(self, state: ClusterState) -> Connection:
        """How alertbench's own clients reach this cluster (the admin's credentials if secured)."""
        return credentials.admin_connection(self.state_dir, state.bootstrap_servers)

    def _admin_scram(self, state: ClusterState) -> dict[str, str] | None:
        """A salted SCRAM credential of the admin principal, if the cluster takes SCRAM."""
        password = self.connection(state).props.get("sasl.password")
        return scram_credential(password) if password else None

    # -- planning ----------------------------------------------------------------

    def plan(
        self,
        inv: Inventory,
        install: KafkaInstall,
        *,
        local: bool,
        targets: dict[str, SSHTarget] | None = None,
        lib_dirs: dict[str, Path] | None = None,
        secured: Secured | None = None,
    ) -> ClusterState:
        """Lay out the nodes of ``inv`` and render their files (nothing is started).

        Parameters
        ----------
        inv : Inventory
            The cluster.
        install : KafkaInstall
            The Kafka to run.
        local : bool
            Whether every host is this machine (thread counts are trimmed and
            nodes live in the state dir).
        targets : dict of str to SSHTarget, optional
            Hosts reached over SSH; they run their own Java and jars.
        lib_dirs : dict of str to Path, optional
            Where each remote host has Kafka's jars (see
            :func:`~alertbench.kafka.remote.install_kafka`).
        secured : Secured, optional
            Listeners, keys and secrets (from :func:`~alertbench.kafka.credentials.prepare`).

        Returns
        -------
        ClusterState
        """
        targets = targets or {}
        self.pool.targets.update(targets)
        install.release.check_mode(inv.mode)

        def home_of(host: Host) -> Path:
            return (self.state_dir / host.name) if local else (host.install_dir / host.name)

        if secured is not None:
            secured.config_dir_of = lambda h: home_of(h) / "config"
        rendered = {
            hf.host.name: hf
            for hf in render_cluster(
                inv, install.release, overrides=SMALL_MACHINE if local else None, secured=secured
            )
        }
        protocols = secured.security.protocols if secured else ["plaintext"]

        state = ClusterState(
            mode=inv.mode,
            kafka_version=install.release.version,
            lib_dir=str(install.lib_dir),
            cluster_id=new_cluster_id() if inv.mode == "kraft" else None,
            bootstrap_servers=inv.bootstrap_servers,
            zookeeper_connect=inv.zookeeper_connect or None,
            layout={"source": inv.source, "hosts": len(inv.hosts)},
            nodes=_nodes_for(inv, home_of, protocols),
            hosts={name: t.to_json() for name, t in targets.items()},
            security={
                "protocol": protocols[0],
                "listeners": {
                    p: ",".join(
                        f"{h.address}:{listener_port(h, p, protocols[0])}" for h in inv.brokers
                    )
                    for p in protocols
                },
            },
        )
        by_name = {h.name: h for h in inv.hosts}
        for node in state.nodes:
            host = by_name[node.host]
            if node.host in targets:
                node.java = java_of(host)
                node.lib_dir = str((lib_dirs or {})[node.host])
                data = host.zookeeper_data_dir if node.kind == "zookeeper" else host.data_dir
                node.data_dir = str(data)
        for node in state.nodes:
            hf: HostFiles = rendered[node.host]
            t = self._t(node)
            for name, text in hf.files.items():
                t.write_text(node.config_dir / name, text, secret=name in hf.secret)
        for host in inv.hosts:
            t = self._transport_for(host.name)
            if host.has("zookeeper"):
                t.write_text(host.zookeeper_data_dir / "myid", rendered[host.name].files["myid"])
            if host.has("broker") or host.has("controller"):
                t.make_dirs(host.data_dir)
        return state

    # -- commands ----------------------------------------------------------------

    def _java(self, node: Node) -> str:
        return node.java or str(self.java.executable)

    def _classpath(self, node: Node, state: ClusterState) -> str:
        return str(Path(node.lib_dir or state.lib_dir) / "*")

    def _java_argv(self, node: Node, state: ClusterState, heap: str, main: list[str]) -> list[str]:
        return [
            self._java(node),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dalertbench.node={node.name}",
            f"-Dkafka.logs.dir={node.log_dir}",
            _log_option(node, state),
            "-cp",
            self._classpath(node, state),
            *main,
        ]

    def _format(self, state: ClusterState, node: Node) -> None:
        argv = [
            self._java(node),
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            f"-Dkafka.logs.dir={node.log_dir}",
            _log_option(node, state),
            "-cp",
            self._classpath(node, state),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            str(state.cluster_id),
            "--config",
            str(node.config_dir / "server.properties"),
            "--ignore-formatted",
        ]
        scram = self._admin_scram(state)
        if scram is not None:
            # Salted, so the admin's password is on no command line; the brokers
            # authenticate to each other with it before any user could be created.
            fields = ",".join(
                [f"name={credentials.ADMIN_USER}"]
                + [f'{k}="{v}"' if k != "iterations" else f"{k}={v}" for k, v in scram.items()]
            )
            argv += ["--add-scram", f"{MECHANISM}=[{fields}]"]
        proc = self._t(node).run(argv, timeout=120)
        if proc.returncode != 0:
            raise ClusterError(
                f"formatting the storage of {node.name} failed:\n{proc.stdout}{proc.stderr}"
            )

    def _zookeeper_scram(self, state: ClusterState) -> None:
        """Store the admin's SCRAM credential in ZooKeeper before any broker starts.

        In ZooKeeper mode brokers read credentials from ZooKeeper; the one they
        authenticate to each other with must be there first. The password goes
        through a 0600 file, not the command line.
        """
        password = self.connection(state).props.get("sasl.password")
        if not password:
            return
        secrets_file = self.state_dir / credentials.SECURITY_DIR / "scram-admin.properties"
        self._local.write_text(
            secrets_file,
            # A file's value is read as it is, without --add-config's [...] around it.
            f"{MECHANISM}=iterations=8192,password={password}\n",
            secret=True,
        )
        argv = [
            str(self.java.executable),
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-Dlog4j.configuration=file:/dev/null",
            "-cp",
            str(Path(state.lib_dir) / "*"),
            "kafka.admin.ConfigCommand",
            "--zookeeper",
            str(state.zookeeper_connect),
            "--alter",
            "--add-config-file",
            str(secrets_file),
            "--entity-type",
            "users",
            "--entity-name",
            credentials.ADMIN_USER,
        ]
        try:
            proc = self._local.run(argv, timeout=120)
        finally:
            secrets_file.unlink(missing_ok=True)
        if proc.returncode != 0:
            said = (proc.stdout[-2000:] + proc.stderr[-2000:]).replace(password, "[hidden]")
            raise ClusterError(f"storing the admin's SCRAM credential in ZooKeeper failed:\n{said}")

    def _check_ports(self, node: Node) -> None:
        t = self._t(node)
        for key, port in node.ports.items():
            if t.port_in_use(node.address, port):
                raise ClusterError(
                    f"port {port} on {node.address}, the {_PORT_NAMES.get(key, key)} of "
                    f"{node.name}, is "
                    "already in use by another process. Stop that process, or start on other "
                    "ports (`--base-port N`, or `--base-port 0` for free ones)."
                )

    def _start(self, state: ClusterState, node: Node) -> None:
        if node.kind == "zookeeper":
            main = [
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(node.config_dir / "zoo.cfg"),
            ]
            heap = self.zookeeper_heap
        else:
            main = ["kafka.Kafka", str(node.config_dir / "server.properties")]
            heap = self.heap
        node.proc = self._t(node).spawn(
            self._java_argv(node, state, heap, main), log=node.console_log, cwd=node.home
        )
        self.save_state(state)

    def _failure(self, node: Node, what: str) -> ClusterError:
        t = self._t(node)
        parts = [what]
        for log in (node.server_log, node.console_log):
            tail = t.tail(log, lines=400)
            if not tail.strip():
                continue
            errors = [ln for ln in tail.splitlines() if _ERROR_LINE.search(ln)]
            shown = "\n".join(errors[-15:]) if errors else "\n".join(tail.splitlines()[-15:])
            kind = "errors in" if errors else "last lines of"
            parts.append(f"--- {kind} {log} ---\n{shown}")
        if len(parts) == 1:
            parts.append(f"(no output in {node.server_log} or {node.console_log})")
        return ClusterError("\n".join(parts))

    def _wait_zookeeper(self, state: ClusterState, nodes: list[Node], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if not self._t(node).is_running(node.proc):  # type: ignore[arg-type]
                    raise self._failure(node, f"ZooKeeper {node.name} exited during start-up.")
                mode = zookeeper_mode(node.address, node.ports["zookeeper_client_port"])
                if mode in ("leader", "follower", "standalone"):
                    pending.remove(node)
            if pending and time.monotonic() > deadline:
                raise self._failure(
                    pending[0],
                    f"ZooKeeper {pending[0].name} did not join a quorum within {timeout:.0f} s.",
                )
            if pending:
                time.sleep(0.3)

    def _wait_kafka(self, state: ClusterState, timeout: float) -> ClusterInfo:
        brokers = {n.node_id: n for n in state.nodes if "broker" in n.roles}
        kafka_nodes = [n for n in state.nodes if n.kind == "kafka"]
        deadline = time.monotonic() + timeout
        info: ClusterInfo | None = None
        while True:
            for node in kafka_nodes:
                if not self._t(node).is_running(node.proc):  # type: ignore[arg-type]
                    raise self._failure(node, f"Kafka node {node.name} exited during start-up.")
            try:
                info = describe_cluster(self.connection(state), timeout=3)
            except ClusterError:
                info = None
            if info and set(brokers) <= set(info.brokers) and info.controller is not None:
                return info
            if time.monotonic() > deadline:
                missing = [n for i, n in brokers.items() if not info or i not in info.brokers]
                culprit = missing[0] if missing else kafka_nodes[0]
                raise self._failure(
                    culprit,
                    f"the cluster did not form within {timeout:.0f} s: broker(s) "
                    f"{', '.join(n.name for n in missing) or '(all)'} not registered"
                    + ("" if info and info.controller is not None else ", no controller")
                    + ".",
                )
            time.sleep(0.5)

    def start(
        self, state: ClusterState, *, timeout: float, progress: Progress | None = None
    ) -> ClusterInfo:
        """Start every node of ``state`` that is not running, in order, and wait.

        ZooKeeper ensemble first, then the Kafka nodes (KRaft storage is
        formatted first, once). On failure, what this call started is stopped.

        Parameters
        ----------
        state : ClusterState
            From :meth:`plan` or the state file.
        timeout : float
            Seconds to wait for each phase.
        progress : callable, optional
            Called with a short message at each step.

        Returns
        -------
        ClusterInfo
            What the formed cluster reports.

        Raises
        ------
        ClusterError
            Port in use, a node that exits, or a timeout; with the log tail.
        """
        say = progress or (lambda _m: None)
        started: list[Node] = []
        zks = [n for n in state.nodes if n.kind == "zookeeper" and not self._alive(n)]
        kafka = [n for n in state.nodes if n.kind == "kafka" and not self._alive(n)]
        # Every port before any start: a taken port leaves nothing half-started.
        for node in zks + kafka:
            self._check_ports(node)
        try:
            for node in zks:
                self._start(state, node)
                started.append(node)
            if zks:
                say(f"waiting for the ZooKeeper ensemble ({len(zks)} nodes)")
                self._wait_zookeeper(state, zks, timeout)
                if state.mode == "zookeeper" and kafka:
                    self._zookeeper_scram(state)
            if state.mode == "kraft" and kafka:
                say(f"formatting KRaft storage of {len(kafka)} node(s)")
                with ThreadPoolExecutor(max_workers=len(kafka)) as pool:
                    list(pool.map(lambda n: self._format(state, n), kafka))
            for node in kafka:
                self._start(state, node)
                started.append(node)
            say(f"waiting for {len(kafka)} Kafka node(s) to register")
            return self._wait_kafka(state, timeout)
        except BaseException:
            self.stop(state, started)
            raise

    def _alive(self, node: Node) -> bool:
        if node.proc is None:
            return False
        try:
            return self._t(node).is_running(node.proc)
        except ClusterError as exc:
            self.unreachable[node.host] = str(exc)
            return False

    def stop(
        self, state: ClusterState, nodes: list[Node] | None = None, *, grace: float = 30.0
    ) -> list[str]:
        """Stop nodes by PID: SIGTERM, then SIGKILL after a grace period.

        Brokers stop first, while the control plane can still approve their
        controlled shutdown; then KRaft controllers one at a time; ZooKeeper
        last. A KRaft broker waits minutes for a controller quorum that is
        gone, so nodes stopped after the quorum is lost get a short grace.

        Parameters
        ----------
        state : ClusterState
            The cluster.
        nodes : list of Node, optional
            Which nodes; all by default.
        grace : float
            Seconds before SIGKILL while a clean stop is possible.

        Returns
        -------
        list of str
            Names of nodes that had to be killed. Hosts that could not be
            reached are left in :attr:`unreachable` (host -> reason) and
            their nodes stay recorded, so a later ``stop`` can finish the job.
        """
        chosen = [n for n in (state.nodes if nodes is None else nodes) if n.proc is not None]
        voters = [n for n in state.nodes if "controller" in n.roles]
        majority = len(voters) // 2 + 1
        killed: list[str] = []

        def halt(group: list[Node], wait: float) -> None:
            by_host: dict[str, list[Node]] = {}
            for n in group:
                by_host.setdefault(n.host, []).append(n)
            for host, host_nodes in by_host.items():
                procs = [n.proc for n in host_nodes if n.proc]
                try:
                    gone = stop_processes(self._transport_for(host), procs, grace=wait)
                except ClusterError as exc:
                    self.unreachable[host] = str(exc)
                    continue
                killed.extend(n.name for n in host_nodes if n.proc in gone)
                for n in host_nodes:
                    n.proc = None
            self.save_state(state)

        halt([n for n in chosen if n.kind == "kafka" and "controller" not in n.roles], grace)
        for node in [n for n in chosen if "controller" in n.roles]:
            alive = [v for v in voters if self._alive(v)]
            halt([node], grace if len(alive) >= majority else min(grace, 5.0))
        halt([n for n in chosen if n.kind == "zookeeper"], grace)
        return killed

    def purge(self, state: ClusterState | None) -> None:
        """Delete every node's data, logs and the state file."""
        if state is not None:
            for node in state.nodes:
                t = self._t(node)
                t.remove_tree(node.home)
                if node.data_dir:
                    t.remove_tree(Path(node.data_dir))
        self._local.remove_tree(self.state_dir)


def read_state(state_file: Path) -> ClusterState | None:
    """Read a cluster state file; ``None`` if there is none.

    Raises
    ------
    ClusterError
        If the file is unreadable or not alertbench's.
    """
    if not state_file.exists():
        return None
    try:
        data = json.loads(state_file.read_text())
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {data.get('format')!r}, expected {STATE_FORMAT}")
        return ClusterState.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClusterError(
            f"cannot read the cluster state file {state_file}: {exc}. If no alertbench cluster "
            f"runs from {state_file.parent}, remove that folder (or run "
            "`alertbench kafka down --purge`)."
        ) from exc


def _log_option(node: Node, state: ClusterState) -> str:
    """The JVM flag that points Kafka's logging at the node's rendered config."""
    release = parse_release(state.kafka_version)
    path = node.config_dir / log_config_name(release)
    if release.uses_log4j2:
        return f"-Dlog4j2.configurationFile={path}"
    return f"-Dlog4j.configuration=file:{path}"


def zookeeper_mode(address: str, port: int, timeout: float = 2.0) -> str | None:
    """Ask a ZooKeeper server its mode with the ``srvr`` four-letter command.

    Returns
    -------
    str or None
        ``leader``, ``follower``, ``standalone``; ``None`` if it does not answer.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(b"srvr")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None
