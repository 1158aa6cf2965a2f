"""Before a Spark daemon starts on an inventory host: what it runs, and whether it can.

Every host that will run a daemon is checked at once (SSH, Java, the
driver's Python with the same pyspark at the same path, free ports on its
inventory address, a writable spark dir), and one error names every host
that failed, so that :func:`alertbench.spark.deploy.up` starts nothing on a
cluster that cannot run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from alertbench.errors import ClusterError
from alertbench.kafka.inventory import Host, Inventory
from alertbench.kafka.remote import check_java, java_of
from alertbench.procs import Transport
from alertbench.ssh import HostPool

MASTER = "master"

# Prints pyspark's version and folder (its folder is SPARK_HOME: jars/ and bin/).
_PYSPARK = (
    "import os, pyspark; print(pyspark.__version__); print(os.path.dirname(pyspark.__file__))"
)
# Binds each port on the address, as the daemon will: finds listeners of any
# kind (Java's show in `ss` as IPv4-mapped IPv6 sockets) and an address that is
# not the host's.
_BIND = """
import errno, socket, sys
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((sys.argv[1], int(port)))
        print(port, "free")
    except OSError as exc:
        print(port, "foreign" if exc.errno == errno.EADDRNOTAVAIL else "used")
    finally:
        s.close()
"""
# Creates the spark dir and proves a file can be written in it.
_WRITABLE = 'mkdir -p "$1" && t="$1/.alertbench-write-test" && : > "$t" && rm -f "$t"'


def worker_name(host: str) -> str:
    """The state file's name for the worker on ``host``."""
    return f"worker-{host}"


def spark_dir_of(host: Host) -> Path:
    """Folder of the host's Spark logs, work dirs and scratch: ``spark_dir``, else under install."""
    return host.spark_dir if host.spark_dir is not None else host.install_dir / "spark"


def roles_of(inv: Inventory) -> dict[str, list[str]]:
    """What each Spark host runs (``master``, ``worker``), in inventory order."""
    master, workers = inv.spark_master.name, {h.name for h in inv.spark_workers}
    roles: dict[str, list[str]] = {}
    for h in inv.hosts:
        mine = (["master"] if h.name == master else []) + (["worker"] if h.name in workers else [])
        if mine:
            roles[h.name] = mine
    return roles


@dataclass(frozen=True)
class HostCheck:
    """What a Spark host has, as checked before anything starts.

    Attributes
    ----------
    java : str
        Java version.
    java_home : str
        The JDK folder daemons run from.
    spark_home : str
        pyspark's folder on the host (``bin/spark-class``, ``jars/``).
    """

    java: str
    java_home: str
    spark_home: str


def _problem(host: str, exc: Exception) -> str:
    # Errors of the shared helpers start with "host NAME: "; the summary names it once.
    return str(exc).removeprefix(f"host {host}: ")


def check_host(
    t: Transport,
    host: Host,
    *,
    ports: Iterable[tuple[str, int]],
    python: str,
    pyspark_version: str,
) -> HostCheck:
    """Check that ``host`` can run its Spark daemons.

    Parameters
    ----------
    t : Transport
        The host.
    host : Host
        Its inventory entry (Java, address, spark dir).
    ports : iterable of (str, int)
        The ports its daemons will listen on, with their setting names.
    python : str
        The interpreter executors will run (the driver's path).
    pyspark_version : str
        The pyspark version of the driver.

    Returns
    -------
    HostCheck

    Raises
    ------
    ClusterError
        ``host NAME: problem; problem...`` with every problem found.
    """
    problems: list[str] = []
    java_version = java_home = spark_home = ""
    java = java_of(host)
    try:
        java_version, _major = check_java(t, java)
        if host.java_home is not None:
            java_home = str(host.java_home)
        else:
            # The JDK behind `java` on the host's PATH, as find_java() does here.
            found = t.run(["sh", "-c", 'readlink -f "$(command -v java)"'], timeout=30)
            java_home = str(Path(found.stdout.strip()).parent.parent)
    except ClusterError as exc:
        problems.append(_problem(host.name, exc))
    done = t.run([python, "-c", _PYSPARK], timeout=120)
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        err = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        what = "has no pyspark" if "pyspark" in err else "cannot run"
        problems.append(
            f"the Python at {python} {what} ({err}). Spark runs the executors' Python at the "
            f"driver's interpreter path: install the same environment (pyspark "
            f"{pyspark_version}) at {python} on this host"
        )
    elif lines[0] != pyspark_version:
        problems.append(
            f"{python} has pyspark {lines[0]}, the driver has {pyspark_version}; install the "
            f"same environment at {python} on this host"
        )
    else:
        spark_home = lines[1]
    problems += _port_problems(t, host.address, list(ports), python if spark_home else None)
    spark_dir = spark_dir_of(host)
    wrote = t.run(["sh", "-c", _WRITABLE, "sh", str(spark_dir)], timeout=30)
    if wrote.returncode != 0:
        problems.append(
            f"cannot write in its spark dir {spark_dir} ({wrote.stderr.strip()}); set "
            "spark_dir or install_dir to a writable folder"
        )
    if problems:
        raise ClusterError(f"host {host.name}: " + "; ".join(problems))
    return HostCheck(java=java_version, java_home=java_home, spark_home=spark_home)


