"""Deploy a Kafka cluster to the hosts of an inventory, over SSH.

Before anything starts, every host is prepared in parallel: reached over
SSH, its Java checked, the fetched Kafka jars installed once (copied from
this machine's cache: hosts need no internet), its node and data folders
made and probed for writing, and its ports checked. A host that fails any
step is named with the reason, and nothing is started anywhere. Then the
nodes' rendered files are written and :class:`~alertbench.kafka.cluster.KafkaCluster`
starts them in order and waits for the cluster to form, exactly as for a
local cluster: only the transport differs.
"""

from __future__ import annotations

import ipaddress
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from alertbench.errors import AlertbenchError, ClusterError
from alertbench.kafka.admin import ClusterInfo
from alertbench.kafka.cluster import KafkaCluster, Progress
from alertbench.kafka.fetch import KafkaInstall
from alertbench.kafka.inventory import Host, Inventory
from alertbench.kafka.jmx_exporter import install_agent
from alertbench.kafka.remote import check_java, install_kafka, java_of, ssh_target
from alertbench.kafka.render import Secured
from alertbench.kafka.state import PORT_NAMES, ClusterState
from alertbench.procs import Transport
from alertbench.ssh import SSHTarget


@dataclass
class HostReport:
    """What deploying did on one host.

    Attributes
    ----------
    host, address : str
        The inventory host.
    java : str
        The Java version found there.
    lib_dir : str
        Where Kafka's jars are on the host.
    copied : int
        Jars copied by this deploy (0 when already installed).
    agent : str
        Where the JMX exporter agent is on the host ("" when nodes run without it).
    nodes : list of str
        The Kafka and ZooKeeper nodes it runs, with their PIDs once started.
    error : str or None
        Why the host could not be prepared.
    """

    host: str
    address: str
    java: str = ""
    lib_dir: str = ""
    copied: int = 0
    agent: str = ""
    nodes: list[str] = field(default_factory=list)
    error: str | None = None


def local_addresses() -> set[str]:
    """Every address of this machine's network interfaces."""
    return {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}


def is_remote(inv: Inventory) -> bool:
    """Whether any host of ``inv`` is another machine (and so is reached over SSH)."""
    mine = local_addresses()
    return any(
        not (ipaddress.ip_address(h.address).is_loopback or h.address in mine) for h in inv.hosts
    )


def kafka_hosts(inv: Inventory) -> list[Host]:
    """Hosts that run a Kafka or ZooKeeper node (Spark-only hosts are not touched)."""
    return [h for h in inv.hosts if h.has("broker") or h.has("controller") or h.has("zookeeper")]


def targets_of(inv: Inventory) -> dict[str, SSHTarget]:
    """How to reach every Kafka host of ``inv`` over SSH, by host name."""
    return {h.name: ssh_target(h) for h in kafka_hosts(inv)}


def _host_ports(host: Host, *, metrics: bool) -> dict[str, int]:
    ports = {}
    if host.has("broker"):
        ports["broker_port"] = host.broker_port
        ports.update({f"{p} listener": port for p, port in host.listener_ports.items()})
    if host.has("controller"):
        ports["controller_port"] = host.controller_port
    if host.has("zookeeper"):
        for key in ("zookeeper_client_port", "zookeeper_peer_port", "zookeeper_election_port"):
            ports[key] = getattr(host, key)
        if metrics:
            ports["zookeeper_metrics_port"] = host.zookeeper_metrics_port
    if metrics and (host.has("broker") or host.has("controller")):
        ports["metrics_port"] = host.metrics_port
    return ports


def _probe_writable(t: Transport, folder: Path) -> None:
    t.make_dirs(folder)
    probe = shlex.quote(str(folder / ".alertbench-probe"))
    done = t.run(["sh", "-c", f"touch {probe} && rm -f {probe}"], timeout=30)
    if done.returncode != 0:
        raise ClusterError(f"{folder} is not writable: {done.stderr.strip() or done.stdout}")


