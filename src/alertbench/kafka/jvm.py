"""The command lines of the Kafka and ZooKeeper JVMs alertbench starts."""

from __future__ import annotations

from alertbench.kafka.jmx_exporter import agent_option
from alertbench.kafka.release import parse_release
from alertbench.kafka.render import log_config_name
from alertbench.kafka.state import ClusterState, Node


def log_option(node: Node, state: ClusterState) -> str:
    """The JVM flag that points Kafka's logging at the node's rendered config."""
    release = parse_release(state.kafka_version)
    path = node.config_dir / log_config_name(release)
    if release.uses_log4j2:
        return f"-Dlog4j2.configurationFile={path}"
    return f"-Dlog4j.configuration=file:{path}"


def node_agent_option(node: Node) -> list[str]:
    """The JMX exporter agent's option for ``node``, if it runs with one."""
    port = node.metrics_port
    if node.agent is None or port is None:
        return []
    return [agent_option(node.agent, node.address, port, node.config_dir, node.kind)]


def server_argv(
    java: str, classpath: str, node: Node, state: ClusterState, heap: str, main: list[str]
) -> list[str]:
    """The command that runs ``main`` (Kafka's or ZooKeeper's server) as ``node``.

    Parameters
    ----------
    java : str
        The java command on the node's host.
    classpath : str
        Kafka's jars on that host (``lib/*``).
    node : Node
        The node: its name, logs, config and agent.
    state : ClusterState
        The cluster (its Kafka version picks the logging flag).
    heap : str
        Heap size, e.g. ``512m``.
    main : list of str
        The main class and its arguments.
    """
    return [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dalertbench.node={node.name}",
        f"-Dkafka.logs.dir={node.log_dir}",
        log_option(node, state),
        *node_agent_option(node),
        "-cp",
        classpath,
        *main,
    ]
