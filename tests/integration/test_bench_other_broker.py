"""`bench run` against a broker alertbench did not build: the pass-through example.

``examples/passthrough.py`` shares no code with alertbench (a confluent-kafka
consumer group and a producer) and drops every header, so each alert is
timed by the id read from its Avro container. The runs use the embedded
Kafka and no Spark.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import psutil
import pytest

from alertbench.bench.results import missing_fields
from others import ROOT, passthrough, run_scenario, running

pytestmark = [pytest.mark.kafka]

SMOKE_ALERTS = 50 + 4 * 300  # warm-up + 4 visits


def run_dir_of(out: Path) -> Path:
    (run,) = out.iterdir()
    return run


# Long: the other pass-through tests time an external broker by its ids, and the repeats'
# summary is tested on real results dicts (unit); this runs both end to end, twice.
@pytest.mark.long
def test_a_passthrough_is_timed_by_the_ids_it_writes_in_repeated_runs(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"passthrough-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "results"
    done = cli(
        "bench", "run", "smoke",
        "--alerts", str(alerts_dir),
        "--out", str(out),
        "--broker-cmd", passthrough(output, "passthrough"),
        "--output-topics", output,
        "--broker-group", "passthrough",
        "--id-format", "container",
        "--repeat", "2",
        run_dir=tmp_path / "state",
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = [p for p in out.iterdir() if p.name.endswith("-smoke-x2")]
    runs = sorted(p for p in out.iterdir() if p != folder)
    assert len(runs) == 2
    # The repeats: every headline figure's values, median and range, over both runs.
    summary = json.loads((folder / "repeats.json").read_text())
    assert summary["runs"] == [str(p) for p in runs]
    assert summary["statuses"] == ["passed", "passed"]
    p99s = [json.loads((p / "results.json").read_text())["latency"]["distribution"]["p99"]
            for p in runs]  # fmt: skip
    figure = summary["figures"]["latency distribution p99 (s)"]
    assert figure["values"] == p99s
    assert (figure["median"], figure["min"], figure["max"]) == (
        statistics.median(p99s), min(p99s), max(p99s)
    )  # fmt: skip
    assert summary["figures"]["throughput alerts/s"]["n"] == 2
    assert "smoke: 2 runs (passed)" in done.stdout
    run = runs[0]
    r = json.loads((run / "results.json").read_text())
    assert missing_fields(r) == []
    assert r["status"] == "passed", r["failures"]
    assert r["config"]["broker"]["kind"] == "external"
    assert r["config"]["broker"]["output_topics"] == output
    integrity = r["integrity"]
    # Every alert sent came out once, and every id that came out was sent.
    assert integrity["sent"] == integrity["in_kafka"] == integrity["consumed"] == SMOKE_ALERTS
    assert integrity["final_lag"] == 0
    assert integrity["topics"] == {
        output: {
            "filter": None,
            "received": SMOKE_ALERTS,
            "distinct": SMOKE_ALERTS,
            "duplicates": 0,
            "unknown": 0,
            "unreadable": 0,
        }
    }
    # The measured visits, timed alert by alert; the warm-up is not timed.
    lat = pd.read_csv(run / "series" / "latency_dist.csv", dtype={"alert_id": str})
    assert len(lat) == lat["alert_id"].nunique() == 4 * 300
    assert set(lat["topic"]) == {output}
    assert (lat["latency_s"] > 0).all()
    assert lat["latency_s"].max() < r["duration_s"]
    summary = r["latency"]["distribution"]
    assert summary["count"] == 4 * 300
    assert 0 < summary["p50"] <= summary["p99"] <= summary["max"] < r["duration_s"]
    # Its output rate: every measured arrival, counted per second of the run.
    assert r["outputs"][output]["messages"] == 4 * 300
    assert r["outputs"][output]["messages_per_s"] > 0
    rates = pd.read_csv(run / "series" / "topics.csv")
    assert set(rates["topic"]) == {output}
    assert rates["messages"].sum() == 4 * 300
    assert rates["t_s"].is_unique
    assert r["latency"]["raw"] is None
    assert r["spark"] is None
    assert r["verdicts"]["rubin_visit"]["measured_to"] == "first output"
    # Its process tree was sampled, and stopped at the end.
    assert r["resources"]["broker"]["rss_max_mb"] > 10
    assert (run / "logs" / "broker-main.log").exists()
    assert running(output) == []
    assert (run / "report.html").stat().st_size > 10_000


def test_a_broker_that_crashes_mid_run_fails_with_its_last_lines(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = f"crashing-{uuid.uuid4().hex[:8]}"
    # It reads the warm-up, then dies some seconds into the 4 visits.
    cmd = f"sh -c '(timeout 12 {passthrough(output, 'crashing')}); echo {output} gave up; exit 3'"
    done = cli(
        "bench", "run", "smoke",
        "--alerts", str(alerts_dir),
        "--out", str(tmp_path / "results"),
        "--broker-cmd", cmd,
        "--output-topics", output,
        "--broker-group", "crashing",
        "--id-format", "container",
        run_dir=tmp_path / "state",
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert "exited during the run" in done.stderr
    assert f"{output} gave up" in done.stderr  # the last lines of its log
    assert running(output) == []


def test_one_that_never_consumes_is_reported_not_waited_on(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    # A unique argument, to find it afterwards, and a sleep far longer than the run:
    # a short one would end before start_timeout and be reported as an exit.
    marker = f"{1000 + uuid.uuid4().int % 1000}.25"
    scenario = tmp_path / "idle.toml"
    scenario.write_text(
        'name = "idle"\nschedule = "visits"\nvisits = 1\nvisit_alerts = 10\n'
        "warmup_alerts = 5\n"
        f'[broker]\ncmd = "sleep {marker}"\noutput_topics = "idle-out"\ngroup = "idle"\n'
        "start_timeout = 8\n"
    )
    done = cli(
        "bench", "run", str(scenario), "--alerts", str(alerts_dir),
        "--out", str(tmp_path / "results"), run_dir=tmp_path / "state",
    )  # fmt: skip
    assert done.returncode == 1
    assert "never consumed: its group 'idle' committed no offset" in done.stderr
    assert running(f"sleep {marker}") == []


def test_rubin_alerts_in_confluent_wire_timed_through_a_passthrough(
    cli, shared_data: Path, tmp_path: Path, kafka4
) -> None:
    """Rubin's wire format in, the same bytes out: ids read with the schema the id names."""
    from alertbench.alerts.reader import AlertReader

    source = shared_data / "lsst" / "lsstcam-20260306-v10.0"
    (schema,) = {
        json.dumps(a.schema.definition) for a in AlertReader().read(sorted(source.glob("*.avro")))
    }
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / "710.avsc").write_text(schema)
    output = f"rubin-{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "rubin.toml"
    scenario.write_text(
        'name = "rubin"\nschedule = "visits"\nvisits = 2\nvisit_alerts = 200\n'
        'visit_interval = 3.0\nwarmup_alerts = 20\nwire = "confluent"\nschema_registry = "ids"\n'
        f'[broker]\ncmd = "{passthrough(output, "rubin")}"\noutput_topics = "{output}"\n'
        'group = "rubin"\nid_format = "confluent"\nid_schemas = "ids"\n'
    )
    r, _, _ = run_scenario(cli, scenario, source, tmp_path)
    assert r["status"] == "passed", r["failures"]
    assert r["config"]["simulator"]["wire"] == "confluent"
    topic = r["integrity"]["topics"][output]
    assert topic["received"] == topic["distinct"] == 20 + 2 * 200
    assert topic["unknown"] == topic["unreadable"] == 0
    assert r["latency"]["distribution"]["count"] == 2 * 200


