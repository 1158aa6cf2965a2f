"""``bench run smoke`` end to end: embedded Kafka, the fused broker, the timing consumer.

Run once per module (about a minute); the tests read its results directory.
Expectations are computed from the run's own Parquet with pandas, not with
the broker's Spark code.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from alertbench.bench.plots import PLOTS
from alertbench.bench.report import render_report
from alertbench.bench.results import missing_fields
from alertbench.bench.runner import run_bench
from alertbench.bench.scenario import load_scenario
from alertbench.config import load_settings
from conftest import bench_in_process

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

SMOKE_ALERTS = 50 + 4 * 300  # warm-up + 4 visits


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, alerts_dir: Path, kafka4) -> Path:
    run = bench_in_process(tmp_path_factory.mktemp("bench"), alerts_dir, "smoke")
    yield run
    shutil.rmtree(run / "work", ignore_errors=True)


@pytest.fixture(scope="module")
def results(smoke: Path) -> dict:
    return json.loads((smoke / "results.json").read_text())


def _parquet(folder: Path, columns: list[str] | None = None) -> pd.DataFrame:
    files = sorted(folder.rglob("*.parquet"))
    return pd.concat([pq.read_table(f, columns=columns).to_pandas() for f in files])


def test_results_have_every_documented_field(results: dict) -> None:
    assert missing_fields(results) == []
    assert results["scenario"]["name"] == "smoke"
    assert results["machine"]["cores"] >= 1


def test_every_alert_sent_is_in_raw_once(results: dict, smoke: Path) -> None:
    integrity = results["integrity"]
    assert results["status"] == "passed", results["failures"]
    assert integrity["ok"]
    assert integrity["sent"] == integrity["in_kafka"] == SMOKE_ALERTS
    raw = _parquet(smoke / "work" / "main" / "broker" / "raw", ["candid"])
    assert len(raw) == raw["candid"].nunique() == SMOKE_ALERTS
    assert integrity["in_raw"] == integrity["distinct_in_raw"] == SMOKE_ALERTS


def test_science_holds_what_passes_the_cuts(results: dict, smoke: Path) -> None:
    broker = smoke / "work" / "main" / "broker"
    raw = _parquet(broker / "raw", ["candid", "rb", "nbad"])
    passing = set(raw.loc[(raw["rb"] >= 0.55) & (raw["nbad"] == 0), "candid"])
    science = _parquet(broker / "science", ["candid"])
    assert set(science["candid"]) == passing
    assert results["integrity"]["in_science"] == len(passing)


def test_each_topic_holds_what_its_filter_selects(results: dict, smoke: Path) -> None:
    science = _parquet(
        smoke / "work" / "main" / "broker" / "science",
        ["candid", "magpsf", "near_star", "sso_candidate", "sent_time"],
    )
    arrivals = pd.read_csv(smoke / "work" / "main" / "arrivals.csv", dtype={"alert_id": str})
    topics = results["integrity"]["topics"]
    bright = next(t for t in topics if t.endswith("-bright"))
    sso = next(t for t in topics if t.endswith("-sso"))
    expect_bright = set(
        science.loc[
            (science["magpsf"] <= 17.5) & ~science["near_star"].fillna(False).astype(bool), "candid"
        ].astype(str)
    )
    expect_sso = set(
        science.loc[science["sso_candidate"].fillna(False).astype(bool), "candid"].astype(str)
    )
    for topic, expect in ((bright, expect_bright), (sso, expect_sso)):
        got = arrivals.loc[arrivals["topic"] == topic, "alert_id"]
        assert len(got) == len(set(got)), f"duplicates in {topic}"
        assert set(got) == expect, topic
        assert topics[topic]["received"] == len(expect)
    assert sum(t["expected"] for t in topics.values()) > 0


def test_latency_of_each_alert_is_positive_and_below_the_run(results: dict, smoke: Path) -> None:
    for name in ("latency_raw.csv", "latency_dist.csv"):
        lat = pd.read_csv(smoke / "series" / name)
        assert len(lat) > 0, name
        assert (lat["latency_s"] > 0).all(), name
        assert (lat["latency_s"] < results["duration_s"]).all(), name
    raw = pd.read_csv(smoke / "series" / "latency_raw.csv", dtype={"alert_id": str})
    # Every measured alert (the warm-up is not timed) has one raw latency.
    assert len(raw) == raw["alert_id"].nunique() == 4 * 300
    assert results["latency"]["raw"]["count"] == 4 * 300


def test_visits_and_batches_are_recorded(results: dict, smoke: Path) -> None:
    visits = pd.read_csv(smoke / "series" / "visits.csv")
    assert list(visits["alerts"]) == [300] * 4
    assert results["producer"]["alerts"] == 1200
    batches = pd.read_csv(smoke / "series" / "batches.csv")
    assert batches["rows"].sum() == SMOKE_ALERTS
    resources = pd.read_csv(smoke / "series" / "resources.csv")
    assert {"kafka", "broker", "simulator", "timing"} <= set(resources["component"])


def test_report_renders_every_measured_plot(smoke: Path) -> None:
    html = render_report(smoke).read_text()
    for plot in PLOTS:
        assert f'id="{plot}"' in html, plot
    # smoke measures everything but the sweeping kinds' curves.
    for plot in ("throughput", "lag", "latency", "visits", "resources"):
        section = html.split(f'id="{plot}"', 1)[1].split("</section>", 1)[0]
        data = section.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
        assert base64.b64decode(data).startswith(b"\x89PNG"), plot


def test_cli_compare_and_report(smoke: Path, cli) -> None:
    out = cli("bench", "compare", str(smoke), str(smoke))
    assert smoke.name in out.stdout
    assert "alerts/s" in out.stdout or "throughput" in out.stdout.lower()
    out = cli("bench", "report", str(smoke))
    assert "report.html" in out.stdout


def test_everything_the_run_started_is_stopped(smoke: Path) -> None:
    import psutil

    state = json.loads((smoke / "work" / "bench-state.json").read_text())
    assert {"broker-main", "timing-main"} <= set(state)
    for name, proc in state.items():
        alive = psutil.pid_exists(proc["pid"]) and (
            abs(psutil.Process(proc["pid"]).create_time() - proc["started"]) < 1
        )
        assert not alive, name
    kafka_state = smoke / "work" / "kafka" / "state.json"
    kafka = json.loads(kafka_state.read_text()) if kafka_state.exists() else {"nodes": []}
    for node in kafka["nodes"]:
        proc = node.get("proc") or {}
        if proc.get("pid") and psutil.pid_exists(proc["pid"]):
            assert abs(psutil.Process(proc["pid"]).create_time() - proc["started"]) >= 1
    # Kafka's JVM and the timing consumer name the run's folder on their command lines.
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(smoke) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


# Long: a bench on a cluster it did not start is proven on the deployed cluster
# (e2e/test_spark_hosts) and, left running, by integration/test_bench_other_broker.
@pytest.mark.long
def test_a_run_on_an_existing_kafka_leaves_it_running(
    tmp_path: Path, alerts_dir: Path, single_kafka
) -> None:
    from alertbench.kafka.admin import describe_cluster, list_topics

    scenario = load_scenario("smoke", visits=2, warmup_alerts=20)
    run = run_bench(
        load_settings(run_dir=tmp_path / "state", broker={"driver_memory": "1g"}),
        scenario,
        out=tmp_path / "results",
        sources=[str(alerts_dir)],
        servers=single_kafka.bootstrap,
    )
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "passed", results["failures"]
    assert results["config"]["kafka"]["embedded"] is False
    assert results["integrity"]["in_raw"] == 20 + 2 * 300
    # The bench stopped only what it started: the cluster still answers.
    assert describe_cluster(single_kafka.bootstrap).brokers == [1]
    prefix = f"ab-{run.name.lower()}-main-"
    assert f"{prefix}alerts" in {t.name for t in list_topics(single_kafka.bootstrap)}
    assert not (run / "work").exists()  # bulky data is removed unless --keep-data


def test_a_secured_run_authenticates_every_client_and_leaks_no_secret(
    tmp_path: Path, alerts_dir: Path, kafka4
) -> None:
    """The scenario's security: SASL_SSL for the simulator, broker and timing consumer."""
    from alertbench.kafka.security import read_client_properties

    scenario = load_scenario("smoke", visits=2, warmup_alerts=20, security="sasl_ssl")
    run = run_bench(
        load_settings(run_dir=tmp_path / "state", broker={"driver_memory": "1g"}),
        scenario,
        out=tmp_path / "results",
        sources=[str(alerts_dir)],
        keep_data=True,
    )
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "passed", results["failures"]
    assert results["config"]["kafka"]["security"] == "sasl_ssl"
    assert results["config"]["kafka"]["user"] == "admin"
    assert results["integrity"]["in_raw"] == 20 + 2 * 300
    assert results["latency"]["distribution"]["count"] > 0
    secrets_file = run / "work" / "kafka" / "security" / "admin.properties"
    password = read_client_properties(secrets_file)["sasl.password"]
    # Only the files meant to hold it do: the admin's properties and the nodes' own config.
    holders = {
        p.relative_to(run).as_posix()
        for p in run.rglob("*")
        if p.is_file() and password.encode() in p.read_bytes()
    }
    assert holders <= {
        "work/kafka/security/admin.properties",
        "work/kafka/node-1/config/server.properties",
    }, holders
    shutil.rmtree(run / "work", ignore_errors=True)
