"""Samples over time: each component's CPU and memory, and the broker's lag."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from alertbench.broker.stream.metrics import batch_offsets
from alertbench.observe.kafka_names import Offsets


class ResourceSampler:
    """CPU (percent of one core) and resident memory of named process trees.

    Parameters
    ----------
    components : callable
        Returns ``{component: [pid, ...]}`` at each sample (processes come and
        go during a run); each pid counts with all its descendants. A
        component none of whose processes runs gets no row, and leaves
        :attr:`latest`.
    t0 : float
        The run's start (epoch s); samples are stamped in seconds since.
    """

    def __init__(self, components: Callable[[], dict[str, list[int]]], t0: float) -> None:
        self.components = components
        self.t0 = t0
        self.rows: list[tuple[float, str, float, float]] = []
        #: The last sample of each component: (CPU percent of one core, resident MiB).
        self.latest: dict[str, tuple[float, float]] = {}
        self._procs: dict[int, psutil.Process] = {}

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._procs.setdefault(pid, psutil.Process(pid))
            found = [root]
            for child in root.children(recursive=True):
                # The same Process object each time: cpu_percent measures since the last call.
                found.append(self._procs.setdefault(child.pid, child))
            return found
        except psutil.Error:
            return []

    def sample(self) -> None:
        """Take one sample of every component."""
        t = time.time() - self.t0
        # A process counts once, for the first component that claims it: the
        # simulator (this process) comes last, so the broker and the timing
        # consumer it spawned are not counted as simulator. A component none of
        # whose processes runs gives no sample: a 0 would read as a process using
        # no memory, and would lower its mean CPU.
        seen: set[int] = set()
        for name, pids in self.components().items():
            cpu = rss = 0.0
            alive = False
            for pid in pids:
                for proc in self._tree(pid):
                    if proc.pid in seen:
                        continue
                    seen.add(proc.pid)
                    try:
                        cpu += proc.cpu_percent(None)
                        rss += proc.memory_info().rss
                    except psutil.Error:
                        continue
                    alive = True
            if not alive:
                self.latest.pop(name, None)
                continue
            self.rows.append((round(t, 3), name, round(cpu, 1), round(rss / 2**20, 1)))
            self.latest[name] = (round(cpu, 1), round(rss / 2**20, 1))


class LagSampler:
    """The input topic's end offsets against what the broker has read, per partition.

    Parameters
    ----------
    topic : str
        The input topic.
    end_offsets : callable
        Returns the input topic's end offset per partition.
    read_offsets : callable
        Returns the next offset the broker will read per partition (a partition
        it has not read yet may be missing), or None when that cannot be known
        (a broker whose consumer group is not named).
    produced : callable
        Returns alerts acknowledged so far by the simulator.
    t0 : float
        The run's start (epoch s).
    group : str, optional
        The broker's consumer group, or the name it is shown under.
    """

    def __init__(
        self,
        topic: str,
        end_offsets: Callable[[], dict[int, int]],
        read_offsets: Callable[[], dict[int, int] | None],
        produced: Callable[[], int],
        t0: float,
        group: str | None = None,
    ) -> None:
        self.topic = topic
        self.end_offsets = end_offsets
        self.read_offsets = read_offsets
        self.produced = produced
        self.t0 = t0
        self.group = group
        self.rows: list[tuple[float, int, int, int | None, int | None]] = []
        #: The last sample: when (epoch s), its offsets, and the alerts acknowledged then.
        self.latest: tuple[float, Offsets, int] | None = None

    def sample(self) -> None:
        """Take one sample."""
        now = time.time()
        end = self.end_offsets()
        read = self.read_offsets()
        produced = self.produced()
        snap = Offsets(self.topic, end, self.group, read)
        behind = snap.lag()
        done = None if read is None else sum(read.get(p, 0) for p in end)
        lag = None if behind is None else sum(behind.values())
        self.rows.append((round(now - self.t0, 3), produced, sum(end.values()), done, lag))
        self.latest = (now, snap, produced)


def processed_offsets(progress: Path, topic: str) -> int:
    """Sum of :func:`partition_offsets`."""
    return sum(partition_offsets(progress, topic).values())


def partition_offsets(progress: Path, topic: str) -> dict[int, int]:
    """The end offsets of ``topic``, per partition, in the latest batch of the progress file.

    Read from the end: offsets only grow, so the last batch that read the
    topic holds the answer, and a long run's earlier lines need no parsing
    at every poll.
    """
    if not progress.exists():
        return {}
    for line in reversed(progress.read_text().splitlines()):
        try:
            record: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        found = batch_offsets(record).get(topic)
        if found is not None:
            return found
    return {}


class Every:
    """Call ``fns`` every ``interval`` s in a daemon thread until :meth:`stop`."""

    def __init__(self, interval: float, *fns: Callable[[], None]) -> None:
        self.interval = interval
        self.fns = fns
        self._stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            for fn in self.fns:
                try:
                    fn()
                except Exception as exc:  # a sample lost is recorded, never fatal
                    if len(self.errors) < 10:
                        self.errors.append(f"{getattr(fn, '__qualname__', fn)}: {exc}")
            self._stop.wait(self.interval)

    def start(self) -> Every:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and wait for the last sample."""
        self._stop.set()
        self._thread.join(timeout=10)
