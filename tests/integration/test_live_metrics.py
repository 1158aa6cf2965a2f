"""A bench run watched as it goes: scraped by a real Prometheus, and its progress in its log.

Prometheus is Debian's (``apt-get install prometheus``; `.ci/run` installs it),
started by the test on a free port with the configuration `alertbench metrics
prometheus-config` writes, and stopped by PID. The run measures the README's
pass-through broker held to 20 alerts a second, so that it falls behind:
the lag is not zero, and the run fails Rubin's visit verdict on purpose.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest

from alertbench.bench.sofar import histogram_quantile
from alertbench.procs import LocalTransport, free_ports, stop_processes
from others import passthrough, running

pytestmark = [pytest.mark.kafka]

PROMETHEUS = shutil.which("prometheus")


class Prometheus:
    """A running Prometheus and its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: object) -> list[dict]:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:  # Prometheus says why in the body
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]["result"]


@pytest.fixture
def prometheus(tmp_path: Path, cli):
    """Prometheus scraping every run started into tmp_path/results, once a second."""
    if PROMETHEUS is None:
        pytest.skip("needs Prometheus: apt-get install prometheus")
    config = tmp_path / "prometheus.yml"
    made = cli(
        "metrics", "prometheus-config", "--results", "results", "--interval", "1",
        "-o", "prometheus.yml", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    promtool = shutil.which("promtool")
    if promtool:
        checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    (port,) = free_ports(1)
    local = LocalTransport()
    proc = local.spawn(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=tmp_path / "prometheus.log",
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        stop_processes(local, [proc], grace=10)
    assert not local.is_running(proc)


def test_a_run_is_scraped_as_it_goes_and_every_dashboard_query_answers(
    prometheus: Prometheus, cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    output = "watched-out"
    scenario = tmp_path / "watched.toml"
    scenario.write_text(
        'name = "watched"\nkind = "stream"\nschedule = "visits"\nvisit_alerts = 150\n'
        "visit_interval = 6.0\nvisits = 5\npartitions = 2\nwarmup_alerts = 20\n"
        f'[broker]\ncmd = "{passthrough(output, "watched")} --max-rate 20"\n'
        f'output_topics = "{output}"\ngroup = "watched"\nid_format = "container"\n'
    )
    root = Path(__file__).resolve().parents[2]
    done = cli(
        "bench", "run", str(scenario), "--alerts", str(alerts_dir),
        "--out", str(tmp_path / "results"), "--fail-on-verdict",
        run_dir=tmp_path / "state", cwd=root,
    )  # fmt: skip
    ended = time.time()
    # Checks passed, Rubin's visit verdict failed: its own exit status.
    assert done.returncode == 3, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    assert "verdict failed:" in said
    assert "visits not held" in said
    (run,) = (tmp_path / "results").iterdir()
    r = json.loads((run / "results.json").read_text())
    assert r["status"] == "passed", r["failures"]
    endpoint = re.search(r"metrics for Prometheus: (http://\S+/metrics)", said)
    assert endpoint is not None, done.stdout
    # The run's endpoints, listed in its folder and taken off the shared targets at its end.
    listed = json.loads((run / "endpoints.json").read_text())
    assert listed["bench"] == endpoint.group(1)
    # The timing consumer's went when it ended; the embedded Kafka node's JMX exporter stays.
    assert set(listed) == {"bench", "kafka-node-1"}
    # Scraped once by the run itself as the load ended: every component answered.
    checked = json.loads((run / "endpoints-checked.json").read_text())
    assert set(checked) == {"bench", "kafka-node-1", "timing-main"}
    assert all(c.get("series", 0) > 10 for c in checked.values()), checked
    assert not (tmp_path / "results" / "prometheus-targets.json").exists()
    assert running(output) == []

    # Progress lines while it ran, not a terminal: one at least every 10 s.
    stamps = [
        datetime.strptime(m, "%H:%M:%S")
        for m in re.findall(r"^(\d\d:\d\d:\d\d) main: ", done.stdout, flags=re.M)
    ]
    assert len(stamps) >= 4
    assert all(0 < (b - a).total_seconds() <= 11 for a, b in itertools.pairwise(stamps))
    assert re.search(r"main: load · [\d,]+ of 750 acknowledged · broker read [\d,]+, lag", said)

    started = datetime.strptime(r["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    t0 = started.timestamp()
    window = {"start": t0, "end": ended, "step": 1}
    # Every endpoint was scraped: the bench's, the timing consumer's and Kafka's.
    up = prometheus.api("query_range", query=f'up{{run="{run.name}"}}', **window)
    assert {s["metric"]["component"] for s in up} == {"bench", "timing-main", "kafka-node-1"}
    ups = {s["metric"]["component"]: [float(v) for _, v in s["values"]] for s in up}
    assert ups["bench"][:3] == ups["timing-main"][:3] == [1, 1, 1]
    # The agent's first scrape loads its collectors (up to 0.6 s here, against the 1 s
    # timeout of this test's 1 s interval); every later one answered until the run ended
    # and stopped its Kafka, which Prometheus' discovery (updated every 5 s at most) kept
    # scraping for a few seconds more.
    kafka_up = ups["kafka-node-1"]
    assert set(kafka_up[2:-6]) == {1}, [(i, v) for i, v in enumerate(kafka_up) if v != 1]

    # The live view's percentiles, read from the timing consumer's histogram, are
    # Prometheus' own histogram_quantile of the same buckets (at the last instant it was up).
    (timing,) = [s for s in up if s["metric"]["component"] == "timing-main"]
    at = max(float(ts) for ts, v in timing["values"] if v == "1")
    sel = f'alertbench_alert_latency_seconds_bucket{{run="{run.name}"}}'
    scraped = prometheus.api("query", query=f"sum by (le) ({sel})", time=at)
    buckets = [(float(b["metric"]["le"]), float(b["value"][1])) for b in scraped]
    for q in (0.5, 0.99):
        (theirs,) = prometheus.api(
            "query", query=f"histogram_quantile({q}, sum by (le) ({sel}))", time=at
        )
        assert histogram_quantile(q, buckets) == pytest.approx(float(theirs["value"][1]))
    # ...and the progress lines showed them, and the visits judged as they went: the
    # held-back broker (20 alerts/s for 150 a visit every 6 s) held not all (nor in the results).
    assert re.search(r"main: \w+ · .* · p50/p99 [\d.]+/[\d.]+ s", said)
    held = [(int(a), int(b)) for a, b in re.findall(r"visits held (\d+) of (\d+)", said)]
    assert held, said
    judged_held, judged = held[-1][0], held[-1][1]
    assert judged >= 3
    assert judged_held < judged

    answers = dashboard_answers(prometheus, "run", run.name, window)
    # NaN where a rate had nothing to divide (a histogram before its first alert).
    values = {
        k: [float(v) for s in ss for _, v in s["values"] if v != "NaN"] for k, ss in answers.items()
    }
    assert max(values[(1, "A")]) > 10  # alerts acknowledged per second while visits went
    assert {s["metric"]["topic"] for s in answers[(2, "A")]} == {output}
    assert max(values[(3, "A")]) > 50  # the held-back broker fell behind
    assert 0 < max(values[(4, "B")]) <= 120  # p99, send to output
    assert all(0 <= v <= 1 for v in values[(5, "A")])
    assert min(values[(8, "A")]) > 2**20, [
        (s["metric"], s["values"][:3])
        for s in answers[(8, "A")]
        if min(float(v) for _, v in s["values"]) < 2**20
    ]
    assert {s["metric"]["phase"] for s in answers[(9, "A")]} >= {"warmup", "load", "drain"}

    # The Kafka dashboard, on the run's Kafka node (the JMX exporter agent).
    kafka = dashboard_answers(prometheus, "kafka", run.name, window)
    values = {
        k: [float(v) for s in ss for _, v in s["values"] if v != "NaN"] for k, ss in kafka.items()
    }
    topics = {s["metric"]["topic"] for s in kafka[(1, "A")]}
    assert {f"{output}", *(t for t in topics if t.endswith("-alerts"))} <= topics
    assert max(values[(1, "A")]) > 10  # alerts in per second while visits went
    assert max(values[(2, "A")]) > 2**20  # bytes in per second: 50-150 KB alerts
    assert set(values[(3, "A")]) == {0.0}  # one node: nothing under-replicated
    assert all(0 <= v < 10_000 for v in values[(4, "B")])  # produce p99, ms
    # The input's log end offsets: the warm-up and the 750 alerts of the load.
    ends = [s for s in kafka[(6, "A")] if s["metric"]["topic"].endswith("-alerts")]
    assert sum(float(s["values"][-1][1]) for s in ends) == 20 + 750
    assert min(values[(9, "A")]) > 2**20, kafka[(9, "A")]  # heap in use

    # Kafka Exporter's lag is the lag the run recorded, at the same instants: each scraped
    # value is one the run's sampler took within the scrape before.
    raw = prometheus.api(
        "query", query=f'kafka_consumergroup_lag_sum{{run="{run.name}"}}[10m]', time=ended
    )
    (series,) = raw
    assert series["metric"]["consumergroup"] == "watched"
    lag = pd.read_csv(run / "series" / "lag.csv").dropna(subset=["lag"])
    at = t0 + lag["t_s"].to_numpy()
    scraped = [(float(ts), float(v)) for ts, v in series["values"]]
    assert len(scraped) > 20
    for ts, v in scraped:
        near = lag["lag"].to_numpy()[(at >= ts - 3) & (at <= ts + 1)]
        assert v in near, (ts, v, near)

    # After the run: its series as OpenMetrics, which promtool turns into blocks that any
    # Prometheus serves, the lag in them sample for sample what lag.csv holds.
    promtool = shutil.which("promtool")
    assert promtool is not None
    blocks = tmp_path / "blocks"
    made = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(run / "metrics.om"),
            str(blocks),
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    (blocks / "wal").mkdir(exist_ok=True)  # dump reads a WAL; blocks made offline have none
    dumped = subprocess.run(
        [promtool, "tsdb", "dump", '--match={__name__="kafka_consumergroup_lag_sum"}', str(blocks)],
        capture_output=True,
        text=True,
    )
    assert dumped.returncode == 0, dumped.stderr
    loaded = [line.split() for line in dumped.stdout.splitlines()]
    assert all(f'run="{run.name}"' in " ".join(x) for x in loaded)
    assert [float(x[-2]) for x in loaded] == [float(v) for v in lag["lag"]]


def dashboard_answers(prometheus: Prometheus, name: str, run: str, window: dict) -> dict:
    """Every query of a shipped dashboard over ``window``, by (panel id, refId).

    Each must return series, with the labels its legend names.
    """
    text = files("alertbench.observe").joinpath(f"dashboards/{name}.json").read_text()
    answers = {}
    for panel in json.loads(text)["panels"]:
        for target in panel["targets"]:
            # The variables as Grafana sets them with one run and every node chosen.
            expr = target["expr"].replace("$run", run).replace("$node", "kafka-.*")
            series = prometheus.api("query_range", query=expr, **window)
            assert series, f"{name} panel {panel['title']!r}: {expr} returned nothing"
            for label in re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]):
                assert all(label in s["metric"] for s in series), (panel["title"], series[0])
            answers[(panel["id"], target["refId"])] = series
    return answers


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's script")
def test_a_run_on_a_terminal_shows_the_live_view(alerts_dir: Path, tmp_path: Path, kafka4) -> None:
    """In a pseudo-terminal (`script`), the live view is drawn instead of progress lines."""
    output = "tty-out"
    scenario = tmp_path / "tty.toml"
    scenario.write_text(
        'name = "tty"\nkind = "stream"\nschedule = "visits"\nvisit_alerts = 100\n'
        "visit_interval = 4.0\nvisits = 3\npartitions = 1\nwarmup_alerts = 10\n"
        f'[broker]\ncmd = "{passthrough(output, "tty")}"\n'
        f'output_topics = "{output}"\ngroup = "tty"\nid_format = "container"\n'
    )
    root = Path(__file__).resolve().parents[2]
    command = shlex.join(
        [
            sys.executable, "-m", "alertbench", "--run-dir", str(tmp_path / "state"),
            "bench", "run", str(scenario), "--alerts", str(alerts_dir),
            "--out", str(tmp_path / "results"), "--no-metrics",
        ]
    )  # fmt: skip
    typescript = tmp_path / "typescript"
    done = subprocess.run(
        ["script", "-qefc", command, str(typescript)],
        cwd=root,
        env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    drawn = typescript.read_bytes().decode(errors="replace")
    assert done.returncode == 0, drawn[-3000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    # The live view's table, redrawn as the run went, and no progress line.
    assert "tty · " in plain
    assert "segment, phase" in plain
    assert re.search(r"acknowledged\s+\d[\d,]* of 300", plain)
    assert re.search(r"main, load", plain)
    assert not re.search(r"^\d\d:\d\d:\d\d main: ", plain, flags=re.M)
    assert "metrics for Prometheus" not in plain  # --no-metrics
    assert running(output) == []
