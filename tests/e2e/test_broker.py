"""The broker end to end: real alerts through real Kafka and real Spark.

Every expectation is computed from the source alert files, independently of
the broker's code.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.reader import AlertReader
from alertbench.broker.stream.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import produce
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from conftest import read_messages
from corrupt import bad_messages

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

N = 150
CUTS = "rb >= 0.7 AND nbad = 0"
FILTERS = {
    "e2e-bright": "magpsf <= 17.5",
    "e2e-sso": "sso_candidate",
    "e2e-red-faint": "fid = 2 AND magpsf > 19.0",
    # A Python filter, evaluated in the same pass as the SQL ones.
    "e2e-positive": "alertbench.broker.batch.predicates:positive_subtraction",
}


def broker_settings(run_dir: Path, topic: str, **broker):
    return load_settings(
        run_dir=run_dir,
        broker={"master": "local[2]", "topics": [topic], "trigger": "1 second", **broker},
    )


def expected_sso(c: dict) -> bool:
    name = c.get("ssnamenr")
    return bool(
        c["ssdistnr"] is not None
        and 0 <= c["ssdistnr"] < 5
        and c["ssmagnr"] is not None
        and c["ssmagnr"] > 0
        and name not in (None, "null")
    )


@pytest.fixture(scope="module")
def ztf_run(single_kafka, alert_files, tmp_path_factory):
    files = alert_files[:N]
    read = AlertReader().read(files)
    sources = {a.record["candid"]: a.record for a in read}
    run_dir = tmp_path_factory.mktemp("broker")
    # A catalogue made from five alerts' own positions, plus one far from all.
    picked = sorted(sources)[:5]
    catalogue = run_dir / "catalogue.csv"
    lines = (
        ["ra,dec,name"]
        + [
            f"{sources[c]['candidate']['ra']},{sources[c]['candidate']['dec']},src-{c}"
            for c in picked
        ]
        + ["0.0,-89.9,nowhere"]
    )
    catalogue.write_text("\n".join(lines) + "\n")
    topic = "e2e-ztf"
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    settings = broker_settings(
        run_dir,
        topic,
        cuts=CUTS,
        filters=FILTERS,
        catalogue=str(catalogue),
        modules=["sso", "context", "lightcurve", "early_sn", "crossmatch"],
        spark_conf={"spark.alertbench.e2e": "from broker.spark_conf"},
    )
    result = run_broker(settings, servers=single_kafka.bootstrap, until_idle=6, timeout=400)
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    return {
        "result": result,
        "sources": sources,
        "spark": spark,
        "picked": picked,
        "schema": read[0].schema.definition,
        "catalogue": catalogue,
    }


def test_raw_parquet_holds_every_alert_with_source_values(ztf_run):
    spark, sources = ztf_run["spark"], ztf_run["sources"]
    raw = spark.read.parquet(str(ztf_run["result"].out / "raw")).toPandas()
    assert len(raw) == N
    assert set(raw["candid"]) == set(sources)
    for row in raw.itertuples():
        src = sources[row.candid]
        c = src["candidate"]
        assert row.objectId == src["objectId"]
        assert row.jd == c["jd"]
        assert row.magpsf == pytest.approx(c["magpsf"], rel=1e-7)
        assert (row.ra, row.dec) == (c["ra"], c["dec"])
        assert len(row.prv_candidates) == len(src["prv_candidates"] or [])
        assert row.cutoutScience["stampData"] == src["cutoutScience"]["stampData"]
        assert row.night == "20231018"
        assert row.topic == "e2e-ztf"
        assert row.sent_time is not None
        assert row.ingest_time >= row.sent_time


def test_the_session_has_its_settings_and_workers_their_environment(ztf_run):
    """broker.spark_conf reaches Spark; the workers' allocators keep freed memory."""
    from alertbench.spark.session import CHECKPOINT_MANAGER, WORKER_ENV

    spark = ztf_run["spark"]
    assert spark.conf.get("spark.alertbench.e2e") == "from broker.spark_conf"
    assert spark.conf.get("spark.sql.streaming.checkpointFileManagerClass") == CHECKPOINT_MANAGER
    names = sorted(WORKER_ENV)
    seen = (
        spark.sparkContext.parallelize([0], 1)
        .map(lambda _: [os.environ.get(n) for n in names])
        .collect()
    )
    assert seen == [[WORKER_ENV[n] for n in names]]
    # The checkpoint manager wrote every batch's offsets and commit.
    checkpoints = ztf_run["result"].out / "checkpoints" / "stream2raw"
    offsets = sorted(p.name for p in (checkpoints / "offsets").iterdir() if p.name.isdigit())
    commits = sorted(p.name for p in (checkpoints / "commits").iterdir() if p.name.isdigit())
    assert offsets
    assert offsets == commits


