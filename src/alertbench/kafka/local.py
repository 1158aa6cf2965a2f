"""`kafka up/down/status`: the run dir's cluster, on this machine or deployed to an inventory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.java import find_java
from alertbench.kafka import credentials, deploy
from alertbench.kafka.admin import ClusterInfo, TopicInfo, describe_cluster, list_topics
from alertbench.kafka.cluster import KafkaCluster, Progress
from alertbench.kafka.fetch import resolve_kafka
from alertbench.kafka.inventory import MODE_ROLES, Inventory, Mode, load_inventory
from alertbench.kafka.jmx_exporter import fetch_agent
from alertbench.kafka.render import Secured, listener_port
from alertbench.kafka.security import Connection, NodeSecurity, read_client_properties
from alertbench.kafka.state import STATE_FILE, ClusterState, local_inventory, read_state


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
    hosts : list of HostReport
        For a cluster deployed over SSH: what happened on each host.
    """

    state: ClusterState
    info: ClusterInfo
    created: bool = False
    notes: list[str] = field(default_factory=list)
    hosts: list[deploy.HostReport] = field(default_factory=list)


def on_this_machine(inv: Inventory, state_dir: Path) -> Inventory:
    """Move the dirs of an inventory of this machine's addresses into ``state_dir``.

    Many hosts of one inventory may share this machine (one loopback address
    each), so their data cannot all live in the inventory's ``/data/...``.
    """
    hosts = []
    for host in inv.hosts:
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
    """Start the cluster, or restart/confirm the one recorded in the run dir.

    Without an inventory, ``nodes`` nodes run on this machine. With one
    (``inventory``, else ``settings.inventory``), its hosts are used: if every
    address is this machine's, the nodes run here (their dirs in the run
    dir); otherwise every host is deployed to over SSH (see
    :mod:`alertbench.kafka.deploy`). Either way the state file in the run dir
    records every node by PID.

    Parameters
    ----------
    settings : Settings
        Run dir, ports, heaps, timeouts.
    nodes, mode, version : optional
        Override ``settings.kafka``.
    inventory : Path, optional
        The cluster's hosts.
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    UpResult

    Raises
    ------
    ClusterError
        If a different cluster is recorded in the run dir, a host cannot be
        prepared, a port is taken, or the cluster does not form.
    """
    cluster = cluster_for(settings)
    try:
        return _up(cluster, settings, nodes, mode, version, inventory, progress)
    finally:
        cluster.close()


