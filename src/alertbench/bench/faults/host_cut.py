"""A Kafka node's host cut off the network, and put back: ``ip link set DEV down`` on the host.

The node must run on a host of its own, deployed by ``alertbench kafka up``
from an inventory and reached over SSH: a cut host can be told nothing until
its link is back, so the cut is made by a helper started on the host itself
(tracked by its PID there) that takes the link carrying the node's address
down, sleeps ``heal_after_s`` and brings it back up, restoring the routes
through it that the kernel drops with the link (a default route, say). The
heal is the helper's: a bench that dies mid-fault, even by SIGKILL, never
leaves a host cut off. The bench's heal waits until the host answers over
SSH again, then reads the helper's log for the moments the link went down
and came back, on the host's clock.

Everything the cut needs is checked on every broker host before a run
starts (:func:`check_hosts`): that it is reachable, that alertbench acts
there as root, that ``ip`` is installed, and that the node's address sits
on an interface of its own, not the loopback and not one of the machine the
bench runs on (cutting that would cut the bench off).
"""

from __future__ import annotations

import contextlib
import ipaddress
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import FaultError, Target, leader_id
from alertbench.errors import AlertbenchError
from alertbench.kafka.deploy import local_addresses

if TYPE_CHECKING:
    from alertbench.kafka.state import ClusterState, Node
    from alertbench.ssh import SSHTransport

#: Seconds between the helper's start and the cut: the SSH session that started it closes first.
LEAD_S = 1.0
#: Seconds the host has, once its link is due back, to answer over SSH again.
BACK_WITHIN_S = 60.0

# The helper, run with sh on the host: DEV, LEAD and HEAL filled in. Routes through the
# device that the kernel did not make from an address (a default route, static routes) go
# with the link; they are put back as they were. Its log is the fault's record on the host.
HELPER = """\
dev={dev}
saved=$(ip -4 route show dev "$dev" | grep -v 'proto kernel')
sleep {lead}
echo "cut $(date +%s.%N)"
ip link set "$dev" down || exit 1
sleep {heal}
ip link set "$dev" up
echo "$saved" | while read -r route; do
  [ -n "$route" ] && ip route replace $route dev "$dev"
done
echo "restored $(date +%s.%N)"
"""


def deployed_brokers(state: ClusterState) -> dict[int, Node]:
    """``{node_id: Node}`` of the cluster's running Kafka brokers on remote hosts."""
    remote = state.targets()
    return {
        n.node_id: n
        for n in state.nodes
        if n.kind == "kafka" and "broker" in n.roles and n.proc and n.host in remote
    }


def _connect(state: ClusterState, node: Node, timeout: float = 10.0) -> SSHTransport:
    from alertbench.ssh import SSHTransport

    return SSHTransport(state.targets()[node.host], timeout=timeout)


def interface_of(transport: SSHTransport, address: str) -> str:
    """The network interface on the transport's host that holds ``address``.

    Raises
    ------
    FaultError
        When no interface there holds it.
    """
    done = transport.shell(f"ip -o addr show to {shlex.quote(address)}", timeout=30)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) < 2:
        raise FaultError(
            f"host {transport.host}: no interface holds the node's address {address} "
            f"(`ip -o addr show to {address}`: {done.stderr.strip() or 'nothing'})"
        )
    return fields[1].split("@")[0]


def check_host(transport: SSHTransport, node: Node) -> str | None:
    """Why ``node``'s host (reached through ``transport``) cannot be cut off, or None."""
    where = f"host {node.host} ({node.address})"
    if ipaddress.ip_address(node.address).is_loopback or node.address in local_addresses():
        return (
            f"{where} is the machine the bench runs on: cutting it would cut the bench off; "
            "run the bench on another machine than the Kafka nodes"
        )
    uid = transport.shell("id -u", timeout=30).stdout.strip()
    if uid != "0":
        return (
            f"{where}: taking a link down needs root, and alertbench logs in there as user id "
            f"{uid or '?'}: log in as root, or set sudo = true for the host in the inventory"
        )
    if transport.shell("command -v ip", timeout=30).returncode != 0:
        return f"{where} has no `ip` command (install iproute2 there)"
    try:
        device = interface_of(transport, node.address)
    except FaultError as exc:
        return str(exc)
    if device == "lo":
        return f"{where}: the node's address is on the loopback interface, which no cut reaches"
    return None