def test_science_holds_exactly_the_alerts_that_pass_the_cuts(ztf_run):
    spark, sources = ztf_run["spark"], ztf_run["sources"]
    sci = spark.read.parquet(str(ztf_run["result"].out / "science")).toPandas()
    passing = {
        k for k, r in sources.items() if r["candidate"]["rb"] >= 0.7 and r["candidate"]["nbad"] == 0
    }
    assert 0 < len(passing) < N, "the cut must keep some alerts and drop others"
    assert set(sci["candid"]) == passing
    assert len(sci) == len(passing)
    for row in sci.itertuples():
        src = sources[row.candid]
        assert row.sso_candidate == expected_sso(src["candidate"])
        history = [p for p in src["prv_candidates"] or [] if p["magpsf"] is not None]
        for band, fid in (("ndet_g", 1), ("ndet_r", 2)):
            expected = sum(p["fid"] == fid for p in history) + (src["candidate"]["fid"] == fid)
            assert getattr(row, band) == expected
        assert row.duration == pytest.approx(
            src["candidate"]["jd"] - src["candidate"]["jdstarthist"]
        )
        assert list(row.science_errors) == []
        assert row.science_start <= row.science_end
        assert 0.0 <= row.early_sn_score <= 1.0
    # Several alerts of this night share a position, so any catalogue source
    # at an alert's exact position is a right answer.
    names_at: dict[tuple[float, float], set[str]] = {}
    for c in ztf_run["picked"]:
        pos = (sources[c]["candidate"]["ra"], sources[c]["candidate"]["dec"])
        names_at.setdefault(pos, set()).add(f"src-{c}")
    at_catalogue = {r.candid for r in sci.itertuples() if (r.ra, r.dec) in names_at}
    assert {c for c in ztf_run["picked"] if c in passing} <= at_catalogue
    matched = sci[sci["xmatch_name"].notna()]
    assert set(matched["candid"]) == at_catalogue
    for row in matched.itertuples():
        assert row.xmatch_name in names_at[(row.ra, row.dec)]
        assert row.xmatch_sep_arcsec < 1e-3


def test_each_topic_holds_exactly_what_its_filter_selects(ztf_run, single_kafka):
    sources = ztf_run["sources"]
    out = ztf_run["result"].out
    passing = {
        k: r["candidate"]
        for k, r in sources.items()
        if r["candidate"]["rb"] >= 0.7 and r["candidate"]["nbad"] == 0
    }
    expected = {
        "e2e-bright": {k for k, c in passing.items() if c["magpsf"] <= 17.5},
        "e2e-sso": {k for k, c in passing.items() if expected_sso(c)},
        "e2e-red-faint": {k for k, c in passing.items() if c["fid"] == 2 and c["magpsf"] > 19.0},
        "e2e-positive": {k for k, c in passing.items() if c["isdiffpos"] in ("t", "1")},
    }
    assert any(expected.values())
    survey = ztf_run["schema"]
    for topic, want in expected.items():
        published = json.loads((out / "schemas" / f"{topic}.avsc").read_text())
        schema = fastavro.parse_schema(published)
        # The survey's alert, then the broker's columns.
        assert [f["name"] for f in published["fields"][: len(survey["fields"])]] == [
            f["name"] for f in survey["fields"]
        ]
        got = []
        for m in read_messages(single_kafka.bootstrap, topic):
            record = fastavro.schemaless_reader(io.BytesIO(m.value()), schema)
            got.append(record["candid"])
            assert record["objectId"] == sources[record["candid"]]["objectId"]
            assert "early_sn_score" in record
            assert int(dict(m.headers())["alertbench.sent_us"]) > 0
            # A reader of the survey's own schema gets the source alert, cutouts and all.
            as_sent = fastavro.schemaless_reader(io.BytesIO(m.value()), schema, survey)
            assert as_sent == sources[record["candid"]]
        assert sorted(got) == sorted(want), topic


@pytest.mark.parametrize("fused", [False, True], ids=["stream2raw", "fused"])
def test_corrupt_messages_are_quarantined_and_the_rest_flow(
    single_kafka, alert_files, tmp_path, fused
):
    topic = f"e2e-corrupt-{int(fused)}"
    create_topic(single_kafka.bootstrap, topic, partitions=1)
    good = [p.read_bytes() for p in alert_files[:20]]
    bad = bad_messages(good[0])
    messages = [(None, v) for v in good[:10] + bad + good[10:]]
    assert produce(single_kafka.bootstrap, topic, messages).failed == []

    # In fused mode the good alerts around the bad ones are distributed too.
    everything = f"{topic}-all"
    settings = broker_settings(tmp_path, topic, cuts="true", filters={everything: "true"})
    result = run_broker(
        settings,
        servers=single_kafka.bootstrap,
        stages=["stream2raw"],
        fused=fused,
        until_idle=5,
        timeout=300,
    )
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    raw = spark.read.parquet(str(result.out / "raw"))
    quarantine = spark.read.parquet(str(result.out / "quarantine")).toPandas()
    assert raw.count() == 20
    assert sorted(quarantine["offset"]) == [10, 11, 12]
    assert [bytes(v) for v in quarantine.sort_values("offset")["value"]] == bad
    assert all(quarantine["error"].str.len() > 0)
    if fused:
        candids = {a.record["candid"] for a in AlertReader().read(alert_files[:20])}
        sent = read_messages(single_kafka.bootstrap, everything, quiet=3)
        ids = [int(dict(m.headers())["alertbench.alert_id"]) for m in sent]
        assert sorted(ids) == sorted(candids)


