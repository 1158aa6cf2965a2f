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

import json
import os
import platform
import signal
import subprocess
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
from alertbench.bench.sampler import Every, LagSampler, ResourceSampler, processed_offsets
from alertbench.bench.scenario import Scenario
from alertbench.config import Settings
from alertbench.errors import AlertbenchError, ClusterError
from alertbench.kafka.admin import create_topic, list_topics
from alertbench.kafka.client import Watermarks, end_offsets
from alertbench.kafka.credentials import admin_connection
from alertbench.kafka.security import Connection, client_file
from alertbench.procs import LocalTransport, ProcessRecord, stop_processes
from alertbench.simulator.run import SimulationOptions, load_alerts, simulate
from alertbench.simulator.schedule import Schedule

STATE_FILE = "bench-state.json"
# [broker] settings a bench run hands on to the broker it starts; the input topic, wire
# format, trigger, filters and outputs are the run's own.
INHERITED_BROKER_SETTINGS = {
    "modules",
    "cuts",
    "catalogue",
    "check_crcs",
    "kafka_reader",
    "parquet_compression",
    "driver_memory",
    "arrow_batch_rows",
    "executor_memory",
    "driver_host",
    "shuffle_partitions",
    "distribution_partitions",
    "distribution_key",
    "distribution_retention_ms",
    "spark_version",
}


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

    @property
    def work(self) -> Path:
        """Bulky data of the run (broker outputs, logs before collection)."""
        return self.run / "work"

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
    say : callable
        Receives progress messages for people.
    """
    from alertbench.broker.run import DEFAULT_FILTERS
    from alertbench.kafka import local

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
    bench: Bench | None = None
    results: dict[str, Any] = {}
    try:
        if embedded:
            say("starting an embedded single-node Kafka")
            up = local.up(kafka_settings)
            servers = admin_connection(kafka_settings.kafka_state_dir, up.state.bootstrap_servers)
        conn = Connection.of(servers)  # type: ignore[arg-type]
        bench = Bench(scenario, settings, run, conn, master, alerts, report, filters, t0, say)
        bench.kafka_pids = [n.proc.pid for n in up.state.nodes if n.proc] if embedded else []
        outcomes = []
        for seg in segments_of(scenario):
            say(f"segment {seg.tag}: {seg.params or 'the scenario as written'}")
            outcomes.append(run_segment(bench, seg))
        results = collect.results(
            bench_info(bench, embedded, settings),
            scenario,
            outcomes,
            run=run,
        )
    finally:
        if bench is not None:
            stop_started(bench)
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


def bench_info(bench: Bench, embedded: bool, settings: Settings) -> dict[str, Any]:
    """The run's identity and configuration, for results.json."""
    s = bench.scenario
    return {
        "run_id": bench.run.name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bench.t0)),
        "t0": bench.t0,
        "machine": machine(),
        "versions": versions(settings),
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
            "broker": {
                "master": bench.master or f"local[{s.cores}]",
                "mode": "fused" if s.fused else "staged",
                "trigger": s.trigger,
                "max_offsets_per_trigger": s.max_offsets_per_trigger,
                "min_offsets_per_trigger": s.min_offsets_per_trigger,
                "filters": bench.filters,
                "modules": settings.broker.modules,
                "cuts": settings.broker.cuts,
                "driver_memory": settings.broker.driver_memory,
            },
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
                "wire": "ztf" if bench.alerts[0].schema.survey.survey == "ztf" else "schemaless",
                "source_alerts": len(bench.alerts),
            },
        },
    }


