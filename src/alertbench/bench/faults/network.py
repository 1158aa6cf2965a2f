"""Faults in the network of the Kafka the bench started: one node's link narrow, lossy and slow.

The embedded nodes listen on the loopback interface, each on ports of its
own, so a node's network is degraded where it sends. Every packet leaving
the node's ports is held ``delay_ms`` give or take ``jitter_ms`` by
alertbench's delayer (:mod:`.delayer`: iptables' NFQUEUE target hands it
each packet's id over netlink, and it lets the packet go when its time has
come), then ``loss_pct`` of them are dropped at random by an nftables rule
(TCP sends each again after its retransmission timeout), then they go
through an HTB class of ``rate_mbit`` on ``lo`` (``tc``), as a saturated
link would. Its clients (producers waiting for acknowledgements, the broker
under test and the timing consumer fetching alerts, the other nodes
fetching as followers) get its answers that way; other traffic passes as
before.

netem does all of this in the kernel, but it is a module (sch_netem) that
many kernels lack, this project's CI machine's among them; HTB, the u32
filter, nf_tables and the netfilter queue are built in almost everywhere.

Each piece is undone at the heal: the queue's chain deleted and the delayer
stopped (it lets what it holds go first), the loss rule's table deleted,
the link opened until its queue drains and ``lo``'s root qdisc deleted. A
run killed before the heal leaves them: the bench's state file records the
device, ports, table, chain and the delayer's PID, and ``tc qdisc del dev lo
root``, ``nft delete table inet TABLE`` and ``iptables -t mangle -D OUTPUT
-j CHAIN`` remove them (the chain's ``--queue-bypass`` lets packets pass once
the delayer is gone).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertbench.bench.faults import iptables, nft
from alertbench.bench.faults.link import link_refusal
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
)
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes


@dataclass
class NetworkSlow:
    """Send what the leader of an input partition sends through a narrow, lossy link; heal it."""

    spec: FaultSpec
    target: Target
    shaped: bool = False
    table: str | None = None  # the nftables table of its loss rule
    chain: str | None = None  # the iptables chain that queues packets to the delayer
    delayer: ProcessRecord | None = None
    log: Path | None = None

    def inject(self) -> dict[str, Any]:  # noqa: D102
        from alertbench.bench.faults.kafka_acts import leader_node

        rate = float(self.spec.value("rate_mbit"))
        loss = float(self.spec.value("loss_pct"))
        delay = float(self.spec.value("delay_ms"))
        jitter = float(self.spec.value("jitter_ms"))
        why = link_refusal(rate, loss, delay, jitter)
        if why:
            raise FaultError(why)
        node = leader_node(self.target, int(self.spec.value("partition")))
        ports = sorted(set(node.ports.values()))  # its listeners, the controller's included
        try:
            if delay > 0:
                self._delay(ports, delay, jitter)
            if rate > 0:
                self._shape(ports, f"{rate:g}mbit")
            if loss > 0:
                self.table = nft.drop(ports, loss / 100)
        except (TcError, FaultError):
            self.heal()  # half a set-up is not left behind
            raise
        return {
            "node": node.node_id,
            "device": DEVICE,
            "ports": ports,
            "rate_mbit": rate,
            "loss_pct": loss,
            "delay_ms": delay,
            "jitter_ms": jitter,
            "nft_table": self.table,
            "iptables_chain": self.chain,
            "pids": [self.delayer.pid] if self.delayer else [],
        }

    def _delay(self, ports: list[int], delay_ms: float, jitter_ms: float) -> None:
        """Start the delayer on a queue of its own, then send the node's packets to it."""
        number = iptables.queue_number()
        seg_dir = self.target.wiring.dir
        self.log = seg_dir / f"delayer-{number}.log"
        argv = [
            sys.executable, "-m", "alertbench.bench.faults.delayer", "--queue", str(number),
            "--delay-ms", f"{delay_ms:g}", "--jitter-ms", f"{jitter_ms:g}",
        ]  # fmt: skip
        local = LocalTransport()
        self.delayer = local.spawn(argv, log=self.log, cwd=seg_dir)
        deadline = time.monotonic() + 10
        while "ready" not in self.log.read_text():
            if not local.is_running(self.delayer) or time.monotonic() > deadline:
                raise FaultError(
                    f"the delayer did not bind queue {number}; its log {self.log}:\n"
                    f"{local.tail(self.log)}"
                )
            time.sleep(0.05)
        self.chain = iptables.queue(ports, number)

    def _shape(self, ports: list[int], rate: str) -> None:
        # Unclassified packets (every other port) go to a class that does not exist: HTB
        # sends those straight on, unshaped.
        tc("qdisc", "add", "dev", DEVICE, "root", "handle", "1:", "htb", "default", "99")
        self.shaped = True
        tc(
            "class", "add", "dev", DEVICE, "parent", "1:", "classid", CLASS, "htb",
            "rate", rate, "ceil", rate,
        )  # fmt: skip
        for port in ports:
            tc(
                "filter", "add", "dev", DEVICE, "parent", "1:", "protocol", "ip", "prio", "1",
                "u32", "match", "ip", "sport", str(port), "0xffff", "flowid", CLASS,
            )  # fmt: skip

    def heal(self) -> dict[str, Any]:  # noqa: D102
        done: dict[str, Any] = {}
        if self.chain is not None:
            iptables.remove(self.chain)
            done["iptables_chain_removed"] = not iptables.exists(self.chain)
            self.chain = None
        if self.delayer is not None:
            # Stopped once nothing more is queued: it lets what it holds go, then says how many.
            stop_processes(LocalTransport(), [self.delayer], grace=10)
            said = self.log.read_text().split() if self.log else []
            done["delayed_packets"] = int(said[-1]) if said[-2:-1] == ["held"] else None
            self.delayer = None
        if self.table is not None:
            done["lost"] = nft.dropped(self.table)
            nft.remove(self.table)
            done["nft_table_removed"] = not nft.exists(self.table)
            self.table = None
        if self.shaped:
            done.update(self._open())
        return done

    def _open(self) -> dict[str, Any]:
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
