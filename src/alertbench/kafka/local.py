"""The embedded cluster: `kafka up/down/status` on this machine, from the configuration."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.java import find_java
from alertbench.kafka.admin import ClusterInfo, TopicInfo, describe_cluster, list_topics
from alertbench.kafka.cluster import (
    STATE_FILE,
    ClusterState,
    KafkaCluster,
    Progress,
    local_inventory,
    read_state,
)
from alertbench.kafka.fetch import resolve_kafka
from alertbench.kafka.inventory import Inventory, Mode, load_inventory


def kafka_version_for(settings: Settings, mode: Mode, version: str | None = None) -> str:
    """The Kafka version to run in ``mode``: explicit, else the mode's configured default."""
    if version:
        return version
    return settings.kafka.zookeeper_version if mode == "zookeeper" else settings.kafka.version


def cluster_for(settings: Settings) -> KafkaCluster:
    """The embedded cluster of ``settings.run_dir`` (Java is checked here)."""
    return KafkaCluster(
        settings.kafka_state_dir,
        find_java(settings.java_home),
        heap=settings.kafka.heap,
        zookeeper_heap=settings.kafka.zookeeper_heap,
    )


@dataclass
class UpResult:
    """What `kafka up` did.

    Attributes
    ----------
    state : ClusterState
        The running cluster.
    info : ClusterInfo
        What the cluster reports once formed.
    created : bool
        Whether this call laid out a new cluster (rather than restarting or
        finding the recorded one).
    notes : list of str
        Things the user should know (stale state recovered, already running...).
    """

    state: ClusterState
    info: ClusterInfo
    created: bool = False
    notes: list[str] = field(default_factory=list)


def on_this_machine(inv: Inventory, state_dir: Path) -> Inventory:
    """Check every host of ``inv`` is this machine and move its dirs into ``state_dir``.

    Many hosts of one inventory may share this machine (one loopback address
    each), so their data cannot all live in the inventory's ``/data/...``.

    Raises
    ------
    ClusterError
        Naming the first host whose address is not this machine's.
    """
    mine = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    hosts = []
    for host in inv.hosts:
        if not (ipaddress.ip_address(host.address).is_loopback or host.address in mine):
            raise ClusterError(
                f"{inv.source}: host {host.name} ({host.address}) is not this machine; "
                "starting nodes on remote hosts (over SSH) is not supported yet. Render their "
                "files with `alertbench kafka config` instead."
            )
        home = state_dir.resolve() / host.name
        hosts.append(
            host.model_copy(
                update={"data_dir": home / "data", "zookeeper_data_dir": home / "zookeeper"}
            )
        )
    return inv.model_copy(update={"hosts": hosts})