def run_segment(bench: Bench, seg: Segment) -> collect.SegmentOutcome:
    """Run one segment end to end and gather what it measured."""
    s = bench.scenario
    prefix = f"ab-{bench.run.name.lower()}-{seg.tag}"
    topic = f"{prefix}-alerts"
    dist = {f"{prefix}-{name}": expr for name, expr in bench.filters.items()}
    seg_dir = bench.work / seg.tag
    broker_out = seg_dir / "broker"
    create_topic(bench.servers, topic, partitions=seg.partitions)
    outcome = collect.SegmentOutcome(seg.tag, seg.params, topic, seg.partitions, dist, seg_dir)
    _start_broker(bench, seg, topic, dist, seg_dir)
    _start_timing(bench, seg, dist, seg_dir)
    produced = [0]
    components = {
        "kafka": lambda: bench.kafka_pids,
        "broker": lambda: [p.pid for k, p in bench.procs.items() if k.startswith("broker")],
        "timing": lambda: [p.pid for k, p in bench.procs.items() if k.startswith("timing")],
        "simulator": lambda: [os.getpid()],
    }
    resources = ResourceSampler(lambda: {k: f() for k, f in components.items()}, bench.t0)
    marks = Watermarks(bench.servers)
    lag = LagSampler(
        lambda: sum(marks.end_offsets(topic, seg.partitions).values()),
        broker_out / "progress.jsonl",
        topic,
        lambda: produced[0],
        bench.t0,
    )
    sampling = Every(1.0, resources.sample, lag.sample).start()
    try:
        warm = _simulate(bench, seg, topic, Schedule(mode="max"), count=s.warmup_alerts)
        outcome.warmup = warm
        bench.say(f"warm-up: {warm['alerts']} alerts sent; waiting for the broker to start")
        _wait_processed(bench, seg, topic, broker_out, warm["alerts"], s.drain_timeout + 300)
        outcome.measured_from = time.time()
        outcome.loads, outcome.steps = _drive(bench, seg, topic, lag, produced)
        total = sum(end_offsets(bench.servers, topic, seg.partitions).values())
        bench.say(f"all {total:,} alerts in Kafka; waiting for the broker to drain them")
        outcome.drained = _wait_processed(
            bench, seg, topic, broker_out, total, s.drain_timeout, fail=False
        )
        outcome.load_finished = max((lo["finished"] for lo in outcome.loads), default=time.time())
        partitions = {t.name: len(t.partitions) for t in list_topics(bench.servers)}
        targets = {
            t: {str(p): e for p, e in end_offsets(bench.servers, t, partitions.get(t, 0)).items()}
            for t in dist
        }
        LocalTransport().write_text(seg_dir / "targets.json", json.dumps(targets))
        _wait_exit(bench, f"timing-{seg.tag}", 120)
    finally:
        sampling.stop()
        marks.close()
        _stop_broker(bench, seg)
    outcome.resources = resources.rows
    outcome.lag = lag.rows
    outcome.sampler_errors = sampling.errors
    outcome.expected = _expected(bench, broker_out, dist, seg_dir)
    return outcome


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
            before, t_start = lag.processed(), time.time()
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
            processed = lag.processed()
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


def _wait_processed(
    bench: Bench,
    seg: Segment,
    topic: str,
    broker_out: Path,
    target: int,
    timeout: float,
    *,
    fail: bool = True,
) -> bool:
    """Wait until the broker has processed ``target`` offsets of ``topic``."""
    deadline = time.monotonic() + timeout
    progress = broker_out / "progress.jsonl"
    while time.monotonic() < deadline:
        if processed_offsets(progress, topic) >= target:
            return True
        broker = bench.procs.get(f"broker-{seg.tag}")
        if broker is not None and not LocalTransport().is_running(broker):
            log = bench.work / "logs" / f"broker-{seg.tag}.log"
            raise BenchError(
                f"the broker stopped before processing {target} alerts; its log "
                f"{log} ends with:\n{LocalTransport().tail(log, 15)}"
            )
        time.sleep(0.25)
    if fail:
        raise BenchError(
            f"the broker processed {processed_offsets(progress, topic)} of {target} alerts "
            f"in {timeout:.0f} s; see {bench.work / 'logs'}"
        )
    return False


