"""``bench run``: stand up what a scenario needs, drive the load, measure, tear down.

One run is one or more *segments*. A segment is one broker on one input
topic: the bench creates the topic, starts the broker and a timing consumer
as processes of their own (tracked by PID), sends a warm-up, then the
measured load, waits until the broker has drained it, and collects. A
``stream`` or ``max-throughput`` scenario is one segment; ``scaling`` runs
one per variant. Whatever the bench started is stopped when the run ends,
fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from alertbench import __version__
from alertbench.alerts.reader import Alert, ReadReport
from alertbench.bench import collect
from alertbench.bench.brokers import BrokerUnderTest, OtherBroker, OwnBroker, Wiring
from alertbench.bench.sampler import Every, LagSampler, ResourceSampler
from alertbench.bench.scenario import Scenario
from alertbench.config import Settings
from alertbench.errors import AlertbenchError, ConfigError
from alertbench.kafka.admin import create_topic, list_topics
from alertbench.kafka.client import Watermarks, end_offsets
from alertbench.kafka.credentials import admin_connection
from alertbench.kafka.security import Connection, client_file
from alertbench.procs import LocalTransport, ProcessRecord, Transport, stop_processes
from alertbench.simulator.run import SimulationOptions, load_alerts, simulate
from alertbench.simulator.schedule import Schedule
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
    # Where the user started the run: another broker's command runs there, as typed.
    cwd: Path = field(default_factory=Path.cwd)
    timing: TimingPlace = field(default_factory=lambda: TimingPlace(LocalTransport()))

    @property
    def work(self) -> Path:
        """Bulky data of the run (broker outputs, logs before collection)."""
        return self.run / "work"

    def client_file(self) -> dict[str, str]:
        """``{"client_config": path}`` for a child that connects as the bench does, or nothing."""
        path = client_file(self.servers, self.work / "client.properties")
        return {"client_config": str(path)} if path else {}

    def save_state(self) -> None:
        """Record the PIDs the bench started (so `bench` can stop them after a crash)."""
        LocalTransport().write_text(
            self.work / STATE_FILE,
            json.dumps({k: v.to_json() for k, v in self.procs.items()}, indent=2) + "\n",
        )


def segments_of(scenario: Scenario) -> list[Segment]:
    """The segments a scenario runs: one, or one per scaling variant (base first)."""
    base = Segment("main", scenario.partitions, scenario.producers, scenario.cores)
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


def run_bench(
    settings: Settings,
    scenario: Scenario,
    *,
    out: Path,
    sources: list[str],
    servers: str | Connection | None = None,
    master: str | None = None,
    keep_data: bool = False,
    timing_host: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Run ``scenario`` and write its results directory; returns the directory.

    Parameters
    ----------
    settings : Settings
        Kafka version and heap, broker options, Java.
    scenario : Scenario
        The load and the broker's set-up.
    out : Path
        Folder that receives the run directory.
    sources : list of str
        Files or folders of real alerts (templates for clones).
    servers : str or Connection, optional
        An existing Kafka cluster, with credentials; by default a single embedded
        node is started, secured as the scenario says.
    master : str, optional
        An existing Spark master; by default ``local[N]`` with the scenario's cores.
    keep_data : bool
        Keep the Kafka data and broker outputs (``work/``) after the run.
    timing_host : str, optional
        An inventory host to run the timing consumer on (over SSH), away from
        the producers; the clock offset between the two is measured and recorded.
    say : callable
        Receives progress messages for people.
    """
    from alertbench.broker.stream.run import DEFAULT_FILTERS
    from alertbench.kafka import local

    if servers is None and scenario.broker is not None and scenario.broker.cmd is None:
        raise ConfigError(
            "a broker that already runs reads a Kafka of its own, not the bench's embedded "
            "one: give its cluster (--bootstrap-servers, or an inventory), or --broker-cmd."
        )
    t0 = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t0))
    # Children run in other folders: they are handed absolute paths only.
    run = Path(os.path.abspath(out)) / f"{stamp}-{scenario.name}"
    (run / "series").mkdir(parents=True, exist_ok=False)
    (run / "scenario.json").write_text(scenario.model_dump_json(indent=2) + "\n")
    say(f"reading alerts from {', '.join(sources)}")
    alerts, report = load_alerts(SimulationOptions(servers="", sources=sources))
    survey = alerts[0].schema.survey.survey
    filters = scenario.filters or DEFAULT_FILTERS.get(survey, {})
    kafka_settings = settings.model_copy(
        update={
            "run_dir": run / "work",
            "inventory": None,  # the embedded Kafka is one local node, whatever is deployed
            "kafka": settings.kafka.model_copy(
                update={
                    "nodes": 1,
                    "base_port": 0,
                    "bootstrap_servers": None,
                    "security": scenario.security,
                    "listeners": [],
                }
            ),
        }
    )
    embedded = servers is None
    place = timing_place(settings, timing_host, run, embedded)
    bench: Bench | None = None
    results: dict[str, Any] = {}
    try:
        if embedded:
            say("starting an embedded single-node Kafka")
            up = local.up(kafka_settings)
            servers = admin_connection(kafka_settings.kafka_state_dir, up.state.bootstrap_servers)
        conn = Connection.of(servers)  # type: ignore[arg-type]
        bench = Bench(scenario, settings, run, conn, master, alerts, report, filters, t0, say)
        bench.timing = place
        place.measure_clock("start")
        bench.kafka_pids = [n.proc.pid for n in up.state.nodes if n.proc] if embedded else []
        outcomes = []
        for seg in segments_of(scenario):
            say(f"segment {seg.tag}: {seg.params or 'the scenario as written'}")
            outcomes.append(run_segment(bench, seg))
        place.measure_clock("end")
        results = collect.results(
            bench_info(bench, embedded, settings),
            scenario,
            outcomes,
            run=run,
        )
    finally:
        if bench is not None:
            stop_started(bench)
        with contextlib.suppress(AlertbenchError):  # never hides why the run failed
            place.bring_home(run / "work" / "logs")
        if embedded:
            say("stopping the embedded Kafka")
            local.down(kafka_settings, purge=not keep_data)
        collect.keep_logs(run)
        if not keep_data:
            LocalTransport().remove_tree(run / "work")
    if not results:
        raise BenchError(f"the run in {run} produced no results")
    collect.write_results(run, results)
    from alertbench.bench.report import render_report

    render_report(run)
    return run


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
                "nodes": 1 if embedded else None,
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


