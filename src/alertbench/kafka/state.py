"""The recorded state of a Kafka cluster and the layout of its nodes.

A :class:`ClusterState` is what ``state.json`` holds: the cluster's mode,
addresses and security, and each :class:`Node` (one JVM) with its ports,
folders and, once started, its PID. :func:`local_inventory` lays out N nodes
on this machine; :func:`nodes_for` turns an inventory's hosts into the nodes
they run. Nothing here starts or asks a process: see
:mod:`alertbench.kafka.cluster` for that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alertbench.errors import ClusterError
from alertbench.kafka.inventory import Host, Inventory, Mode
from alertbench.kafka.render import listener_port
from alertbench.procs import ProcessRecord, free_ports
from alertbench.ssh import SSHTarget

STATE_FORMAT = 1
STATE_FILE = "state.json"

PORT_NAMES = {
    "broker_port": "broker listener",
    "controller_port": "controller listener",
    "zookeeper_client_port": "ZooKeeper client port",
    "zookeeper_peer_port": "ZooKeeper quorum port",
    "zookeeper_election_port": "ZooKeeper election port",
    "metrics_port": "metrics port (JMX exporter)",
    "zookeeper_metrics_port": "ZooKeeper metrics port (JMX exporter)",
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
    agent : str or None
        The Prometheus JMX exporter agent's jar on its host, when the node runs
        with it (its metrics are then at :attr:`metrics_url`).
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
    agent: str | None = None

    @property
    def config_dir(self) -> Path:
        """Where the node's rendered files live."""
        return self.home / "config"

    @property
    def metrics_port(self) -> int | None:
        """The JMX exporter's port, when the node runs with the agent."""
        if self.agent is None:
            return None
        key = "zookeeper_metrics_port" if self.kind == "zookeeper" else "metrics_port"
        return self.ports.get(key)

    @property
    def metrics_url(self) -> str | None:
        """Where Prometheus scrapes the node's JMX metrics, when it runs with the agent."""
        port = self.metrics_port
        return None if port is None else f"http://{self.address}:{port}/metrics"

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
            agent=data.get("agent"),  # type: ignore[arg-type]
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

    def metrics_urls(self) -> dict[str, str]:
        """The JMX exporter endpoint of each running node, by component (``kafka-NODE``)."""
        return {f"kafka-{n.name}": n.metrics_url for n in self.nodes if n.proc and n.metrics_url}

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
        client), ``+3`` and ``+4`` (ZooKeeper quorum and election), ``+5`` and
        ``+6`` (the Kafka and ZooKeeper nodes' metrics), ``+7``... (the
        further listeners).
    listeners : list of str, optional
        Protocols of listeners beyond the main one; each gets a port.

    Returns
    -------
    Inventory
    """
    roles = ("controller", "broker") if mode == "kraft" else ("zookeeper", "broker")
    extras = list(listeners or [])
    keys = list(PORT_NAMES) + [f"listener:{p}" for p in extras]
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


def nodes_for(
    inv: Inventory,
    home_of: Callable[[Host], Path],
    protocols: list[str] | None = None,
    agent_of: Callable[[Host], str | None] | None = None,
) -> list[Node]:
    """The nodes (JVMs) the hosts of ``inv`` run: ZooKeeper first, then Kafka, per host.

    Parameters
    ----------
    inv : Inventory
        The cluster.
    home_of : callable
        Gives the folder of a host's nodes.
    protocols : list of str, optional
        Security protocols of the listeners, the main one first; brokers get
        a port for each further one.
    agent_of : callable, optional
        Gives the JMX exporter agent's jar on a host, or ``None``; a node with
        an agent also listens on its metrics port.

    Returns
    -------
    list of Node
    """
    nodes = []
    for host in inv.hosts:
        node_id = inv.node_id(host)
        agent = agent_of(host) if agent_of else None
        if host.has("zookeeper"):
            zk_ports = [
                "zookeeper_client_port",
                "zookeeper_peer_port",
                "zookeeper_election_port",
            ] + (["zookeeper_metrics_port"] if agent else [])
            nodes.append(
                Node(
                    name=f"{host.name}-zk",
                    kind="zookeeper",
                    host=host.name,
                    address=host.address,
                    node_id=node_id,
                    roles=["zookeeper"],
                    ports={k: getattr(host, k) for k in zk_ports},
                    home=home_of(host),
                    agent=agent,
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
            if agent:
                ports["metrics_port"] = host.metrics_port
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
                    agent=agent,
                )
            )
    return nodes


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
