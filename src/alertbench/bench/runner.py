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
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alertbench.bench import collect, load
from alertbench.bench.brokers import BrokerUnderTest, NullBroker, OtherBroker, OwnBroker, Wiring
from alertbench.bench.endpoints import (
    list_broker_endpoint,
    list_cluster_endpoints,
    list_timing_endpoint,
)
from alertbench.bench.faults.injector import Injector
from alertbench.bench.faults.preflight import preflight
from alertbench.bench.faults.target import Target
from alertbench.bench.live import RunView, view_of
from alertbench.bench.outcome import SegmentOutcome
from alertbench.bench.sampler import Every, LagSampler, ResourceSampler
from alertbench.bench.scenario import Scenario, scenario_toml
from alertbench.bench.session import (
    Bench,
    BenchError,
    Segment,
    bench_info,
    segments_of,
    timing_place,
)
from alertbench.config import Settings
from alertbench.errors import AlertbenchError, ConfigError
from alertbench.kafka.admin import create_topic, delete_topic, list_topics
from alertbench.kafka.client import Watermarks, end_offsets
from alertbench.kafka.credentials import admin_connection
from alertbench.kafka.security import Connection
from alertbench.observe.endpoint import serve
from alertbench.observe.targets import METRICS_ENDPOINT_FILE, Endpoints
from alertbench.procs import LocalTransport, stop_processes
from alertbench.simulator.run import SimulationOptions, load_alerts
from alertbench.simulator.schedule import Schedule


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
    metrics_port: int | None = None,
    watch: Callable[[RunView], contextlib.AbstractContextManager[Any]] | None = None,
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
    metrics_port : int, optional
        Serve the run's metrics for Prometheus on this port (0: a free one),
        and its timing consumers' on free ports; the endpoints are listed in
        the run's ``endpoints.json`` and in ``OUT/prometheus-targets.json``
        (Prometheus' file service discovery). None: no endpoint.
    watch : callable, optional
        Given the run's :class:`RunView`, returns a context manager that shows
        it while the segments run (the CLI's live view or progress lines).
    """
    from alertbench.broker.stream.run import default_filters, science_profile
    from alertbench.kafka import local

    if servers is None and scenario.broker is not None and scenario.broker.cmd is None:
        raise ConfigError(
            "a broker that already runs reads a Kafka of its own, not the bench's embedded "
            "one: give its cluster (--bootstrap-servers, or an inventory), or --broker-cmd."
        )
    # Faults that cannot run here are refused before anything starts.
    deployed = preflight(settings, scenario, servers, master)
    t0 = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t0))
    # Children run in other folders: they are handed absolute paths only.
    run = Path(os.path.abspath(out)) / f"{stamp}-{scenario.name}"
    (run / "series").mkdir(parents=True, exist_ok=False)
    (run / "scenario.json").write_text(scenario.model_dump_json(indent=2) + "\n")
    (run / "scenario.toml").write_text(scenario_toml(scenario))
    say(f"reading alerts from {', '.join(sources)}")
    alerts, report = load_alerts(SimulationOptions(servers="", sources=sources))
    survey = alerts[0].schema.survey.survey
    profile = scenario.science or science_profile(settings.broker)
    filters = scenario.filters or default_filters(survey, profile)
    kafka_settings = settings.model_copy(
        update={
            "run_dir": run / "work",
            "inventory": None,  # the embedded Kafka is one local node, whatever is deployed
            "kafka": settings.kafka.model_copy(
                update={
                    "nodes": scenario.kafka_nodes,
                    "base_port": 0,
                    "bootstrap_servers": None,
                    "security": scenario.security,
                    "listeners": [],
                    "jmx_exporter": metrics_port is not None,  # --no-metrics: none at all
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
            say(
                "starting an embedded single-node Kafka"
                if scenario.kafka_nodes == 1
                else f"starting an embedded {scenario.kafka_nodes}-node Kafka"
            )
            up = local.up(kafka_settings)
            servers = admin_connection(kafka_settings.kafka_state_dir, up.state.bootstrap_servers)
        conn = Connection.of(servers)  # type: ignore[arg-type]
        bench = Bench(scenario, settings, run, conn, master, alerts, report, filters, t0, say)
        bench.view = view_of(run.name, scenario, len(alerts))
        if metrics_port is not None:
            bench.endpoints = Endpoints(run, Path(os.path.abspath(out)))
            bench.endpoints.add("bench", serve(bench.view.registry, metrics_port))
            say(f"metrics for Prometheus: {bench.endpoints.urls['bench']}")
            list_cluster_endpoints(bench, up.state if embedded else deployed, master)
        bench.timing = place
        bench.keep_data = keep_data
        bench.kafka_settings = kafka_settings if embedded else None
        bench.deployed = deployed
        place.measure_clock("start")
        bench.kafka_pids = [n.proc.pid for n in up.state.nodes if n.proc] if embedded else []
        outcomes = []
        with watch(bench.view) if watch else contextlib.nullcontext():
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
            if bench.endpoints is not None:
                bench.endpoints.close()
            _unmount_disks(bench)  # after the results read the broker's output from it
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


#: The null broker's input topic: 30 s of retention in segments of 64 MB, each removed a
#: second after it expires (not Kafka's 60 s), so that at a few hundred MB/s the disk holds
#: under a minute of it.
NULL_INPUT_RETENTION = {
    "retention.ms": "30000",
    "segment.bytes": str(64 * 2**20),
    "file.delete.delay.ms": "1000",
}


def broker_for(scenario: Scenario, seg: Segment) -> BrokerUnderTest:
    """The broker a segment measures: the null broker, the scenario's other one, or ours."""
    if seg.params.get("broker") == "null":
        return NullBroker()
    return OwnBroker() if scenario.broker is None else OtherBroker(scenario.broker)


def run_segment(bench: Bench, seg: Segment) -> SegmentOutcome:
    """Run one segment end to end and gather what it measured."""
    s = bench.scenario
    prefix = f"ab-{bench.run.name.lower()}-{seg.tag}"
    # The null broker reads a topic of its own, never a running broker's input.
    theirs = s.broker.input_topic if s.broker and seg.params.get("broker") != "null" else None
    topic = theirs or f"{prefix}-alerts"
    seg_dir = bench.work / seg.tag
    LocalTransport().make_dirs(seg_dir)
    # The null broker's input is read once and never looked at again: at its rates it
    # would put tens of GB on the disk if Kafka kept it until the run ends.
    kept = NULL_INPUT_RETENTION if seg.params.get("broker") == "null" else None
    create_topic(bench.servers, topic, partitions=seg.partitions, config=kept, exist_ok=True)
    # A topic that was there already (a running broker's) keeps its own partitions.
    partitions = next(len(t.partitions) for t in list_topics(bench.servers) if t.name == topic)
    broker = broker_for(s, seg)
    log = bench.work / "logs" / f"broker-{seg.tag}.log"
    wiring = Wiring(topic, partitions, prefix, seg_dir, log)
    outcome = SegmentOutcome(seg.tag, seg.params, topic, partitions, {}, seg_dir)
    outcome.broker_kind = broker.kind
    if seg.tag == "main":
        _mount_disk(bench, seg, seg_dir)
    listing = threading.Event()  # stops the broker's endpoint listing
    try:
        broker.start(bench, seg, wiring)
        bench.track_broker(seg.tag, broker.procs())
        if bench.endpoints is not None and broker.kind == "alertbench":
            listing = list_broker_endpoint(bench, seg, seg_dir / "broker" / METRICS_ENDPOINT_FILE)
        if broker.kind != "null":  # it writes nothing to time
            _start_timing(bench, seg, broker, seg_dir)
        _measure(bench, seg, broker, wiring, outcome)
    finally:
        broker.stop()
        timing = bench.procs.get(f"timing-{seg.tag}")
        if timing is not None:
            stop_processes(bench.timing.transport, [timing], grace=5)
        listing.set()
        if bench.endpoints is not None:
            bench.endpoints.remove(f"timing-{seg.tag}")
            for name in ("broker", "spark", "spark-executors"):
                bench.endpoints.remove(f"{name}-{seg.tag}")
    outcome.expected = broker.expected()
    if bench.kafka_pids and not bench.keep_data:
        _drop_topics(bench, prefix)
    return outcome


def _mount_disk(bench: Bench, seg: Segment, seg_dir: Path) -> None:
    """Put the broker's output on a filesystem of its own when a disk fault will fill it."""
    from alertbench.bench.faults.disk import LoopDisk

    sizes = [int(f.value("size_mb")) for f in bench.scenario.faults if f.kind.disk]
    if not sizes:
        return
    disk = LoopDisk(seg_dir / "broker", seg_dir / "broker-disk.img", max(sizes))
    bench.say(f"mounting a {disk.size_mb:,} MB filesystem on the broker's output {disk.mount}")
    disk.attach()
    bench.disks[seg.tag] = disk
    bench.save_state()


def _unmount_disks(bench: Bench) -> None:
    """Unmount the disk faults' filesystems (their content copied out with --keep-data)."""
    for tag, disk in list(bench.disks.items()):
        try:
            disk.detach(keep=bench.keep_data)
        except AlertbenchError as exc:  # never hides why the run failed
            bench.say(f"{exc}; unmount it with: umount {disk.mount}")
            continue
        del bench.disks[tag]
    bench.save_state()


def _drop_topics(bench: Bench, prefix: str) -> None:
    """Delete a finished segment's topics on the embedded Kafka.

    A max-throughput segment can put tens of GB into Kafka; the next
    segment's would add as much again on the same disk. Results read the
    broker's files, never these topics.
    """
    for t in list_topics(bench.servers):
        if t.name.startswith(prefix):
            with contextlib.suppress(AlertbenchError):
                delete_topic(bench.servers, t.name)


def _measure(
    bench: Bench,
    seg: Segment,
    broker: BrokerUnderTest,
    wiring: Wiring,
    outcome: SegmentOutcome,
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
        topic,
        lambda: marks.end_offsets(topic, wiring.partitions),
        broker.read_offsets,
        lambda: produced[0],
        bench.t0,
        group=broker.group,
    )
    sampling = Every(1.0, resources.sample, lag.sample).start()
    outcome.group = broker.group
    bench.view.watch(seg.tag, lag, resources)
    bench.view.enter("warmup")
    injector = None
    if s.faults and seg.tag == "main":
        injector = Injector(s.faults, _target(bench, seg, broker, wiring))
    try:
        warm = load.send(bench, seg, topic, Schedule(mode="max"), count=s.warmup_alerts)
        outcome.warmup = warm
        bench.say(f"warm-up: {warm['alerts']} alerts sent; waiting for the broker to start")
        first = sum(end_offsets(bench.servers, topic, wiring.partitions).values())
        broker.wait(first, s.broker.start_timeout if s.broker else s.drain_timeout + 300)
        if s.kind == "max-throughput" and s.settle_s > 0:
            outcome.settle = load.settle(bench, seg, topic, lag)
        outcome.measured_from = time.time()
        bench.view.enter("load")
        outcome.loads, outcome.steps = load.drive(
            bench,
            seg,
            topic,
            lag,
            resources,
            produced,
            on_start=(lambda t: injector.start(t, s.visit_interval)) if injector else None,
            ack_log=wiring.dir / "acks" if injector else None,
        )
        if injector is not None:
            bench.say("the load is sent; waiting for the faults to heal")
            bench.view.enter("healing")
            outcome.faults = injector.finish()
        total = sum(end_offsets(bench.servers, topic, wiring.partitions).values())
        bench.say(f"all {total:,} alerts in Kafka; waiting for the broker to drain them")
        if bench.endpoints is not None:  # each scraped once while all serve, as Prometheus would
            threading.Thread(target=bench.endpoints.check, daemon=True).start()
        bench.view.enter("drain")
        outcome.drained = broker.wait(total, s.drain_timeout, fail=False)
        lag.sample()  # the lag as the drain ended, not as it was up to a second before
        outcome.load_finished = max((lo["finished"] for lo in outcome.loads), default=time.time())
        outcome.distribution = broker.outputs()
        if broker.kind == "null":
            return
        partitions = {t.name: len(t.partitions) for t in list_topics(bench.servers)}
        targets = {
            t: {str(p): e for p, e in end_offsets(bench.servers, t, partitions.get(t, 0)).items()}
            for t in outcome.distribution
        }
        where = bench.timing.folder(wiring.dir)
        bench.timing.transport.write_text(where / "targets.json", json.dumps(targets))
        bench.view.enter("timing")
        _wait_timing(bench, seg, 120)
        if bench.timing.root is not None:  # bring its arrivals home
            bench.timing.transport.fetch_file(where / "arrivals.csv", wiring.dir / "arrivals.csv")
    finally:
        if injector is not None:
            outcome.faults = injector.abort()
        sampling.stop()
        marks.close()
        outcome.resources = resources.rows
        outcome.lag = lag.rows
        outcome.sampler_errors = sampling.errors


def _target(bench: Bench, seg: Segment, broker: BrokerUnderTest, wiring: Wiring) -> Target:
    """What the scenario's faults may act on: this segment's broker and the embedded Kafka."""
    from alertbench.kafka import local

    def nodes(state) -> dict:
        return {n.node_id: n for n in state.nodes if "broker" in n.roles and n.proc}

    def kafka_nodes() -> dict:
        if bench.kafka_settings is None:
            return {}
        state = local.recorded_state(bench.kafka_settings)
        return nodes(state) if state else {}

    def restart_kafka() -> dict:
        if bench.kafka_settings is None:
            return {}
        started = {i: n.proc for i, n in nodes(local.up(bench.kafka_settings).state).items()}
        bench.kafka_pids = [p.pid for p in started.values()]  # what the sampler measures
        return started

    return Target(bench, seg, broker, wiring, kafka_nodes, restart_kafka, bench.deployed)


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
    if bench.endpoints is not None:
        argv += ["--metrics-port", "0", "--metrics-file", str(where / METRICS_ENDPOINT_FILE)]
    log = (where if place.root is not None else bench.work / "logs") / f"timing-{seg.tag}.log"
    bench.procs[f"timing-{seg.tag}"] = t.spawn(argv, log=log, cwd=where)
    bench.save_state()
    if bench.endpoints is not None:
        list_timing_endpoint(bench, seg, where / METRICS_ENDPOINT_FILE)


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