def _port_problems(
    t: Transport, address: str, ports: list[tuple[str, int]], python: str | None
) -> list[str]:
    """Ports already taken on ``address``, and an address the host does not have."""
    if not ports:
        return []
    if python is None:  # no usable Python there: ask the transport
        return [
            f"port {port} ({setting}) on {address} is in use"
            for setting, port in ports
            if t.port_in_use(address, port)
        ]
    done = t.run([python, "-c", _BIND, address, *(str(p) for _s, p in ports)], timeout=60)
    state = dict(line.split() for line in done.stdout.splitlines() if len(line.split()) == 2)
    if any(v == "foreign" for v in state.values()):
        return [f"{address} is not an address of this host, so Spark cannot listen on it"]
    return [
        f"port {port} ({setting}) on {address} is in use"
        for setting, port in ports
        if state.get(str(port)) != "free"
    ]


def ports_of(host: Host, names: Iterable[str]) -> list[tuple[str, int]]:
    """The ports the daemons ``names`` (``master``, ``worker-...``) listen on, by setting."""
    ports = []
    for name in names:
        if name == MASTER:
            ports += [("spark_port", host.spark_port), ("spark_ui_port", host.spark_ui_port)]
        else:
            ports.append(("spark_worker_ui_port", host.spark_worker_ui_port))
    return ports


def check_hosts(
    pool: HostPool, starts: dict[str, list[str]], hosts: dict[str, Host], pyspark_version: str
) -> dict[str, HostCheck]:
    """Check every host that will start a daemon, in parallel.

    Parameters
    ----------
    pool : HostPool
        SSH transports of the hosts.
    starts : dict of str to list of str
        Host name -> the process names it will start (``master``, ``worker-...``).
    hosts : dict of str to Host
        Inventory entries by name.
    pyspark_version : str
        The driver's pyspark version.

    Returns
    -------
    dict of str to HostCheck

    Raises
    ------
    ClusterError
        One error naming every host that failed, and why.
    """
    checks: dict[str, HostCheck] = {}
    failed: dict[str, str] = {}

    def one(name: str) -> None:
        try:
            t = pool(name)
            checks[name] = check_host(
                t,
                hosts[name],
                ports=ports_of(hosts[name], starts[name]),
                python=sys.executable,
                pyspark_version=pyspark_version,
            )
        except ClusterError as exc:
            failed[name] = _problem(name, exc)
        except Exception as exc:  # an SSH failure of any kind: name the host
            failed[name] = f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, len(starts))) as ex:
        list(ex.map(one, starts))
    if failed:
        lines = "\n".join(f"  host {h} ({hosts[h].address}): {why}" for h, why in failed.items())
        raise ClusterError(
            f"cannot start Spark: {len(failed)} host(s) failed the checks, so nothing was "
            f"started:\n{lines}"
        )
    return checks


def _mb(memory: str) -> int | None:
    """Megabytes of a Spark memory string (``512m``, ``3g``; a bare number is MB)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", memory.lower())
    if m is None:
        return None
    scale = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[m.group(2)]
    return int(int(m.group(1)) * scale)


def memory_notes(executor_memory: str, workers: list[Host]) -> list[str]:
    """Warn about workers that offer less memory than one executor needs.

    A standalone master never places an executor on such a worker: the broker
    would wait forever for resources.
    """
    need = _mb(executor_memory)
    small = [
        h.name for h in workers if need is not None and (_mb(h.spark_worker_memory) or need) < need
    ]
    if not small:
        return []
    return [
        f"broker.executor_memory ({executor_memory}) is more than the memory of the worker(s) "
        f"on {', '.join(small)}; Spark starts no executor there. Lower broker.executor_memory "
        "or raise spark_worker_memory."
    ]
