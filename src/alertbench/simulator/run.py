"""``simulate``: read alerts, check Kafka, run the producers, summarise what happened."""

from __future__ import annotations

import multiprocessing as mp
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from alertbench.alerts.files import find_alert_files
from alertbench.alerts.reader import Alert, AlertReader, ReadReport
from alertbench.alerts.schema import Schema
from alertbench.alerts.wire import make_format
from alertbench.errors import ClusterError, ConfigError
from alertbench.kafka.admin import create_topic, describe_cluster, list_topics
from alertbench.kafka.security import Connection
from alertbench.simulator.producer import Plan, producer_config, run_producer
from alertbench.simulator.schedule import Schedule
from alertbench.simulator.source import ReplaySource, SynthSource


@dataclass
class SimulationOptions:
    """Everything `alertbench simulate` can be told.

    Attributes mirror the command's flags; see ``alertbench simulate --help``.
    """

    servers: str | Connection
    topic: str = "ztf-stream"
    sources: list[str] = field(default_factory=list)
    wire: str = "ztf"
    schema: Path | None = None
    registry: str | None = None
    schedule: Schedule = field(default_factory=Schedule)
    count: int | None = None
    visits: int | None = None
    duration: float | None = None
    loop: bool = False
    synthesize: bool = False
    seed: int = 0
    first_clone: int = 0
    producers: int = 1
    partitions: int = 4
    replication: int | None = None
    compression: str = "none"
    acks: str = "all"
    keyed: bool = True
    strict: bool = False
    start_delay: float = 0.5
    producer_extra: dict[str, Any] = field(default_factory=dict)
    ack_log: Path | None = None  # record every delivery report: PREFIX.J.csv per producer
    start_at: float | None = None  # the first due send (epoch s); default: the next second


@dataclass
class SimulationResult:
    """What a simulation did: the JSON summary and the read report."""

    summary: dict[str, Any]
    report: ReadReport

    @property
    def failed(self) -> bool:
        """True when any alert was not delivered."""
        return bool(self.summary["failures"])


def load_alerts(opts: SimulationOptions) -> tuple[list[Alert], ReadReport]:
    """The first pass: read every source alert, reporting unusable files.

    Raises
    ------
    ConfigError
        If no usable alert is found (or, with ``strict``, on the first bad file).
    """
    schema = Schema.from_avsc(opts.schema) if opts.schema else None
    if not opts.sources:
        raise ConfigError("no alerts given: name files, folders or globs (or ALERTBENCH_ALERTS).")
    try:
        files = find_alert_files(opts.sources)
        reader = AlertReader(schema, strict=opts.strict)
        alerts = reader.read(files)
    except ValueError as exc:  # AlertSourceError, AlertReadError, SchemaError
        raise ConfigError(str(exc)) from None
    if not alerts:
        problems = "; ".join(f"{p.name}: {why}" for p, why in reader.report.problems[:3])
        raise ConfigError(f"no usable alert in {', '.join(opts.sources)}. {problems}")
    return alerts, reader.report


def stream_length(opts: SimulationOptions, available: int) -> int:
    """How many alerts the stream has, from --count/--visits and the source size."""
    if opts.visits is not None:
        if opts.schedule.mode != "visits":
            raise ConfigError("--visits counts visits: use it with --visit-size/--visit-interval")
        wanted = opts.visits * opts.schedule.visit_size
    elif opts.count is not None:
        wanted = opts.count
    elif opts.duration is not None and (opts.loop or opts.synthesize):
        wanted = 2**62  # until the duration runs out
    else:
        wanted = available
    if not (opts.loop or opts.synthesize) and wanted > available:
        raise ConfigError(
            f"{wanted} alerts asked for but the source has {available}: add --loop to repeat it "
            "or --synthesize to make unique alerts from it."
        )
    return wanted


def check_kafka(servers: str | Connection) -> None:
    """Fail before anything is sent if Kafka does not answer.

    Raises
    ------
    ClusterError
    """
    try:
        describe_cluster(servers, timeout=10)
    except ClusterError as exc:
        raise ClusterError(
            f"cannot reach Kafka at {Connection.of(servers).describe()}; nothing was sent. Start "
            "it (`alertbench kafka up`) "
            f"or fix the servers. ({exc})"
        ) from None


