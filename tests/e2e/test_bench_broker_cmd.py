"""alertbench's own broker, measured as a foreign one through ``bench run --broker-cmd``.

The bench then sees only Kafka: the broker keeps its offsets in Spark's
checkpoints (no consumer group), so the run waits for its outputs to settle.
It writes as Fink does (``distribution_key = "schema"``: schemaless Avro,
the schema in the key), and each alert is timed by the id read from that
record, its send time looked up in the input topic by id. How its figures compare
with the built-in run's is measured in benchmarks/other_broker.py.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

from alertbench.bench.results import missing_fields

# Long: --broker-cmd and timing by ids are proven with the pass-through broker
# (integration/test_bench_other_broker), Fink's keys by e2e/test_secured_chain.
pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow, pytest.mark.long]

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"early-sn", "sso", "bright"}  # the broker's default ZTF filters


def test_our_broker_through_broker_cmd_is_timed_alert_by_alert(
    cli, alerts_dir: Path, tmp_path: Path, kafka4
) -> None:
    state = str(tmp_path / "broker-state")
    argv = [sys.executable, "-m", "alertbench", "--run-dir", state, "broker", "run"]
    cmd = shlex.join(
        [*argv, "--fused", "--master", "local[2]", "-b", "{servers}", "--topic", "{input_topic}"]
    )
    out = tmp_path / "results"
    done = cli(
        "bench", "run", "smoke", "--alerts", str(alerts_dir), "--out", str(out),
        "--broker-cmd", cmd, "--output-topics", "|".join(sorted(TOPICS)),
        "--id-format", "schema-key",
        run_dir=tmp_path / "state", cwd=ROOT,
        env={"ALERTBENCH_BROKER__DISTRIBUTION_KEY": "schema"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = out.iterdir()
    r = json.loads((run / "results.json").read_text())
    assert missing_fields(r) == []
    assert r["status"] == "passed", r["failures"]
    topics = r["integrity"]["topics"]
    assert set(topics) == TOPICS
    for t in topics.values():
        assert t["unknown"] == t["unreadable"] == t["duplicates"] == 0
        assert t["received"] == t["distinct"]
    assert sum(t["received"] for t in topics.values()) > 0
    assert r["integrity"]["consumed"] is None  # no consumer group to read
    assert r["config"]["broker"]["id_format"] == "schema-key"
    # Every arrival of a measured alert is timed, and only those.
    lat = pd.read_csv(run / "series" / "latency_dist.csv", dtype={"alert_id": str})
    assert len(lat) == r["latency"]["distribution"]["count"] > 0
    assert set(lat["topic"]) <= TOPICS
    assert not lat.duplicated(["alert_id", "topic"]).any()
    assert ((lat["latency_s"] > 0) & (lat["latency_s"] < r["duration_s"])).all()
    # The foreign broker's process tree, Spark's JVM included, was sampled.
    assert r["resources"]["broker"]["rss_max_mb"] > 300
