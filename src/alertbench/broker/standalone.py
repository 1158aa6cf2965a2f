"""A real Spark standalone cluster on this machine: a master and N workers, by PID.

The daemons are started with pyspark's own ``bin/spark-class`` (the wheel
ships no ``sbin/start-*.sh``), which execs the JVM, so the PID we record is
the daemon's. Like the Kafka nodes, they are tracked in a state file and
stopped by PID through a :class:`~alertbench.procs.Transport`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.java import find_java
from alertbench.procs import LocalTransport, ProcessRecord, free_ports, stop_processes

STATE_FILE = "state.json"


@dataclass
class SparkCluster:
    """A standalone cluster's addresses and processes (the state file's content)."""

    master_url: str
    ui_url: str
    workers: int
    cores_per_worker: int
    memory_per_worker: str
    procs: dict[str, ProcessRecord] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The state as JSON data."""
        return {
            "master_url": self.master_url,
            "ui_url": self.ui_url,
            "workers": self.workers,
            "cores_per_worker": self.cores_per_worker,
            "memory_per_worker": self.memory_per_worker,
            "procs": {k: v.to_json() for k, v in self.procs.items()},
            "logs": self.logs,
        }

    @classmethod
    def from_json(cls, data: dict) -> SparkCluster:
        """Rebuild the state from :meth:`to_json` output."""
        return cls(
            master_url=data["master_url"],
            ui_url=data["ui_url"],
            workers=int(data["workers"]),
            cores_per_worker=int(data["cores_per_worker"]),
            memory_per_worker=str(data["memory_per_worker"]),
            procs={k: ProcessRecord.from_json(v) for k, v in data["procs"].items()},
            logs=dict(data.get("logs", {})),
        )


def state_dir(settings: Settings) -> Path:
    """Folder of the standalone cluster's state, logs and work dirs."""
    return (settings.run_dir / "spark").resolve()


def read_state(settings: Settings) -> SparkCluster | None:
    """The recorded cluster, or None.

    Raises
    ------
    ClusterError
        If the state file is unreadable.
    """
    path = state_dir(settings) / STATE_FILE
    if not path.exists():
        return None
    try:
        return SparkCluster.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ClusterError(
            f"cannot read the Spark state file {path}: {exc}; remove {path.parent} if no "
            "alertbench Spark cluster runs from it."
        ) from exc


def _save(settings: Settings, cluster: SparkCluster) -> None:
    LocalTransport().write_text(
        state_dir(settings) / STATE_FILE, json.dumps(cluster.to_json(), indent=2) + "\n"
    )


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _env(settings: Settings) -> dict[str, str]:
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
    )
    return env


def master_status(ui_url: str, timeout: float = 3.0) -> dict | None:
    """The master's JSON status (workers, cores, state), or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"{ui_url}/json/", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


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
    if existing is not None:
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
    spark_class = str(_spark_home() / "bin" / "spark-class")
    env = _env(settings)
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
            _save(settings, cluster)
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
        _save(settings, cluster)
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


def down(settings: Settings, *, purge: bool = False) -> SparkCluster | None:
    """Stop the recorded cluster by PID (workers, then the master)."""
    cluster = read_state(settings)
    local = LocalTransport()
    if cluster is not None:
        workers = [p for k, p in cluster.procs.items() if k != "master"]
        stop_processes(local, workers, grace=15)
        if "master" in cluster.procs:
            stop_processes(local, [cluster.procs["master"]], grace=15)
        cluster.procs.clear()
        _save(settings, cluster)
    if purge:
        local.remove_tree(state_dir(settings))
    return cluster