def _start_broker(bench: Bench, seg: Segment, topic: str, dist: dict[str, str], seg_dir: Path):
    s = bench.scenario
    # The user's broker settings that do not depend on the run (paths are absolute already),
    # then what the scenario and this segment decide.
    inherited = bench.settings.broker.model_dump(
        mode="json", include=INHERITED_BROKER_SETTINGS, exclude_none=True
    )
    config = {
        "run_dir": str(seg_dir),
        "cache_dir": str(bench.settings.cache_dir),
        "kafka": {"bootstrap_servers": bench.servers.servers, **_client_file(bench)},
        "broker": {
            **inherited,
            "master": bench.master or f"local[{seg.cores}]",
            "topics": [topic],
            "trigger": s.trigger,
            "output": "broker",
            "filters": dist,
        },
    }
    if s.max_offsets_per_trigger:
        config["broker"]["max_offsets_per_trigger"] = s.max_offsets_per_trigger
    if s.min_offsets_per_trigger:
        config["broker"]["min_offsets_per_trigger"] = s.min_offsets_per_trigger
        config["broker"]["max_trigger_delay_s"] = s.max_trigger_delay_s
    if bench.settings.java_home:
        config["java_home"] = str(bench.settings.java_home)
    path = seg_dir / "alertbench.toml"
    LocalTransport().write_text(path, to_toml(config))
    argv = [sys.executable, "-m", "alertbench", "broker", "run"]
    argv += ["--fused"] if s.fused else ["--stages", "stream2raw,raw2science,distribute"]
    # The environment outranks the config file: drop what would override the run's own.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALERTBENCH_BROKER__", "ALERTBENCH_KAFKA__"))
        and k not in ("ALERTBENCH_RUN_DIR", "ALERTBENCH_CACHE_DIR")
    }
    env["ALERTBENCH_CONFIG"] = str(path)
    bench.procs[f"broker-{seg.tag}"] = LocalTransport().spawn(
        argv, log=bench.work / "logs" / f"broker-{seg.tag}.log", cwd=seg_dir, env=env
    )
    bench.save_state()


def to_toml(config: dict[str, Any]) -> str:
    """TOML text for a config of scalars, lists and (one level of) tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))  # JSON string escapes are valid TOML basic strings

    top = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
        for k, v in config.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


def _start_timing(bench: Bench, seg: Segment, dist: dict[str, str], seg_dir: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "alertbench.bench.timing",
        "--servers",
        bench.servers.servers,
        *[a for path in _client_file(bench).values() for a in ("--client-config", path)],
        "--topics",
        ",".join(dist),
        "--out",
        str(seg_dir / "arrivals.csv"),
        "--targets",
        str(seg_dir / "targets.json"),
    ]
    bench.procs[f"timing-{seg.tag}"] = LocalTransport().spawn(
        argv, log=bench.work / "logs" / f"timing-{seg.tag}.log", cwd=seg_dir
    )
    bench.save_state()


def _client_file(bench: Bench) -> dict[str, str]:
    """``{"client_config": path}`` for a child that connects as the bench does, or nothing."""
    path = client_file(bench.servers, bench.work / "client.properties")
    return {"client_config": str(path)} if path else {}


def _wait_exit(bench: Bench, name: str, timeout: float) -> None:
    proc = bench.procs.get(name)
    deadline = time.monotonic() + timeout
    while proc is not None and LocalTransport().is_running(proc):
        if time.monotonic() > deadline:
            raise BenchError(f"{name} did not finish within {timeout:.0f} s")
        time.sleep(0.2)


def _stop_broker(bench: Bench, seg: Segment) -> None:
    """Ctrl-C the broker (it stops its queries gracefully), then make sure it is gone."""
    proc = bench.procs.get(f"broker-{seg.tag}")
    if proc is None:
        return
    local = LocalTransport()
    local.send_signal(proc, signal.SIGINT)
    deadline = time.monotonic() + 60
    while local.is_running(proc) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_processes(local, [proc], grace=10)
    stop_processes(local, [bench.procs[f"timing-{seg.tag}"]], grace=5)


def stop_started(bench: Bench) -> None:
    """Stop every process the bench started that is still running."""
    stop_processes(LocalTransport(), list(bench.procs.values()), grace=10)
    bench.save_state()


def _expected(bench: Bench, broker_out: Path, dist: dict[str, str], seg_dir: Path) -> Path:
    """Run the filters over the science Parquet (in a Spark process of its own)."""
    out = seg_dir / "expected.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertbench.bench.expected",
            "--science",
            str(broker_out / "science"),
            "--filters",
            json.dumps(dist),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(
            f"evaluating the filters over {broker_out / 'science'} failed:\n{proc.stderr[-2000:]}"
        )
    return out
