"""Turn what a run recorded into results.json and the series CSVs.

Latency to raw is measured to the moment the alert's micro-batch was
committed (its rows became visible): the commit marker's modification time.
Latency to a distribution topic is measured by the timing consumer, on the
same machine's clock as the simulator's send time.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alertbench.bench.results import SCHEMA_VERSION
from alertbench.bench.scenario import Scenario
from alertbench.bench.stats import share_within, summary
from alertbench.broker.batch.flatten import ALERT_ID_COLUMNS

RUBIN_LATENCY_S = 60.0
RUBIN_LATENCY_SHARE = 0.98
P99_TARGET_S = 10.0


@dataclass
class SegmentOutcome:
    """What one segment of a run recorded (see :mod:`alertbench.bench.runner`)."""

    tag: str
    params: dict[str, Any]
    topic: str
    partitions: int
    distribution: dict[str, str | None]  # output topic -> its filter (None: not known)
    dir: Path
    warmup: dict[str, Any] = field(default_factory=dict)
    loads: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    measured_from: float = 0.0
    load_finished: float = 0.0
    drained: bool = False
    resources: list[tuple] = field(default_factory=list)
    lag: list[tuple] = field(default_factory=list)
    sampler_errors: list[str] = field(default_factory=list)
    expected: Path | None = None
    broker_kind: str = "alertbench"  # or "external": measured from outside only

    @property
    def broker_out(self) -> Path:
        """The segment broker's output folder."""
        return self.dir / "broker"


def raw_alerts(broker_out: Path) -> pd.DataFrame:
    """Every raw row: ``alert_id``, ``sent_us`` and ``committed`` (epoch s of its batch commit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = broker_out / "raw"
    commits = {
        int(p.name): p.stat().st_mtime
        for d in (broker_out / "_commits").glob("*")
        for p in d.iterdir()
        if p.name.isdigit()
    }
    frames = []
    for f in sorted(raw.rglob("*.parquet")) if raw.exists() else []:
        names = pq.read_schema(f).names
        id_col = next((c for c in ALERT_ID_COLUMNS if c in names), None)
        if id_col is None:
            continue
        table = pq.read_table(f, columns=[id_col, "sent_time"])
        sent = table.column("sent_time")
        # Spark writes INT96 timestamps, read back in ns: normalise to microseconds.
        sent = sent.cast(pa.timestamp("us", tz=sent.type.tz)).cast(pa.int64())
        batch = int(f.name[1:10])  # files are committed as b<batch:09d>-...
        frame = pd.DataFrame(
            {
                "alert_id": table.column(id_col).to_pandas().astype(str),
                "sent_us": sent.to_pandas(),
                "committed": commits.get(batch, float("nan")),
            }
        )
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"alert_id": [], "sent_us": [], "committed": []})
    return pd.concat(frames, ignore_index=True)


def parquet_rows(folder: Path) -> int:
    """Rows in every Parquet file under ``folder``."""
    import pyarrow.parquet as pq

    if not folder.exists():
        return 0
    return sum(pq.read_metadata(f).num_rows for f in folder.rglob("*.parquet"))


def batches(progress: Path, t0: float) -> list[dict[str, Any]]:
    """The broker's micro-batches from its progress JSON lines."""
    rows = []
    if not progress.exists():
        return rows
    for line in progress.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "batch" not in r or r.get("timestamp") is None:
            continue
        stamp = pd.Timestamp(r["timestamp"]).timestamp()
        rows.append(
            {
                "t_s": round(stamp - t0, 3),
                "query": r.get("query"),
                "batch": r.get("batch"),
                "rows": r.get("rows") or 0,
                "rows_per_s": r.get("rows_per_s") or 0.0,
                "batch_ms": r.get("batch_ms") or 0,
            }
        )
    return rows