def test_a_broker_that_already_runs_is_measured_on_its_own_topic(
    cli, alerts_dir: Path, tmp_path: Path, single_kafka
) -> None:
    """--output-topics without --broker-cmd: a running broker, reading --input-topic."""
    from alertbench.kafka.admin import create_topic
    from alertbench.procs import LocalTransport, stop_processes

    tag = uuid.uuid4().hex[:8]
    servers = single_kafka.bootstrap
    create_topic(servers, f"running-in-{tag}", partitions=2)
    cmd = passthrough(f"running-out-{tag}", f"running-{tag}")
    cmd = cmd.replace("{servers}", servers).replace("{input_topic}", f"running-in-{tag}")
    local = LocalTransport()
    broker = local.spawn(cmd.split(), log=tmp_path / "broker.log", cwd=ROOT)
    try:
        out = tmp_path / "results"
        done = cli(
            "bench", "run", "smoke", "--alerts", str(alerts_dir), "--out", str(out),
            "-b", servers, "--input-topic", f"running-in-{tag}",
            "--output-topics", f"running-out-{tag}", "--broker-group", f"running-{tag}",
            "--id-format", "container", run_dir=tmp_path / "state",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        # The bench leaves a broker it did not start running.
        assert local.is_running(broker)
    finally:
        stop_processes(local, [broker], grace=10)
    r = json.loads((run_dir_of(out) / "results.json").read_text())
    assert r["status"] == "passed", r["failures"]
    assert r["kafka"]["topic"] == f"running-in-{tag}"
    assert r["config"]["broker"]["cmd"] is None
    topic = r["integrity"]["topics"][f"running-out-{tag}"]
    assert topic["received"] == topic["distinct"] == SMOKE_ALERTS
    assert topic["unknown"] == 0
    assert r["latency"]["distribution"]["count"] == 4 * 300
    # Without a cluster of its own, it cannot be measured: said before anything starts.
    refused = cli(
        "bench", "run", "smoke", "--alerts", str(alerts_dir), "--out", str(tmp_path / "no"),
        "--input-topic", "x", "--output-topics", "y", run_dir=tmp_path / "state",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "already runs reads a Kafka of its own" in " ".join(refused.stderr.split())
    assert not (tmp_path / "no").exists()


def test_a_run_stopped_with_sigterm_stops_every_process_it_started(
    alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    """What a CI runner's timeout or ``kill PID`` does: no Kafka node or broker is left."""
    output = f"stopped-{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "long.toml"
    scenario.write_text(
        'name = "long"\nschedule = "visits"\nvisits = 40\nvisit_alerts = 20\n'
        "visit_interval = 6.0\nwarmup_alerts = 5\n"
        f'[broker]\ncmd = "{passthrough(output, "stopped")}"\n'
        f'output_topics = "{output}"\ngroup = "stopped"\nid_format = "container"\n'
    )
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "alertbench", "--run-dir", str(tmp_path / "state")]
    argv += ["bench", "run", str(scenario), "--alerts", str(alerts_dir), "--out", str(out)]
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as cli:
        try:
            # Stopped once the load runs: its Kafka node, the broker and the timing consumer.
            deadline = time.monotonic() + 180
            started: list[psutil.Process] = []
            while time.monotonic() < deadline and not running(output):
                assert cli.poll() is None, cli.stdout.read().decode()
                time.sleep(0.5)
            time.sleep(8)  # a visit or so into the load
            started = psutil.Process(cli.pid).children(recursive=True)
            names = " ".join(" ".join(p.cmdline()) for p in started)
            assert "kafka.Kafka" in names
            assert "passthrough.py" in names
            assert "alertbench.bench.timing" in names
            cli.terminate()
            said = cli.communicate(timeout=90)[0].decode()
            _, alive = psutil.wait_procs(started, timeout=10)
        finally:
            if cli.poll() is None:
                cli.kill()
            for p in psutil.wait_procs(started, timeout=0)[1]:  # left by a failure
                p.kill()
    assert cli.returncode == 128 + signal.SIGTERM, said
    assert alive == [], [p.pid for p in alive]
    assert running(output) == []
