"""Linux traffic control (``tc``) on the loopback interface: the checks and commands faults use.

Kept apart from the acts so that :mod:`.spec` can refuse a fault that needs
it before anything starts, without importing the acts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from alertbench.errors import AlertbenchError


class TcError(AlertbenchError):
    """A ``tc`` command failed (its own message says why)."""


DEVICE = "lo"
#: The HTB class the node's packets are sent through.
CLASS = "1:2"
#: The class's rate once the fault heals: wider than loopback ever runs.
OPEN = ("rate", "100gbit", "ceil", "100gbit", "burst", "4mb", "cburst", "4mb")
#: Loopback's root qdisc when nobody has set one (``noqueue``): what the heal gives back.
DEFAULT_ROOT = ("noqueue",)


def why_not() -> str | None:
    """Why ``lo`` cannot be shaped here (not root, no ``tc``, shaped already), or None."""
    if os.geteuid() != 0:
        return "it changes the loopback interface's queueing (tc), which needs root"
    if shutil.which("tc") is None:
        return "it needs tc (Debian: apt install iproute2)"
    root = root_qdisc()
    if root is not None and root not in DEFAULT_ROOT:
        return (
            f"{DEVICE} already has a {root} root qdisc that alertbench did not set; remove it "
            f"(tc qdisc del dev {DEVICE} root) or run elsewhere"
        )
    return None


def tc(*args: str) -> str:
    """Run ``tc ARGS``; its output, or a TcError with tc's own message."""
    done = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TcError(f"tc {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def root_qdisc() -> str | None:
    """The kind of ``lo``'s root qdisc (``noqueue`` by default), or None if ``tc`` cannot say."""
    try:
        out = subprocess.run(
            ["tc", "qdisc", "show", "dev", DEVICE, "root"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return None
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "qdisc" else None


def backlog() -> int:
    """Packets waiting in the fault's class."""
    found = re.search(
        r"backlog \S+ (\d+)p", tc("-s", "class", "show", "dev", DEVICE, "classid", CLASS)
    )
    return int(found.group(1)) if found else 0


def class_stats() -> dict[str, int] | None:
    """Bytes and packets sent through the fault's class, and how often it held them back."""
    out = tc("-s", "class", "show", "dev", DEVICE, "classid", CLASS)
    found = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
    if found is None:
        return None
    sent, packets, dropped, over = (int(g) for g in found.groups())
    return {"bytes": sent, "packets": packets, "dropped": dropped, "overlimits": over}
