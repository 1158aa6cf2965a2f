"""The iptables rules that send a node's packets to the delayer's queue (NFQUEUE).

nftables can queue packets too, but only with a kernel module (nft_queue)
that kernels without netem often lack as well; iptables' NFQUEUE target is
built in wherever netfilter is. The rules live in a chain of their own,
named for the bench process, jumped to from the mangle table's OUTPUT
chain; deleting the jump and the chain heals it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from alertbench.bench.faults.tc import TcError


def why_not() -> str | None:
    """Why packets cannot be queued here (not root, no ``iptables``), or None."""
    if os.geteuid() != 0:
        return "it queues packets with iptables (NFQUEUE), which needs root"
    if shutil.which("iptables") is None:
        return "it needs iptables (Debian: apt install iptables)"
    return None


def chain_name() -> str:
    """The chain of the bench process running this."""
    return f"AB_DELAY_{os.getpid()}"


def queue_number() -> int:
    """The queue of the bench process running this (one of 65,536, from its PID)."""
    return 1000 + os.getpid() % 60000


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["iptables", "-t", "mangle", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise TcError(f"iptables -t mangle {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def queue(ports: list[int], number: int) -> str:
    """Send TCP packets leaving ``ports`` on ``lo`` to queue ``number``; returns the chain."""
    chain = chain_name()
    _iptables("-N", chain)
    for port in ports:
        # --queue-bypass: with nobody bound to the queue, packets pass instead of dropping.
        _iptables(
            "-A", chain, "-o", "lo", "-p", "tcp", "--sport", str(port),
            "-j", "NFQUEUE", "--queue-num", str(number), "--queue-bypass",
        )  # fmt: skip
    _iptables("-A", "OUTPUT", "-j", chain)
    return chain


def remove(chain: str) -> None:
    """Delete the jump to ``chain`` and the chain."""
    _iptables("-D", "OUTPUT", "-j", chain, check=False)
    _iptables("-F", chain, check=False)
    _iptables("-X", chain)


def exists(chain: str) -> bool:
    """Whether the chain is there."""
    return _iptables("-L", chain, "-n", check=False).returncode == 0
