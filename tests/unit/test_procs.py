"""Processes by PID, ports, files: LocalTransport and helpers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbench.procs import LocalTransport, ProcessRecord, free_ports, stop_processes


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[ProcessRecord]]:
    """Records of processes a test starts; whatever is left is killed afterwards."""
    records: list[ProcessRecord] = []
    yield records
    for rec in records:
        # Each process leads its own session/group: kill the group, children too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(rec.pid, 0)


def _wait_for(path: Path, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} did not appear in {path}")


def test_spawn_is_running_and_stop_with_sigterm(
    tmp_path: Path, spawned: list[ProcessRecord]
) -> None:
    t = LocalTransport()
    rec = t.spawn(["sleep", "30"], log=tmp_path / "logs" / "sleep.log", cwd=tmp_path)
    spawned.append(rec)
    assert rec.host == "localhost"
    assert rec.pid > 0
    assert abs(rec.started - time.time()) < 10
    assert (tmp_path / "logs" / "sleep.log").exists()
    assert t.is_running(rec) is True
    # The same PID with an earlier start time is another (older) process, not ours.
    assert t.is_running(ProcessRecord(pid=rec.pid, started=rec.started - 100)) is False

    start = time.monotonic()
    assert stop_processes(t, [rec], grace=5) == []
    assert time.monotonic() - start < 5
    assert t.is_running(rec) is False


def test_spawned_process_runs_in_cwd_and_logs(tmp_path: Path, spawned: list[ProcessRecord]) -> None:
    t = LocalTransport()
    log = tmp_path / "out.log"
    (tmp_path / "work").mkdir()
    rec = t.spawn(["bash", "-c", "pwd; echo oops >&2"], log=log, cwd=tmp_path / "work")
    spawned.append(rec)
    _wait_for(log, "oops")
    assert log.read_text().splitlines() == [str(tmp_path / "work"), "oops"]


def test_stop_kills_a_process_that_ignores_sigterm(
    tmp_path: Path, spawned: list[ProcessRecord]
) -> None:
    t = LocalTransport()
    log = tmp_path / "stubborn.log"
    rec = t.spawn(["bash", "-c", "trap '' TERM; echo ready; sleep 30"], log=log, cwd=tmp_path)
    spawned.append(rec)
    _wait_for(log, "ready")  # the trap is in place before we signal
    assert t.is_running(rec)
    killed = stop_processes(t, [rec], grace=0.5)
    assert killed == [rec]
    assert t.is_running(rec) is False


def test_stop_skips_processes_already_gone(tmp_path: Path, spawned: list[ProcessRecord]) -> None:
    t = LocalTransport()
    rec = t.spawn(["true"], log=tmp_path / "true.log", cwd=tmp_path)
    spawned.append(rec)
    deadline = time.monotonic() + 5
    while t.is_running(rec) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert t.is_running(rec) is False
    assert stop_processes(t, [rec], grace=5) == []


def test_is_running_for_a_pid_that_does_not_exist() -> None:
    max_pid = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert LocalTransport().is_running(ProcessRecord(pid=max_pid + 1, started=time.time())) is False


def test_port_in_use() -> None:
    t = LocalTransport()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert t.port_in_use("127.0.0.1", port) is True
    assert t.port_in_use("127.0.0.1", port) is False


def test_free_ports() -> None:
    ports = free_ports(5)
    assert len(ports) == 5
    assert len(set(ports)) == 5
    assert all(isinstance(p, int) and 1024 <= p <= 65535 for p in ports)
    t = LocalTransport()
    assert not any(t.port_in_use("127.0.0.1", p) for p in ports)


def test_tail(tmp_path: Path) -> None:
    t = LocalTransport()
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 101)))
    assert t.tail(log, 3) == "line 98\nline 99\nline 100"
    assert t.tail(log).splitlines() == [f"line {i}" for i in range(61, 101)]
    assert t.tail(tmp_path / "missing.log") == ""


def test_tail_of_a_big_file_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"{i:08d}\n" for i in range(100_000)))
    assert LocalTransport().tail(log, 2) == "00099998\n00099999"


def test_write_text_creates_parents_and_replaces(tmp_path: Path) -> None:
    t = LocalTransport()
    target = tmp_path / "a" / "b" / "state.json"
    t.write_text(target, "first\n")
    assert target.read_text() == "first\n"
    t.write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_make_dirs_and_remove_tree(tmp_path: Path) -> None:
    t = LocalTransport()
    folder = tmp_path / "x" / "y"
    t.make_dirs(folder)
    t.make_dirs(folder)  # idempotent
    (folder / "f").write_text("x")
    t.remove_tree(tmp_path / "x")
    assert not (tmp_path / "x").exists()
    t.remove_tree(tmp_path / "x")  # already gone: no error


def test_run_captures_output() -> None:
    proc = LocalTransport().run(["bash", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")


def test_process_record_json_round_trip() -> None:
    rec = ProcessRecord(pid=4242, started=1718000000.25, host="kafka-slave1")
    data = json.loads(json.dumps(rec.to_json()))
    assert data == {"pid": 4242, "started": 1718000000.25, "host": "kafka-slave1"}
    assert ProcessRecord.from_json(data) == rec


def test_local_copy_file_creates_folders_and_replaces(tmp_path: Path) -> None:
    source = tmp_path / "a.jar"
    source.write_bytes(b"\x00jar bytes")
    dest = tmp_path / "host" / "libs" / "a.jar"
    LocalTransport().copy_file(source, dest)
    assert dest.read_bytes() == b"\x00jar bytes"
    source.write_bytes(b"new")
    LocalTransport().copy_file(source, dest)
    assert dest.read_bytes() == b"new"
    assert not dest.with_name("a.jar.tmp").exists()
