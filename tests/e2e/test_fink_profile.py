"""The fink science profile in the running broker: real Kafka, real Spark, real alerts.

The science Parquet the fused query writes must hold the same fink columns
as the modules compute on the same alerts outside Spark (whose equality with
fink-science's own functions tests/unit/test_fink_science.py shows), and
each task's module costs must be committed with its batch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alertbench.bench.outcome import science_costs
from alertbench.broker.batch.science import module as module_state
from alertbench.broker.batch.science import profile_modules, resolve_modules, run_modules, usable
from alertbench.procs import free_ports
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from compare import same
from conftest import read_messages

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]
N = 400
FINK_COLUMNS = ["vsx", "gcvs", "mangrove_HyperLEDA_name", "mangrove_lum_dist", "roid"]
#: Computed per alert from its own light curve: equal alert by alert.
LIGHT_CURVE_COLUMNS = ["lc_features_g", "lc_features_r", "anomaly_score"]
MODULES = ["vsx", "gcvs", "mangrove", "brightstar", "roid", "ad_features", "anomaly_score"]


@pytest.fixture(scope="module")
def fink_run(single_kafka, alert_files, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fink")
    topic = "e2e-fink"
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=[str(f) for f in alert_files[:N]],
            schedule=Schedule(mode="max"),
        )
    )
    # The broker in a process of its own, as a user runs it: its Spark JVM and Python
    # workers (holding the catalogues) end with it.
    config = run_dir / "alertbench.toml"
    config.write_text(
        f'run_dir = "{run_dir}"\n'
        f'[kafka]\nbootstrap_servers = "{single_kafka.bootstrap}"\n'
        f'[broker]\nmaster = "local[2]"\ntopics = ["{topic}"]\ntrigger = "1 second"\n'
        'science = "fink"\ncuts = "true"\n'
    )
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "alertbench", "broker", "run", "--fused", "--until-idle", "6"]
    # Its metrics endpoint, scraped as Prometheus would while it runs: the last answer kept.
    scraped, spark_scraped = "", {}
    written = run_dir / "broker" / "metrics-endpoint"
    with subprocess.Popen(
        [*argv, "--metrics-port", str(port)],
        env={**os.environ, "ALERTBENCH_CONFIG": str(config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        stdout, stderr = "", ""
        try:
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    url = f"http://127.0.0.1:{port}/metrics"
                    scraped = urllib.request.urlopen(url, timeout=5).read().decode()
                    # Spark's own, on its UI, whose address the broker writes beside its own.
                    ui = written.read_text().split()[1]
                    for path in ("/metrics/prometheus", "/metrics/executors/prometheus"):
                        got = urllib.request.urlopen(f"http://{ui}{path}", timeout=5)
                        # Every series name seen: a query's own go when it stops.
                        spark_scraped.setdefault(path, set()).update(
                            x.split("{")[0].split()[0]
                            for x in got.read().decode().splitlines()
                            if x and not x.startswith("#")
                        )
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.terminate()
            stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return SimpleNamespace(
        out=run_dir / "broker", scraped=scraped, spark=spark_scraped, stdout=stdout
    )


def test_the_broker_served_its_batches_and_lag_while_it_ran(fink_run) -> None:
    assert "metrics for Prometheus: http://" in fink_run.stdout
    lines = [x for x in fink_run.scraped.splitlines() if x and not x.startswith("#")]
    # The last scrape, after the last batch: every alert read, nothing behind.
    assert f'alertbench_broker_rows_total{{query="fused"}} {float(N)}' in lines
    batches = next(
        x for x in lines if x.startswith('alertbench_broker_batches_total{query="fused"}')
    )
    timed = next(
        x
        for x in lines
        if x.startswith('alertbench_broker_batch_duration_seconds_count{query="fused"}')
    )
    assert float(batches.split()[-1]) == float(timed.split()[-1]) >= 1
    group = 'consumergroup="fused",topic="e2e-fink"'
    assert f"kafka_consumergroup_current_offset_sum{{{group}}} {float(N)}" in lines
    assert f"kafka_consumergroup_lag_sum{{{group}}} 0.0" in lines
    assert any(x.startswith('kafka_topic_partitions{topic="e2e-fink"}') for x in lines)
    # Each science module's rows and seconds, as its batches committed them: the same
    # figures the bench reads from the committed science-stats files afterwards.
    costs = science_costs(fink_run.out)
    served = {tuple(x.rsplit(" ", 1)) for x in lines}
    values = {k: float(v) for k, v in served}
    for name, cost in costs["modules"].items():
        assert values[f'alertbench_science_module_rows_total{{module="{name}"}}'] == N
        seconds = values[f'alertbench_science_module_seconds_total{{module="{name}"}}']
        assert seconds == pytest.approx(cost["seconds"], abs=1e-6), name  # it keeps 6 places
        assert values[f'alertbench_science_module_failures_total{{module="{name}"}}'] == 0
    assert values['alertbench_broker_quarantined_total{query="fused"}'] == 0
    # Every alert's age when its batch committed it to raw, from its Kafka timestamp.
    assert values['alertbench_broker_alert_age_seconds_count{query="fused"}'] == N


def test_the_broker_names_the_profile_and_the_modules_it_ran(fink_run):
    info = json.loads((fink_run.out / "science.json").read_text())
    assert info["profile"] == "fink"
    # is_sso serves Rubin: skipped on ZTF alerts, and said so.
    assert info["modules"] == MODULES
    assert info["notes"] == ["science module is_sso skipped: it serves lsst"]


def test_science_parquet_holds_the_fink_columns_the_modules_compute(fink_run):
    science = pq.read_table(fink_run.out / "science").sort_by("candid")
    assert science.num_rows == N
    raw = pq.read_table(fink_run.out / "raw").sort_by("candid").drop_columns(["night"])
    # Each alert through the same modules outside Spark, as an object of its own.
    alone = raw.set_column(
        raw.column_names.index("objectId"),
        "objectId",
        pa.array([str(c) for c in raw["candid"].to_pylist()]),
    )
    module_state._STATES.clear()
    module_state._OBJECTS.clear()
    modules, _ = usable(resolve_modules(profile_modules("fink")), raw.column_names, "ztf")
    own = pa.Table.from_batches(list(run_modules(modules, iter(alone.to_batches()))))
    objects = raw["objectId"].to_pylist()
    for column in FINK_COLUMNS:
        got, each = science[column].to_pylist(), own[column].to_pylist()
        # A static cross-match takes the first alert of its object that a worker met:
        # the value of one of the object's alerts, and the alert's own when it is alone.
        of_object: dict = {}
        for o, v in zip(objects, each, strict=True):
            of_object.setdefault(o, []).append(v)
        for k, (o, v) in enumerate(zip(objects, got, strict=True)):
            assert v in of_object[o], (column, k, v, of_object[o])
            if len(of_object[o]) == 1:
                assert v == each[k], (column, k)
    for column in LIGHT_CURVE_COLUMNS:
        assert same(science[column].to_pylist(), own[column].to_pylist()), column
    scores = science["anomaly_score"].to_pylist()
    assert any(s < -0.01 for s in scores)
    assert any(s == 0.0 for s in scores)
    assert set(science["roid"].to_pylist()) >= {0, 3}
    assert science["roid"].to_pylist() == own["roid"].to_pylist()
    assert any(v != "Unknown" for v in science["vsx"].to_pylist())
    assert all(e == [] for e in science["science_errors"].to_pylist())


def test_each_modules_cost_is_committed_with_its_batch(fink_run):
    costs = science_costs(fink_run.out)
    assert costs["profile"] == "fink"
    assert list(costs["modules"]) == MODULES
    objects = len(set(pq.read_table(fink_run.out / "raw", columns=["objectId"])["objectId"]))
    for name, cost in costs["modules"].items():
        assert cost["rows"] == N, name
        assert cost["failed_batches"] == 0
        assert cost["seconds"] > 0
        if name in ("roid", "ad_features", "anomaly_score"):
            assert cost["processed"] == N
            # The forests load once per Python worker, from fink-science's zip.
            assert (cost["setup_seconds"] > 0) == (name == "anomaly_score")
        else:
            # Once per object and Python worker: two workers may each meet an object.
            assert objects <= cost["processed"] <= N, name
            assert cost["setup_seconds"] > 0
    assert costs["ms_per_alert"] == pytest.approx(
        sum(c["ms_per_alert"] for c in costs["modules"].values()), abs=1e-5
    )


def test_the_sso_topic_carries_the_light_curve_columns(fink_run, single_kafka):
    science = pq.read_table(fink_run.out / "science")
    rows = science.select(["candid", "roid", *LIGHT_CURVE_COLUMNS]).to_pylist()
    want = {r["candid"] for r in rows if r["roid"] == 3}
    assert want
    published = json.loads((fink_run.out / "schemas" / "sso.avsc").read_text())
    schema = fastavro.parse_schema(published)
    by_candid = {
        r["candid"]: r for r in science.select(["candid", *LIGHT_CURVE_COLUMNS]).to_pylist()
    }
    got = set()
    for m in read_messages(single_kafka.bootstrap, "sso"):
        record = fastavro.schemaless_reader(io.BytesIO(m.value()), schema)
        got.add(record["candid"])
        # Fink's nested features reach a subscriber as Avro records, NaN and all.
        for column in LIGHT_CURVE_COLUMNS:
            assert same(record[column], by_candid[record["candid"]][column]), column
    assert got == want


def test_spark_served_its_own_metrics_on_its_ui(fink_run) -> None:
    driver = " ".join(sorted(fink_run.spark["/metrics/prometheus"]))
    executors = fink_run.spark["/metrics/executors/prometheus"]
    # The driver's Dropwizard metrics, the streaming query's among them.
    assert re.search(r"\bmetrics_\S+_driver_BlockManager_memory_maxMem_MB_Number\b", driver)
    for rate in ("inputRate_total", "processingRate_total", "latency"):
        assert re.search(rf"\bmetrics_\S+_driver_spark_streaming_fused_{rate}_Value\b", driver)
    assert {"spark_info", "metrics_executor_totalTasks_total"} <= executors
