"""Real test hosts on one machine: network namespaces joined by a bridge, each with its own sshd.

Each host has its own network stack and address (10.X.Y.10+i), reached only
over the bridge, and an SSH server of its own that accepts one key made for
the run. Their host key is written to a known-hosts file, which
``ALERTBENCH_SSH_KNOWN_HOSTS`` names while they exist. They share this
machine's file system, so a host "installs" Kafka into its own folder like a
real one would. Creating them needs root, iproute2 and openssh-server;
:func:`why_not` says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
KNOWN_HOSTS_ENV = "ALERTBENCH_SSH_KNOWN_HOSTS"


@dataclass(frozen=True)
class NetnsHost:
    """One namespace host."""

    name: str
    netns: str
    address: str
    veth: str  # its cable, on the bridge side: set it down to cut the host off
    key_file: Path
    gateway: str  # this machine's address on the bridge, as the host sees it


def why_not() -> str | None:
    """Why test hosts cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        return "openssh-server is not installed (apt-get install openssh-server)"
    probe = f"abprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _wait_port(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd on {address}:{port} did not answer in {timeout:.0f} s")


def set_link(host: NetnsHost, state: str) -> None:
    """Cut ``host`` off the bridge (``"down"``) or plug it back in (``"up"``).

    Back up, the bridge port and the neighbour entries take a moment to
    recover (the kernel applies a carrier change up to a second late, and
    an address that failed to resolve while the cable was out keeps failing
    until it is probed again), so this waits until the host's sshd answers.
    """
    _ip("link", "set", host.veth, state)
    if state == "up":
        _wait_port(host.address, 22, 30)


@contextlib.contextmanager
def network_hosts(count: int, workdir: Path) -> Iterator[list[NetnsHost]]:
    """``count`` namespace hosts with sshd, removed afterwards (also on failure)."""
    tag = f"ab{os.getpid() % 10000}{random.randrange(100)}"
    net = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
    bridge = f"{tag}br"
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_key = workdir / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{key}.pub").read_text())
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    sshds: list[subprocess.Popen] = []
    namespaces: list[str] = []
    hosts: list[NetnsHost] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{net}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(count):
            ns, outside, inside = f"{tag}h{i}", f"{tag}v{i}", f"{tag}p{i}"
            address = f"{net}.{10 + i}"
            _ip("netns", "add", ns)
            namespaces.append(ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            config = workdir / f"sshd-{i}.conf"
            config.write_text(
                f"ListenAddress {address}\nPort 22\nHostKey {host_key}\n"
                f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\n"
                f"PasswordAuthentication no\nStrictModes no\nUsePAM no\n"
                "Subsystem sftp internal-sftp\n"
                f"PidFile {workdir / f'sshd-{i}.pid'}\n"
            )
            log = (workdir / f"sshd-{i}.log").open("ab")
            sshds.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            hosts.append(NetnsHost(f"host{i + 1}", ns, address, outside, key, f"{net}.1"))
        for h in hosts:
            _wait_port(h.address, 22, 20)
        # Trusted as an admin trusts a new machine: its key recorded out of band, before
        # the first connection (alertbench refuses hosts it does not know).
        known = workdir / "known_hosts"
        pub = Path(f"{host_key}.pub").read_text().split()
        known.write_text("".join(f"{h.address} {pub[0]} {pub[1]}\n" for h in hosts))
        before = os.environ.get(KNOWN_HOSTS_ENV)
        os.environ[KNOWN_HOSTS_ENV] = str(known)
        try:
            yield hosts
        finally:
            if before is None:
                os.environ.pop(KNOWN_HOSTS_ENV, None)
            else:
                os.environ[KNOWN_HOSTS_ENV] = before
    finally:
        for p in sshds:
            p.terminate()
        for p in sshds:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for ns in namespaces:
            # Whatever a test left running inside a host goes with it.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # A namespace can outlive its deletion for a moment; its cable must not.
        for i in range(len(namespaces)):
            subprocess.run(["ip", "link", "del", f"{tag}v{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