def _producer_conf(opts: SimulationOptions) -> dict[str, Any]:
    return producer_config(
        opts.servers, acks=opts.acks, compression=opts.compression, extra=opts.producer_extra
    )


def _child(j: int, source: Any, plan: Plan, opts: SimulationOptions, queue: Any) -> None:
    conf = _producer_conf(opts)
    try:
        stats = run_producer(
            j,
            opts.producers,
            source,
            plan,
            conf,
            progress=lambda s: queue.put(("progress", j, *s.snapshot())),
        )
        queue.put(("done", j, stats.to_json()))
    except BaseException as exc:  # report, never hang the parent
        queue.put(("error", j, f"{type(exc).__name__}: {exc}"))


# (alerts acked, bytes acked, failures, current visit, its lateness in s)
Monitor = Callable[[int, int, int, int, float], None]


def make_source(opts: SimulationOptions, alerts: list[Alert]) -> SynthSource | ReplaySource:
    """The messages of a stream: clones of ``alerts`` or the alerts, in ``opts.wire``.

    Raises
    ------
    ConfigError
        When the wire format cannot frame these alerts (a registry without their schema).
    """
    try:
        wire = make_format(
            opts.wire,
            schema=alerts[0].schema,
            registry=opts.registry,
            subject=f"{opts.topic}-value",
        )
        if opts.synthesize:
            return SynthSource(
                alerts, wire, seed=opts.seed, keyed=opts.keyed, first=opts.first_clone
            )
        return ReplaySource(alerts, wire, keyed=opts.keyed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def simulate(
    opts: SimulationOptions,
    *,
    alerts: list[Alert] | None = None,
    report: ReadReport | None = None,
    monitor: Monitor | None = None,
    source: SynthSource | ReplaySource | None = None,
) -> SimulationResult:
    """Stream alerts into Kafka as configured and return the summary.

    Parameters
    ----------
    opts : SimulationOptions
        What to send, where and how.
    alerts, report : optional
        Alerts already read (skips the first pass).
    monitor : callable, optional
        Called with (alerts acked, bytes acked, failures, current visit, its
        lateness) as the stream goes.
    source : SynthSource or ReplaySource, optional
        The messages, made by :func:`make_source` for these options and
        alerts; one made once serves many runs (making clones' templates
        takes seconds). Synthesised clones start at ``opts.first_clone``.

    Returns
    -------
    SimulationResult
    """
    if alerts is None or report is None:
        alerts, report = load_alerts(opts)
    if opts.producers < 1:
        raise ConfigError("--producers must be at least 1")
    if source is None:
        source = make_source(opts, alerts)
    elif isinstance(source, SynthSource):
        source = source.starting_at(opts.first_clone)
    count = stream_length(opts, len(source))
    offsets, span = (None, 0.0)
    if opts.schedule.mode == "replay":
        offsets, span = source.replay_offsets()
    check_kafka(opts.servers)
    existing = {t.name: t for t in list_topics(opts.servers)}
    if opts.topic not in existing:
        create_topic(
            opts.servers, opts.topic, partitions=opts.partitions, replication=opts.replication
        )
    partitions = len(existing[opts.topic].partitions) if opts.topic in existing else opts.partitions

    # Visits start on the wall-clock grid: the first one on the next whole second.
    t0 = opts.start_at or float(int(time.time() + opts.start_delay) + 1)
    plan = Plan(
        opts.topic,
        count,
        opts.schedule,
        t0,
        opts.duration,
        offsets,
        span,
        str(opts.ack_log) if opts.ack_log else None,
    )
    results = _run_producers(source, plan, opts, monitor)
    summary = summarise(opts, plan, results, report, partitions)
    return SimulationResult(summary, report)


def _run_producers(
    source: Any, plan: Plan, opts: SimulationOptions, monitor: Monitor | None
) -> list[dict[str, Any]]:
    if opts.producers == 1:
        conf = _producer_conf(opts)
        stats = run_producer(
            0,
            1,
            source,
            plan,
            conf,
            progress=(lambda s: monitor(*s.snapshot())) if monitor else None,
        )
        return [stats.to_json()]
    # fork: the children share the parent's encoded messages without copying them.
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(j, source, plan, opts, queue), daemon=True)
        for j in range(opts.producers)
    ]
    for p in procs:
        p.start()
    done: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    latest: dict[int, tuple[int, int, int, int, float]] = {}
    try:
        while len(done) + len(errors) < len(procs):
            try:
                item = queue.get(timeout=1.0)
            except Exception:
                if not any(p.is_alive() for p in procs) and queue.empty():
                    errors.append("a producer process exited without reporting")
                    break
                continue
            kind, j = item[0], item[1]
            if kind == "progress":
                latest[j] = item[2:]
                if monitor:
                    totals = [sum(v[k] for v in latest.values()) for k in range(3)]
                    visit = max(v[3] for v in latest.values())
                    late = max((v[4] for v in latest.values() if v[3] == visit), default=0.0)
                    monitor(*totals, visit, late)
            elif kind == "done":
                done[j] = item[2]
            else:
                errors.append(f"producer {j}: {item[2]}")
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    if errors:
        raise ClusterError("; ".join(errors))
    return [done[j] for j in sorted(done)]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(
    opts: SimulationOptions,
    plan: Plan,
    results: list[dict[str, Any]],
    report: ReadReport,
    partitions: int,
) -> dict[str, Any]:
    """Merge the producers' stats into the run's JSON summary."""
    visits: dict[int, dict[str, float]] = {}
    for r in results:
        for v, s in r["visits"].items():
            agg = visits.setdefault(
                int(v),
                {
                    "alerts": 0,
                    "acked": 0,
                    "due": s["due"],
                    "first_send": s["first_send"],
                    "last_send": 0.0,
                    "last_ack": 0.0,
                },
            )
            agg["alerts"] += s["alerts"]
            agg["acked"] += s["acked"]
            agg["first_send"] = min(agg["first_send"], s["first_send"])
            agg["last_send"] = max(agg["last_send"], s["last_send"])
            agg["last_ack"] = max(agg["last_ack"], s["last_ack"])
    per_visit = []
    for v in sorted(visits):
        s = visits[v]
        per_visit.append(
            {
                "visit": v,
                "alerts": s["alerts"],
                "acked": s["acked"],
                "due": s["due"],
                "lateness_s": round(s["first_send"] - s["due"], 6),
                "send_s": round(s["last_send"] - s["first_send"], 6),
                "ack_s": round(s["last_ack"] - s["first_send"], 6),
            }
        )
    started = min(r["started"] for r in results)
    finished = max(r["finished"] for r in results)
    acked = sum(r["acked"] for r in results)
    total_bytes = sum(r["bytes"] for r in results)
    elapsed = max(finished - started, 1e-9)
    lateness = [v["lateness_s"] for v in per_visit]
    failures = sum(r["failures"] for r in results)
    samples = [s for r in results for s in r["failure_samples"]][:10]
    return {
        "topic": opts.topic,
        "servers": Connection.of(opts.servers).servers,
        "format": opts.wire,
        "schedule": {
            "mode": opts.schedule.mode,
            "visit_size": opts.schedule.visit_size,
            "visit_interval": opts.schedule.visit_interval,
            "rate": opts.schedule.rate,
            "replay_speed": opts.schedule.replay_speed,
            "description": opts.schedule.describe(),
        },
        "synthesize": opts.synthesize,
        "seed": opts.seed,
        "loop": opts.loop,
        "producers": opts.producers,
        "partitions": partitions,
        "compression": opts.compression,
        "acks": opts.acks,
        "source": {
            "alerts": report.alerts,
            "files": report.files,
            "versions": dict(report.versions),
            "bytes_per_alert": round(report.bytes_per_alert, 1),
            "skipped_files": len(report.problems),
        },
        "alerts": acked,
        "sent": sum(r["sent"] for r in results),
        "bytes": total_bytes,
        "t0": plan.t0,
        "started": started,
        "finished": finished,
        "elapsed_s": round(elapsed, 6),
        "alerts_per_s": round(acked / elapsed, 1),
        "mb_per_s": round(total_bytes / elapsed / 1e6, 2),
        "visits": per_visit,
        "lateness_s": {
            "max": max(lateness, default=0.0),
            "p50": _pct(lateness, 50),
            "mean": statistics.fmean(lateness) if lateness else 0.0,
        },
        "failures": failures,
        "failure_samples": samples,
        "machine": {
            "cores": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
    }
