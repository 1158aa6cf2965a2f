"""Packet loss with nftables: a share of what a node sends, dropped at random.

netem, the usual way to lose packets, is a kernel module (sch_netem) that
many kernels lack; nftables' ``numgen random`` and a drop verdict need only
nf_tables, built into nearly every kernel. A fault's rules live in a table of
their own, named for the bench process, and deleting the table heals it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from alertbench.bench.faults.tc import TcError

#: Loss is drawn per packet in ten-thousandths: 0.01% steps.
SCALE = 10_000


def why_not() -> str | None:
    """Why packets cannot be dropped here (not root, no ``nft``), or None."""
    if os.geteuid() != 0:
        return "it drops packets with nftables, which needs root"
    if shutil.which("nft") is None:
        return "it needs nftables' nft (Debian: apt install nftables)"
    return None


def table_name() -> str:
    """The table of this bench process's loss rules."""
    return f"alertbench_fault_{os.getpid()}"


def _nft(*args: str, script: str | None = None) -> str:
    done = subprocess.run(["nft", *args], input=script, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TcError(f"nft {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def drop(ports: list[int], share: float) -> str:
    """Drop ``share`` (0-1) of the TCP packets sent from ``ports``; returns the table's name."""
    table = table_name()
    below = round(share * SCALE)
    listed = ", ".join(str(p) for p in ports)
    _nft(
        "-f",
        "-",
        script=(
            f"table inet {table} {{\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    tcp sport {{ {listed} }} numgen random mod {SCALE} < {below} counter drop\n"
            "  }\n"
            "}\n"
        ),
    )
    return table


def dropped(table: str) -> dict[str, int]:
    """Packets and bytes the table's rule has dropped so far."""
    found = re.search(r"counter packets (\d+) bytes (\d+)", _nft("list", "table", "inet", table))
    if found is None:
        return {"packets": 0, "bytes": 0}
    return {"packets": int(found.group(1)), "bytes": int(found.group(2))}


def remove(table: str) -> None:
    """Delete the table (and its rules)."""
    _nft("delete", "table", "inet", table)


def exists(table: str) -> bool:
    """Whether the table is there."""
    return table in _nft("list", "tables")
