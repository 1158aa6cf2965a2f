"""A Spark standalone cluster's record: its daemons by PID and host, and its master's status.

:mod:`alertbench.spark.standalone` (this machine) and
:mod:`alertbench.spark.deploy` (an inventory's hosts over SSH) write the same
state file, with the SSH targets of remote hosts, so that ``spark status``
and ``spark down`` work from that file alone, whichever started the cluster.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from alertbench.config import Settings
from alertbench.errors import ClusterError
from alertbench.observe.targets import write_cluster_targets
from alertbench.procs import LocalTransport, ProcessRecord, Transport
from alertbench.spark.metrics import daemon_metrics_path
from alertbench.ssh import HostPool, SSHTarget

STATE_FILE = "state.json"
#: Executors' scratch (SPARK_LOCAL_DIRS) in a host's spark dir, or a local cluster's state dir.
SCRATCH_DIR = "local"
# What a deployed cluster writes into each host's spark dir (and `down --purge` removes).
SPARK_DIR_CONTENT = ("logs", "work", SCRATCH_DIR)


@dataclass
class SparkCluster:
    """A standalone cluster's addresses and processes (the state file's content).

    Attributes
    ----------
    master_url, ui_url : str
        ``spark://HOST:PORT`` of the master and ``http://HOST:PORT`` of its web UI.
    workers : int
        Number of workers.
    cores_per_worker : int or None
        Cores each worker offers (None: every core of its host).
    memory_per_worker : str
        Memory each worker offers to executors.
    procs : dict of str to ProcessRecord
        ``master`` and the workers, each with the host it runs on.
    logs : dict of str to str
        Log file of each process, on its host.
    targets : dict of str to SSHTarget
        How to reach every remote host; empty for a cluster on this machine.
    hosts : dict of str to dict
        Per host: ``address``, ``roles``, ``java`` (version) and ``spark_dir``
        (deployed clusters only).
    source : str or None
        The inventory the cluster was deployed from; None on this machine.
    uis : dict of str to str
        The web UI (``http://HOST:PORT``) of the master and each worker, where
        each serves its metrics (:func:`alertbench.spark.metrics.daemon_metrics_path`).
    """

    master_url: str
    ui_url: str
    workers: int
    cores_per_worker: int | None
    memory_per_worker: str
    procs: dict[str, ProcessRecord] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    targets: dict[str, SSHTarget] = field(default_factory=dict)
    hosts: dict[str, dict[str, object]] = field(default_factory=dict)
    source: str | None = None
    uis: dict[str, str] = field(default_factory=dict)

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
            "targets": {k: v.to_json() for k, v in self.targets.items()},
            "hosts": self.hosts,
            "source": self.source,
            "uis": self.uis,
        }

    @classmethod
    def from_json(cls, data: dict) -> SparkCluster:
        """Rebuild the state from :meth:`to_json` output."""
        cores = data.get("cores_per_worker")
        return cls(
            master_url=data["master_url"],
            ui_url=data["ui_url"],
            workers=int(data["workers"]),
            cores_per_worker=int(cores) if cores is not None else None,
            memory_per_worker=str(data["memory_per_worker"]),
            procs={k: ProcessRecord.from_json(v) for k, v in data["procs"].items()},
            logs=dict(data.get("logs", {})),
            targets={k: SSHTarget.from_json(v) for k, v in data.get("targets", {}).items()},
            hosts=dict(data.get("hosts", {})),
            source=data.get("source"),
            uis=dict(data.get("uis", {})),
        )

    def metrics_urls(self) -> dict[str, str]:
        """Where each running daemon serves its metrics, by component (``spark-NAME``)."""
        return {
            f"spark-{name}": self.uis[name] + daemon_metrics_path(name)
            for name in self.procs
            if name in self.uis
        }

    def address_of(self, host: str) -> str:
        """The address of ``host`` (``127.0.0.1`` for this machine)."""
        if host in self.targets:
            return self.targets[host].address
        return str(self.hosts.get(host, {}).get("address", "127.0.0.1"))


def state_dir(settings: Settings) -> Path:
    """Folder of the standalone cluster's state, logs and work dirs."""
    return settings.spark_state_dir.resolve()


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


def save_state(settings: Settings, cluster: SparkCluster) -> None:
    """Write ``cluster`` to the state file (atomically)."""
    LocalTransport().write_text(
        state_dir(settings) / STATE_FILE, json.dumps(cluster.to_json(), indent=2) + "\n"
    )
    # The running daemons' metrics, for `alertbench metrics prometheus-config`.
    write_cluster_targets(state_dir(settings), "alertbench-spark", cluster.metrics_urls())


def master_status(ui_url: str, timeout: float = 3.0) -> dict | None:
    """The master's JSON status (workers, cores, state), or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"{ui_url}/json/", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


# Read a URL with the Python that every Spark host must have (the driver's).
_FETCH = (
    "import sys, urllib.request\n"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
)


def master_status_on(transport: Transport, ui_url: str) -> dict | None:
    """The master's JSON status read on its own host, or None if it does not answer.

    The web UI port of a real cluster is often reachable only from inside it;
    the master's host can always read it.
    """
    try:
        done = transport.run([sys.executable, "-c", _FETCH, f"{ui_url}/json/"], timeout=15)
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (ClusterError, OSError, ValueError):
        return None


def cluster_status(cluster: SparkCluster, pool: HostPool | None = None) -> dict | None:
    """The master's JSON status: from here, else (deployed clusters) from the master's host."""
    info = master_status(cluster.ui_url)
    if info is not None or pool is None or "master" not in cluster.procs:
        return info
    try:
        transport = pool(cluster.procs["master"].host)
    except ClusterError:
        return None
    return master_status_on(transport, cluster.ui_url)


def alive_workers(info: dict | None) -> list[dict]:
    """The workers a master's JSON status lists as ALIVE (dead ones stay listed)."""
    return [w for w in (info or {}).get("workers", []) if w.get("state") == "ALIVE"]
