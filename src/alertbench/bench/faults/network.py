"""Faults in the network of the Kafka the bench started: one node's link made narrow.

The embedded nodes listen on the loopback interface, each on ports of its
own, so a node's network is slowed where it sends: Linux traffic control
(``tc``) on ``lo`` sends every packet leaving the node's ports through an
HTB class of ``rate_mbit``, as a saturated or degraded link would. Its
clients (producers waiting for acknowledgements, the broker under test and
the timing consumer fetching alerts, the other nodes fetching as followers)
get its answers at that rate; other traffic is not classified and passes
as before.

Only a rate, no added delay: netem, which delays and drops, is a kernel
module (sch_netem) that many kernels (this project's CI machine's among them)
do not have, while HTB and the u32 filter are built in almost everywhere.

The interface's root qdisc is replaced while the fault lasts and deleted
when it heals, which gives ``lo`` back its default. A run killed before the
heal leaves it in place: the bench's state file records the device and
ports, and ``tc qdisc del dev lo root`` removes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import FaultError, Target
from alertbench.bench.faults.tc import (
    CLASS,
    DEVICE,
    OPEN,
    TcError,
    backlog,
    class_stats,
    root_qdisc,
    tc,
    why_not,
)


@dataclass
class NetworkSlow:
    """Send what the leader of an input partition sends through a narrow link; heal: remove it."""

    spec: FaultSpec
    target: Target
    shaped: bool = False

    def inject(self) -> dict[str, Any]:  # noqa: D102
        from alertbench.bench.faults.kafka_acts import leader_node

        why = why_not()
        if why:
            raise FaultError(why)
        node = leader_node(self.target, int(self.spec.value("partition")))
        ports = sorted(set(node.ports.values()))  # its listeners, the controller's included
        rate = f"{float(self.spec.value('rate_mbit')):g}mbit"
        # Unclassified packets (every other port) go to a class that does not exist: HTB
        # sends those straight on, unshaped.
        tc("qdisc", "add", "dev", DEVICE, "root", "handle", "1:", "htb", "default", "99")
        self.shaped = True
        try:
            tc(
                "class", "add", "dev", DEVICE, "parent", "1:", "classid", CLASS, "htb",
                "rate", rate, "ceil", rate,
            )  # fmt: skip
            for port in ports:
                tc(
                    "filter", "add", "dev", DEVICE, "parent", "1:", "protocol", "ip", "prio", "1",
                    "u32", "match", "ip", "sport", str(port), "0xffff", "flowid", CLASS,
                )  # fmt: skip
        except TcError:
            self.heal()  # half a set-up is not left on the interface
            raise
        return {
            "node": node.node_id,
            "device": DEVICE,
            "ports": ports,
            "rate_mbit": float(self.spec.value("rate_mbit")),
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        if not self.shaped:
            return {}
        try:
            shaped = class_stats()
            # Deleting the qdisc drops what waits in it, and TCP resends that only after
            # its backed-off timeouts (seconds): open the link, let the queue drain first.
            tc("class", "change", "dev", DEVICE, "classid", CLASS, "htb", *OPEN)
            deadline = time.monotonic() + 5
            while backlog() and time.monotonic() < deadline:
                time.sleep(0.05)
        except TcError:
            shaped = None  # the class was never made
        tc("qdisc", "del", "dev", DEVICE, "root")
        self.shaped = False
        return {"device": DEVICE, "root_qdisc": root_qdisc(), "shaped": shaped}
