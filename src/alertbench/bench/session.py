"""A benchmark run in progress: its segments, where it writes, what it started and where it times.

The runner (:mod:`alertbench.bench.runner`) and the brokers under test
(:mod:`alertbench.bench.brokers`) share this bookkeeping: a :class:`Bench`
knows the scenario, the cluster and its credentials, the run's folders and
every process started, by PID, in a state file; a :class:`Segment` is one
broker on one input topic; a :class:`TimingPlace` is where the timing
consumer reads arrivals, and how far that host's clock is from this one's.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from alertbench import __version__
from alertbench.alerts.reader import Alert, ReadReport
from alertbench.bench.live import RunView
from alertbench.bench.scenario import Scenario
from alertbench.config import Settings
from alertbench.errors import AlertbenchError, ConfigError
from alertbench.kafka.security import Connection, client_file
from alertbench.kafka.state import ClusterState
from alertbench.observe.targets import Endpoints
from alertbench.procs import LocalTransport, ProcessRecord, Transport
from alertbench.ssh import SSHTransport

STATE_FILE = "bench-state.json"


class BenchError(AlertbenchError):
    """A benchmark run could not be carried out."""


@dataclass
class Segment:
    """One broker on one input topic, with its load."""

    tag: str
    partitions: int
    producers: int
    cores: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimingPlace:
    """Where the timing consumer runs: this machine, or an inventory host over SSH.

    On another host, arrival times are read on that host's clock and send
    times on this one's: ``clock`` records the offset between the two,
    measured at the start and at the end of the run.
    """

    transport: Transport
    root: Path | None = None  # its working folder on that host; None: the segment's own
    host: str | None = None  # None: this machine
    clock: dict[str, Any] = field(
        default_factory=lambda: {"timing_host": None, "method": "same clock", "offset_s": 0.0}
    )

    def folder(self, seg_dir: Path) -> Path:
        """The timing consumer's folder for a segment (``seg_dir`` on this machine)."""
        return seg_dir if self.root is None else self.root / seg_dir.name

    def bring_home(self, logs: Path) -> None:
        """Copy the timing consumer's logs from its host into ``logs``, then close."""
        if self.root is None:
            return
        for seg in self.transport.run(["ls", str(self.root)], timeout=30).stdout.split():
            for name in self.transport.run(["ls", str(self.root / seg)], timeout=30).stdout.split():
                if name.endswith(".log"):
                    with contextlib.suppress(AlertbenchError):
                        self.transport.fetch_file(self.root / seg / name, logs / name)
        self.transport.remove_tree(self.root)
        if isinstance(self.transport, SSHTransport):
            self.transport.close()

    def measure_clock(self, when: str) -> None:
        """Record the host's clock offset (``when``: "start" or "end")."""
        if self.host is None or not isinstance(self.transport, SSHTransport):
            return
        offset, trip = self.transport.clock_offset()
        self.clock.update(
            {
                "timing_host": self.host,
                "method": "SSH round trip, best of 8",
                f"offset_{when}_s": round(offset, 6),
                f"round_trip_{when}_s": round(trip, 6),
            }
        )
        self.clock["offset_s"] = max(
            abs(self.clock.get(f"offset_{w}_s", 0.0)) for w in ("start", "end")
        )


@dataclass
class Bench:
    """A run in progress: where it writes and what it started."""

    scenario: Scenario
    settings: Settings
    run: Path
    servers: Connection
    master: str | None
    alerts: list[Alert]
    report: ReadReport
    filters: dict[str, str]
    t0: float
    say: Callable[[str], None]
    procs: dict[str, ProcessRecord] = field(default_factory=dict)
    kafka_pids: list[int] = field(default_factory=list)
    clones: int = 0  # clone numbers used so far, so every alert of the run is unique
    sources: dict[str, Any] = field(default_factory=dict)  # topic -> the simulator's messages
    keep_data: bool = False  # keep Kafka's data (no topic is deleted) and the broker's outputs
    # Where the user started the run: another broker's command runs there, as typed.
    cwd: Path = field(default_factory=Path.cwd)
    timing: TimingPlace = field(default_factory=lambda: TimingPlace(LocalTransport()))
    faults: list[dict[str, Any]] = field(default_factory=list)  # injected faults, with PIDs
    kafka_settings: Settings | None = None  # the embedded Kafka's, to restart its nodes
    deployed: ClusterState | None = None  # the Kafka `kafka up` deployed on hosts, if used
    view: RunView = field(default_factory=lambda: RunView("", ""))  # what it is doing now
    endpoints: Endpoints | None = None  # its metrics endpoints, when it serves them
    disks: dict[str, Any] = field(default_factory=dict)  # segment tag -> its broker's LoopDisk

    @property
    def work(self) -> Path:
        """Bulky data of the run (broker outputs, logs before collection)."""
        return self.run / "work"

    def client_file(self) -> dict[str, str]:
        """``{"client_config": path}`` for a child that connects as the bench does, or nothing."""
        path = client_file(self.servers, self.work / "client.properties")
        return {"client_config": str(path)} if path else {}

    def track_broker(self, tag: str, procs: list[ProcessRecord]) -> None:
        """Record a segment's broker processes (``broker-TAG``, ``broker-TAG-1``, ...) and save."""
        for k, proc in enumerate(procs):
            self.procs[f"broker-{tag}" + (f"-{k}" if k else "")] = proc
        self.save_state()

    def save_state(self) -> None:
        """Record the PIDs the bench started (so `bench` can stop them after a crash)."""
        state: dict[str, Any] = {k: v.to_json() for k, v in self.procs.items()}
        if self.faults:
            # Which processes a fault stopped or killed, so they can be found after a crash.
            state["faults"] = self.faults
        if self.disks:
            # Filesystems mounted for disk faults, so they can be unmounted after a crash.
            state["mounts"] = [d.to_json() for d in self.disks.values()]
        LocalTransport().write_text(self.work / STATE_FILE, json.dumps(state, indent=2) + "\n")


