"""One self-contained HTML report of a run: tables from results.json, plots from series/.

Every plot is a PNG inlined as base64, so ``report.html`` can be mailed or
archived alone: no external links, no JavaScript. A series that is missing or
empty gives its section "not measured" instead of a plot.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from alertbench.bench import results as results_layout
from alertbench.bench.capacity import capacity_model
from alertbench.bench.markup import not_measured, section, table
from alertbench.bench.plots import faults_section, plot_sections, science_section
from alertbench.bench.values import (
    LATENCY_BUDGET_S,
    LATENCY_SHARE,
    P99_TARGET_S,
    format_value,
    get,
    is_number,
    verdict_status,
)

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.passed, .yes { color: #17752b; font-weight: bold; }
.failed, .no { color: #b01c1c; font-weight: bold; }
.missing { color: #777; font-style: italic; }
img { max-width: 100%; }
"""


def _yes_no(flag: bool | None) -> str:
    if flag is None:
        return '<span class="missing">not judged</span>'
    return '<span class="yes">yes</span>' if flag else '<span class="no">no</span>'


# --- tables -------------------------------------------------------------------------------


def _summary(results: dict[str, Any]) -> str:
    status = str(results.get("status") or "unknown")
    failures = results.get("failures") or []
    rows = [
        ("Run", get(results, "run_id")),
        ("Scenario", get(results, "scenario.name")),
        ("Kind", get(results, "scenario.kind")),
        ("Description", get(results, "scenario.description")),
        ("Started", get(results, "started_at")),
        ("Duration (s)", get(results, "duration_s")),
        ("Machine cores", get(results, "machine.cores")),
        ("Memory (GB)", get(results, "machine.memory_gb")),
        ("Platform", get(results, "machine.platform")),
        ("Broker", get(results, "config.broker.kind")),
        ("Science profile", get(results, "science.profile")),
        ("Arrivals timed on", get(results, "clock.timing_host") or "this machine"),
        ("Its clock offset (s)", get(results, "clock.offset_s")),
        *((f"{name} version", v) for name, v in (results.get("versions") or {}).items()),
    ]
    warnings = results.get("warnings") or []
    body = [
        f'<p>Status: <span class="{escape(status)}">{escape(status)}</span></p>',
        "<ul>" + "".join(f"<li>{escape(format_value(f))}</li>" for f in failures) + "</ul>"
        if failures
        else "",
        "<p>Warnings:</p><ul>"
        + "".join(f"<li>{escape(format_value(w))}</li>" for w in warnings)
        + "</ul>"
        if warnings
        else "",
        table(None, rows),
    ]
    return section("summary", "Summary", body)


def _key_numbers(results: dict[str, Any]) -> str:
    paths = [
        ("Alerts acknowledged", "producer.alerts"),
        ("Alerts failed", "producer.failed"),
        ("MB acknowledged", "producer.mb"),
        ("Producer alerts/s while sending", "producer.alerts_per_s"),
        ("Producer MB/s while sending", "producer.mb_per_s"),
        ("Producer alerts/s, whole load", "producer.average_alerts_per_s"),
        ("Visits", "producer.visits"),
        ("Input topic", "kafka.topic"),
        ("Partitions", "kafka.partitions"),
        ("Max lag (messages)", "kafka.max_lag"),
        ("Final lag (messages)", "kafka.final_lag"),
        ("Spark batches", "spark.batches"),
        ("Spark input rows", "spark.input_rows"),
        ("Throughput alerts/s", "throughput.alerts_per_s"),
        ("Drain (s)", "throughput.drain_s"),
        ("Max held rate (alerts/s)", "max_held_rate"),
        ("Null broker's max held rate (alerts/s)", "ceiling.max_held_rate"),
        ("Max held rate / null broker's", "ceiling.ratio"),
        ("Held rule", "held_rule"),
        ("Settled at the first rate (s)", "settle.seconds"),
        ("Broker kept up when settled", "settle.steady"),
        ("Sampler errors", "sampler_errors"),
    ]
    rows = [(label, get(results, path)) for label, path in paths]
    config = [(f"config.{k}", v) for k, v in (results.get("config") or {}).items()]
    return section("numbers", "Key numbers", [table(None, rows), table(None, config)])


def _percentiles(results: dict[str, Any]) -> str:
    keys = ("count", "mean", "p50", "p95", "p99", "max")
    paths = [
        ("send → raw (s)", "latency.raw"),
        ("send → distribution (s)", "latency.distribution"),
        ("visit send (s)", "producer.visit_send_s"),
        ("visit lateness (s)", "producer.lateness_s"),
        ("batch duration (s)", "spark.batch_s"),
        ("batch rows/s", "spark.rows_per_s"),
    ]
    rows = []
    for label, path in paths:
        stats = get(results, path)
        if isinstance(stats, dict):
            rows.append([label, *(stats.get(k) for k in keys)])
        else:
            rows.append([label, "not measured", *([""] * (len(keys) - 1))])
    return section("percentiles", "Percentiles", [table(["", *keys], rows)])


def _resources_table(results: dict[str, Any]) -> str:
    usage = results.get("resources") or {}
    if not isinstance(usage, dict) or not usage:
        return section("resource-use", "Resource use", [not_measured()])
    keys = ("cpu_mean", "cpu_max", "rss_max_mb")
    rows = [[name, *((v or {}).get(k) for k in keys)] for name, v in usage.items()]
    header = ["component", "CPU mean (%)", "CPU max (%)", "RSS max (MB)"]
    return section("resource-use", "Resource use", [table(header, rows)])


