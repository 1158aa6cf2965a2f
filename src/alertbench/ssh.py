"""A host reached over SSH: the remote :class:`~alertbench.procs.Transport`.

Cluster code starts, watches and stops processes through a transport; this
one does it on another machine with paramiko (key or agent
authentication, user and port per host). A remote process is recorded like
a local one: its PID and its start time as the remote kernel reports it, so
a recycled PID is never mistaken for ours and ``down`` stops exactly what
``up`` started.

Host keys are checked as OpenSSH checks them: a host is trusted when its key
is in the user's ``~/.ssh/known_hosts`` or in alertbench's own known-hosts
file (:func:`known_hosts_file`). A host never seen before is refused unless
its target says to trust new hosts (the inventory's ``trust_new_host_keys``),
and then its key is recorded there; a host whose key changed is always
refused, with the command that forgets the old key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from alertbench.errors import ClusterError
from alertbench.procs import LocalTransport, ProcessRecord, Transport

#: Environment variable naming alertbench's known-hosts file.
KNOWN_HOSTS_ENV = "ALERTBENCH_SSH_KNOWN_HOSTS"


def known_hosts_file() -> Path:
    """Alertbench's own known-hosts file: ``$ALERTBENCH_SSH_KNOWN_HOSTS``, else the user's config.

    OpenSSH's format, so ``ssh-keyscan`` and ``ssh-keygen -R -f`` work on it.
    """
    env = os.environ.get(KNOWN_HOSTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("alertbench")) / "known_hosts"


def fingerprint(key: Any) -> str:
    """A host key's SHA256 fingerprint as OpenSSH prints it (``SHA256:...``)."""
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_name(address: str, port: int) -> str:
    """How known_hosts names a host: ``address``, or ``[address]:port`` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


# The start time of a process in seconds since the epoch, computed on the
# remote host from /proc (boot time + start ticks), as psutil does locally.
_START_TIME = (
    "awk -v t=$(getconf CLK_TCK) -v b=$(awk '/^btime/ {{print $2}}' /proc/stat) "
    '\'{{sub(/^.*\\) /, ""); printf "%.2f %s\\n", b + $20 / t, $1}}\' /proc/{pid}/stat'
)


@dataclass(frozen=True)
class SSHTarget:
    """How to reach one host.

    Attributes
    ----------
    host : str
        Inventory name of the host.
    address : str
        Address to connect to.
    user : str
        Login user.
    port : int
        SSH port.
    key_file : Path or None
        Private key; without one, the SSH agent and default keys are tried.
    sudo : bool
        Run commands through ``sudo -n`` (only where configured).
    trust_new : bool
        Accept a host key never seen before (trust on first use) and record
        it in :func:`known_hosts_file`; a changed key is refused all the same.
    """

    host: str
    address: str
    user: str = "root"
    port: int = 22
    key_file: Path | None = None
    sudo: bool = False
    trust_new: bool = False

    def to_json(self) -> dict[str, object]:
        """The target as JSON data (for state files)."""
        return {
            "host": self.host,
            "address": self.address,
            "user": self.user,
            "port": self.port,
            "key_file": str(self.key_file) if self.key_file else None,
            "sudo": self.sudo,
            "trust_new": self.trust_new,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SSHTarget:
        """Rebuild a target from :meth:`to_json` output."""
        key = data.get("key_file")
        return cls(
            host=str(data["host"]),
            address=str(data["address"]),
            user=str(data.get("user", "root")),
            port=int(data.get("port", 22)),  # type: ignore[arg-type]
            key_file=Path(str(key)) if key else None,
            sudo=bool(data.get("sudo", False)),
            trust_new=bool(data.get("trust_new", False)),
        )


class HostPool:
    """One transport per host, connected on first use and kept for the pool's life.

    Hosts named in ``targets`` are reached over SSH; any other name is this
    machine. Use it as a context manager so connections are closed.

    Parameters
    ----------
    targets : mapping of str to SSHTarget
        The remote hosts, by inventory name.
    timeout : float
        Seconds to wait for each connection.
    """

    def __init__(self, targets: Mapping[str, SSHTarget], *, timeout: float = 10.0) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self._local = LocalTransport()
        self._open: dict[str, SSHTransport] = {}
        self._failed: dict[str, ClusterError] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str) -> Transport:
        """The transport of ``host``.

        Raises
        ------
        ClusterError
            If the host cannot be reached (the reason is named).
        """
        target = self.targets.get(host)
        if target is None:
            return self._local
        with self._lock:
            lock = self._locks.setdefault(host, threading.Lock())
        # One lock per host: a host that times out does not hold up the others.
        with lock:
            if host in self._failed:
                raise self._failed[host]
            if host not in self._open:
                try:
                    self._open[host] = SSHTransport(target, timeout=self.timeout)
                except ClusterError as exc:
                    self._failed[host] = exc  # asked again, it would time out again
                    raise
            return self._open[host]

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            for t in self._open.values():
                t.close()
            self._open.clear()

    def __enter__(self) -> HostPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _UnknownHostError(Exception):
    """A host whose key is in no known-hosts file, refused."""


class _NewHostPolicy:
    """paramiko's missing-key policy: refuse, or trust on first use and record the key."""

    def __init__(self, target: SSHTarget, known: Path) -> None:
        self.target = target
        self.known = known

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        name = host_key_name(self.target.address, self.target.port)
        if not self.target.trust_new:
            raise _UnknownHostError(
                f"host {self.target.host}: {name} is not a known host (its key, "
                f"{key.get_name()} {fingerprint(key)}, is in neither {self.known} nor "
                "~/.ssh/known_hosts). Check that fingerprint on the host (`ssh-keygen -lf "
                "/etc/ssh/ssh_host_ed25519_key.pub`), then either add the key with "
                f"`ssh-keyscan -p {self.target.port} {self.target.address} >> {self.known}`, or "
                "set trust_new_host_keys = true in the inventory to record new hosts' keys on "
                "first use."
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known.parent.mkdir(parents=True, exist_ok=True)
        # Appended, as OpenSSH does: concurrent connections each add their own line.
        with self.known.open("a") as f:
            f.write(f"{name} {key.get_name()} {key.get_base64()}\n")


class SSHTransport:
    """Files, commands and processes on one remote host, over one SSH connection.

    Parameters
    ----------
    target : SSHTarget
        The host and how to log in.
    timeout : float
        Seconds to wait for the connection.

    Raises
    ------
    ClusterError
        Naming the host and the reason, when it cannot be reached or logged into.
    """

    def __init__(self, target: SSHTarget, *, timeout: float = 10.0) -> None:
        import paramiko

        self.target = target
        self.host = target.host
        self._lock = threading.Lock()
        client = paramiko.SSHClient()
        known = known_hosts_file()
        client.load_system_host_keys()  # the user's ~/.ssh/known_hosts, never written
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(_NewHostPolicy(target, known))
        try:
            client.connect(
                target.address,
                port=target.port,
                username=target.user,
                key_filename=str(target.key_file) if target.key_file else None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
        except paramiko.BadHostKeyException as exc:
            name = host_key_name(target.address, target.port)
            raise ClusterError(
                f"host {target.host}: {name} presented host key {fingerprint(exc.key)}, but "
                f"{fingerprint(exc.expected_key)} is recorded for it (in {known} or "
                "~/.ssh/known_hosts). Someone may be intercepting the connection, or the host "
                "was reinstalled. If you know it was, forget the old key with "
                f"`ssh-keygen -R '{name}' -f {known}` (and ~/.ssh/known_hosts) and connect again."
            ) from None
        except _UnknownHostError as exc:
            raise ClusterError(str(exc)) from None
        except (OSError, paramiko.SSHException) as exc:
            raise ClusterError(
                f"host {target.host}: {target.user}@{target.address}:{target.port} is not "
                f"reachable over SSH: {exc}. Check the address, the port, and that the key "
                "is authorised for that user."
            ) from None
        self._client = client

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _command(self, command: str) -> str:
        return f"sudo -n sh -c {shlex.quote(command)}" if self.target.sudo else command

    def run(  # noqa: D102
        self, argv: Sequence[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return self.shell(shlex.join(argv), timeout=timeout)

    def shell(self, command: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a shell command line on the host and capture its output."""
        with self._lock:
            _stdin, stdout, stderr = self._client.exec_command(
                self._command(command), timeout=timeout
            )
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            code = stdout.channel.recv_exit_status()
        return subprocess.CompletedProcess(command, code, out, err)

    def clock_offset(self, samples: int = 8) -> tuple[float, float]:
        """The host's clock minus this machine's, in seconds, and the round trip it took.

        NTP's idea over one SSH channel: a remote shell answers each line it
        reads with its clock, and the answer is taken to be read half-way
        through the round trip. The best (shortest) of ``samples`` trips
        wins; the offset is known to within half of that round trip.

        Raises
        ------
        ClusterError
            If the host does not answer with a time.
        """
        best = (0.0, float("inf"))
        with self._lock:
            stdin, stdout, _stderr = self._client.exec_command(
                "while read -r _; do date +%s.%N; done", timeout=30
            )
            try:
                for _ in range(samples):
                    sent = time.time()
                    stdin.write("\n")
                    stdin.flush()
                    line = stdout.readline()
                    back = time.time()
                    try:
                        remote = float(line)
                    except ValueError:
                        raise ClusterError(
                            f"host {self.host}: `date +%s.%N` answered {line.strip()!r}, not "
                            "a time; the clock offset needs GNU date there."
                        ) from None
                    trip = back - sent
                    if trip < best[1]:
                        best = (remote - (sent + back) / 2, trip)
            finally:
                stdin.channel.shutdown_write()
                stdout.channel.recv_exit_status()
        return best

    def _check(self, command: str, what: str) -> str:
        done = self.shell(command)
        if done.returncode != 0:
            raise ClusterError(f"host {self.host}: {what} failed: {done.stderr.strip()}")
        return done.stdout

    def make_dirs(self, path: Path) -> None:  # noqa: D102
        self._check(f"mkdir -p {shlex.quote(str(path))}", f"creating {path}")

    def write_text(self, path: Path, text: str, *, secret: bool = False) -> None:  # noqa: D102
        tmp = f"{path}.tmp"
        command = (
            f"mkdir -p {shlex.quote(str(Path(path).parent))} && "
            + ("umask 077 && rm -f " + shlex.quote(tmp) + " && " if secret else "")
            + f"cat > {shlex.quote(tmp)} && "
            f"mv {shlex.quote(tmp)} {shlex.quote(str(path))}"
        )
        with self._lock:
            stdin, stdout, stderr = self._client.exec_command(self._command(command))
            stdin.write(text.encode())
            stdin.channel.shutdown_write()
            code = stdout.channel.recv_exit_status()
            err = stderr.read().decode("utf-8", "replace")
        if code != 0:
            raise ClusterError(f"host {self.host}: writing {path} failed: {err.strip()}")

    @contextlib.contextmanager
    def _sftp(self) -> Iterator[Any]:
        """An SFTP session on the connection, one at a time."""
        import paramiko

        with self._lock:
            try:
                sftp = self._client.open_sftp()
            except paramiko.SSHException as exc:
                raise ClusterError(
                    f"host {self.host}: no SFTP ({exc}); enable sshd's sftp subsystem there."
                ) from None
            try:
                yield sftp
            finally:
                sftp.close()

    def copy_file(self, source: Path, dest: Path) -> None:  # noqa: D102
        self.make_dirs(Path(dest).parent)
        # SFTP writes as the login user: with sudo, the file lands in the
        # user's temporary folder and sudo moves it into place.
        tmp = f"/tmp/alertbench-{uuid.uuid4().hex}" if self.target.sudo else f"{dest}.tmp"
        with self._sftp() as sftp:
            try:
                sftp.put(str(source), tmp)
                if not self.target.sudo:
                    sftp.posix_rename(tmp, str(dest))
            except OSError as exc:
                raise ClusterError(f"host {self.host}: copying to {dest} failed: {exc}") from None
        if self.target.sudo:
            self._check(
                f"mv {shlex.quote(tmp)} {shlex.quote(str(dest))}", f"moving a copy to {dest}"
            )

    def fetch_file(self, source: Path, dest: Path) -> None:  # noqa: D102
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.tmp")
        with self._sftp() as sftp:
            try:
                sftp.get(str(source), str(tmp))
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise ClusterError(f"host {self.host}: fetching {source} failed: {exc}") from None
        tmp.replace(dest)

    def remove_tree(self, path: Path) -> None:  # noqa: D102
        self._check(f"rm -rf {shlex.quote(str(path))}", f"removing {path}")

    def spawn(  # noqa: D102
        self,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> ProcessRecord:
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # setsid + nohup: the process outlives this SSH session, in a session of
        # its own, and $! is its PID (exec keeps it through env).
        command = (
            f"mkdir -p {shlex.quote(str(Path(log).parent))} && cd {shlex.quote(str(cwd))} && "
            f"{{ setsid nohup env {assignments} {shlex.join(argv)} "
            f">> {shlex.quote(str(log))} 2>&1 < /dev/null & }} && echo $!"
        )
        pid = int(self._check(command, f"starting {argv[0]}").split()[-1])
        started = self._start_time(pid)
        if started is None:
            raise ClusterError(
                f"host {self.host}: {argv[0]} exited at once; its log {log} ends with:\n"
                f"{self.tail(log, 15)}"
            )
        return ProcessRecord(pid=pid, started=started, host=self.host)

    def _start_time(self, pid: int) -> float | None:
        done = self.shell(_START_TIME.format(pid=pid))
        parts = done.stdout.split()
        if done.returncode != 0 or len(parts) != 2 or parts[1] == "Z":
            return None
        return float(parts[0])

    def is_running(self, proc: ProcessRecord) -> bool:  # noqa: D102
        started = self._start_time(proc.pid)
        # A PID reused by an unrelated process started later is not ours.
        return started is not None and abs(started - proc.started) < 2.0

    def send_signal(self, proc: ProcessRecord, sig: int) -> None:  # noqa: D102
        if self.is_running(proc):
            with contextlib.suppress(ClusterError):
                self.shell(f"kill -{int(sig)} {proc.pid}")

    def port_in_use(self, address: str, port: int) -> bool:  # noqa: D102
        listening = self.shell("ss -Hltn").stdout
        for line in listening.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                local = fields[3]
                host, _, p = local.rpartition(":")
                # Java listens on IPv6 sockets: `ss` shows [::ffff:10.0.0.1]:port.
                host = host.strip("[]").removeprefix("::ffff:")
                if p == str(port) and host in (address, "*", "0.0.0.0", "::"):
                    return True
        return False

    def tail(self, path: Path, lines: int = 40) -> str:  # noqa: D102
        done = self.shell(f"tail -n {int(lines)} {shlex.quote(str(path))}")
        return done.stdout if done.returncode == 0 else ""
