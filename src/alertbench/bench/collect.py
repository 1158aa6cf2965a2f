"""Turn what a run recorded into results.json and the series CSVs.

Each segment's numbers come from `alertbench.bench.metrics`; here they become
the run's results and verdicts, and the main segment's series.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from alertbench.bench import openmetrics
from alertbench.bench.metrics import segment_metrics
from alertbench.bench.outcome import SegmentOutcome, batches, science_costs
from alertbench.bench.results import SCHEMA_VERSION
from alertbench.bench.scenario import Scenario
from alertbench.bench.stats import share_within, summary
from alertbench.bench.steps import PROCESSED_SHARE, PRODUCED_SHARE, max_held

RUBIN_LATENCY_S = 60.0
RUBIN_LATENCY_SHARE = 0.98
P99_TARGET_S = 10.0


def _write_csv(path: Path, columns: list[str], rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([r[c] for c in columns] if isinstance(r, dict) else r)


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
    # One visit has no next one to be late for: held means it was in raw before the next
    # would have been due, as a survey's next visit would be.
    meaning = (
        f"the visit was in raw within {scenario.visit_interval:g} s of its start, before "
        "the next visit would be due, and the broker drained"
        if len(visits) == 1
        else f"every visit was in raw within {scenario.visit_interval:g} s of its start, "
        "before the next was due, and the broker drained"
    )
    return {
        **verdict,
        "meaning": meaning,
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
    m = segment_metrics(main, t0, allow_aged_out=scenario.allow_aged_out)
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
    timed = pd.DataFrame(
        {
            "topic": dist["topic"].to_numpy(),
            "latency_s": m["dist_latency"].to_numpy(),
            "arrival_s": dist["arrival_us"].to_numpy() / 1e6,
        }
    )
    openmetrics.write(run / "metrics.om", run.name, t0, main, bats, timed)
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
    ceiling = next((o for o in outcomes if o.broker_kind == "null"), None)
    for name, o in (("steps", main), ("ceiling_steps", ceiling)):
        if o is not None and o.steps:
            _write_csv(series / f"{name}.csv", STEP_COLUMNS, [step_row(st) for st in o.steps])

    failures = list(m["problems"])
    sweep = []
    for o in outcomes:
        if o.broker_kind == "null":  # the ceiling: its steps are all it measures
            continue
        mo = m if o is main else segment_metrics(o, t0, allow_aged_out=scenario.allow_aged_out)
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
    if main.broker_kind == "alertbench":
        out["science"] = science_costs(main.broker_out)
        if out["science"] is not None:
            seconds = sum(c["seconds"] for c in out["science"]["modules"].values())
            in_raw = m["integrity"].get("in_raw") or 0
            out["science"]["ms_per_input_alert"] = (
                round(seconds * 1e3 / in_raw, 6) if in_raw else None
            )
    out["warnings"] = clock_warnings(out.get("clock") or {}, dist_summary)
    if main.steps:
        out["steps"] = main.steps
        out["settle"] = main.settle
        out["max_held_rate"] = max_held(main.steps)
        out["max_held_bound"] = bound_of(main.steps)
        out["held_rule"] = HELD_RULE
    if ceiling is not None:
        out["ceiling"] = ceiling_of(ceiling, out.get("max_held_rate"))
    if scenario.kind == "scaling":
        out["sweep"] = sweep
    if main.faults:
        from alertbench.bench.faults.measure import fault_results

        out["faults"], problems = fault_results(
            main,
            m,
            t0=t0,
            interval=scenario.visit_interval,
            allow_aged_out=scenario.allow_aged_out,
            recovery_visits=scenario.recovery_visits,
        )
        out["failures"] += [p for p in problems if p not in out["failures"]]
        out["status"] = "passed" if not out["failures"] else "failed"
    from alertbench.bench.capacity import capacity_model

    out["capacity"] = capacity_model(out)
    return out


#: steps.csv's columns: a step's record, its verdict and CPU per alert per component.
STEP_COLUMNS = [
    "step",
    "rate",
    "seconds",
    "produced_per_s",
    "processed_per_s",
    "lag_start",
    "lag_end",
    "growth",
    "allowed_growth",
    "produced_share",
    "processed_share",
    "verdict",
    "held",
    "reason",
    "extended",
    *(f"cpu_ms_{c}" for c in ("simulator", "kafka", "broker", "timing", "total")),
]

HELD_RULE = (
    f"held: the producers sent at least {PRODUCED_SHARE:.0%} of the asked alerts (else "
    f"producer-limited), and between the lowest backlog near the step's start and near its "
    f"end the broker processed at least {PROCESSED_SHARE:.0%} of what was produced and its "
    "backlog grew by at most held_growth_s of input; the run stops at the first step not held, "
    "and while every step holds, up to extend_steps more are run, each 25% faster"
)


def step_row(step: dict[str, Any]) -> dict[str, Any]:
    """A step's record as one row of steps.csv."""
    cpu = step.get("cpu_ms_per_alert") or {}
    row = {c: step.get(c) for c in STEP_COLUMNS if not c.startswith("cpu_ms_")}
    row.update({f"cpu_ms_{c}": cpu.get(c) for c in ("simulator", "kafka", "broker", "timing")})
    row["cpu_ms_total"] = cpu.get("total")
    return row


def bound_of(steps: list[dict[str, Any]]) -> str:
    """``found`` when a step was not held; else the highest held rate is a ``lower bound``."""
    return "found" if steps and not steps[-1]["held"] else "lower bound"


def ceiling_of(null: SegmentOutcome, held_rate: float | None) -> dict[str, Any]:
    """The null broker's steps, its highest held rate, and the broker's as a share of it."""
    best = max_held(null.steps)
    return {
        "broker": "null: reads the input and commits, nothing else",
        "steps": null.steps,
        "settle": null.settle,
        "max_held_rate": best,
        "max_held_bound": bound_of(null.steps),
        "ratio": round(held_rate / best, 4) if held_rate and best else None,
        "drained": null.drained,
    }


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