def broker_for(scenario: Scenario) -> BrokerUnderTest:
    """The broker a segment measures: the scenario's other broker, else alertbench's."""
    return OwnBroker() if scenario.broker is None else OtherBroker(scenario.broker)


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
        "modules": settings.broker.modules,
        "cuts": settings.broker.cuts,
        "driver_memory": settings.broker.driver_memory,
    }


def run_segment(bench: Bench, seg: Segment) -> collect.SegmentOutcome:
    """Run one segment end to end and gather what it measured."""
    s = bench.scenario
    prefix = f"ab-{bench.run.name.lower()}-{seg.tag}"
    topic = (s.broker.input_topic if s.broker else None) or f"{prefix}-alerts"
    seg_dir = bench.work / seg.tag
    LocalTransport().make_dirs(seg_dir)
    create_topic(bench.servers, topic, partitions=seg.partitions, exist_ok=True)
    # A topic that was there already (a running broker's) keeps its own partitions.
    partitions = next(len(t.partitions) for t in list_topics(bench.servers) if t.name == topic)
    broker = broker_for(s)
    log = bench.work / "logs" / f"broker-{seg.tag}.log"
    wiring = Wiring(topic, partitions, prefix, seg_dir, log)
    outcome = collect.SegmentOutcome(seg.tag, seg.params, topic, partitions, {}, seg_dir)
    outcome.broker_kind = broker.kind
    try:
        broker.start(bench, seg, wiring)
        for k, proc in enumerate(broker.procs()):
            bench.procs[f"broker-{seg.tag}" + (f"-{k}" if k else "")] = proc
        bench.save_state()
        _start_timing(bench, seg, broker, seg_dir)
        _measure(bench, seg, broker, wiring, outcome)
    finally:
        broker.stop()
        timing = bench.procs.get(f"timing-{seg.tag}")
        if timing is not None:
            stop_processes(bench.timing.transport, [timing], grace=5)
    outcome.expected = broker.expected()
    return outcome