def test_restart_mid_stream_loses_and_duplicates_nothing(single_kafka, alert_files, tmp_path):
    topic = "e2e-restart"
    files = alert_files[:200]
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            partitions=2,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    settings = broker_settings(tmp_path, topic, max_offsets_per_trigger=40)
    first = run_broker(
        settings,
        servers=single_kafka.bootstrap,
        stages=["stream2raw"],
        stop_after_rows=80,
        timeout=300,
    )
    assert 80 <= first.rows["stream2raw"] < 200, "stopped mid-stream"
    run_broker(
        settings, servers=single_kafka.bootstrap, stages=["stream2raw"], until_idle=5, timeout=300
    )
    from pyspark.sql import SparkSession

    raw = SparkSession.getActiveSession().read.parquet(str(tmp_path / "broker" / "raw")).toPandas()
    want = {a.record["candid"] for a in AlertReader().read(files)}
    assert len(raw) == 200
    assert set(raw["candid"]) == want


def test_a_batch_waits_for_min_offsets_per_trigger(single_kafka, alert_files, tmp_path):
    """Alerts that arrive in two parts make one micro-batch once the minimum is there."""
    topic = "e2e-min-offsets"
    create_topic(single_kafka.bootstrap, topic, partitions=2)
    files = alert_files[:60]
    values = [(None, f.read_bytes()) for f in files]
    # The broker learns the stream's schema from its first message; Spark's
    # first trigger never waits, so that message makes a batch of its own.
    produce(single_kafka.bootstrap, topic, values[:1])
    progress = tmp_path / "broker" / "progress.jsonl"

    def batches() -> list[int]:
        lines = progress.read_text().splitlines() if progress.exists() else []
        return [r["rows"] for r in map(json.loads, lines) if r.get("rows")]

    def feed() -> None:
        deadline = time.time() + 240
        while not batches() and time.time() < deadline:
            time.sleep(0.5)
        # Half of the rest, several triggers, then the other half.
        produce(single_kafka.bootstrap, topic, values[1:30])
        time.sleep(5)
        produce(single_kafka.bootstrap, topic, values[30:])

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    settings = broker_settings(tmp_path, topic, min_offsets_per_trigger=59, max_trigger_delay_s=120)
    result = run_broker(
        settings,
        servers=single_kafka.bootstrap,
        stages=["stream2raw"],
        stop_after_rows=60,
        timeout=300,
    )
    feeder.join(timeout=60)
    assert result.rows["stream2raw"] == 60
    assert batches() == [1, 59], "the 29 alerts of the first half waited for the rest"
    from pyspark.sql import SparkSession

    raw = SparkSession.getActiveSession().read.parquet(str(tmp_path / "broker" / "raw")).toPandas()
    assert sorted(raw["candid"]) == sorted(a.record["candid"] for a in AlertReader().read(files))


def test_rubin_alerts_in_confluent_format_go_through_stream2raw(single_kafka, tmp_path):
    data = os.environ.get("ALERTBENCH_TEST_DATA")
    if not data:
        pytest.skip("needs ALERTBENCH_TEST_DATA (the shared data folder with lsst/)")
    files = sorted((Path(data) / "lsst" / "lsstcam-20250906-v9.0").glob("*.avro"))[:40]
    alerts = AlertReader().read(files)
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / "900.avsc").write_text(json.dumps(alerts[0].schema.definition))
    topic = "e2e-lsst"
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            wire="confluent",
            registry=str(ids),
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    settings = broker_settings(tmp_path, topic, format="confluent", schema_registry=str(ids))
    result = run_broker(
        settings, servers=single_kafka.bootstrap, stages=["stream2raw"], until_idle=5, timeout=300
    )
    from pyspark.sql import SparkSession

    raw = SparkSession.getActiveSession().read.parquet(str(result.out / "raw")).toPandas()
    by_id = {a.record["diaSourceId"]: a.record for a in alerts}
    assert set(raw["diaSourceId"]) == set(by_id)
    for row in raw.itertuples():
        src = by_id[row.diaSourceId]["diaSource"]
        assert row.midpointMjdTai == src["midpointMjdTai"]
        assert row.visit == src["visit"]
    assert set(raw["night"]) <= {"20250906", "20250907"}


