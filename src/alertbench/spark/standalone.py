"""A real Spark standalone cluster: a master and workers, tracked and stopped by PID.

The daemons are started with pyspark's own ``bin/spark-class`` (the wheel
ships no ``sbin/start-*.sh``), which execs the JVM, so the PID we record is
the daemon's. Like the Kafka nodes, they are tracked in a state file and
stopped by PID through a :class:`~alertbench.procs.Transport`.

:func:`up` starts a cluster on this machine; :mod:`alertbench.spark.deploy`
starts one on an inventory's hosts over SSH. Both record it in the same state
file (:mod:`alertbench.spark.state`), with the SSH targets of remote hosts,
so that :func:`status` and :func:`down` work from that file alone, whichever
started it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.java import find_java
from alertbench.procs import (
    LocalTransport,
    free_ports,
    stop_processes,
)
from alertbench.spark.metrics import daemon_java_opts
from alertbench.spark.state import (
    SCRATCH_DIR,
    SPARK_DIR_CONTENT,
    STATE_FILE,
    SparkCluster,
    cluster_status,
    master_status,
    read_state,
    save_state,
    state_dir,
)
from alertbench.ssh import HostPool


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _env(settings: Settings, base: Path) -> dict[str, str]:
    java = find_java(settings.java_home)
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(_spark_home()),
        JAVA_HOME=str(java.home),
        SPARK_LOCAL_IP="127.0.0.1",
        # Daemons default to a 1 GB heap; they only schedule, executors do the work.
        SPARK_DAEMON_MEMORY="256m",
        PYSPARK_PYTHON=sys.executable,
        SPARK_NO_DAEMONIZE="1",
        SPARK_DAEMON_JAVA_OPTS=daemon_java_opts(),
        # Executors' scratch (userFiles, block manager, spills) under the state dir, as on
        # deployed hosts: an executor killed by SIGKILL cannot delete its own, and
        # `down --purge` then does.
        SPARK_LOCAL_DIRS=str(base / SCRATCH_DIR),
    )
    return env


def up(
    settings: Settings,
    *,
    workers: int = 1,
    cores: int = 2,
    memory: str = "3g",
    timeout: float = 90.0,
) -> SparkCluster:
    """Start a master and ``workers`` workers here, and wait until every worker is ALIVE.

    Returns the running cluster (the recorded one if it is already running).

    Raises
    ------
    ClusterError
        If a daemon exits or the workers do not register in time (with the log tail).
    """
    local = LocalTransport()
    existing = read_state(settings)
    if existing is not None and existing.targets:
        _refuse_if_deployed(settings, existing)
    elif existing is not None:
        alive = [k for k, p in existing.procs.items() if local.is_running(p)]
        if len(alive) == len(existing.procs) and existing.procs:
            return existing
        stop_processes(local, list(existing.procs.values()), grace=10)
    base = state_dir(settings)
    port, ui_port, *worker_ui = free_ports(2 + workers)
    cluster = SparkCluster(
        master_url=f"spark://127.0.0.1:{port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        workers=workers,
        cores_per_worker=cores,
        memory_per_worker=memory,
    )
    cluster.uis["master"] = cluster.ui_url
    for i, ui in enumerate(worker_ui):
        cluster.uis[f"worker-{i + 1}"] = f"http://127.0.0.1:{ui}"
    spark_class = str(_spark_home() / "bin" / "spark-class")
    env = _env(settings, base)
    argv_of = {
        "master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
        ],
    }
    for i in range(workers):
        argv_of[f"worker-{i + 1}"] = [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--work-dir",
            str(base / f"worker-{i + 1}" / "work"),
            "--webui-port",
            str(worker_ui[i]),
            cluster.master_url,
        ]
    try:
        for name, argv in argv_of.items():
            log = base / "logs" / f"{name}.log"
            cluster.procs[name] = local.spawn(argv, log=log, cwd=base, env=env)
            cluster.logs[name] = str(log)
            save_state(settings, cluster)
            if name == "master":
                _wait(
                    cluster,
                    local,
                    lambda s: s is not None and s.get("status") == "ALIVE",
                    timeout,
                    "the master did not come up",
                )
        _wait(
            cluster,
            local,
            lambda s: s is not None and s.get("aliveworkers", 0) >= workers,
            timeout,
            f"{workers} worker(s) did not register",
        )
    except BaseException:
        stop_processes(local, list(cluster.procs.values()), grace=10)
        cluster.procs.clear()
        save_state(settings, cluster)
        raise
    return cluster


def _wait(cluster: SparkCluster, local: LocalTransport, ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in cluster.procs.items():
            if not local.is_running(proc):
                tail = local.tail(Path(cluster.logs[name]), 20)
                raise ClusterError(f"Spark {name} exited during start-up:\n{tail}")
        if ready(master_status(cluster.ui_url)):
            return
        if time.monotonic() > deadline:
            tail = local.tail(Path(cluster.logs["master"]), 20)
            raise ClusterError(f"{what} within {timeout:.0f} s:\n{tail}")
        time.sleep(0.5)


def _refuse_if_deployed(settings: Settings, existing: SparkCluster) -> None:
    """Refuse to replace a deployed cluster that still runs (or cannot be checked)."""
    with HostPool(existing.targets) as pool:
        alive, unreachable = probe(existing, pool)
    if any(alive.values()) or unreachable:
        where = state_dir(settings) / STATE_FILE
        raise ClusterError(
            f"{where} records a Spark cluster deployed from {existing.source} that is still "
            "running (or on a host that cannot be reached); stop it with `alertbench spark "
            "down` first, or use another --run-dir."
        )


def probe(cluster: SparkCluster, pool: HostPool) -> tuple[dict[str, bool], dict[str, str]]:
    """Which recorded processes still run, host by host in parallel.

    Parameters
    ----------
    cluster : SparkCluster
        The recorded processes.
    pool : HostPool
        Transports of the cluster's hosts.

    Returns
    -------
    tuple of (dict, dict)
        Process name -> running, for every process whose host answered; and
        host -> reason, for the hosts that could not be reached.
    """
    alive: dict[str, bool] = {}
    unreachable: dict[str, str] = {}

    def check(host: str, names: list[str]) -> None:
        try:
            transport = pool(host)
            for name in names:
                alive[name] = transport.is_running(cluster.procs[name])
        except Exception as exc:  # an SSH failure of any kind: name the host
            unreachable[host] = str(exc)

    _per_host(cluster, list(cluster.procs), check)
    return alive, unreachable


def _per_host(cluster: SparkCluster, names: list[str], fn) -> None:
    """Call ``fn(host, names_on_that_host)`` for each host, in parallel (SSH round trips)."""
    by_host: dict[str, list[str]] = {}
    for name in names:
        by_host.setdefault(cluster.procs[name].host, []).append(name)
    if len(by_host) <= 1:
        for host, on_host in by_host.items():
            fn(host, on_host)
        return
    with ThreadPoolExecutor(max_workers=len(by_host)) as ex:
        for fut in [ex.submit(fn, h, n) for h, n in by_host.items()]:
            fut.result()


@dataclass
class ProcStatus:
    """One recorded process as ``spark status`` sees it.

    Attributes
    ----------
    name, host, address : str
        Process name (``master``, ``worker-...``), its host and the host's address.
    pid : int
        Its PID on that host.
    state : str
        ``running``, ``stopped`` or ``unreachable``.
    reason : str
        Why the host could not be asked (``unreachable`` only).
    """

    name: str
    host: str
    address: str
    pid: int
    state: str
    reason: str = ""


@dataclass
class SparkStatus:
    """The recorded cluster, its processes and what the master reports."""

    cluster: SparkCluster
    procs: list[ProcStatus]
    master: dict | None


def status(settings: Settings) -> SparkStatus:
    """The recorded cluster's processes (on every host) and the master's report.

    Raises
    ------
    ClusterError
        If no cluster is recorded.
    """
    cluster = read_state(settings)
    if cluster is None or not cluster.procs:
        raise ClusterError(
            f"no Spark cluster recorded in {state_dir(settings)}; start one with "
            "`alertbench spark up` (add --inventory FILE to deploy to hosts)."
        )
    with HostPool(cluster.targets) as pool:
        alive, unreachable = probe(cluster, pool)
        procs = []
        # The master first, then the workers by name (they were started in parallel).
        for name in sorted(cluster.procs, key=lambda n: (n != "master", n)):
            rec = cluster.procs[name]
            if rec.host in unreachable:
                state, reason = "unreachable", unreachable[rec.host]
            else:
                state, reason = ("running" if alive.get(name) else "stopped"), ""
            procs.append(
                ProcStatus(name, rec.host, cluster.address_of(rec.host), rec.pid, state, reason)
            )
        info = cluster_status(cluster, pool) if any(alive.values()) else None
    return SparkStatus(cluster=cluster, procs=procs, master=info)


def down(settings: Settings, *, purge: bool = False, grace: float = 15.0) -> SparkCluster | None:
    """Stop the recorded cluster by PID: the workers, then the master, on every host.

    Hosts are reached through the SSH targets recorded in the state file. A
    host that cannot be reached keeps its records, so that a later ``down``
    stops what runs there; every other process is stopped anyway.

    Parameters
    ----------
    settings : Settings
        Locates the state file.
    purge : bool
        Also delete the logs and work dirs (here, and on every reachable host).
    grace : float
        Seconds for each daemon to exit before SIGKILL.

    Returns
    -------
    SparkCluster or None
        The cluster as it was recorded, or None if none was.

    Raises
    ------
    ClusterError
        Naming every host that could not be reached, after stopping the rest.
    """
    cluster = read_state(settings)
    if cluster is None:
        if purge:
            LocalTransport().remove_tree(state_dir(settings))
        return None
    before = SparkCluster.from_json(cluster.to_json())
    unreachable: dict[str, str] = {}
    lock = threading.Lock()

    def stop(host: str, names: list[str]) -> None:
        try:
            stop_processes(pool(host), [cluster.procs[n] for n in names], grace=grace)
        except Exception as exc:  # an SSH failure of any kind: name the host
            with lock:
                unreachable[host] = str(exc)
            return
        with lock:
            for n in names:
                del cluster.procs[n]

    with HostPool(cluster.targets) as pool:
        # Workers first: a master stopped first leaves them retrying to register.
        _per_host(cluster, [n for n in cluster.procs if n != "master"], stop)
        if "master" in cluster.procs:
            _per_host(cluster, ["master"], stop)
        save_state(settings, cluster)
        if purge:
            for host, info in cluster.hosts.items():
                if host in unreachable or "spark_dir" not in info:
                    continue
                try:
                    transport = pool(host)
                    # Only what alertbench made: the spark dir may be a shared folder.
                    for sub in SPARK_DIR_CONTENT:
                        transport.remove_tree(Path(str(info["spark_dir"])) / sub)
                except Exception as exc:  # the host went away: name it
                    unreachable[host] = str(exc)
    if unreachable:
        left = ", ".join(f"{n} (pid {p.pid} on {p.host})" for n, p in cluster.procs.items())
        hosts = "; ".join(f"{h}: {why}" for h, why in sorted(unreachable.items()))
        raise ClusterError(
            f"could not reach every Spark host, {hosts}. Everything else is stopped. "
            + (
                f"Still recorded in {state_dir(settings) / STATE_FILE}: {left}; run `alertbench "
                "spark down` again once the host is reachable."
                if left
                else ""
            )
        )
    if purge:
        LocalTransport().remove_tree(state_dir(settings))
    return before