def _measure(
    bench: Bench,
    seg: Segment,
    broker: BrokerUnderTest,
    wiring: Wiring,
    outcome: collect.SegmentOutcome,
) -> None:
    """Warm the broker up, send the measured load, wait for the drain, sample all along."""
    s = bench.scenario
    topic = wiring.topic
    produced = [0]
    components = {
        "kafka": lambda: bench.kafka_pids,
        "broker": lambda: [p.pid for p in broker.procs()],
        # A timing consumer on another host is not this machine's to sample.
        "timing": lambda: [
            p.pid
            for k, p in bench.procs.items()
            if k.startswith("timing") and p.host == LocalTransport.host
        ],
        "simulator": lambda: [os.getpid()],
    }
    resources = ResourceSampler(lambda: {k: f() for k, f in components.items()}, bench.t0)
    marks = Watermarks(bench.servers)
    lag = LagSampler(
        lambda: sum(marks.end_offsets(topic, wiring.partitions).values()),
        broker.processed,
        lambda: produced[0],
        bench.t0,
    )
    sampling = Every(1.0, resources.sample, lag.sample).start()
    try:
        warm = _simulate(bench, seg, topic, Schedule(mode="max"), count=s.warmup_alerts)
        outcome.warmup = warm
        bench.say(f"warm-up: {warm['alerts']} alerts sent; waiting for the broker to start")
        first = sum(end_offsets(bench.servers, topic, wiring.partitions).values())
        broker.wait(first, s.broker.start_timeout if s.broker else s.drain_timeout + 300)
        outcome.measured_from = time.time()
        outcome.loads, outcome.steps = _drive(bench, seg, topic, lag, produced)
        total = sum(end_offsets(bench.servers, topic, wiring.partitions).values())
        bench.say(f"all {total:,} alerts in Kafka; waiting for the broker to drain them")
        outcome.drained = broker.wait(total, s.drain_timeout, fail=False)
        lag.sample()  # the lag as the drain ended, not as it was up to a second before
        outcome.load_finished = max((lo["finished"] for lo in outcome.loads), default=time.time())
        outcome.distribution = broker.outputs()
        partitions = {t.name: len(t.partitions) for t in list_topics(bench.servers)}
        targets = {
            t: {str(p): e for p, e in end_offsets(bench.servers, t, partitions.get(t, 0)).items()}
            for t in outcome.distribution
        }
        where = bench.timing.folder(wiring.dir)
        bench.timing.transport.write_text(where / "targets.json", json.dumps(targets))
        _wait_timing(bench, seg, 120)
        if bench.timing.root is not None:  # bring its arrivals home
            bench.timing.transport.fetch_file(where / "arrivals.csv", wiring.dir / "arrivals.csv")
    finally:
        sampling.stop()
        marks.close()
        outcome.resources = resources.rows
        outcome.lag = lag.rows
        outcome.sampler_errors = sampling.errors


def _simulate(
    bench: Bench,
    seg: Segment,
    topic: str,
    schedule: Schedule,
    *,
    count: int | None = None,
    visits: int | None = None,
    duration: float | None = None,
    monitor: Callable[..., None] | None = None,
) -> dict[str, Any]:
    s = bench.scenario
    opts = SimulationOptions(
        servers=bench.servers,
        topic=topic,
        wire=s.wire,
        registry=s.schema_registry,
        schedule=schedule,
        count=count,
        visits=visits,
        duration=duration,
        loop=not s.synthesize,
        synthesize=s.synthesize,
        first_clone=bench.clones,
        producers=seg.producers,
        partitions=seg.partitions,
        start_delay=0.2,
    )
    result = simulate(opts, alerts=bench.alerts, report=bench.report, monitor=monitor)
    summary = result.summary
    bench.clones += summary["sent"] + 1
    if result.failed:
        bench.say(f"[red]{summary['failures']} deliveries failed[/]")
    return summary