def up(
    settings: Settings,
    *,
    nodes: int | None = None,
    mode: Mode | None = None,
    version: str | None = None,
    inventory: Path | None = None,
    progress: Progress | None = None,
) -> UpResult:
    """Start the embedded cluster, or restart/confirm the one recorded in the run dir.

    Parameters
    ----------
    settings : Settings
        Run dir, ports, heaps, timeouts.
    nodes, mode, version : optional
        Override ``settings.kafka``.
    inventory : Path, optional
        Lay the cluster out from this inventory instead of ``nodes`` local
        nodes; every host must be an address of this machine (e.g. 127.0.0.2).
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    UpResult

    Raises
    ------
    ClusterError
        If a different cluster is recorded in the run dir, a port is taken, or
        the cluster does not form.
    """
    cluster = cluster_for(settings)
    inv = None
    if inventory is not None:
        # A mode set in any layer wins; otherwise a TOML inventory's own mode.
        chosen = mode or (
            settings.kafka.mode if "mode" in settings.kafka.model_fields_set else None
        )
        inv = on_this_machine(load_inventory(inventory, mode=chosen), cluster.state_dir)
        mode, nodes = inv.mode, len(inv.hosts)
    nodes = nodes or settings.kafka.nodes
    mode = mode or settings.kafka.mode
    version = kafka_version_for(settings, mode, version)
    layout = {"source": inv.source if inv else f"local:{nodes}", "hosts": nodes}
    state = cluster.load_state()
    notes: list[str] = []
    if state is not None:
        same = state.mode == mode and state.kafka_version == version and state.layout == layout
        running = cluster.running(state)
        described = (
            f"a {len(state.nodes)}-process {state.mode} cluster (Kafka {state.kafka_version})"
        )
        if not same:
            what = "is running" if running else "is stopped but its data is kept"
            raise ClusterError(
                f"{cluster.state_file} records {described} that {what}; you asked for {nodes} "
                f"node(s) in {mode} mode with Kafka {version}. Run `alertbench kafka down "
                "--purge` first, or use another --run-dir."
            )
        if len(running) == len(state.nodes):
            info = describe_cluster(state.bootstrap_servers)
            return UpResult(state, info, notes=[f"already running ({cluster.state_file})"])
        stale = cluster.stale(state)
        if stale:
            gone = ", ".join(f"{n.name} (pid {n.proc.pid})" for n in stale if n.proc)
            notes.append(
                f"stale state file {cluster.state_file}: {gone} no longer running; "
                "restarting from the kept data"
            )
        info = cluster.start(state, timeout=settings.kafka.start_timeout, progress=progress)
        return UpResult(state, info, notes=notes)
    install = resolve_kafka(settings, version)
    inv = inv or local_inventory(
        cluster.state_dir,
        nodes=nodes,
        mode=mode,
        address=settings.kafka.host,
        base_port=settings.kafka.base_port,
    )
    state = cluster.plan(inv, install, local=True)
    cluster.save_state(state)
    info = cluster.start(state, timeout=settings.kafka.start_timeout, progress=progress)
    return UpResult(state, info, created=True)


def down(settings: Settings, *, purge: bool = False) -> tuple[ClusterState | None, list[str]]:
    """Stop the embedded cluster by PID and optionally delete its data.

    Returns
    -------
    tuple
        The state that was stopped (``None`` if there was none) and the names of
        nodes that needed SIGKILL.
    """
    cluster = cluster_for(settings)
    try:
        state = cluster.load_state()
    except ClusterError:
        if not purge:
            raise
        state = None
    killed: list[str] = []
    if state is not None:
        killed = cluster.stop(state, grace=settings.kafka.stop_timeout)
    if purge:
        cluster.purge(state)
    return state, killed


@dataclass
class Status:
    """The embedded cluster's processes and what the cluster reports."""

    state: ClusterState
    alive: dict[str, bool]
    info: ClusterInfo | None
    topics: list[TopicInfo]
    error: str | None = None


def status(settings: Settings) -> Status:
    """Processes, controller, brokers and topics of the embedded cluster.

    Raises
    ------
    ClusterError
        If no cluster is recorded in the run dir.
    """
    cluster = cluster_for(settings)
    state = cluster.load_state()
    if state is None:
        raise ClusterError(
            f"no Kafka cluster recorded in {cluster.state_dir}; start one with "
            "`alertbench kafka up`."
        )
    running = {n.name for n in cluster.running(state)}
    alive = {n.name: n.name in running for n in state.nodes}
    info, topics, error = None, [], None
    if any(alive.values()):
        try:
            info = describe_cluster(state.bootstrap_servers, timeout=5)
            topics = list_topics(state.bootstrap_servers, timeout=5)
        except ClusterError as exc:
            error = str(exc)
    return Status(state=state, alive=alive, info=info, topics=topics, error=error)


def bootstrap_servers(settings: Settings) -> str:
    """Where clients connect: ``kafka.bootstrap_servers`` if set, else the embedded cluster.

    Raises
    ------
    ClusterError
        If neither is available.
    """
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state = read_state(settings.kafka_state_dir / STATE_FILE)
    if state is None:
        raise ClusterError(
            "no Kafka to talk to: start the embedded one with `alertbench kafka up`, or give "
            "--bootstrap-servers HOST:PORT (ALERTBENCH_KAFKA__BOOTSTRAP_SERVERS)."
        )
    return state.bootstrap_servers