def test_pipeline_on_a_standalone_master_with_one_worker(single_kafka, alert_files, tmp_path):
    from alertbench.spark import standalone
    from alertbench.spark import state as spark_state

    files = alert_files[:60]
    read = AlertReader().read(files)
    sources = {a.record["candid"]: a.record for a in read}
    topic = "e2e-standalone"
    simulate(
        SimulationOptions(
            servers=single_kafka.bootstrap,
            topic=topic,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
        )
    )
    spark_settings = load_settings(run_dir=tmp_path)
    try:
        cluster = standalone.up(spark_settings, workers=1, cores=2, memory="3g")
        info = spark_state.master_status(cluster.ui_url)
        assert info["aliveworkers"] == 1
        settings = broker_settings(
            tmp_path,
            topic,
            master=cluster.master_url,
            cuts=CUTS,
            filters={"e2e-standalone-bright": "magpsf <= 17.5"},
            executor_memory="1g",
        )
        result = run_broker(settings, servers=single_kafka.bootstrap, until_idle=6, timeout=400)
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        assert spark.sparkContext.master == cluster.master_url
        raw = spark.read.parquet(str(result.out / "raw")).toPandas()
        sci = spark.read.parquet(str(result.out / "science")).toPandas()
        spark.stop()
    finally:
        standalone.down(spark_settings, purge=True)
    passing = {
        k for k, r in sources.items() if r["candidate"]["rb"] >= 0.7 and r["candidate"]["nbad"] == 0
    }
    assert set(raw["candid"]) == set(sources)
    assert len(raw) == len(sources)
    assert set(sci["candid"]) == passing
    bright = {k for k in passing if sources[k]["candidate"]["magpsf"] <= 17.5}
    got = [m.key() for m in read_messages(single_kafka.bootstrap, "e2e-standalone-bright")]
    assert sorted(k.decode() for k in got) == sorted(sources[k]["objectId"] for k in bright)


def test_fused_mode_writes_the_same_outputs(ztf_run, single_kafka, tmp_path):
    staged_out = ztf_run["result"].out
    fused_filters = {f"fused-{k.removeprefix('e2e-')}": v for k, v in FILTERS.items()}
    settings = broker_settings(
        tmp_path,
        "e2e-ztf",
        cuts=CUTS,
        filters=fused_filters,
        catalogue=str(ztf_run["catalogue"]),
        modules=["sso", "context", "lightcurve", "early_sn", "crossmatch"],
    )
    result = run_broker(
        settings, servers=single_kafka.bootstrap, fused=True, until_idle=6, timeout=400
    )
    assert result.stages == ["fused"]
    spark = ztf_run["spark"].getActiveSession()
    columns = ["candid", "sso_candidate", "ndet_g", "ndet_r", "duration", "early_sn_score"]
    staged = spark.read.parquet(str(staged_out / "science")).select(*columns).toPandas()
    fused = spark.read.parquet(str(result.out / "science")).select(*columns).toPandas()
    assert sorted(fused["candid"]) == sorted(staged["candid"])
    merged = staged.merge(fused, on="candid", suffixes=("_s", "_f"))
    for c in columns[1:]:
        assert (merged[f"{c}_s"] == merged[f"{c}_f"]).all(), c
    raw = spark.read.parquet(str(result.out / "raw")).select("candid").toPandas()
    assert sorted(raw["candid"]) == sorted(ztf_run["sources"])
    # Fused mode sends each alert's original bytes, staged mode encodes it again
    # from the science Parquet: the same schema, the same records (but for when
    # each run processed them).
    when = {"ingest_time", "science_start", "science_end"}

    def records(out: Path, topic: str) -> dict[int, str]:
        schema = fastavro.parse_schema(json.loads((out / "schemas" / f"{topic}.avsc").read_text()))
        found = {}
        for m in read_messages(single_kafka.bootstrap, topic, quiet=3):
            r = fastavro.schemaless_reader(io.BytesIO(m.value()), schema)
            kept = {k: v for k, v in r.items() if k not in when}
            found[r["candid"]] = json.dumps(kept, default=str)
        return found

    for staged_topic, fused_topic in zip(FILTERS, fused_filters, strict=True):
        assert (staged_out / "schemas" / f"{staged_topic}.avsc").read_text() == (
            result.out / "schemas" / f"{fused_topic}.avsc"
        ).read_text()
        a, b = records(staged_out, staged_topic), records(result.out, fused_topic)
        assert sorted(a) == sorted(b), staged_topic
        assert a == b, staged_topic
