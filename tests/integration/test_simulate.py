"""The simulator against real Kafka: formats, visit schedules, synthesis, failures."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.reader import AlertReader
from alertbench.alerts.synth import Cloner
from alertbench.alerts.wire import make_format
from alertbench.errors import ClusterError, ConfigError
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import end_offsets
from alertbench.simulator.producer import ALERT_ID_HEADER, SENT_HEADER, VISIT_HEADER
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from alertbench.simulator.source import in_observation_order
from conftest import read_messages

pytestmark = pytest.mark.kafka


def headers(msg) -> dict[str, int]:
    return {k: int(v) for k, v in msg.headers()}


@pytest.fixture(scope="module")
def ztf_sample(alert_files: list[Path]) -> list[Path]:
    return alert_files[:60]


@pytest.mark.parametrize("wire", ["ztf", "schemaless", "confluent"])
def test_each_format_round_trips_real_alerts(single_kafka, ztf_sample, tmp_path, wire):
    alerts = AlertReader().read(ztf_sample)
    schema = alerts[0].schema
    registry = None
    if wire == "confluent":
        registry = tmp_path / "ids"
        registry.mkdir()
        (registry / "402.avsc").write_text(json.dumps(schema.definition))
    topic = f"fmt-{wire}"
    opts = SimulationOptions(
        servers=single_kafka.bootstrap,
        topic=topic,
        sources=[str(p) for p in ztf_sample],
        wire=wire,
        registry=str(registry) if registry else None,
        schedule=Schedule(mode="max"),
        partitions=2,
    )
    before = time.time()
    result = simulate(opts)
    after = time.time()

    assert result.summary["alerts"] == len(alerts)
    assert result.summary["failures"] == 0
    decoder = make_format(wire, schema=schema, registry=registry)
    by_candid = {a.record["candid"]: a for a in alerts}
    messages = read_messages(single_kafka.bootstrap, topic, count=len(alerts))
    seen = set()
    for m in messages:
        record, used = decoder.decode(m.value())
        source = by_candid[record["candid"]]
        assert record == source.record
        assert used == source.schema
        assert m.value() == decoder.frame(source.body, source.schema)
        assert m.key().decode() == source.record["objectId"]
        h = headers(m)
        assert before <= h[SENT_HEADER] / 1e6 <= after
        assert m.timestamp()[1] == h[SENT_HEADER] // 1000
        assert h[VISIT_HEADER] == 0
        # The alert's id, for matching any broker's output to this send.
        assert h[ALERT_ID_HEADER] == record["candid"]
        seen.add(record["candid"])
    assert seen == set(by_candid)
    if wire == "confluent":
        assert messages[0].value()[:5] == b"\x00" + (402).to_bytes(4, "big")
    if wire == "ztf":
        # What ZTF sends: a container file a plain Avro reader opens.
        assert next(fastavro.reader(io.BytesIO(messages[0].value())))["candid"] in by_candid


def test_visit_schedule_counts_and_spacing(single_kafka, alert_files):
    opts = SimulationOptions(
        servers=single_kafka.bootstrap,
        topic="visits",
        sources=[str(p) for p in alert_files[:150]],
        schedule=Schedule(mode="visits", visit_size=50, visit_interval=2.0),
        visits=3,
    )
    result = simulate(opts)

    summary = result.summary
    assert [v["visit"] for v in summary["visits"]] == [0, 1, 2]
    assert [v["alerts"] for v in summary["visits"]] == [50, 50, 50]
    assert [v["acked"] for v in summary["visits"]] == [50, 50, 50]
    messages = read_messages(single_kafka.bootstrap, "visits", count=150)
    by_visit: dict[int, list[int]] = {}
    for m in messages:
        h = headers(m)
        by_visit.setdefault(h[VISIT_HEADER], []).append(h[SENT_HEADER])
    assert {v: len(ts) for v, ts in by_visit.items()} == {0: 50, 1: 50, 2: 50}
    starts = [min(by_visit[v]) / 1e6 for v in range(3)]
    # Visits start on a 2 s grid; the tolerance is generous, a loaded machine is slow.
    assert starts[1] - starts[0] == pytest.approx(2.0, abs=0.5)
    assert starts[2] - starts[0] == pytest.approx(4.0, abs=0.5)
    for v in summary["visits"]:
        assert v["due"] == pytest.approx(summary["t0"] + 2.0 * v["visit"])
        assert 0 <= v["lateness_s"] < 0.5


def test_synthesised_stream_is_unique_valid_and_deterministic(single_kafka, alert_files):
    sources = [str(p) for p in alert_files[:100]]
    for topic in ("synth-a", "synth-b"):
        opts = SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=sources,
            schedule=Schedule(mode="max"),
            synthesize=True,
            seed=3,
            count=500,
            producers=2,
            partitions=1,
        )
        assert simulate(opts).summary["alerts"] == 500

    templates = AlertReader().read(alert_files[:100])
    template_candids = {a.record["candid"] for a in templates}
    fmt = make_format("ztf")
    runs = {}
    for topic in ("synth-a", "synth-b"):
        records = {}
        for m in read_messages(single_kafka.bootstrap, topic, count=500):
            record, schema = fmt.decode(m.value())
            schema.validate(record)
            records[record["candid"]] = record
        assert len(records) == 500, "every clone has its own candid"
        assert not set(records) & template_candids
        assert len({r["objectId"] for r in records.values()}) == 500
        runs[topic] = records
    assert runs["synth-a"] == runs["synth-b"], "same seed, same alerts"


def test_unreachable_kafka_is_named_and_nothing_sent(alert_files):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    opts = SimulationOptions(servers=dead, sources=[str(alert_files[0])])
    with pytest.raises(ClusterError, match=r"cannot reach Kafka at .*nothing was sent"):
        simulate(opts)


def test_bad_files_are_reported_skipped_and_the_rest_flow(single_kafka, alert_files, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in alert_files[:20]:
        shutil.copy(p, folder / p.name)
    (folder / "corrupt.avro").write_bytes(b"\x00\x01garbage" * 100)
    data = alert_files[20].read_bytes()
    (folder / "truncated.avro").write_bytes(data[: len(data) // 2])
    with (folder / "wrong-schema.avro").open("wb") as fh:
        schema = {"type": "record", "name": "my.thing", "fields": [{"name": "x", "type": "int"}]}
        fastavro.writer(fh, schema, [{"x": 1}])

    opts = SimulationOptions(
        servers=single_kafka.bootstrap,
        topic="mixed",
        sources=[str(folder)],
        schedule=Schedule(mode="max"),
        partitions=1,
    )
    result = simulate(opts)

    problems = {p.name: why for p, why in result.report.problems}
    assert set(problems) == {"corrupt.avro", "truncated.avro", "wrong-schema.avro"}
    assert "not an Avro container" in problems["corrupt.avro"]
    assert "corrupt" in problems["truncated.avro"]
    assert "not a ZTF or Rubin alert schema" in problems["wrong-schema.avro"]
    assert result.summary["source"]["skipped_files"] == 3
    assert result.summary["alerts"] == 20
    assert sum(end_offsets(single_kafka.bootstrap, "mixed", 1).values()) == 20
    opts.strict = True
    with pytest.raises(ConfigError, match=r"corrupt\.avro"):
        simulate(opts)


def test_cli_writes_summary_and_fails_on_undelivered_alerts(
    single_kafka, alert_files, cli, tmp_path
):
    sources = [str(p) for p in alert_files[:60]]
    summary = tmp_path / "summary.json"
    ok = cli(
        "simulate",
        single_kafka.bootstrap,
        "cli-visits",
        "--visit-size",
        "30",
        "--visit-interval",
        "1",
        "--count",
        "60",
        "--summary",
        str(summary),
        *[a for s in sources for a in ("--alerts", s)],
    )
    assert ok.returncode == 0, ok.stderr
    data = json.loads(summary.read_text())
    assert data["alerts"] == 60
    assert [v["alerts"] for v in data["visits"]] == [30, 30]
    assert "60 alerts in 60 files" in ok.stdout

    # A topic that refuses alerts this large: every delivery fails, and the exit says so.
    create_topic(single_kafka.bootstrap, "too-small", config={"max.message.bytes": "1000"})
    bad = cli(
        "simulate",
        single_kafka.bootstrap,
        "too-small",
        "--max",
        "--count",
        "5",
        "--summary",
        str(summary),
        "--alerts",
        sources[0],
        "--loop",
    )
    assert bad.returncode == 1
    data = json.loads(summary.read_text())
    assert data["failures"] == 5
    assert data["alerts"] == 0
    assert "not delivered" in bad.stdout


@pytest.mark.slow
# Long: the bench's kafka-kill fault does this with the simulator at replication 3.
@pytest.mark.long
def test_broker_stopped_mid_stream_loses_no_alert(kafka_cluster, kafka4, alert_files):
    sources = [str(p) for p in alert_files[:100]]
    with kafka_cluster(kafka4, nodes=3) as rc:
        opts = SimulationOptions(
            servers=rc.bootstrap,
            topic="ha-stream",
            sources=sources,
            schedule=Schedule(mode="rate", rate=100.0),
            synthesize=True,
            seed=11,
            count=600,
            partitions=3,
            acks="all",
        )
        results = {}
        runner = threading.Thread(target=lambda: results.setdefault("r", simulate(opts)))
        runner.start()
        time.sleep(3.0)
        victim = rc.state.node("node-3")
        rc.cluster.stop(rc.state, [victim], grace=20)
        time.sleep(1.0)
        rc.cluster.start(rc.state, timeout=120)
        runner.join(timeout=180)
        assert not runner.is_alive()

        summary = results["r"].summary
        assert summary["failures"] == 0
        assert summary["alerts"] == 600
        templates = AlertReader().read([Path(s) for s in sources])
        templates = in_observation_order(templates)
        cloner = Cloner([(a.schema, a.record) for a in templates], seed=11)
        expected = {cloner.record(g)["candid"] for g in range(600)}
        fmt = make_format("ztf")
        got = [
            fmt.decode(m.value())[0]["candid"]
            for m in read_messages(rc.bootstrap, "ha-stream", count=600)
        ]
        assert sorted(got) == sorted(expected)
        assert sum(end_offsets(rc.bootstrap, "ha-stream", 3).values()) == 600


def test_rate_replay_and_duration_schedules(single_kafka, alert_files):
    sources = [str(p) for p in alert_files[:40]]

    rate = simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic="rate",
            sources=sources,
            schedule=Schedule(mode="rate", rate=20.0),
            partitions=1,
        )
    ).summary
    sent = sorted(
        headers(m)[SENT_HEADER] / 1e6
        for m in read_messages(single_kafka.bootstrap, "rate", count=40)
    )
    # 40 alerts at 20/s: the last leaves about 1.95 s after the first.
    assert sent[-1] - sent[0] == pytest.approx(39 / 20, abs=0.4)
    assert rate["alerts"] == 40

    alerts = AlertReader().read([Path(s) for s in sources])
    jds = sorted(a.observed for a in alerts)
    span_days = jds[-1] - jds[0]
    speed = span_days * 86400 / 2.0  # the whole sample replays in about 2 s
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic="replay",
            sources=sources,
            schedule=Schedule(mode="replay", replay_speed=speed),
            partitions=1,
        )
    )
    fmt = make_format("ztf")
    pairs = sorted(
        (headers(m)[SENT_HEADER] / 1e6, fmt.decode(m.value())[0]["candidate"]["jd"])
        for m in read_messages(single_kafka.bootstrap, "replay", count=40)
    )
    assert [jd for _, jd in pairs] == sorted(jd for _, jd in pairs), "sent in observation order"
    t_first, jd_first = pairs[0]
    for t, jd in pairs:
        assert t - t_first == pytest.approx((jd - jd_first) * 86400 / speed, abs=0.4)

    timed = simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic="timed",
            sources=sources,
            schedule=Schedule(mode="rate", rate=50.0),
            duration=2.0,
            loop=True,
            partitions=1,
        )
    ).summary
    # Two seconds at 50/s: about 100 alerts (the source of 40 looped).
    assert 80 <= timed["alerts"] <= 101
    assert timed["failures"] == 0


def test_rubin_alerts_in_confluent_format(single_kafka, tmp_path):
    data = os.environ.get("ALERTBENCH_TEST_DATA")
    if not data:
        pytest.skip("needs ALERTBENCH_TEST_DATA (the shared data folder with lsst/)")
    files = sorted((Path(data) / "lsst" / "lsstcam-20250906-v9.0").glob("*.avro"))[:30]
    alerts = AlertReader().read(files)
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / "900.avsc").write_text(json.dumps(alerts[0].schema.definition))
    result = simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic="lsst-alerts",
            sources=[str(f) for f in files],
            wire="confluent",
            registry=str(ids),
            schedule=Schedule(mode="max"),
            partitions=2,
        )
    )
    assert result.summary["source"]["versions"] == {"lsst 9.0": len(alerts)}
    fmt = make_format("confluent", registry=ids)
    by_id = {a.record["diaSourceId"]: a.record for a in alerts}
    got = {}
    for m in read_messages(single_kafka.bootstrap, "lsst-alerts", count=len(alerts)):
        assert m.value()[:5] == b"\x00" + (900).to_bytes(4, "big")
        record, _ = fmt.decode(m.value())
        got[record["diaSourceId"]] = record
    assert got == by_id


@pytest.mark.parametrize("compression", ["lz4", "zstd", "snappy", "gzip"])
def test_compressed_unkeyed_stream_reads_back_equal(single_kafka, alert_files, compression):
    files = alert_files[:20]
    topic = f"codec-{compression}"
    seen = []
    summary = simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=[str(p) for p in files],
            schedule=Schedule(mode="max"),
            compression=compression,
            keyed=False,
            partitions=1,
        ),
        monitor=lambda *snapshot: seen.append(snapshot),
    ).summary
    assert summary["compression"] == compression
    assert summary["alerts"] == 20
    assert seen[-1][:3] == (20, summary["bytes"], 0)
    fmt = make_format("ztf")
    sources = {a.record["candid"]: a.record for a in AlertReader().read(files)}
    for m in read_messages(single_kafka.bootstrap, topic, count=20):
        assert m.key() is None
        record, _ = fmt.decode(m.value())
        assert record == sources[record["candid"]]
