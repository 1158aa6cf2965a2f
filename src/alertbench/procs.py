"""Start, watch and stop the JVMs alertbench runs, always by PID.

Every process is started through a :class:`Transport`, which knows how to reach
one host. :class:`LocalTransport` runs on this machine; a remote transport
(SSH) implements the same methods, so cluster code never changes with the host.
A started process is remembered as a :class:`ProcessRecord` (PID plus start
time, so a recycled PID is never mistaken for ours) in a state file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import psutil


@dataclass
class ProcessRecord:
    """A process we started.

    Attributes
    ----------
    pid : int
        Its process id on its host.
    started : float
        Its start time (seconds since the epoch, as the host's kernel reports it).
    host : str
        Name of the host it runs on.
    """

    pid: int
    started: float
    host: str = "localhost"

    def to_json(self) -> dict[str, object]:
        """Return the record as plain JSON data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        """Rebuild a record from :meth:`to_json` output."""
        return cls(pid=int(data["pid"]), started=float(data["started"]), host=str(data["host"]))


class Transport(Protocol):
    """What cluster code needs from a host: files, commands and processes."""

    host: str

    def make_dirs(self, path: Path) -> None:
        """Create a folder and its parents."""

    def write_text(self, path: Path, text: str, *, secret: bool = False) -> None:
        """Write a text file, creating its folder; ``secret``: readable by its owner only."""

    def remove_tree(self, path: Path) -> None:
        """Delete a folder and everything in it, if it exists."""

    def copy_file(self, source: Path, dest: Path) -> None:
        """Copy a file of this machine to ``dest`` on the host (atomically)."""

    def fetch_file(self, source: Path, dest: Path) -> None:
        """Copy a file of the host to ``dest`` on this machine (atomically)."""

    def run(self, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command to completion and capture its output."""

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> ProcessRecord:
        """Start a long-running process whose output goes to ``log`` (``env``: its environment)."""

    def is_running(self, proc: ProcessRecord) -> bool:
        """Tell whether ``proc`` is still alive (and is still the process we started)."""

    def send_signal(self, proc: ProcessRecord, sig: int) -> None:
        """Send ``sig`` to ``proc`` if it is alive."""

    def port_in_use(self, address: str, port: int) -> bool:
        """Tell whether something already listens on ``address:port``."""

    def tail(self, path: Path, lines: int = 40) -> str:
        """Return the last ``lines`` lines of a text file, or ``''``."""


class LocalTransport:
    """Runs everything on this machine."""

    host = "localhost"

    def make_dirs(self, path: Path) -> None:  # noqa: D102
        path.mkdir(parents=True, exist_ok=True)

    def write_text(self, path: Path, text: str, *, secret: bool = False) -> None:  # noqa: D102
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if secret:
            os.chmod(tmp, 0o600)
        tmp.replace(path)

    def remove_tree(self, path: Path) -> None:  # noqa: D102
        shutil.rmtree(path, ignore_errors=True)

    def copy_file(self, source: Path, dest: Path) -> None:  # noqa: D102
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(dest)

    def fetch_file(self, source: Path, dest: Path) -> None:  # noqa: D102
        if Path(source).resolve() != Path(dest).resolve():
            self.copy_file(source, dest)

    def run(  # noqa: D102
        self, argv: Sequence[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def spawn(  # noqa: D102
        self,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> ProcessRecord:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            # A new session: Ctrl-C in the terminal that ran `alertbench kafka up`
            # must not take the cluster down with it; `down` stops it by PID.
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        return ProcessRecord(pid=proc.pid, started=_create_time(proc.pid) or time.time())

    def is_running(self, proc: ProcessRecord) -> bool:  # noqa: D102
        _reap(proc.pid)
        try:
            p = psutil.Process(proc.pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return False
            # A PID reused by an unrelated process started later is not ours.
            return abs(p.create_time() - proc.started) < 2.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def send_signal(self, proc: ProcessRecord, sig: int) -> None:  # noqa: D102
        if self.is_running(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def port_in_use(self, address: str, port: int) -> bool:  # noqa: D102
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return True
        return False

    def tail(self, path: Path, lines: int = 40) -> str:  # noqa: D102
        try:
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_processes(
    transport: Transport, procs: Sequence[ProcessRecord], *, grace: float
) -> list[ProcessRecord]:
    """Stop processes: SIGTERM, then SIGKILL those still alive after ``grace`` seconds.

    Parameters
    ----------
    transport : Transport
        The host the processes run on.
    procs : sequence of ProcessRecord
        What to stop; ones already gone are skipped.
    grace : float
        Seconds to wait for a clean exit before killing.

    Returns
    -------
    list of ProcessRecord
        The processes that had to be killed.
    """
    alive = [p for p in procs if transport.is_running(p)]
    for p in alive:
        transport.send_signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(transport.is_running(p) for p in alive):
        time.sleep(0.1)
    killed = [p for p in alive if transport.is_running(p)]
    for p in killed:
        transport.send_signal(p, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(transport.is_running(p) for p in killed):
        time.sleep(0.05)
    return killed


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on ``address``.

    Parameters
    ----------
    count : int
        How many ports.
    address : str
        Where they must be free.

    Returns
    -------
    list of int
        The ports; they are free now, which is the best any caller can know.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((address, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
