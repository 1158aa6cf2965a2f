"""A Spark standalone cluster on an inventory's hosts, deployed over SSH.

The master runs on the inventory's Spark master host and a worker on each
Spark worker host, each bound to its inventory address. Nothing is copied:
Spark runs the executors' Python at the driver's interpreter path, so every
host must already have this machine's Python environment at the same path
(a shared file system, or the same install on each host), and the pyspark in
it brings Spark's jars and ``bin/spark-class``. Every host is checked first
(SSH, Java, that Python and its pyspark, free ports, a writable spark dir);
if one fails, nothing is started and one error names every failed host.

The processes are recorded with their hosts and the hosts' SSH targets in
the same state file as a local cluster's, so that
:func:`alertbench.spark.standalone.status` and
:func:`alertbench.spark.standalone.down` need nothing else.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.kafka.inventory import Host, Inventory
from alertbench.kafka.remote import ssh_target
from alertbench.procs import ProcessRecord, stop_processes
from alertbench.spark.hosts import (
    MASTER,
    HostCheck,
    check_hosts,
    memory_notes,
    ports_of,
    roles_of,
    spark_dir_of,
    worker_name,
)
from alertbench.spark.metrics import daemon_java_opts
from alertbench.spark.standalone import probe
from alertbench.spark.state import (
    SCRATCH_DIR,
    STATE_FILE,
    SparkCluster,
    alive_workers,
    cluster_status,
    read_state,
    save_state,
    state_dir,
)
from alertbench.ssh import HostPool

Progress = Callable[[str], None]

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass
class HostReport:
    """One daemon of the deployment, for people.

    Attributes
    ----------
    host, address : str
        Inventory name and address.
    role : str
        ``master`` or ``worker``.
    java : str
        Java version on the host.
    pid : int
        The daemon's PID on the host.
    action : str
        ``started``, ``restarted`` or ``running`` (found running).
    """

    host: str
    address: str
    role: str
    java: str
    pid: int
    action: str


@dataclass
class DeployResult:
    """What :func:`up` did.

    Attributes
    ----------
    cluster : SparkCluster
        The running cluster, as recorded.
    hosts : list of HostReport
        Every daemon: the master first, then the workers.
    already_running : bool
        Whether everything was running already (nothing was started).
    notes : list of str
        Things to know: stale processes restarted, memory that cannot fit an executor.
    """

    cluster: SparkCluster
    hosts: list[HostReport]
    already_running: bool = False
    notes: list[str] = field(default_factory=list)


def _host_info(host: Host, roles: list[str]) -> dict[str, object]:
    """What the state file records of a host (besides its Java, found when checked)."""
    return {
        "address": host.address,
        "roles": roles,
        "spark_dir": str(spark_dir_of(host)),
        "ports": [p for _name, p in ports_of(host, roles)],
        "cores": host.spark_worker_cores if "worker" in roles else None,
        "memory": host.spark_worker_memory if "worker" in roles else None,
    }


def _same_layout(cluster: SparkCluster, inv: Inventory, hosts: dict[str, dict]) -> bool:
    """Whether the recorded cluster is the one ``inv`` describes (hosts, roles, ports, sizes)."""
    recorded = {h: {k: v for k, v in i.items() if k != "java"} for h, i in cluster.hosts.items()}
    return cluster.master_url == inv.spark_master_url and recorded == hosts


def up(
    settings: Settings,
    inv: Inventory,
    *,
    timeout: float = 120.0,
    connect_timeout: float = 10.0,
    progress: Progress | None = None,
) -> DeployResult:
    """Deploy a standalone master and workers to the inventory's Spark hosts.

    Re-running it is safe: a cluster that runs is only reported, and the
    daemons of a stale one (a worker that died, a rebooted host) are started
    again. A different cluster recorded in the run dir must be stopped first.

    Parameters
    ----------
    settings : Settings
        Run dir (state file) and the broker's executor memory.
    inv : Inventory
        The hosts; see :attr:`Inventory.spark_master` and :attr:`Inventory.spark_workers`.
    timeout : float
        Seconds to wait for the master, then for the workers, to come up.
    connect_timeout : float
        Seconds to wait for each SSH connection.
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    DeployResult

    Raises
    ------
    ClusterError
        If a host fails its checks (one error naming every failed host; nothing
        is started), or a daemon does not come up (what this call started is
        stopped again; the message names the host and ends with its log).
    """
    import pyspark

    say = progress or (lambda _m: None)
    by_name = {h.name: h for h in inv.hosts}
    roles = roles_of(inv)
    master = inv.spark_master
    workers = [h for h in inv.hosts if "worker" in roles.get(h.name, [])]
    hosts_info = {name: _host_info(by_name[name], r) for name, r in roles.items()}
    notes = memory_notes(settings.broker.executor_memory, workers)
    targets = {name: ssh_target(by_name[name]) for name in roles}
    existing = read_state(settings)
    cluster: SparkCluster | None = None
    action = "started"
    wanted = [MASTER] + [worker_name(h.name) for h in workers]
    to_start = list(wanted)
    if existing is not None and existing.procs:
        if not _same_layout(existing, inv, hosts_info):
            _forget_other(settings, existing, connect_timeout)
        else:
            cluster = existing
    with HostPool(targets, timeout=connect_timeout) as pool:
        if cluster is not None:
            say("checking the recorded Spark cluster")
            alive, unreachable = probe(cluster, pool)
            if unreachable:
                why = "; ".join(f"host {h}: {r}" for h, r in unreachable.items())
                raise ClusterError(
                    f"cannot tell whether the recorded Spark cluster runs: {why}. Run `alertbench "
                    "spark up` again once every host is reachable."
                )
            if all(alive.get(n, False) for n in wanted):
                return DeployResult(
                    cluster, _reports(cluster, "running", {}), already_running=True, notes=notes
                )
            dead = [n for n in wanted if not alive.get(n, False)]
            gone = ", ".join(
                f"{n} (pid {cluster.procs[n].pid} on {cluster.procs[n].host})"
                for n in dead
                if n in cluster.procs
            ) or ", ".join(dead)
            action = "restarted"
            if MASTER in dead:
                # Workers of a dead master would only retry; start the whole cluster afresh.
                notes.append(f"stale state: {gone} no longer running; restarting the cluster")
                _stop(pool, cluster, [n for n in cluster.procs if n != MASTER])
                cluster.procs.clear()
            else:
                notes.append(f"stale state: {gone} no longer running; restarting it")
                for n in dead:
                    cluster.procs.pop(n, None)
                to_start = dead
        if cluster is None:
            first = workers[0] if workers else master
            cluster = SparkCluster(
                master_url=inv.spark_master_url,
                ui_url=f"http://{master.address}:{master.spark_ui_port}",
                workers=len(workers),
                cores_per_worker=first.spark_worker_cores,
                memory_per_worker=first.spark_worker_memory,
                source=inv.source,
            )
        cluster.targets = targets
        # Keep the Java versions found earlier on hosts that start nothing now.
        old = cluster.hosts
        cluster.hosts = {name: {**old.get(name, {}), **info} for name, info in hosts_info.items()}
        starts: dict[str, list[str]] = {}
        for n in to_start:
            host = master.name if n == MASTER else n.removeprefix("worker-")
            starts.setdefault(host, []).append(n)
        say(f"checking {len(starts)} host(s): SSH, Java, Python and pyspark, ports, spark dir")
        checks = check_hosts(pool, starts, by_name, pyspark.__version__)
        for name, chk in checks.items():
            cluster.hosts[name]["java"] = chk.java
        save_state(settings, cluster)
        started = _start(settings, pool, cluster, to_start, by_name, checks, timeout, say)
    reports = _reports(cluster, "running", {n: action for n in started})
    return DeployResult(cluster, reports, notes=notes)


def _forget_other(settings: Settings, existing: SparkCluster, connect_timeout: float) -> None:
    """Let a recorded cluster of another layout be replaced, if nothing of it runs."""
    with HostPool(existing.targets, timeout=connect_timeout) as pool:
        alive, unreachable = probe(existing, pool)
    if any(alive.values()) or unreachable:
        what = f"deployed from {existing.source}" if existing.source else "on this machine"
        raise ClusterError(
            f"{state_dir(settings) / STATE_FILE} records another Spark cluster ({what}, master "
            f"{existing.master_url}) that still runs or cannot be checked; stop it with "
            "`alertbench spark down` first, or use another --run-dir."
        )


def _reports(cluster: SparkCluster, default: str, actions: dict[str, str]) -> list[HostReport]:
    out = []
    for name, rec in cluster.procs.items():
        info = cluster.hosts.get(rec.host, {})
        out.append(
            HostReport(
                host=rec.host,
                address=cluster.address_of(rec.host),
                role="master" if name == MASTER else "worker",
                java=str(info.get("java", "?")),
                pid=rec.pid,
                action=actions.get(name, default),
            )
        )
    return sorted(out, key=lambda r: (r.role != "master", r.host))


def _stop(pool: HostPool, cluster: SparkCluster, names: list[str]) -> None:
    """Stop ``names`` by PID, each on its host (in parallel), and forget them."""
    by_host: dict[str, list[ProcessRecord]] = {}
    for n in names:
        by_host.setdefault(cluster.procs[n].host, []).append(cluster.procs[n])
    with ThreadPoolExecutor(max_workers=max(1, len(by_host))) as ex:
        futures = [
            ex.submit(lambda h, ps: stop_processes(pool(h), ps, grace=15), h, ps)
            for h, ps in by_host.items()
        ]
        for f in futures:
            f.result()
    for n in names:
        cluster.procs.pop(n, None)


def _env(host: Host, chk: HostCheck) -> dict[str, str]:
    spark_dir = spark_dir_of(host)
    return {
        "SPARK_HOME": chk.spark_home,
        "JAVA_HOME": chk.java_home,
        # Bind to the inventory address, not whatever the host name resolves to.
        "SPARK_LOCAL_IP": host.address,
        # Daemons default to a 1 GB heap; they only schedule, executors do the work.
        "SPARK_DAEMON_MEMORY": "256m",
        # spark-class then execs the JVM in the foreground: the PID we record is the daemon's.
        "SPARK_NO_DAEMONIZE": "1",
        "SPARK_DAEMON_JAVA_OPTS": daemon_java_opts(),
        "PYSPARK_PYTHON": sys.executable,
        # Shuffle and spill files stay under the host's spark dir, not in /tmp.
        "SPARK_LOCAL_DIRS": str(spark_dir / SCRATCH_DIR),
    }


def _argv(name: str, host: Host, chk: HostCheck, master_url: str) -> list[str]:
    spark_class = str(Path(chk.spark_home) / "bin" / "spark-class")
    if name == MASTER:
        return [
            spark_class,
            MASTER_CLASS,
            "--host",
            host.address,
            "--port",
            str(host.spark_port),
            "--webui-port",
            str(host.spark_ui_port),
        ]
    argv = [spark_class, WORKER_CLASS, "--host", host.address]
    if host.spark_worker_cores is not None:
        argv += ["--cores", str(host.spark_worker_cores)]
    return [
        *argv,
        "--memory",
        host.spark_worker_memory,
        "--work-dir",
        str(spark_dir_of(host) / "work"),
        "--webui-port",
        str(host.spark_worker_ui_port),
        master_url,
    ]


def _start(
    settings: Settings,
    pool: HostPool,
    cluster: SparkCluster,
    names: list[str],
    hosts: dict[str, Host],
    checks: dict[str, HostCheck],
    timeout: float,
    say: Progress,
) -> list[str]:
    """Start ``names`` (the master first), record each at once, and wait until they serve.

    On failure, what this call started is stopped again before the error is raised.
    """
    started: list[str] = []
    lock = threading.Lock()

    def spawn(name: str) -> None:
        h = hosts[_host_of(cluster, name)]
        chk = checks[h.name]
        log = spark_dir_of(h) / "logs" / f"{name}.log"
        rec = pool(h.name).spawn(
            _argv(name, h, chk, cluster.master_url),
            log=log,
            cwd=spark_dir_of(h),
            env=_env(h, chk),
        )
        with lock:
            cluster.procs[name] = rec
            cluster.logs[name] = str(log)
            port = h.spark_ui_port if name == MASTER else h.spark_worker_ui_port
            cluster.uis[name] = f"http://{h.address}:{port}"
            started.append(name)
            save_state(settings, cluster)

    try:
        if MASTER in names:
            host = hosts[_host_of(cluster, MASTER)]
            say(f"starting the Spark master on {host.name} ({cluster.master_url})")
            spawn(MASTER)
            _wait(
                pool,
                cluster,
                [MASTER],
                lambda info: info is not None and info.get("status") == "ALIVE",
                timeout,
                "the Spark master did not come up",
            )
        new = [n for n in names if n != MASTER]
        if new:
            before = {w.get("id") for w in alive_workers(cluster_status(cluster, pool))}
            say(f"starting {len(new)} Spark worker(s): {', '.join(new)}")
            with ThreadPoolExecutor(max_workers=len(new)) as ex:
                for f in [ex.submit(spawn, n) for n in new]:
                    f.result()
            expected = [cluster.address_of(cluster.procs[n].host) for n in new]

            def registered(info: dict | None) -> bool:
                # Only workers that registered after this start count: a killed
                # worker can stay listed as ALIVE until the master times it out.
                fresh = [w.get("host") for w in alive_workers(info) if w.get("id") not in before]
                return all(fresh.count(a) >= expected.count(a) for a in set(expected))

            _wait(pool, cluster, new, registered, timeout, f"{len(new)} worker(s) did not register")
    except BaseException:
        workers = [n for n in started if n != MASTER]
        # Any error of the clean-up must not hide the one that made it necessary.
        with contextlib.suppress(Exception):
            _stop(pool, cluster, workers)
        if MASTER in started:
            with contextlib.suppress(Exception):
                _stop(pool, cluster, [MASTER])
        for n in started:
            cluster.procs.pop(n, None)
        save_state(settings, cluster)
        raise
    return started


def _host_of(cluster: SparkCluster, name: str) -> str:
    if name == MASTER:
        return next(h for h, v in cluster.hosts.items() if "master" in v.get("roles", []))
    return name.removeprefix("worker-")


def _wait(
    pool: HostPool,
    cluster: SparkCluster,
    names: list[str],
    ready: Callable[[dict | None], bool],
    timeout: float,
    what: str,
) -> None:
    """Wait until the master's status is ``ready``, failing fast if one of ``names`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        for name in names:
            rec = cluster.procs[name]
            t = pool(rec.host)
            if not t.is_running(rec):
                tail = t.tail(Path(cluster.logs[name]), 20)
                raise ClusterError(
                    f"Spark {name} on host {rec.host} ({cluster.address_of(rec.host)}) exited "
                    f"during start-up; the end of its log {cluster.logs[name]}:\n{tail}"
                )
        if ready(cluster_status(cluster, pool)):
            return
        if time.monotonic() > deadline:
            master = cluster.procs.get(MASTER)
            tail = ""
            if master is not None:
                tail = pool(master.host).tail(Path(cluster.logs[MASTER]), 20)
            raise ClusterError(
                f"{what} within {timeout:.0f} s; the end of the master's log "
                f"{cluster.logs.get(MASTER)} on {master.host if master else '?'}:\n{tail}"
            )
        time.sleep(1.0)