def _up(
    cluster: KafkaCluster,
    settings: Settings,
    nodes: int | None,
    mode: Mode | None,
    version: str | None,
    inventory: Path | None,
    progress: Progress | None,
) -> UpResult:
    inv = None
    remote = False
    inventory = inventory or settings.inventory
    if inventory is not None:
        # A mode set in any layer wins; otherwise a TOML inventory's own mode.
        chosen = mode or (
            settings.kafka.mode if "mode" in settings.kafka.model_fields_set else None
        )
        inv = load_inventory(inventory, mode=chosen)
        if not deploy.kafka_hosts(inv):
            raise ClusterError(
                f"{inv.source} names no Kafka host: give hosts the roles "
                f"{' and '.join(MODE_ROLES[inv.mode])}."
            )
        remote = deploy.is_remote(inv)
        if not remote:
            inv = on_this_machine(inv, cluster.state_dir)
        mode, nodes = inv.mode, len(deploy.kafka_hosts(inv))
    nodes = nodes or settings.kafka.nodes
    mode = mode or settings.kafka.mode
    version = kafka_version_for(settings, mode, version)
    layout = {"source": inv.source if inv else f"local:{nodes}", "hosts": nodes}
    state = cluster.load_state()
    notes: list[str] = []
    if state is not None:
        same = state.mode == mode and state.kafka_version == version and state.layout == layout
        asked = node_security(settings, inv).protocols
        # A plain `up` confirms the recorded cluster, secured or not; only a
        # security asked for (flag, config, inventory) must match it.
        explicit = bool({"security", "listeners"} & settings.kafka.model_fields_set) or bool(
            inv and (inv.security or inv.listeners is not None)
        )
        if same and explicit and list(state.listeners) != asked:
            raise ClusterError(
                f"{cluster.state_file} records a cluster with listener(s) "
                f"{', '.join(state.listeners)}; you asked for {', '.join(asked)}. Run "
                "`alertbench kafka down --purge` first, or use another --run-dir."
            )
        described = (
            f"a {len(state.nodes)}-process {state.mode} cluster (Kafka {state.kafka_version})"
        )
        if not same:
            what = "is running" if cluster.running(state) else "is stopped but its data is kept"
            raise ClusterError(
                f"{cluster.state_file} records {described} that {what}; you asked for {nodes} "
                f"node(s) in {mode} mode with Kafka {version}. Run `alertbench kafka down "
                "--purge` first, or use another --run-dir."
            )
        reports: list[deploy.HostReport] = []
        if remote and inv is not None:
            # Re-deploying is safe: hosts are checked again, jars copied only if changed.
            if settings.kafka.jmx_exporter:
                cluster.agent = fetch_agent(settings, java=cluster.java, progress=progress)
            reports = deploy.prepare_hosts(
                cluster, inv, resolve_kafka(settings, version), running=True
            )
            if any(r.error for r in reports):
                raise deploy.failed_hosts_error(reports)
        running = cluster.running(state)
        if len(running) == len(state.nodes):
            deploy.fill_nodes(reports, state)
            info = describe_cluster(cluster.connection(state))
            return UpResult(
                state, info, notes=[f"already running ({cluster.state_file})"], hosts=reports
            )
        stale = cluster.stale(state)
        if stale:
            gone = ", ".join(f"{n.name} (pid {n.proc.pid})" for n in stale if n.proc)
            notes.append(
                f"stale state file {cluster.state_file}: {gone} no longer running; "
                "restarting from the kept data"
            )
        info = cluster.start(state, timeout=settings.kafka.start_timeout, progress=progress)
        deploy.fill_nodes(reports, state)
        return UpResult(state, info, notes=notes, hosts=reports)
    install = resolve_kafka(settings, version)
    if settings.kafka.jmx_exporter:
        cluster.agent = fetch_agent(settings, java=cluster.java, progress=progress)
    sec = node_security(settings, inv)
    if remote and inv is not None:
        secured = prepare_security(settings, sec, inv, cluster.state_dir)
        state, info, reports = deploy.deploy(
            cluster,
            inv,
            install,
            timeout=settings.kafka.start_timeout,
            progress=progress,
            secured=secured,
        )
        return UpResult(state, info, created=True, hosts=reports)
    inv = inv or local_inventory(
        cluster.state_dir,
        nodes=nodes,
        mode=mode,
        address=settings.kafka.host,
        base_port=settings.kafka.base_port,
        listeners=sec.protocols[1:],
    )
    # Checked and made before anything starts: a bad certificate leaves nothing running.
    secured = prepare_security(settings, sec, inv, cluster.state_dir)
    state = cluster.plan(inv, install, local=True, secured=secured)
    cluster.save_state(state)
    info = cluster.start(state, timeout=settings.kafka.start_timeout, progress=progress)
    return UpResult(state, info, created=True)


def node_security(settings: Settings, inv: Inventory | None) -> NodeSecurity:
    """The security asked for: the inventory's if it sets one, else ``[kafka]``'s.

    Raises
    ------
    ConfigError
        For combinations that cannot run securely.
    """
    protocol = (inv.security if inv and inv.security else None) or settings.kafka.security
    listeners = inv.listeners if inv and inv.listeners is not None else settings.kafka.listeners
    sec = NodeSecurity(protocol, [p for p in listeners if p != protocol])
    sec.check()
    for host in inv.brokers if inv else []:
        for proto in sec.protocols:
            listener_port(host, proto, sec.protocol)  # names a host without a port
    return sec


def prepare_security(
    settings: Settings, sec: NodeSecurity, inv: Inventory, folder: Path
) -> Secured:
    """The keys and secrets of a new cluster, from the configured CA if any (see credentials)."""
    return credentials.prepare(
        sec, inv, folder, ca_cert=settings.kafka.tls_ca_cert, ca_key=settings.kafka.tls_ca_key
    )


def down(settings: Settings, *, purge: bool = False) -> tuple[ClusterState | None, list[str]]:
    """Stop the cluster recorded in the run dir by PID, and optionally delete its data.

    Remote nodes are stopped over SSH, from the hosts recorded in the state
    file. If a host cannot be reached, every other node is still stopped,
    the unreachable host's nodes stay recorded, and an error names it.

    Returns
    -------
    tuple
        The state that was stopped (``None`` if there was none) and the names of
        nodes that needed SIGKILL.

    Raises
    ------
    ClusterError
        If a host could not be reached (nothing is purged then).
    """
    cluster = cluster_for(settings)
    try:
        try:
            state = cluster.load_state()
        except ClusterError:
            if not purge:
                raise
            state = None
        killed: list[str] = []
        if state is not None:
            killed = cluster.stop(state, grace=settings.kafka.stop_timeout)
        if cluster.unreachable:
            left = [n.name for n in state.nodes if n.proc] if state else []
            reasons = "\n".join(f"  {h}: {why}" for h, why in cluster.unreachable.items())
            raise ClusterError(
                f"could not reach {len(cluster.unreachable)} host(s); their node(s) "
                f"{', '.join(left)} may still run and stay recorded in {cluster.state_file}. "
                f"Every other node is stopped. Run `kafka down` again once they are back:\n"
                + reasons
            )
        if purge:
            cluster.purge(state)
        return state, killed
    finally:
        cluster.close()