def _write_csv(path: Path, columns: list[str], rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([r[c] for c in columns] if isinstance(r, dict) else r)


def _arrivals(outcome: SegmentOutcome) -> pd.DataFrame:
    """What the timing consumer recorded (COLUMNS of :mod:`alertbench.bench.timing`)."""
    path = outcome.dir / "arrivals.csv"
    if not path.exists():
        return pd.DataFrame(columns=["topic", "alert_id", "sent_us", "arrival_us"])
    return pd.read_csv(path, dtype={"alert_id": str, "topic": str})


def _distribution(outcome: SegmentOutcome) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Arrivals in the distribution topics against what the filters select."""
    arrivals = _arrivals(outcome)
    expected = (
        pd.read_csv(outcome.expected, dtype={"alert_id": str, "topic": str})
        if outcome.expected and outcome.expected.exists()
        else pd.DataFrame(columns=["topic", "alert_id"])
    )
    topics = {}
    for topic in outcome.distribution:
        got = arrivals.loc[arrivals["topic"] == topic, "alert_id"]
        want = set(expected.loc[expected["topic"] == topic, "alert_id"])
        have = set(got)
        topics[topic] = {
            "filter": outcome.distribution[topic],
            "expected": len(want),
            "received": len(got),
            "missing": len(want - have),
            "unexpected": len(have - want),
            "duplicates": len(got) - len(have),
        }
    return arrivals, topics


def _timed(arrivals: pd.DataFrame, since: float) -> tuple[pd.DataFrame, pd.Series]:
    """Arrivals of alerts sent since ``since`` (epoch s), and their latencies in seconds."""
    timed = arrivals[pd.to_numeric(arrivals["sent_us"], errors="coerce").notna()].copy()
    timed["sent_us"] = timed["sent_us"].astype("int64")
    timed = timed[timed["sent_us"] >= since * 1e6]
    return timed, (timed["arrival_us"] - timed["sent_us"]) / 1e6


def _delivery(outcome: SegmentOutcome, **found: Any) -> tuple[dict[str, Any], list[str]]:
    """Integrity's common part (sent, failed, drained, then ``found``) and its problems."""
    sent = outcome.warmup.get("alerts", 0) + sum(lo["alerts"] for lo in outcome.loads)
    failed = outcome.warmup.get("failures", 0) + sum(lo["failures"] for lo in outcome.loads)
    problems = []
    if failed:
        problems.append(f"{failed} alerts were not delivered to Kafka")
    if not outcome.drained:
        problems.append("the broker did not drain its input in time")
    return {"sent": sent, "failed": failed, "drained": outcome.drained, **found}, problems


def _throughput(
    outcome: SegmentOutcome, alerts: int, last: float | None
) -> dict[str, float | int | None]:
    """Measured alerts over the time from the first send to ``last`` (epoch s)."""
    first_send = min((lo["started"] for lo in outcome.loads), default=outcome.measured_from)
    return {
        "alerts": alerts,
        "alerts_per_s": round(alerts / (last - first_send), 1)
        if last and last > first_send
        else None,
        "drain_s": round(last - outcome.load_finished, 3) if last else None,
    }


def segment_metrics(outcome: SegmentOutcome, t0: float) -> dict[str, Any]:
    """Every number of one segment (latencies, integrity, throughput) plus its series."""
    if outcome.broker_kind != "alertbench":
        return external_metrics(outcome)
    raw = raw_alerts(outcome.broker_out)
    measured = raw[raw["sent_us"] >= outcome.measured_from * 1e6]
    raw_lat = measured["committed"] - measured["sent_us"] / 1e6
    arrivals, topics = _distribution(outcome)
    timed, dist_lat = _timed(arrivals, outcome.measured_from)

    integrity, problems = _delivery(
        outcome,
        in_kafka=outcome.lag[-1][2] if outcome.lag else None,
        in_raw=len(raw),
        distinct_in_raw=int(raw["alert_id"].nunique()),
        quarantined=parquet_rows(outcome.broker_out / "quarantine"),
        in_science=parquet_rows(outcome.broker_out / "science"),
        topics=topics,
    )
    sent = integrity["sent"]
    if len(raw) != sent:
        problems.append(f"{sent} alerts sent but {len(raw)} rows in raw")
    if integrity["distinct_in_raw"] != len(raw):
        problems.append(f"{len(raw) - integrity['distinct_in_raw']} duplicate rows in raw")
    if integrity["quarantined"]:
        problems.append(f"{integrity['quarantined']} messages quarantined")
    for topic, t in topics.items():
        if t["missing"] or t["unexpected"] or t["duplicates"]:
            problems.append(
                f"topic {topic}: {t['missing']} missing, {t['unexpected']} unexpected, "
                f"{t['duplicates']} duplicated of {t['expected']} expected"
            )
    integrity["ok"] = not problems
    last_commit = float(measured["committed"].max()) if len(measured) else None
    return {
        "raw": raw,
        "measured": measured,
        "raw_latency": raw_lat,
        "dist": timed,
        "dist_latency": dist_lat,
        "integrity": integrity,
        "problems": problems,
        "throughput": _throughput(outcome, len(measured), last_commit),
    }


def external_metrics(outcome: SegmentOutcome) -> dict[str, Any]:
    """The numbers of a broker seen from outside: its outputs, timed by the ids they carry.

    There is no raw table: an alert counts as processed when it first
    appears in any output topic (``measured`` holds that first arrival as
    ``committed``). Integrity is what can be known from outside: every output
    id was sent and readable, and the broker's lag came back to zero;
    duplicates are counted, not failed.
    """
    arrivals = _arrivals(outcome)
    timed, dist_lat = _timed(arrivals, outcome.measured_from)
    first = timed.groupby("alert_id", as_index=False).agg(
        sent_us=("sent_us", "first"), arrival_us=("arrival_us", "min")
    )
    measured = pd.DataFrame(
        {
            "alert_id": first["alert_id"],
            "sent_us": first["sent_us"],
            "committed": first["arrival_us"] / 1e6,
        }
    )
    topics: dict[str, dict[str, Any]] = {}
    for topic in outcome.distribution:
        rows = arrivals[arrivals["topic"] == topic]
        ids = rows["alert_id"].dropna()
        distinct = int(ids.nunique())
        topics[topic] = {
            "filter": outcome.distribution[topic],
            "received": len(rows),
            "distinct": distinct,
            "duplicates": len(ids) - distinct,
            # An id read, but never sent: no send time was found for it.
            "unknown": int(rows.loc[ids.index, "sent_us"].isna().sum()),
            "unreadable": len(rows) - len(ids),
        }
    last = outcome.lag[-1] if outcome.lag else None
    integrity, problems = _delivery(
        outcome,
        in_kafka=last[2] if last else None,
        consumed=last[3] if last else None,
        final_lag=last[4] if last else None,
        topics=topics,
    )
    if last is not None and last[4]:
        problems.append(f"the broker's lag ended at {last[4]}, not 0")
    if not topics:
        problems.append("the broker under test wrote no output topic")
    for topic, t in topics.items():
        if t["unknown"]:
            problems.append(f"topic {topic}: {t['unknown']} messages carry ids never sent")
        if t["unreadable"]:
            problems.append(
                f"topic {topic}: {t['unreadable']} messages whose alert id could not be read "
                "(check --id-format and --id-field; the timing log says why)"
            )
    integrity["ok"] = not problems
    last_arrival = float(measured["committed"].max()) if len(measured) else None
    # A broker that filters writes a few of the alerts it read: once it has drained its
    # input, it processed every measured alert by its last output.
    processed = sum(lo["alerts"] for lo in outcome.loads) if outcome.drained else len(measured)
    return {
        "raw": measured.iloc[0:0],
        "measured": measured,
        "raw_latency": pd.Series(dtype=float),
        "dist": timed,
        "dist_latency": dist_lat,
        "integrity": integrity,
        "problems": problems,
        "throughput": _throughput(outcome, processed, last_arrival),
    }


def _visit_verdict(
    scenario: Scenario, outcome: SegmentOutcome, measured: pd.DataFrame
) -> dict[str, Any]:
    verdict: dict[str, Any] = {
        "visit_alerts": scenario.visit_alerts,
        "visit_interval_s": scenario.visit_interval,
        "rubin_scale": scenario.visit_alerts >= 10_000 and scenario.visit_interval <= 37.0,
    }
    if scenario.schedule != "visits" or scenario.kind != "stream":
        return {**verdict, "held": None, "note": "not a visits scenario"}
    visits = [v for lo in outcome.loads for v in lo["visits"]]
    worst = 0.0
    for v in visits:
        due = v["due"]
        mask = (measured["sent_us"] >= due * 1e6) & (
            measured["sent_us"] < (due + scenario.visit_interval) * 1e6
        )
        if mask.any():
            worst = max(worst, float(measured.loc[mask, "committed"].max()) - due)
    lags = [row[4] for row in outcome.lag if row[4] is not None]
    held = bool(visits) and worst <= scenario.visit_interval and outcome.drained
    return {
        **verdict,
        "visits": len(visits),
        # alertbench's broker: to raw; another: to its first output of each alert.
        "measured_to": "raw" if outcome.broker_kind == "alertbench" else "first output",
        "worst_visit_in_raw_s": round(worst, 3),
        "max_lag": max(lags, default=0),
        "held": held,
    }


def results(
    info: dict[str, Any], scenario: Scenario, outcomes: list[SegmentOutcome], *, run: Path
) -> dict[str, Any]:
    """Compute results.json and write the series of the run's first (main) segment."""
    t0 = info.pop("t0")
    main = outcomes[0]
    m = segment_metrics(main, t0)
    series = run / "series"
    loads = main.loads
    visits = [v for lo in loads for v in lo["visits"]]
    _write_csv(
        series / "visits.csv",
        ["visit", "due_s", "alerts", "acked", "lateness_s", "send_s", "ack_s"],
        [{**v, "due_s": round(v["due"] - t0, 3)} for v in visits],
    )
    _write_csv(
        series / "lag.csv", ["t_s", "produced", "end_offset", "processed_offset", "lag"], main.lag
    )
    bats = batches(main.broker_out / "progress.jsonl", t0)
    _write_csv(
        series / "batches.csv", ["t_s", "query", "batch", "rows", "rows_per_s", "batch_ms"], bats
    )
    _write_csv(
        series / "resources.csv", ["t_s", "component", "cpu_percent", "rss_mb"], main.resources
    )
    measured = m["measured"]
    # Another broker has no raw table: the series stays empty.
    in_raw = measured if main.broker_kind == "alertbench" else measured.iloc[0:0]
    _write_csv(
        series / "latency_raw.csv",
        ["alert_id", "sent_s", "latency_s"],
        zip(
            in_raw["alert_id"],
            (in_raw["sent_us"] / 1e6 - t0).round(6),
            m["raw_latency"].round(6),
            strict=True,
        ),
    )
    dist = m["dist"]
    _write_csv(
        series / "latency_dist.csv",
        ["alert_id", "topic", "sent_s", "latency_s"],
        zip(
            dist["alert_id"],
            dist["topic"],
            (dist["sent_us"] / 1e6 - t0).round(6),
            m["dist_latency"].round(6),
            strict=True,
        ),
    )
    outputs, per_second = output_rates(dist, t0)
    _write_csv(series / "topics.csv", ["t_s", "topic", "messages"], per_second)
    if main.steps:
        _write_csv(
            series / "steps.csv",
            ["step", "rate", "produced_per_s", "processed_per_s", "lag_start", "lag_end", "held"],
            main.steps,
        )

    failures = list(m["problems"])
    sweep = []
    for o in outcomes:
        mo = m if o is main else segment_metrics(o, t0)
        if o is not main:
            failures += [f"variant {o.params}: {p}" for p in mo["problems"]]
        sweep.append(
            {
                **o.params,
                "alerts": mo["throughput"]["alerts"],
                "alerts_per_s": mo["throughput"]["alerts_per_s"],
                "p99_s": (summary(mo["dist_latency"]) or {}).get("p99"),
            }
        )
    if scenario.kind == "scaling":
        _write_csv(
            series / "sweep.csv",
            ["partitions", "producers", "cores", "alerts", "alerts_per_s", "p99_s"],
            sweep,
        )

    res_rows = pd.DataFrame(main.resources, columns=["t_s", "component", "cpu", "rss"])
    resources = {
        comp: {
            "cpu_mean": round(float(g["cpu"].mean()), 1),
            "cpu_max": round(float(g["cpu"].max()), 1),
            "rss_max_mb": round(float(g["rss"].max()), 1),
        }
        for comp, g in res_rows.groupby("component")
    }
    total_bytes = sum(lo["bytes"] for lo in loads)
    started = min((lo["started"] for lo in loads), default=t0)
    finished = max((lo["finished"] for lo in loads), default=t0)
    seconds = max(finished - started, 1e-9)
    sending = max(sending_seconds(visits) or seconds, 1e-9)
    alerts = sum(lo["alerts"] for lo in loads)
    data_batches = [b for b in bats if b["rows"]]
    dist_lat = m["dist_latency"]
    lat_source = dist_lat if len(dist_lat) else m["raw_latency"]
    share = share_within(lat_source, RUBIN_LATENCY_S)
    dist_summary = summary(dist_lat)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **info,
        "status": "passed" if not failures else "failed",
        "failures": failures,
        "duration_s": round(time.time() - t0, 1),
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "kind": scenario.kind,
        },
        "producer": {
            "alerts": alerts,
            "failed": sum(lo["failures"] for lo in loads),
            "mb": round(total_bytes / 1e6, 2),
            "seconds": round(seconds, 3),
            "sending_s": round(sending, 3),
            "alerts_per_s": round(alerts / sending, 1),
            "mb_per_s": round(total_bytes / sending / 1e6, 2),
            "average_alerts_per_s": round(alerts / seconds, 1),
            "average_mb_per_s": round(total_bytes / seconds / 1e6, 2),
            "visits": len(visits),
            "visit_send_s": summary(v["send_s"] for v in visits),
            "lateness_s": summary(v["lateness_s"] for v in visits),
        },
        "kafka": {
            "topic": main.topic,
            "partitions": main.partitions,
            "end_offset": m["integrity"]["in_kafka"],
            "max_lag": max((r[4] for r in main.lag if r[4] is not None), default=None),
            "final_lag": main.lag[-1][4] if main.lag else None,
        },
        "spark": {
            "batches": len(data_batches),
            "input_rows": sum(b["rows"] for b in data_batches),
            "rows_per_s": summary(b["rows_per_s"] for b in data_batches),
            "batch_s": summary(b["batch_ms"] / 1e3 for b in data_batches),
        }
        if main.broker_kind == "alertbench"
        else None,
        "latency": {"raw": summary(m["raw_latency"]), "distribution": dist_summary},
        "outputs": outputs,
        "throughput": m["throughput"],
        "resources": resources,
        "integrity": m["integrity"],
        "verdicts": {
            "rubin_visit": _visit_verdict(scenario, main, measured),
            "rubin_latency": {
                "budget_s": RUBIN_LATENCY_S,
                "measured_to": "distribution" if len(dist_lat) else "raw",
                "share": round(share, 5) if share is not None else None,
                "required_share": RUBIN_LATENCY_SHARE,
                "met": share is not None and share >= RUBIN_LATENCY_SHARE,
            },
            "p99_target": {
                "target_s": P99_TARGET_S,
                "p99_s": dist_summary["p99"] if dist_summary else None,
                "met": bool(dist_summary and dist_summary["p99"] <= P99_TARGET_S),
            },
        },
        "sampler_errors": [e for o in outcomes for e in o.sampler_errors],
    }
    out["warnings"] = clock_warnings(out.get("clock") or {}, dist_summary)
    if main.steps:
        held = [s["rate"] for s in main.steps if s["held"]]
        out["steps"] = main.steps
        out["max_held_rate"] = max(held, default=None)
    if scenario.kind == "scaling":
        out["sweep"] = sweep
    from alertbench.bench.capacity import capacity_model

    out["capacity"] = capacity_model(out)
    return out


