"""Faults on alertbench's broker: its driver or a worker's executor killed, its disk filled."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from alertbench.bench.faults.spec import FaultSpec
from alertbench.bench.faults.target import (
    FaultError,
    Target,
    pids,
    restart_broker,
    running_broker,
    tree,
)
from alertbench.procs import LocalTransport, ProcessRecord

if TYPE_CHECKING:
    from alertbench.config import Settings


@dataclass
class DriverKill:
    """SIGKILL alertbench's broker (driver, JVM, Python workers); start it again to heal."""

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        local = LocalTransport()
        killed = running_broker(self.target)
        for p in killed:
            local.send_signal(p, signal.SIGKILL)
        return {"pids": pids(killed), "signal": "SIGKILL"}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        return {"restarted_pids": restart_broker(self.target)}


#: The class a standalone worker runs each executor as (its own child JVM).
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def standalone_worker(settings: Settings, master: str | None, worker: int) -> ProcessRecord:
    """The process of worker ``worker`` of the standalone cluster that runs ``master``.

    Only a cluster that ``alertbench spark up`` started on this machine
    qualifies: its state file holds the worker's PID and start time.

    Raises
    ------
    FaultError
        Naming what differs: no cluster recorded, another master, a remote
        or stopped worker, no such worker.
    """
    from alertbench.spark.state import read_state, state_dir

    cluster = read_state(settings)
    if cluster is None or not cluster.procs:
        raise FaultError(
            f"no Spark standalone cluster is recorded in {state_dir(settings)}: start one here "
            "with alertbench spark up (the same settings and run_dir as the bench)"
        )
    if cluster.master_url != master:
        raise FaultError(
            f"the broker runs on {master}, but the cluster alertbench started runs "
            f"{cluster.master_url}: run with --master {cluster.master_url}"
        )
    name = f"worker-{worker}"
    proc = cluster.procs.get(name)
    if proc is None:
        raise FaultError(f"the cluster has no {name} (workers: {cluster.workers})")
    if cluster.targets:
        raise FaultError(
            f"{name} runs on {proc.host}, over SSH: worker-kill acts on workers on this machine"
        )
    if not LocalTransport().is_running(proc):
        raise FaultError(f"{name} (PID {proc.pid}) is not running: see {cluster.logs.get(name)}")
    return proc


def _executors(worker: ProcessRecord) -> list[ProcessRecord]:
    """The executor JVMs that ``worker`` runs now (its children of :data:`EXECUTOR_CLASS`)."""
    try:
        kids = psutil.Process(worker.pid).children()
    except psutil.Error:
        return []
    found = []
    for k in kids:
        try:
            if EXECUTOR_CLASS in k.cmdline():
                found.append(ProcessRecord(k.pid, k.create_time(), worker.host))
        except psutil.Error:
            continue
    return found


@dataclass
class WorkerKill:
    """SIGKILL the executor a standalone worker runs for the broker; Spark replaces it.

    The executor is found as a child of the worker's recorded PID, never by
    name across the machine; its Python workers die with it. The act lasts
    until the worker runs a new executor (Spark's master asks for one when
    the worker reports the loss), so "healed" is when Spark had replaced it.
    """

    spec: FaultSpec
    target: Target

    def inject(self) -> dict[str, Any]:  # noqa: D102
        bench = self.target.bench
        n = int(self.spec.value("worker"))
        worker = standalone_worker(bench.settings, bench.master, n)
        deadline = time.monotonic() + 30
        while not (execs := _executors(worker)):
            if time.monotonic() >= deadline:
                raise FaultError(
                    f"worker-{n} (PID {worker.pid}) ran no executor in 30 s: the broker "
                    "has none there (is --master this cluster's?)"
                )
            time.sleep(0.2)
        killed = [p for e in execs for p in tree(e)]
        local = LocalTransport()
        for p in killed:
            local.send_signal(p, signal.SIGKILL)
        gone, old = time.monotonic(), {e.pid for e in execs}
        replaced = None
        while time.monotonic() - gone < 120:
            new = [e for e in _executors(worker) if e.pid not in old]
            if new:
                replaced = new[0].pid
                break
            time.sleep(0.2)
        return {
            "worker": f"worker-{n}",
            "worker_pid": worker.pid,
            "executor_pids": sorted(old),
            "pids": pids(killed),
            "signal": "SIGKILL",
            "replaced_pid": replaced,
            "replaced_after_s": round(time.monotonic() - gone, 3) if replaced else None,
        }

    def heal(self) -> dict[str, Any]:  # noqa: D102
        return {}


#: What a process says when it writes to a full filesystem (errno ENOSPC).
NO_SPACE = "No space left on device"


def _log_lines(log: Path, start: int, text: str) -> list[str]:
    """Lines of ``log`` from byte ``start`` on that contain ``text``."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            data = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in data.splitlines() if text in line]


@dataclass
class DiskFull:
    """Every free block of the broker's output filesystem taken, then freed.

    The filesystem is the bench's (:class:`~alertbench.bench.faults.disk.LoopDisk`,
    mounted on the broker's output folder before it started). What the
    broker does on a full disk is what is measured: its writes fail with
    ENOSPC, and if it stopped, the heal starts it again on its checkpoint
    after freeing the disk, as ``--supervise`` would, and records why it had
    stopped: it fails loudly, never skips.
    """

    spec: FaultSpec
    target: Target
    log_at: int = 0

    def _disk(self):
        disk = self.target.bench.disks.get(self.target.seg.tag)
        if disk is None:
            raise FaultError("the broker's output is on no filesystem of the bench's own")
        return disk

    def inject(self) -> dict[str, Any]:  # noqa: D102
        log = self.target.wiring.log
        self.log_at = log.stat().st_size if log.exists() else 0
        disk = self._disk()
        return {"mount": str(disk.mount), "size_mb": disk.size_mb, **disk.fill()}

    def heal(self) -> dict[str, Any]:  # noqa: D102
        t, local = self.target, LocalTransport()
        freed = self._disk().free()
        errors = _log_lines(t.wiring.log, self.log_at, NO_SPACE)
        stopped = not any(local.is_running(p) for p in t.broker.procs())
        did: dict[str, Any] = {
            **freed,
            "broker_stopped": stopped,
            "no_space_errors": len(errors),
            "first_error": errors[0][:300] if errors else None,
        }
        if stopped:
            did["restarted_pids"] = restart_broker(t)
        return did