def check_hosts(state: ClusterState) -> list[str]:
    """Why any broker host of ``state`` cannot be cut off (one line per host); empty if all can."""
    problems = []
    for node in deployed_brokers(state).values():
        try:
            with _connect(state, node) as t:
                why = check_host(t, node)
        except AlertbenchError as exc:
            why = str(exc)
        if why:
            problems.append(why)
    return problems


def _times(log: str) -> dict[str, float]:
    """The helper's ``cut`` and ``restored`` moments from its log."""
    found = {}
    for line in log.splitlines():
        word, _, value = line.partition(" ")
        if word in ("cut", "restored"):
            with contextlib.suppress(ValueError):
                found[word] = float(value)
    return found


@dataclass
class HostCut:
    """Cut the host of the leader of an input partition off its network; it heals itself."""

    spec: FaultSpec
    target: Target
    node: Node | None = None
    device: str = ""
    helper: Any = None  # the helper's ProcessRecord on the host
    log: Path | None = None
    due_back: float = 0.0

    def inject(self) -> dict[str, Any]:  # noqa: D102
        state = self.target.deployed
        if state is None:
            raise FaultError("this run's Kafka was not deployed on hosts by `kafka up`")
        leader = leader_id(self.target, int(self.spec.value("partition")))
        self.node = deployed_brokers(state).get(leader)
        if self.node is None:
            raise FaultError(f"partition leader node {leader} runs on no host of the inventory")
        heal = float(self.spec.heal_s or 0)
        self.log = self.node.home / "logs" / f"host-cut-{int(time.time())}.log"
        with _connect(state, self.node) as t:
            self.device = interface_of(t, self.node.address)
            script = HELPER.format(dev=shlex.quote(self.device), lead=LEAD_S, heal=heal)
            self.helper = t.spawn(["sh", "-c", script], log=self.log, cwd=self.node.home)
        self.due_back = time.time() + LEAD_S + heal
        time.sleep(LEAD_S)  # the fault is live from here
        return {
            "node": leader,
            "host": self.node.host,
            "address": self.node.address,
            "device": self.device,
            "pids": [self.helper.pid],
            "helper_log": str(self.log),
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        if self.node is None or self.helper is None:
            return {}
        state = self.target.deployed
        assert state is not None
        deadline = max(time.time(), self.due_back) + BACK_WITHIN_S
        time.sleep(max(0.0, self.due_back - time.time()))
        transport = None
        while transport is None:
            try:
                transport = _connect(state, self.node, timeout=3)
            except AlertbenchError:
                if time.time() > deadline:
                    raise FaultError(
                        f"host {self.node.host} did not answer over SSH within "
                        f"{BACK_WITHIN_S:.0f} s of its link being due back: bring it up there "
                        f"with `ip link set {self.device} up` (the helper's log: {self.log})"
                    ) from None
                time.sleep(0.5)
        with transport:
            while transport.is_running(self.helper) and time.time() < deadline:
                time.sleep(0.2)
            log = transport.shell(f"cat {shlex.quote(str(self.log))}", timeout=30).stdout
        moments = _times(log)
        if "restored" not in moments:
            raise FaultError(
                f"host {self.node.host}: the helper did not bring {self.device} back up; its "
                f"log {self.log}:\n{log}"
            )
        return {
            "host": self.node.host,
            "device": self.device,
            "struck_at": moments.get("cut"),
            "healed_at": moments["restored"],
            "down_s": round(moments["restored"] - moments.get("cut", moments["restored"]), 3),
        }