def output_rates(
    timed: pd.DataFrame, t0: float
) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, int]]]:
    """Each output topic's measured arrivals: a summary, and messages per second of the run.

    Returns
    -------
    dict
        ``{topic: {messages, first_s, last_s, messages_per_s}}``, times in
        seconds since ``t0``; the rate is over the topic's own span of arrivals.
    list of (int, str, int)
        ``(t_s, topic, messages)`` for every second in which the topic received any.
    """
    found: dict[str, dict[str, Any]] = {}
    rows: list[tuple[int, str, int]] = []
    for topic, group in timed.groupby("topic"):
        at = group["arrival_us"] / 1e6 - t0
        span = float(at.max() - at.min())
        found[str(topic)] = {
            "messages": len(group),
            "first_s": round(float(at.min()), 3),
            "last_s": round(float(at.max()), 3),
            "messages_per_s": round(len(group) / span, 1) if span > 0 else None,
        }
        counts = at.astype("int64").value_counts().sort_index()
        rows += [(int(sec), str(topic), int(n)) for sec, n in counts.items()]
    return found, sorted(rows)


CLOCK_SHARE = 0.05


def clock_warnings(clock: dict[str, Any], latency: dict[str, Any] | None) -> list[str]:
    """A warning when the timing host's clock is off by more than 5% of the p50 latency.

    Arrivals are stamped on the timing host's clock and sends on this one's,
    so an offset adds to (or takes from) every latency.
    """
    offset = clock.get("offset_s") or 0.0
    if not latency or latency.get("p50") is None or clock.get("timing_host") is None:
        return []
    if abs(offset) > CLOCK_SHARE * latency["p50"]:
        return [
            f"the clock of {clock['timing_host']} is {offset * 1e3:+.1f} ms off this machine's, "
            f"more than {CLOCK_SHARE:.0%} of the p50 latency ({latency['p50']:.3f} s): "
            "every latency carries that error. Synchronise the clocks (chrony, NTP)."
        ]
    return []


def sending_seconds(visits: list[dict[str, Any]]) -> float:
    """Seconds in which the producers were sending, without the idle gaps between visits.

    The union of each visit's span from its first send (its due time plus its
    lateness) to its last acknowledgement; zero without visits.
    """
    spans = sorted(
        (v["due"] + v["lateness_s"], v["due"] + v["lateness_s"] + v["ack_s"]) for v in visits
    )
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def write_results(run: Path, results: dict[str, Any]) -> Path:
    """Write ``run/results.json``."""
    path = run / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def keep_logs(run: Path) -> None:
    """Copy the run's logs (bench processes, Kafka nodes) out of ``work/`` into ``logs/``."""
    logs = run / "logs"
    logs.mkdir(exist_ok=True)
    work = run / "work"
    # Kafka's data segments end in .log too: only files in a logs/ folder are logs.
    for f in [*(work / "logs").glob("*.log"), *(work / "kafka").rglob("logs/*.log")]:
        if f.is_file() and f.stat().st_size < 50 * 2**20:
            name = f.name if f.parent == work / "logs" else f"kafka-{f.parent.name}-{f.name}"
            shutil.copy2(f, logs / name)