def segments_of(scenario: Scenario) -> list[Segment]:
    """The segments a scenario runs: one, or one per scaling variant (base first).

    A max-throughput scenario with ``ceiling`` runs its broker, then the null
    broker on the same steps.
    """
    base = Segment("main", scenario.partitions, scenario.producers, scenario.cores)
    if scenario.kind == "max-throughput" and scenario.ceiling:
        null = Segment("null", scenario.partitions, scenario.producers, scenario.cores)
        null.params = {"broker": "null"}
        return [base, null]
    if scenario.kind != "scaling":
        return [base]
    found = [base]
    seen = {(base.partitions, base.producers, base.cores)}
    for name in ("partitions", "producers", "cores"):
        for value in getattr(scenario.sweep, name):
            combo = {
                "partitions": base.partitions,
                "producers": base.producers,
                "cores": base.cores,
                name: value,
            }
            key = (combo["partitions"], combo["producers"], combo["cores"])
            if key in seen:
                continue
            seen.add(key)
            found.append(Segment(f"s{len(found)}", **combo))
    for seg in found:
        seg.params = {"partitions": seg.partitions, "producers": seg.producers, "cores": seg.cores}
    return found


def machine() -> dict[str, Any]:
    """Cores, memory and platform of this machine."""
    return {
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def versions(settings: Settings) -> dict[str, Any]:
    """Versions of everything measured."""
    import pyspark

    from alertbench.java import find_java

    try:
        java = find_java(settings.java_home).version
    except AlertbenchError:
        java = None
    return {
        "alertbench": __version__,
        "kafka": settings.kafka.version,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
        "java": java,
    }


def timing_place(
    settings: Settings, host_name: str | None, run: Path, embedded: bool
) -> TimingPlace:
    """Where the timing consumer runs: here, or on the inventory host ``host_name``.

    Raises
    ------
    ConfigError
        Without an inventory naming that host, or with the embedded Kafka
        (which listens on this machine only).
    """
    if host_name is None:
        return TimingPlace(LocalTransport())
    from alertbench.kafka.local import inventory_of
    from alertbench.kafka.remote import ssh_target

    inv = inventory_of(settings)
    if inv is None:
        raise ConfigError(
            f"--timing-host {host_name}: the host must be in an inventory (--inventory)."
        )
    host = next((h for h in inv.hosts if h.name == host_name), None)
    if host is None:
        raise ConfigError(
            f"--timing-host {host_name}: no such host in the inventory; it has "
            + ", ".join(h.name for h in inv.hosts)
        )
    if embedded:
        raise ConfigError(
            f"--timing-host {host_name}: the embedded Kafka listens on this machine only; "
            "run against the inventory's brokers or --bootstrap-servers."
        )
    root = host.install_dir / "bench" / run.name
    return TimingPlace(SSHTransport(ssh_target(host)), root=root, host=host_name)


def bench_info(bench: Bench, embedded: bool, settings: Settings) -> dict[str, Any]:
    """The run's identity and configuration, for results.json."""
    s = bench.scenario
    return {
        "run_id": bench.run.name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bench.t0)),
        "t0": bench.t0,
        "machine": machine(),
        "versions": versions(settings),
        "clock": dict(bench.timing.clock),
        "config": {
            "kafka": {
                "embedded": embedded,
                "bootstrap_servers": bench.servers.servers,
                # The protocol and user, never a secret.
                "security": bench.servers.protocol,
                "user": bench.servers.props.get("sasl.username"),
                "nodes": s.kafka_nodes if embedded else None,
                "version": settings.kafka.version,
                "heap": settings.kafka.heap,
            },
            "broker": _broker_info(bench, settings),
            "simulator": {
                "schedule": s.schedule,
                "visit_alerts": s.visit_alerts,
                "visit_interval": s.visit_interval,
                "visits": s.visits,
                "rate": s.rate,
                "alerts": s.alerts,
                "producers": s.producers,
                "partitions": s.partitions,
                "synthesize": s.synthesize,
                "warmup_alerts": s.warmup_alerts,
                "wire": s.wire,
                "schema_registry": s.schema_registry,
                "source_alerts": len(bench.alerts),
            },
        },
    }


def _broker_info(bench: Bench, settings: Settings) -> dict[str, Any]:
    s = bench.scenario
    if s.broker is not None:
        return {"kind": "external", **s.broker.model_dump(mode="json")}
    return {
        "kind": "alertbench",
        "master": bench.master or f"local[{s.cores}]",
        "mode": "fused" if s.fused else "staged",
        "trigger": s.trigger,
        "max_offsets_per_trigger": s.max_offsets_per_trigger,
        "min_offsets_per_trigger": s.min_offsets_per_trigger,
        "filters": bench.filters,
        "science": s.science or settings.broker.science,
        "modules": None if s.science else settings.broker.modules,
        "cuts": settings.broker.cuts,
        "driver_memory": settings.broker.driver_memory,
    }
