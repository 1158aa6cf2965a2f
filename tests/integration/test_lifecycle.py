"""`alertbench kafka up/down/status` as a user runs them, and the bad cases."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.kafka


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "kafka" / "state.json").read_text())


def _pids(run_dir: Path) -> list[int]:
    return [n["proc"]["pid"] for n in _state(run_dir)["nodes"] if n["proc"]]


def test_up_down_restart_stale_and_purge(tmp_path: Path, cli, kafka4):
    run_dir = tmp_path / "run"
    try:
        up = cli("kafka", "up", run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        state = _state(run_dir)
        assert state["bootstrap_servers"] in up.stdout
        (pid,) = _pids(run_dir)
        assert psutil.pid_exists(pid)
        assert cli("kafka", "topic", "create", "keep-me", run_dir=run_dir).returncode == 0

        again = cli("kafka", "up", run_dir=run_dir)
        assert again.returncode == 0
        assert "already running" in again.stdout
        other = cli("kafka", "up", "--nodes", "3", run_dir=run_dir)
        assert other.returncode == 1
        assert "down --purge" in other.stderr
        assert "3 node(s)" in other.stderr

        down = cli("kafka", "down", run_dir=run_dir)
        assert down.returncode == 0, down.stderr
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert _pids(run_dir) == []

        # Restart keeps the data: the topic made before `down` is still there.
        assert cli("kafka", "up", run_dir=run_dir).returncode == 0
        assert "keep-me" in cli("kafka", "topic", "list", run_dir=run_dir).stdout

        # A node killed behind our back leaves a stale state file; `up` says so and recovers.
        (pid,) = _pids(run_dir)
        os.kill(pid, signal.SIGKILL)
        recovered = cli("kafka", "up", run_dir=run_dir)
        assert recovered.returncode == 0, recovered.stderr
        assert "stale state file" in recovered.stdout
        assert str(pid) in recovered.stdout
        assert "keep-me" in cli("kafka", "topic", "list", run_dir=run_dir).stdout
    finally:
        purged = cli("kafka", "down", "--purge", run_dir=run_dir)
    assert purged.returncode == 0, purged.stderr
    assert not (run_dir / "kafka").exists()


def test_port_in_use_is_named_and_nothing_is_left_running(tmp_path: Path, cli, kafka4):
    run_dir = tmp_path / "run"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        try:
            up = cli("kafka", "up", "--base-port", str(port), run_dir=run_dir)
            assert up.returncode == 1
            assert f"port {port} on 127.0.0.1" in up.stderr
            assert "already in use" in up.stderr
            assert "node-1" in up.stderr
            assert _pids(run_dir) == []
        finally:
            cli("kafka", "down", "--purge", run_dir=run_dir)


def test_corrupt_state_file_is_named(tmp_path: Path, cli):
    state = tmp_path / "run" / "kafka" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")

    status = cli("kafka", "status", run_dir=tmp_path / "run")

    assert status.returncode == 1
    assert str(state) in status.stderr.replace("\n", "")
    assert cli("kafka", "down", "--purge", run_dir=tmp_path / "run").returncode == 0
    assert not state.exists()


def test_missing_java_is_explained(tmp_path: Path, cli):
    empty = tmp_path / "no-jdk"
    empty.mkdir()

    up = cli("--java-home", str(empty), "kafka", "up", run_dir=tmp_path / "run")

    assert up.returncode == 1
    assert "no Java at" in up.stderr
    assert "JDK >= 17" in up.stderr.replace("\n", " ")


def test_status_without_cluster_says_how_to_start(tmp_path: Path, cli):
    status = cli("kafka", "status", run_dir=tmp_path / "run")
    assert status.returncode == 1
    assert "alertbench kafka up" in status.stderr