def _integrity(results: dict[str, Any]) -> str:
    integrity = results.get("integrity")
    if not isinstance(integrity, dict):
        return section("integrity", "Integrity", [not_measured()])
    checks = [(k, v) for k, v in integrity.items() if k != "topics"]
    topics = integrity.get("topics") or {}
    # Topics are keyed by name; a list of dicts with a "topic" key reads the same.
    if isinstance(topics, list):
        topics = {str(t.get("topic", i)): t for i, t in enumerate(topics)}
    keys = ("expected", "received", "missing", "unexpected", "duplicates")
    rows = [[name, *((t or {}).get(k) for k in keys)] for name, t in topics.items()]
    body = [table(None, checks)]
    body.append(table(["topic", *keys], rows) if rows else not_measured("distribution topics"))
    return section("integrity", "Integrity", body)


def _verdicts(results: dict[str, Any]) -> str:
    verdicts = results.get("verdicts") or {}
    p99 = get(results, "latency.distribution.p99")
    specs = [
        (
            "rubin_visit",
            "Each visit in raw before the next is due, and the lag does not grow",
            None,
        ),
        (
            "rubin_latency",
            f"At least {LATENCY_SHARE:.0%} of alerts distributed within {LATENCY_BUDGET_S:g} s",
            LATENCY_SHARE,
        ),
        ("p99_target", f"p99 send → distribution at most {P99_TARGET_S:g} s", None),
    ]
    rows = []
    for name, requirement, share in specs:
        value = verdicts.get(name)
        if isinstance(value, dict) and value.get("meaning"):
            requirement = str(value["meaning"])
        flag = verdict_status(value, share=share)
        if flag is None and name == "p99_target" and is_number(p99):
            flag = p99 <= P99_TARGET_S
        details = format_value(value)
        if name == "p99_target" and p99 is not None:
            details = f"p99 = {format_value(p99)} s; {details}"
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(requirement)}</td>"
            f"<td>{_yes_no(flag)}</td><td>{escape(details)}</td></tr>"
        )
    header = "<tr><th>verdict</th><th>requirement</th><th>holds</th><th>details</th></tr>"
    return section("verdicts", "Verdicts", ["<table>", header, *rows, "</table>"])


def _capacity(results: dict[str, Any]) -> str:
    capacity = results.get("capacity")
    body = []
    if not isinstance(capacity, dict):
        capacity = capacity_model(results)
        body.append('<p class="missing">Not in results.json: computed at report time.</p>')
    measured = capacity.get("measured") or {}
    body.append("<h3>Measured</h3>")
    body.append(table(None, measured.items()))
    if capacity.get("missing"):
        body.append(not_measured(", ".join(map(str, capacity["missing"]))))
    body.append("<h3>Needed per survey load</h3>")
    columns = [
        ("load", "name"),
        ("alerts/s", "alerts_per_s"),
        ("MB/s", "mb_per_s"),
        ("science cores (profile's modules)", "science_cores"),
        ("Spark cores (rate)", "spark_cores"),
        ("Spark cores per visit latency budget (s: cores)", "spark_cores_for_latency"),
        ("Kafka cores", "kafka_cores"),
        ("Kafka brokers", "kafka_brokers"),
        ("brokers by", "kafka_brokers_by"),
        ("source", "source"),
    ]
    loads = capacity.get("loads") or []
    body.append(table([c for c, _ in columns], ([ld.get(k) for _, k in columns] for ld in loads)))
    per_profile = [
        (
            ld.get("name"),
            profile,
            p.get("science_ms_per_alert"),
            p.get("science_cores"),
            p.get("spark_cores"),
        )
        for ld in loads
        for profile, p in (ld.get("profiles") or {}).items()
    ]
    if per_profile:
        body.append("<h3>Needed per science profile</h3>")
        body.append(
            table(
                ["load", "profile", "science ms/alert", "science cores", "Spark cores"],
                per_profile,
            )
        )
    body.append("<h3>Assumptions</h3>")
    assumptions = capacity.get("assumptions") or {}
    body.append(
        table(
            ["assumption", "value", "why"],
            (
                (name, a.get("value"), a.get("why")) if isinstance(a, dict) else (name, a, "")
                for name, a in assumptions.items()
            ),
        )
    )
    notes = capacity.get("notes") or []
    if notes:
        body.append("<ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>")
    return section("capacity", "Capacity model", body)


# --- the report ---------------------------------------------------------------------------


def render_report(run: Path) -> Path:
    """Write ``run/report.html``: the run's tables and plots in one self-contained file.

    Parameters
    ----------
    run : Path
        A run directory (see `alertbench.bench.results`). ``results.json`` is
        required; each ``series/*.csv`` may be missing or empty, and its
        section then says "not measured".

    Returns
    -------
    Path
        The written ``report.html``.

    Raises
    ------
    FileNotFoundError
        When ``run/results.json`` does not exist.
    """
    run = Path(run)
    results = results_layout.load(run)
    run_id = format_value(results.get("run_id") or run.name)
    sections = [
        _summary(results),
        _verdicts(results),
        _key_numbers(results),
        _percentiles(results),
        _integrity(results),
        _resources_table(results),
        science_section(results),
        _capacity(results),
        faults_section(run, results),
        *plot_sections(run),
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>alertbench run {escape(run_id)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>alertbench run {escape(run_id)}</h1>",
            *filter(None, sections),
            "</body></html>",
        ]
    )
    path = run / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
