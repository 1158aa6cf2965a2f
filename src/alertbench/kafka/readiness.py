"""Whether a Kafka cluster's nodes can start and have started: ports, readiness, failures.

Before a start, :func:`check_ports` refuses a node whose ports are taken.
After it, :func:`wait_zookeeper` waits for the ensemble to form a quorum and
:func:`wait_kafka` for every broker to register with a controller. A node
that exits or a phase that times out is reported by :func:`failure`, with
the error lines of the node's logs, read through its host's transport.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from alertbench.errors import ClusterError
from alertbench.kafka.admin import ClusterInfo, describe_cluster
from alertbench.kafka.security import Connection
from alertbench.kafka.state import PORT_NAMES, ClusterState, Node
from alertbench.procs import Transport

_ERROR_LINE = re.compile(r"\b(ERROR|FATAL)\b|Exception|Error:")


def check_ports(t: Transport, node: Node) -> None:
    """Refuse to start ``node`` if another process holds one of its ports.

    Parameters
    ----------
    t : Transport
        The transport of the node's host.
    node : Node
        The node about to start.

    Raises
    ------
    ClusterError
        Naming the first port in use and what it is for.
    """
    for key, port in node.ports.items():
        if t.port_in_use(node.address, port):
            raise ClusterError(
                f"port {port} on {node.address}, the {PORT_NAMES.get(key, key)} of "
                f"{node.name}, is "
                "already in use by another process. Stop that process, or start on other "
                "ports (`--base-port N`, or `--base-port 0` for free ones)."
            )


def failure(t: Transport, node: Node, what: str) -> ClusterError:
    """The error for a node that failed to start: ``what``, then its logs' error lines.

    Parameters
    ----------
    t : Transport
        The transport of the node's host.
    node : Node
        The node that failed.
    what : str
        What went wrong.

    Returns
    -------
    ClusterError
        With the error lines (or, if none, the last lines) of the node's
        ``server.log`` and console output.
    """
    parts = [what]
    for log in (node.server_log, node.console_log):
        tail = t.tail(log, lines=400)
        if not tail.strip():
            continue
        errors = [ln for ln in tail.splitlines() if _ERROR_LINE.search(ln)]
        shown = "\n".join(errors[-15:]) if errors else "\n".join(tail.splitlines()[-15:])
        kind = "errors in" if errors else "last lines of"
        parts.append(f"--- {kind} {log} ---\n{shown}")
    if len(parts) == 1:
        parts.append(f"(no output in {node.server_log} or {node.console_log})")
    return ClusterError("\n".join(parts))


def wait_zookeeper(
    nodes: list[Node], timeout: float, *, transport_for: Callable[[str], Transport]
) -> None:
    """Wait until every ZooKeeper node of ``nodes`` is part of a quorum.

    Parameters
    ----------
    nodes : list of Node
        The started ZooKeeper nodes.
    timeout : float
        Seconds to wait.
    transport_for : callable
        Gives the transport of a host.

    Raises
    ------
    ClusterError
        If a node exits or the timeout passes; with the node's log tail.
    """
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        for node in list(pending):
            if not transport_for(node.host).is_running(node.proc):  # type: ignore[arg-type]
                raise failure(
                    transport_for(node.host), node, f"ZooKeeper {node.name} exited during start-up."
                )
            mode = zookeeper_mode(node.address, node.ports["zookeeper_client_port"])
            if mode in ("leader", "follower", "standalone"):
                pending.remove(node)
        if pending and time.monotonic() > deadline:
            raise failure(
                transport_for(pending[0].host),
                pending[0],
                f"ZooKeeper {pending[0].name} did not join a quorum within {timeout:.0f} s.",
            )
        if pending:
            time.sleep(0.3)


def wait_kafka(
    state: ClusterState,
    timeout: float,
    *,
    transport_for: Callable[[str], Transport],
    connect: Callable[[], Connection],
) -> ClusterInfo:
    """Wait until every broker of ``state`` is registered and a controller is elected.

    Parameters
    ----------
    state : ClusterState
        The cluster whose Kafka nodes were started.
    timeout : float
        Seconds to wait.
    transport_for : callable
        Gives the transport of a host.
    connect : callable
        Gives how to reach the cluster; asked again at each attempt.

    Returns
    -------
    ClusterInfo
        What the formed cluster reports.

    Raises
    ------
    ClusterError
        If a node exits or the timeout passes; with the log tail of a node
        that did not register.
    """
    brokers = {n.node_id: n for n in state.nodes if "broker" in n.roles}
    kafka_nodes = [n for n in state.nodes if n.kind == "kafka"]
    deadline = time.monotonic() + timeout
    info: ClusterInfo | None = None
    while True:
        for node in kafka_nodes:
            if not transport_for(node.host).is_running(node.proc):  # type: ignore[arg-type]
                raise failure(
                    transport_for(node.host),
                    node,
                    f"Kafka node {node.name} exited during start-up.",
                )
        try:
            info = describe_cluster(connect(), timeout=3)
        except ClusterError:
            info = None
        if info and set(brokers) <= set(info.brokers) and info.controller is not None:
            return info
        if time.monotonic() > deadline:
            missing = [n for i, n in brokers.items() if not info or i not in info.brokers]
            culprit = missing[0] if missing else kafka_nodes[0]
            raise failure(
                transport_for(culprit.host),
                culprit,
                f"the cluster did not form within {timeout:.0f} s: broker(s) "
                f"{', '.join(n.name for n in missing) or '(all)'} not registered"
                + ("" if info and info.controller is not None else ", no controller")
                + ".",
            )
        time.sleep(0.5)


def zookeeper_mode(address: str, port: int, timeout: float = 2.0) -> str | None:
    """Ask a ZooKeeper server its mode with the ``srvr`` four-letter command.

    Returns
    -------
    str or None
        ``leader``, ``follower``, ``standalone``; ``None`` if it does not answer.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(b"srvr")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None