@dataclass
class Status:
    """The embedded cluster's processes and what the cluster reports."""

    state: ClusterState
    alive: dict[str, bool]
    info: ClusterInfo | None
    topics: list[TopicInfo]
    error: str | None = None
    unreachable: dict[str, str] = field(default_factory=dict)


def status(settings: Settings) -> Status:
    """Processes, controller, brokers and topics of the embedded cluster.

    Raises
    ------
    ClusterError
        If no cluster is recorded in the run dir.
    """
    cluster = cluster_for(settings)
    try:
        state = cluster.load_state()
        if state is None:
            raise ClusterError(
                f"no Kafka cluster recorded in {cluster.state_dir}; start one with "
                "`alertbench kafka up`."
            )
        running = {n.name for n in cluster.running(state)}
    finally:
        cluster.close()
    alive = {n.name: n.name in running for n in state.nodes}
    info, topics, error = None, [], None
    if any(alive.values()):
        try:
            conn = credentials.admin_connection(settings.kafka_state_dir, state.bootstrap_servers)
            info = describe_cluster(conn, timeout=5)
            topics = list_topics(conn, timeout=5)
        except ClusterError as exc:
            error = str(exc)
    return Status(
        state=state,
        alive=alive,
        info=info,
        topics=topics,
        error=error,
        unreachable=dict(cluster.unreachable),
    )


def inventory_of(settings: Settings, path: Path | None = None) -> Inventory | None:
    """The configured inventory (``path``, else ``settings.inventory``), or None.

    A mode set in any configuration layer wins over a TOML inventory's own.
    """
    path = path or settings.inventory
    if path is None:
        return None
    chosen = settings.kafka.mode if "mode" in settings.kafka.model_fields_set else None
    return load_inventory(path, mode=chosen)


def recorded_state(settings: Settings) -> ClusterState | None:
    """The cluster recorded in the run dir, or None."""
    return read_state(settings.kafka_state_dir / STATE_FILE)


def bootstrap_servers(settings: Settings) -> str:
    """Where clients connect: the servers of :func:`connection`.

    ``kafka.bootstrap_servers`` if set, else the client config's, else the
    brokers of the configured inventory, else the cluster recorded in the run
    dir.

    Raises
    ------
    ClusterError
        If none is available.
    """
    return connection(settings).servers


def connection(settings: Settings) -> Connection:
    """Where alertbench's clients connect, and with which credentials.

    Servers as :func:`bootstrap_servers` finds them. Credentials: the client
    config file (``kafka.client_config``, ``--client-config``) with
    ``[kafka.client]`` over it; else, when the servers are those of the cluster
    recorded in the run dir, the admin principal ``kafka up`` made for it.

    Raises
    ------
    ClusterError
        If there is no Kafka to talk to.
    ConfigError
        If the client config file is missing or malformed.
    """
    props: dict[str, str] = {}
    source = settings.kafka.client_config
    if source is not None:
        props.update(read_client_properties(source))
    props.update(settings.kafka.client)
    servers = settings.kafka.bootstrap_servers or props.get("bootstrap.servers") or None
    if servers is None:
        inv = inventory_of(settings)
        servers = inv.bootstrap_servers if inv is not None and inv.bootstrap_servers else None
    state = recorded_state(settings)
    if servers is None:
        if state is None:
            raise ClusterError(
                "no Kafka to talk to: start the embedded one with `alertbench kafka up`, or "
                "give --bootstrap-servers HOST:PORT (ALERTBENCH_KAFKA__BOOTSTRAP_SERVERS)."
            )
        servers = state.bootstrap_servers
    ours = state is not None and servers == state.bootstrap_servers
    if source is None and not settings.kafka.client and ours:
        return credentials.admin_connection(settings.kafka_state_dir, servers)
    if settings.kafka.client and source is not None:
        source = None  # the file alone no longer says it all
    return Connection.build(servers, props, source=source)
