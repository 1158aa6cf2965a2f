"""Kafka's JMX metrics for Prometheus, the standard way: the JMX exporter agent.

Every Kafka and ZooKeeper node ``kafka up`` starts runs with
``io.prometheus.jmx:jmx_prometheus_javaagent`` (from Maven Central, into the
cache once), which serves the node's MBeans over HTTP on the host's
``metrics_port`` (``zookeeper_metrics_port``), renamed by a rules file shipped
with alertbench (``kafka/jmx_rules``): under-replicated partitions, traffic
per topic, request latency percentiles and each partition's log end offset,
under the names Strimzi's dashboards query.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from alertbench.config import Settings
from alertbench.java import Java, find_java
from alertbench.kafka.fetch import Progress, copy_dependencies, find_maven
from alertbench.procs import Transport

ARTIFACT = "io.prometheus.jmx:jmx_prometheus_javaagent"
#: The rules file each kind of node reads, in its config folder.
RULES_FILE = {"kafka": "jmx-exporter.yml", "zookeeper": "jmx-exporter-zookeeper.yml"}


def jar_name(version: str) -> str:
    """The agent's jar file name as Maven Central names it."""
    return f"jmx_prometheus_javaagent-{version}.jar"


def agent_path(settings: Settings) -> Path:
    """Where the cache keeps the agent's jar."""
    return settings.cache_dir / "jmx-exporter" / jar_name(settings.kafka.jmx_exporter_version)


def fetch_agent(
    settings: Settings, *, java: Java | None = None, progress: Progress | None = None
) -> Path:
    """The JMX exporter agent's jar, fetched with Maven into the cache the first time.

    Parameters
    ----------
    settings : Settings
        The cache folder, the Maven repository and ``kafka.jmx_exporter_version``.
    java : Java, optional
        The JDK Maven runs on; found if not given.
    progress : callable, optional
        Called with a short message before a download.

    Returns
    -------
    Path

    Raises
    ------
    FetchError
        If Maven cannot resolve it (the message says why and what to do).
    """
    jar = agent_path(settings)
    if jar.is_file():
        return jar
    version = settings.kafka.jmx_exporter_version
    (progress or (lambda _m: None))(f"fetching the Prometheus JMX exporter agent {version}")
    jar.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="agent-", dir=jar.parent))
    try:
        copy_dependencies(
            settings,
            find_maven(settings, progress=progress),
            java or find_java(settings.java_home),
            [f"{ARTIFACT}:{version}"],
            staging,
            transitive=False,
        )
        (fetched,) = staging.glob("*.jar")
        fetched.replace(jar)  # one step: the cache never holds half a jar
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return jar


def rules(kind: str) -> str:
    """The rules file of a ``kafka`` or ``zookeeper`` node."""
    return files("alertbench.kafka").joinpath(f"jmx_rules/{kind}.yml").read_text()


def agent_option(agent: str, address: str, port: int, config_dir: Path, kind: str) -> str:
    """The JVM option that starts the agent on ``address:port`` with the node's rules."""
    return f"-javaagent:{agent}={address}:{port}:{config_dir / RULES_FILE[kind]}"


def install_agent(t: Transport, jar: Path, install_dir: Path) -> Path:
    """Copy the agent's jar to a host's ``install_dir/agents`` unless the same one is there.

    Returns
    -------
    Path
        The jar on the host.
    """
    dest = Path(install_dir) / "agents" / jar.name
    # Its size names a release well enough: a jar is replaced only by another version.
    done = t.run(["stat", "-c", "%s", str(dest)], timeout=30)
    if done.returncode == 0 and done.stdout.strip() == str(jar.stat().st_size):
        return dest
    t.make_dirs(dest.parent)
    t.copy_file(jar, dest)
    return dest