def _drive(
    bench: Bench, seg: Segment, topic: str, lag: LagSampler, produced: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Send the measured load; returns the simulator summaries and max-throughput steps."""
    s = bench.scenario
    done = [0]

    def monitor(acked: int, *_rest: Any) -> None:
        produced[0] = done[0] + acked

    def ran(summary: dict[str, Any]) -> dict[str, Any]:
        done[0] += summary["alerts"]
        produced[0] = done[0]
        return summary

    if s.kind == "max-throughput":
        loads, steps = [], []
        for k, step in enumerate(s.steps):
            before, t_start = lag.processed() or 0, time.time()
            lag_start = max(
                sum(end_offsets(bench.servers, topic, seg.partitions).values()) - before, 0
            )
            bench.say(f"step {k + 1}: {step.rate:,.0f} alerts/s for {step.seconds:.0f} s")
            summary = ran(
                _simulate(
                    bench,
                    seg,
                    topic,
                    Schedule(mode="rate", rate=step.rate),
                    duration=step.seconds,
                    monitor=monitor,
                )
            )
            loads.append(summary)
            end = sum(end_offsets(bench.servers, topic, seg.partitions).values())
            processed = lag.processed() or 0
            wall = max(time.time() - t_start, 1e-9)
            backlog = max(end - processed, 0)
            held = backlog <= step.rate * s.held_lag_s and summary["alerts"] >= 0.9 * (
                step.rate * step.seconds
            )
            steps.append(
                {
                    "step": k + 1,
                    "rate": step.rate,
                    "seconds": step.seconds,
                    "produced_per_s": round(summary["alerts"] / wall, 1),
                    "processed_per_s": round((processed - before) / wall, 1),
                    "lag_start": lag_start,
                    "lag_end": backlog,
                    "held": held,
                }
            )
            bench.say(f"  lag {backlog:,} at the end: {'held' if held else 'not held'}")
            if not held:
                break
        return loads, steps
    if s.schedule == "visits":
        schedule = Schedule(
            mode="visits", visit_size=s.visit_alerts, visit_interval=s.visit_interval
        )
        return [ran(_simulate(bench, seg, topic, schedule, visits=s.visits, monitor=monitor))], []
    schedule = Schedule(mode=s.schedule, rate=s.rate, replay_speed=s.replay_speed)
    count = s.alerts or len(bench.alerts)
    return [ran(_simulate(bench, seg, topic, schedule, count=count, monitor=monitor))], []


def _start_timing(bench: Bench, seg: Segment, broker: BrokerUnderTest, seg_dir: Path) -> None:
    place = bench.timing
    t = place.transport
    where = place.folder(seg_dir)
    t.make_dirs(where)
    args = broker.timing_args()
    client = bench.client_file()
    if place.root is not None:
        # Another host reads its own copies: the credentials (0600) and any id schemas.
        if client:
            local = Path(client["client_config"])
            remote = where / local.name
            t.write_text(remote, local.read_text(), secret=True)
            client = {"client_config": str(remote)}
        if "--schemas" in args:
            k = args.index("--schemas") + 1
            folder = Path(args[k])
            for f in sorted(folder.glob("*.avsc")):
                t.copy_file(f, where / "schemas" / f.name)
            args = [*args[:k], str(where / "schemas"), *args[k + 1 :]]
    argv = [
        sys.executable,
        "-m",
        "alertbench.bench.timing",
        "--servers",
        bench.servers.servers,
        *[a for path in client.values() for a in ("--client-config", path)],
        *args,
        "--out",
        str(where / "arrivals.csv"),
        "--targets",
        str(where / "targets.json"),
    ]
    log = (where if place.root is not None else bench.work / "logs") / f"timing-{seg.tag}.log"
    bench.procs[f"timing-{seg.tag}"] = t.spawn(argv, log=log, cwd=where)
    bench.save_state()


def _wait_timing(bench: Bench, seg: Segment, timeout: float) -> None:
    """Wait until the segment's timing consumer has read up to its targets and exited."""
    name = f"timing-{seg.tag}"
    proc = bench.procs.get(name)
    deadline = time.monotonic() + timeout
    while proc is not None and bench.timing.transport.is_running(proc):
        if time.monotonic() > deadline:
            raise BenchError(f"{name} did not finish within {timeout:.0f} s")
        time.sleep(0.2)


def stop_started(bench: Bench) -> None:
    """Stop every process the bench started that is still running, each on its host."""
    procs = list(bench.procs.values())
    stop_processes(LocalTransport(), [p for p in procs if p.host == LocalTransport.host], grace=10)
    elsewhere = [p for p in procs if p.host != LocalTransport.host]
    if elsewhere:
        stop_processes(bench.timing.transport, elsewhere, grace=10)
    bench.save_state()