def _prepare(cluster: KafkaCluster, host: Host, install: KafkaInstall, running: bool) -> HostReport:
    report = HostReport(host.name, host.address)
    try:
        t = cluster.pool(host.name)
        report.java = check_java(t, java_of(host))[0]
        lib, report.copied = install_kafka(t, install, host.install_dir)
        report.lib_dir = str(lib)
        if cluster.agent is not None:
            report.agent = str(install_agent(t, cluster.agent, host.install_dir))
        folders = [host.install_dir / host.name]
        if host.has("broker") or host.has("controller"):
            folders.append(host.data_dir)
        if host.has("zookeeper"):
            folders.append(host.zookeeper_data_dir)
        for folder in folders:
            _probe_writable(t, folder)
        if not running:
            taken = [
                f"{port} ({PORT_NAMES.get(key, key)})"
                for key, port in _host_ports(host, metrics=cluster.agent is not None).items()
                if t.port_in_use(host.address, port)
            ]
            if taken:
                raise ClusterError(
                    f"port(s) {', '.join(taken)} on {host.address} already in use by another "
                    "process; stop it or give the host other ports in the inventory"
                )
    except AlertbenchError as exc:
        # The transport's messages already name the host; say it once.
        report.error = str(exc).removeprefix(f"host {host.name}: ")
    return report


def prepare_hosts(
    cluster: KafkaCluster, inv: Inventory, install: KafkaInstall, *, running: bool = False
) -> list[HostReport]:
    """Prepare every Kafka host of ``inv`` at once; see the module docstring.

    Parameters
    ----------
    cluster : KafkaCluster
        Its pool must know the hosts' SSH targets.
    inv : Inventory
        The hosts.
    install : KafkaInstall
        The Kafka to install.
    running : bool
        Whether the cluster's nodes may already listen (re-deploy): ports are
        then not checked here; :meth:`KafkaCluster.start` checks the ports of
        the nodes it starts.

    Returns
    -------
    list of HostReport
        In inventory order; failed hosts have ``error`` set.
    """
    hosts = kafka_hosts(inv)
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(lambda h: _prepare(cluster, h, install, running), hosts))


def failed_hosts_error(reports: list[HostReport]) -> ClusterError:
    """One error naming every host that failed, and the state the others are in."""
    bad = [r for r in reports if r.error]
    good = [r.host for r in reports if not r.error]
    lines = [f"cannot deploy Kafka to {len(bad)} of {len(reports)} host(s); nothing was started:"]
    lines += [f"  {r.host} ({r.address}): {r.error}" for r in bad]
    if good:
        lines.append(
            f"The other host(s) ({', '.join(good)}) are prepared (Java checked, Kafka installed, "
            "folders made) and run nothing. Fix the host(s) above and run `kafka up` again."
        )
    return ClusterError("\n".join(lines))


def deploy(
    cluster: KafkaCluster,
    inv: Inventory,
    install: KafkaInstall,
    *,
    timeout: float,
    progress: Progress | None = None,
    secured: Secured | None = None,
) -> tuple[ClusterState, ClusterInfo, list[HostReport]]:
    """Prepare the hosts, lay out and start a new cluster on them, and wait until it forms.

    Parameters
    ----------
    cluster : KafkaCluster
        Whose state file will record the nodes and how to reach their hosts.
    inv : Inventory
        The hosts (any may be remote).
    install : KafkaInstall
        The Kafka to run.
    timeout : float
        Seconds to wait for each start-up phase.
    progress : callable, optional
        Called with a short message at each step.
    secured : Secured, optional
        Listeners, keys and secrets of a secured cluster.

    Returns
    -------
    tuple
        The cluster's state, what the formed cluster reports, and one report
        per host.

    Raises
    ------
    ClusterError
        Naming every host that could not be prepared (nothing is started), or
        the node that failed to start (what was started is stopped).
    """
    say = progress or (lambda _m: None)
    targets = targets_of(inv)
    cluster.pool.targets.update(targets)
    say(f"preparing {len(targets)} host(s): SSH, Java, Kafka {install.release.version}, folders")
    reports = prepare_hosts(cluster, inv, install)
    if any(r.error for r in reports):
        raise failed_hosts_error(reports)
    state = cluster.plan(
        inv,
        install,
        local=False,
        targets=targets,
        lib_dirs={r.host: Path(r.lib_dir) for r in reports},
        agents={r.host: Path(r.agent) for r in reports if r.agent},
        secured=secured,
    )
    cluster.save_state(state)
    info = cluster.start(state, timeout=timeout, progress=progress)
    fill_nodes(reports, state)
    return state, info, reports


def fill_nodes(reports: list[HostReport], state: ClusterState) -> None:
    """Write each host's nodes and their PIDs into its report."""
    by_host = {r.host: r for r in reports}
    for node in state.nodes:
        if node.host in by_host:
            pid = f" (pid {node.proc.pid})" if node.proc else ""
            by_host[node.host].nodes.append(f"{node.name}{pid}")
