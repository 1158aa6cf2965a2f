"""Live metrics: Kafka Exporter's names, the run's own series, the endpoint and its targets."""

from __future__ import annotations

import io
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from rich.console import Console

from alertbench.bench.live import Progress, RunView
from alertbench.bench.sampler import LagSampler, ResourceSampler
from alertbench.observe.config import prometheus_config
from alertbench.observe.endpoint import serve
from alertbench.observe.kafka_names import Offsets, families
from alertbench.observe.targets import (
    CHECKED_FILE,
    TARGETS_FILE,
    Endpoints,
    write_cluster_targets,
)
from alertbench.procs import free_ports


class _Snapshots:
    def __init__(self, snaps: list[Offsets]) -> None:
        self.snaps = snaps

    def collect(self):
        return families(self.snaps)


def exposition(collector: object) -> list[str]:
    """The sample lines (no comments) a registry holding ``collector`` serves."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_offsets_and_lag_go_out_under_kafka_exporters_names() -> None:
    # Partition 1 not read yet; partition 0 read past a stale end: lag never below 0.
    read = Offsets("ztf", {0: 10, 1: 5, 2: 7}, "fink", {0: 12, 2: 3})
    unknown = Offsets("ztf", {0: 10, 1: 5, 2: 7}, "mystery", None)
    assert exposition(_Snapshots([read, unknown])) == [
        'kafka_topic_partition_current_offset{partition="0",topic="ztf"} 10.0',
        'kafka_topic_partition_current_offset{partition="1",topic="ztf"} 5.0',
        'kafka_topic_partition_current_offset{partition="2",topic="ztf"} 7.0',
        'kafka_topic_partitions{topic="ztf"} 3.0',
        'kafka_consumergroup_current_offset{consumergroup="fink",partition="0",topic="ztf"} 12.0',
        'kafka_consumergroup_current_offset{consumergroup="fink",partition="1",topic="ztf"} 0.0',
        'kafka_consumergroup_current_offset{consumergroup="fink",partition="2",topic="ztf"} 3.0',
        'kafka_consumergroup_current_offset_sum{consumergroup="fink",topic="ztf"} 15.0',
        'kafka_consumergroup_lag{consumergroup="fink",partition="0",topic="ztf"} 0.0',
        'kafka_consumergroup_lag{consumergroup="fink",partition="1",topic="ztf"} 5.0',
        'kafka_consumergroup_lag{consumergroup="fink",partition="2",topic="ztf"} 4.0',
        'kafka_consumergroup_lag_sum{consumergroup="fink",topic="ztf"} 9.0',
    ]


def _sampled_view() -> tuple[RunView, LagSampler]:
    view = RunView("20261203T000000-smoke", "smoke", expected=1200, load_s=20.0)
    lag = LagSampler(
        "in", lambda: {0: 100, 1: 50}, lambda: {0: 90, 1: 20}, lambda: 150, time.time(), "bg"
    )
    resources = ResourceSampler(lambda: {"simulator": [__import__("os").getpid()]}, time.time())
    lag.sample()
    resources.sample()
    view.watch("main", lag, resources)
    return view, lag


def test_the_run_serves_its_latest_samples_as_it_records_them() -> None:
    view, lag = _sampled_view()
    view.enter("load")
    # The lag the run records is the lag it serves.
    assert lag.rows[-1][1:] == (150, 150, 110, 40)
    lines = exposition(view)
    assert 'alertbench_run_info{scenario="smoke",segment="main"} 1.0' in lines
    assert 'alertbench_phase{phase="load"} 1.0' in lines
    assert 'alertbench_phase{phase="warmup"} 0.0' in lines
    assert "alertbench_alerts_expected 1200.0" in lines
    assert any(re.fullmatch(r"alertbench_alerts_acked_total 150\.0 \d+", x) for x in lines)
    assert 'kafka_consumergroup_lag_sum{consumergroup="bg",topic="in"} 40.0' in lines
    cpu = [x for x in lines if x.startswith('alertbench_process_cpu_percent{component="sim')]
    rss = [x for x in lines if x.startswith("alertbench_process_resident_memory_bytes{")]
    assert len(cpu) == 1
    assert float(rss[0].split()[-1]) > 10 * 2**20  # this Python process
    line = view.line()
    assert line.startswith("main: load · 150 of 1,200 acknowledged · broker read 110, lag 40 · ")
    assert line.endswith(" s of load left")


def test_progress_prints_a_line_a_period_when_output_is_not_a_terminal() -> None:
    view, _ = _sampled_view()
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(view, console, every_s=0.1):
        time.sleep(0.55)
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6
    assert all(
        re.fullmatch(r"\d\d:\d\d:\d\d main: starting · 150 of 1,200 .*lag 40", x) for x in lines
    )


def test_an_endpoint_serves_until_stopped(tmp_path: Path) -> None:
    view, _ = _sampled_view()
    endpoint = serve(view.registry, 0, "127.0.0.1")
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'kafka_consumergroup_lag{consumergroup="bg",partition="1",topic="in"} 30.0' in body
    endpoint.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    # A port taken is said with what to do.
    taken = serve(CollectorRegistry(), 0, "127.0.0.1")
    try:
        with pytest.raises(Exception, match=rf"127\.0\.0\.1:{taken.port}.*--metrics-port"):
            serve(CollectorRegistry(), taken.port, "127.0.0.1")
    finally:
        taken.stop()


def test_a_run_lists_its_endpoints_for_prometheus_and_takes_them_off_at_its_end(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    (out / "B").mkdir(parents=True)
    (out / "A").mkdir()
    other = [
        {"targets": ["h:1"], "labels": {"job": "alertbench", "component": "bench", "run": "A"}}
    ]
    (out / TARGETS_FILE).write_text(json.dumps(other))
    endpoints = Endpoints(out / "B", out)
    served = serve(CollectorRegistry(), 0, "127.0.0.1")
    endpoints.add("bench", served)
    endpoints.add("timing-main", "10.0.0.3:4567")
    listed = json.loads((out / TARGETS_FILE).read_text())
    assert listed == [
        *other,
        {
            "targets": [f"127.0.0.1:{served.port}"],
            "labels": {"job": "alertbench", "component": "bench", "run": "B"},
        },
        {
            "targets": ["10.0.0.3:4567"],
            "labels": {"job": "alertbench", "component": "timing-main", "run": "B"},
        },
    ]
    endpoints.remove("timing-main")
    assert len(json.loads((out / TARGETS_FILE).read_text())) == 2
    endpoints.close()
    # Another run's stay; this run's own list stays in its folder.
    assert json.loads((out / TARGETS_FILE).read_text()) == other
    # The last run to end takes the file away: the folder holds runs only.
    last = Endpoints(out / "A", out)
    last.add("bench", "h:1")
    last.close()
    assert not (out / TARGETS_FILE).exists()
    assert json.loads((out / "B" / "endpoints.json").read_text()) == {
        "bench": f"http://127.0.0.1:{served.port}/metrics"
    }


def test_the_scrape_configuration_reads_the_targets_file(tmp_path: Path) -> None:
    text = prometheus_config(tmp_path / "r", interval_s=1)
    assert "scrape_interval: 1s" in text
    assert f"- files: ['{(tmp_path / 'r').resolve() / TARGETS_FILE}']" in text
    both = prometheus_config(tmp_path / "r", clusters=[tmp_path / "k", tmp_path / "s"])
    listed = ", ".join(f"'{tmp_path.resolve() / d / TARGETS_FILE}'" for d in ("r", "k", "s"))
    assert f"- files: [{listed}]" in both


def test_a_cluster_lists_its_running_processes_and_none_when_stopped(tmp_path: Path) -> None:
    write_cluster_targets(
        tmp_path,
        "alertbench-spark",
        {
            "spark-master": "http://10.0.0.1:8080/metrics/master/prometheus/",
            "spark-worker-1": "http://10.0.0.2:8081/metrics/prometheus/",
            "kafka-a": "http://10.0.0.1:7071/metrics",
        },
    )
    assert json.loads((tmp_path / TARGETS_FILE).read_text()) == [
        {
            "targets": ["10.0.0.1:7071"],
            "labels": {"job": "alertbench-spark", "component": "kafka-a"},
        },
        {
            "targets": ["10.0.0.1:8080"],
            "labels": {
                "job": "alertbench-spark",
                "component": "spark-master",
                "__metrics_path__": "/metrics/master/prometheus/",
            },
        },
        {
            "targets": ["10.0.0.2:8081"],
            "labels": {
                "job": "alertbench-spark",
                "component": "spark-worker-1",
                "__metrics_path__": "/metrics/prometheus/",
            },
        },
    ]
    write_cluster_targets(tmp_path, "alertbench-spark", {})
    assert not (tmp_path / TARGETS_FILE).exists()


def test_a_run_records_what_each_endpoint_answered_when_it_scraped_them(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Gauge("alertbench_x", "x", ["k"], registry=registry).labels("a").set(1)
    served = serve(registry, 0, "127.0.0.1")
    (dead,) = free_ports(1)
    endpoints = Endpoints(tmp_path / "run", tmp_path)
    (tmp_path / "run").mkdir()
    try:
        endpoints.add("bench", served)
        endpoints.add("gone", f"127.0.0.1:{dead}")
        found = endpoints.check(timeout=2)
    finally:
        endpoints.close()
    assert found["bench"]["url"] == f"http://127.0.0.1:{served.port}/metrics"
    # Its gauge and the client's own process and platform series, none of them comments.
    text = generate_latest(registry).decode()
    assert found["bench"]["series"] == sum(
        1 for x in text.splitlines() if x and not x.startswith("#")
    )
    assert "refused" in str(found["gone"]["error"])
    assert json.loads((tmp_path / "run" / CHECKED_FILE).read_text()) == found


def test_the_kafka_dashboard_queries_only_series_the_agents_rules_make() -> None:
    from importlib.resources import files

    from alertbench.kafka.jmx_exporter import rules

    dash = json.loads(files("alertbench.observe").joinpath("dashboards/kafka.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    named = set(re.findall(r"\b((?:kafka|jvm)_[a-z_]+)", " ".join(exprs)))
    # Each a rule's name with its MBean's name lowercased in place of the capture.
    topic_rule = "kafka_server_brokertopicmetrics_$1_total"
    made = {
        "kafka_server_brokertopicmetrics_messagesin_total": topic_rule,
        "kafka_server_brokertopicmetrics_bytesin_total": topic_rule,
        "kafka_server_brokertopicmetrics_bytesout_total": topic_rule,
        "kafka_server_replicamanager_underreplicatedpartitions": "kafka_server_replicamanager_$1",
        "kafka_controller_kafkacontroller_offlinepartitionscount": (
            "kafka_controller_kafkacontroller_$1"
        ),
        "kafka_network_requestmetrics_totaltimems": "kafka_network_requestmetrics_$1",
        "kafka_log_log_logendoffset": "kafka_log_log_$1",
        "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent": (
            "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent"
        ),
        "kafka_server_replicamanager_isrshrinks_total": "kafka_server_replicamanager_$1_total",
        "kafka_server_replicamanager_isrexpands_total": "kafka_server_replicamanager_$1_total",
        "jvm_memory_used_bytes": None,  # the agent's own JVM collector
    }
    assert named == set(made)
    text = rules("kafka")
    assert all(rule is None or f"name: {rule}\n" in text for rule in made.values())
    assert all('run=~"$run",component=~"$node"' in e for e in exprs)


def test_the_dashboard_queries_only_series_alertbench_serves() -> None:
    from importlib.resources import files

    dash = json.loads(files("alertbench.observe").joinpath("dashboards/run.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    named = set(re.findall(r"\b((?:alertbench|kafka)_[a-z_]+)", " ".join(exprs)))
    served = {
        "alertbench_alerts_acked_total",
        "alertbench_alerts_out_total",
        "alertbench_alert_latency_seconds_bucket",
        "alertbench_alert_latency_seconds_count",
        "alertbench_phase",
        "alertbench_process_cpu_percent",
        "alertbench_process_resident_memory_bytes",
        "kafka_consumergroup_lag_sum",
        "kafka_consumergroup_current_offset",
        "kafka_topic_partition_current_offset",
    }
    assert named == served
    assert all('run=~"$run"' in e for e in exprs)


def test_the_brokers_batches_count_once_and_its_lag_is_its_last_batchs_offsets() -> None:
    from alertbench.broker.stream.metrics import BrokerMetrics

    # Two batch records as the query listener writes them (a faults run's progress.jsonl;
    # Spark gives the source's endOffset as JSON text or, read back, as a dict).
    first = {
        "query": "fused", "batch": 0, "rows": 2000, "batch_ms": 22326,
        "sources": [{"description": "PythonMicroBatchStream", "metrics": {}, "end": {
            "ab-in": {"0": 499, "1": 502, "2": 499, "3": 500}}}],
    }  # fmt: skip
    second = {
        "query": "fused", "batch": 1, "rows": 13, "batch_ms": 3267,
        "sources": [{"description": "PythonMicroBatchStream", "metrics": {}, "end": json.dumps(
            {"ab-in": {"0": 499, "1": 508, "2": 506, "3": 500}})}],
    }  # fmt: skip
    metrics = BrokerMetrics(["ab-in"], lambda topic: {0: 510, 1: 508, 2: 506, 3: 500})
    metrics.observe(first)
    metrics.observe(second)
    text = generate_latest(metrics.registry).decode()
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert 'alertbench_broker_batches_total{query="fused"} 2.0' in lines
    assert 'alertbench_broker_rows_total{query="fused"} 2013.0' in lines
    assert 'alertbench_broker_batch_duration_seconds_bucket{le="5.0",query="fused"} 1.0' in lines
    assert 'alertbench_broker_batch_duration_seconds_bucket{le="30.0",query="fused"} 2.0' in lines
    assert 'alertbench_broker_batch_duration_seconds_sum{query="fused"} 25.593' in lines
    assert (
        'kafka_consumergroup_lag{consumergroup="fused",partition="0",topic="ab-in"} 11.0' in lines
    )
    assert 'kafka_consumergroup_lag_sum{consumergroup="fused",topic="ab-in"} 11.0' in lines
    assert 'kafka_topic_partition_current_offset{partition="1",topic="ab-in"} 508.0' in lines


def test_a_runs_series_go_out_as_openmetrics_each_sample_at_its_own_time() -> None:
    import pandas as pd

    from alertbench.bench import openmetrics
    from alertbench.bench.outcome import SegmentOutcome

    t0 = 1_796_300_000.0
    seg = SegmentOutcome("main", {}, "in", 2, {}, Path("."))
    seg.group = "g"
    seg.lag = [(1.0, 10, 10, 5, 5), (2.0, 20, 20, 18, 2), (3.0, 30, 30, None, None)]
    seg.resources = [(2.0, "kafka", 40.0, 1.0), (1.0, "kafka", 50.0, 2.0)]
    batches = [{"t_s": 1.5, "query": "fused", "batch": 0, "rows": 10, "batch_ms": 1200}]
    dist = pd.DataFrame(
        {"topic": ["a", "a"], "latency_s": [0.3, 70.0], "arrival_s": [t0 + 1.2, t0 + 2.7]}
    )
    text = list(openmetrics.lines("R", t0, seg, batches, dist))
    # The lag where it was known, each sample at the moment the run took it.
    assert [x for x in text if x.startswith("kafka_consumergroup_lag_sum{")] == [
        'kafka_consumergroup_lag_sum{run="R",consumergroup="g",topic="in"} 5 1796300001.000',
        'kafka_consumergroup_lag_sum{run="R",consumergroup="g",topic="in"} 2 1796300002.000',
    ]
    # A series' samples in time order, whatever order they were taken in.
    assert [x for x in text if x.startswith("alertbench_process_resident")] == [
        'alertbench_process_resident_memory_bytes{run="R",component="kafka"} 2097152 '
        "1796300001.000",
        'alertbench_process_resident_memory_bytes{run="R",component="kafka"} 1048576 '
        "1796300002.000",
    ]
    assert 'alertbench_broker_batch_rows{run="R",query="fused"} 10 1796300001.500' in text
    # The histogram's points: buckets, count and sum at each second alerts arrived.
    at_2 = [x for x in text if x.startswith("alertbench_alert_latency") and x.endswith("02.000")]
    assert (
        at_2[10]
        == 'alertbench_alert_latency_seconds_bucket{run="R",topic="a",le="60.0"} 1 1796300002.000'
    )
    assert (
        at_2[11]
        == 'alertbench_alert_latency_seconds_bucket{run="R",topic="a",le="90.0"} 2 1796300002.000'
    )
    assert at_2[-2:] == [
        'alertbench_alert_latency_seconds_count{run="R",topic="a"} 2 1796300002.000',
        'alertbench_alert_latency_seconds_sum{run="R",topic="a"} 70.3 1796300002.000',
    ]
    assert text[-1] == "# EOF"


def test_the_broker_counts_each_committed_batchs_quarantine_and_science_costs(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alertbench.broker.batch.science.module import ScienceStats
    from alertbench.broker.batch.tasks import STATS_OUTPUT, write_stats
    from alertbench.broker.stream.metrics import BrokerMetrics
    from alertbench.broker.stream.sink import BatchSink

    # Batch 3 of the fused query, as two tasks stage it and the driver commits it.
    sink = BatchSink(tmp_path, "fused")
    stage = sink.staged(3, "raw").parent
    (stage / "quarantine").mkdir(parents=True)
    for task, bad in ((0, 2), (1, 1)):
        pq.write_table(
            pa.table({"reason": ["no magic byte"] * bad}), stage / "quarantine" / f"t{task}.parquet"
        )
        stats = ScienceStats()
        stats.add("cdsxmatch", rows=100, processed=100, seconds=0.25, failed=False)
        stats.add("snn", rows=40, processed=40, seconds=1.5, failed=task == 1)
        write_stats(stats, stage / STATS_OUTPUT, f"t{task}.parquet")
    # Its raw alerts: one appended to Kafka 5 s ago, one 70 s ago (past Rubin's 60 s).
    appended = [int((time.time() - ago) * 1e6) for ago in (5, 70)]
    (stage / "raw" / "night=20231018").mkdir(parents=True)
    pq.write_table(
        pa.table({"candid": [1, 2], "kafka_time": pa.array(appended, pa.timestamp("us", "UTC"))}),
        stage / "raw" / "night=20231018" / "t0.parquet",
    )
    sink.commit(3, ["raw", "quarantine", "science", STATS_OUTPUT])

    metrics = BrokerMetrics(["ab-in"], lambda topic: {0: 0}, tmp_path)
    metrics.observe({"query": "fused", "batch": 3, "rows": 200, "batch_ms": 900, "sources": []})
    # A batch that committed nothing (an empty trigger) and one not committed count nothing.
    metrics.observe({"query": "fused", "batch": 4, "rows": 0, "batch_ms": 10, "sources": []})
    lines = generate_latest(metrics.registry).decode().splitlines()
    assert 'alertbench_broker_quarantined_total{query="fused"} 3.0' in lines
    assert 'alertbench_science_module_rows_total{module="cdsxmatch"} 200.0' in lines
    assert 'alertbench_science_module_rows_total{module="snn"} 80.0' in lines
    assert 'alertbench_science_module_seconds_total{module="cdsxmatch"} 0.5' in lines
    assert 'alertbench_science_module_seconds_total{module="snn"} 3.0' in lines
    assert 'alertbench_science_module_failures_total{module="snn"} 1.0' in lines
    assert 'alertbench_science_module_failures_total{module="cdsxmatch"} 0.0' in lines
    age = "alertbench_broker_alert_age_seconds"
    assert f'{age}_bucket{{le="2.0",query="fused"}} 0.0' in lines
    assert f'{age}_bucket{{le="10.0",query="fused"}} 1.0' in lines
    assert f'{age}_bucket{{le="60.0",query="fused"}} 1.0' in lines
    assert f'{age}_bucket{{le="90.0",query="fused"}} 2.0' in lines
    assert f'{age}_count{{query="fused"}} 2.0' in lines
