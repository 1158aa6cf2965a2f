"""Run a Kafka cluster: plan its nodes, format, start in order, wait, stop by PID.

A cluster is an :class:`~alertbench.kafka.inventory.Inventory` plus a Kafka
install. Each host runs one Kafka JVM (broker, controller or both) and, in
ZooKeeper mode, a ZooKeeper JVM. Every JVM is started through the host's
:class:`~alertbench.procs.Transport` and recorded with its PID in a JSON state
file, written after each start so that a crash half-way never leaves an
untracked process. :func:`~alertbench.kafka.state.local_inventory` lays out N
nodes on this machine; remote hosts only need another transport. The state
file's content is :mod:`alertbench.kafka.state`; waiting for the nodes to be
ready, and explaining why one is not, is :mod:`alertbench.kafka.readiness`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alertbench.errors import ClusterError
from alertbench.java import Java
from alertbench.kafka import credentials
from alertbench.kafka.admin import ClusterInfo
from alertbench.kafka.fetch import KafkaInstall
from alertbench.kafka.inventory import Host, Inventory
from alertbench.kafka.jvm import log_option, server_argv
from alertbench.kafka.readiness import check_ports, wait_kafka, wait_zookeeper
from alertbench.kafka.remote import java_of
from alertbench.kafka.render import (
    HostFiles,
    Secured,
    listener_port,
    new_cluster_id,
    render_cluster,
)
from alertbench.kafka.security import MECHANISM, Connection, scram_credential
from alertbench.kafka.state import STATE_FILE, ClusterState, Node, nodes_for, read_state
from alertbench.observe.targets import write_cluster_targets
from alertbench.procs import LocalTransport, Transport, stop_processes
from alertbench.ssh import HostPool, SSHTarget

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
    # A laptop's disk fills in minutes at benchmark rates: a topic's retention is enforced
    # every 10 s, not every 5 minutes.
    "log.retention.check.interval.ms": 10_000,
}


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
    agent : Path, optional
        The Prometheus JMX exporter agent's jar on this machine: nodes
        :meth:`plan` lays out run with it (see :mod:`alertbench.kafka.jmx_exporter`).
    """

    def __init__(
        self,
        state_dir: Path,
        java: Java,
        *,
        heap: str = "512m",
        zookeeper_heap: str = "256m",
        transport_for: Callable[[str], Transport] | None = None,
        agent: Path | None = None,
    ) -> None:
        # Absolute: nodes run with their own folder as working directory.
        self.state_dir = state_dir.resolve()
        self.java = java
        self.heap = heap
        self.zookeeper_heap = zookeeper_heap
        self.agent = agent
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
        """Read this cluster's state file (see :func:`~alertbench.kafka.state.read_state`)."""
        state = read_state(self.state_file)
        if state is not None:
            self.pool.targets.update(state.targets())
        return state

    def save_state(self, state: ClusterState) -> None:
        """Write the state file atomically."""
        self._local.write_text(self.state_file, json.dumps(state.to_json(), indent=2) + "\n")
        # The running nodes' metrics, for `alertbench metrics prometheus-config`.
        write_cluster_targets(self.state_dir, "alertbench-kafka", state.metrics_urls())

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
        agents: dict[str, Path] | None = None,
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
        agents : dict of str to Path, optional
            Where each remote host has the JMX exporter agent (used when
            :attr:`agent` is set).
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

        def agent_of(host: Host) -> str | None:
            if self.agent is None:
                return None
            return str((agents or {})[host.name] if host.name in targets else self.agent)

        state = ClusterState(
            mode=inv.mode,
            kafka_version=install.release.version,
            lib_dir=str(install.lib_dir),
            cluster_id=new_cluster_id() if inv.mode == "kraft" else None,
            bootstrap_servers=inv.bootstrap_servers,
            zookeeper_connect=inv.zookeeper_connect or None,
            layout={"source": inv.source, "hosts": len(inv.hosts)},
            nodes=nodes_for(inv, home_of, protocols, agent_of),
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

    def _format(self, state: ClusterState, node: Node) -> None:
        argv = [
            self._java(node),
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            f"-Dkafka.logs.dir={node.log_dir}",
            log_option(node, state),
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
        argv = server_argv(self._java(node), self._classpath(node, state), node, state, heap, main)
        node.proc = self._t(node).spawn(argv, log=node.console_log, cwd=node.home)
        self.save_state(state)

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
            check_ports(self._t(node), node)
        try:
            for node in zks:
                self._start(state, node)
                started.append(node)
            if zks:
                say(f"waiting for the ZooKeeper ensemble ({len(zks)} nodes)")
                wait_zookeeper(zks, timeout, transport_for=self._transport_for)
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
            return wait_kafka(
                state,
                timeout,
                transport_for=self._transport_for,
                connect=lambda: self.connection(state),
            )
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
