"""One self-contained HTML report of a run: tables from results.json, plots from series/.

Every plot is a PNG inlined as base64, so ``report.html`` can be mailed or
archived alone: no external links, no JavaScript. A series that is missing or
empty gives its section "not measured" instead of a plot.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alertbench.bench import results as results_layout
from alertbench.bench.capacity import capacity_model
from alertbench.bench.stats import summary

#: Ids of the plot sections, in report order.
PLOTS = ("throughput", "lag", "latency", "visits", "resources", "scaling", "steps")

#: Rubin's latency requirement: this share of alerts distributed within this budget.
LATENCY_BUDGET_S = 60.0
LATENCY_SHARE = 0.98
P99_TARGET_S = 10.0

# A scatter of millions of points takes minutes to draw and shows no more than this.
_MAX_SCATTER = 20_000

Draw = Callable[[Axes], None]

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


# --- values -------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A results.json value as short text; ``"—"`` when missing.

    Parameters
    ----------
    value : Any
        None, bool, number, string, list or dict.

    Returns
    -------
    str
        Booleans as yes/no, integers with thousands separators, floats to about
        three significant digits (at most one decimal from 100 up), lists comma-joined
        and dicts as ``key=value`` pairs.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        # Trailing ".0" dropped as .3g does, so 150.0 and 40.0 read alike.
        return f"{value:,.1f}".removesuffix(".0") if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


def get(results: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of ``results``, or None when absent."""
    try:
        return results_layout.lookup(results, path)
    except KeyError:
        return None


def verdict_status(value: Any, *, share: float | None = None) -> bool | None:
    """Whether a verdict holds; None when it was not judged.

    Parameters
    ----------
    value : Any
        A verdict from results.json: a bool, a share (0-1), or a dict with a
        boolean ``ok``, ``held``, ``passed`` or ``met``, or with a ``share…`` number.
    share : float, optional
        The share a number must reach to hold (a share verdict without it is None).

    Returns
    -------
    bool or None
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        for key in ("ok", "held", "passed", "met"):
            if isinstance(value.get(key), bool):
                return value[key]
        numbers = [v for k, v in value.items() if k.startswith("share") and _is_number(v)]
        value = numbers[0] if numbers else None
    if _is_number(value) and share is not None:
        return bool(value >= share)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- html ---------------------------------------------------------------------------------


def _cell(value: Any, tag: str = "td") -> str:
    numeric = _is_number(value)
    text = escape(format_value(value))
    return f'<{tag} class="num">{text}</{tag}>' if numeric else f"<{tag}>{text}</{tag}>"


def _table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    parts = ["<table>"]
    if header:
        parts.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
    parts.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    parts.append("</table>")
    return "\n".join(parts)


def _section(section_id: str, title: str, body: Iterable[str]) -> str:
    return "\n".join(
        [f'<section id="{escape(section_id)}">', f"<h2>{escape(title)}</h2>", *body, "</section>"]
    )


def _not_measured(what: str = "") -> str:
    text = f"{what}: not measured" if what else "not measured"
    return f'<p class="missing">{escape(text)}</p>'


def _yes_no(flag: bool | None) -> str:
    if flag is None:
        return '<span class="missing">not judged</span>'
    return '<span class="yes">yes</span>' if flag else '<span class="no">no</span>'


# --- plots --------------------------------------------------------------------------------


def _png(panels: Sequence[Draw]) -> str:
    """One figure of ``panels`` side by side (three to a row), as a data URI."""
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.8 * ncols, 3.5 * nrows), layout="constrained")
    # Reports are rendered on headless machines: draw on an Agg canvas explicitly rather
    # than through pyplot, so importing this module never switches a user's backend.
    FigureCanvasAgg(fig)
    for i, draw in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        draw(ax)
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_section(
    section_id: str,
    title: str,
    panels: Sequence[Draw],
    missing: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> str:
    """A section with one figure of ``panels``; "not measured" when there are none."""
    if not panels:
        return _section(section_id, title, [_not_measured()])
    body = [f'<img src="{escape(_png(panels))}" alt="{escape(title)}">']
    body.extend(_not_measured(what) for what in missing)
    body.extend(extra)
    return _section(section_id, title, body)


def _series(run: Path, name: str, columns: Sequence[str]) -> pd.DataFrame | None:
    """``series/<name>.csv`` with ``columns`` numeric; None when absent, empty or unusable."""
    path = run / "series" / f"{name}.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    if any(c not in frame.columns for c in columns):
        return None
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=list(columns))
    return None if frame.empty else frame


def _sampled(frame: pd.DataFrame) -> pd.DataFrame:
    step = math.ceil(len(frame) / _MAX_SCATTER)
    return frame.iloc[::step] if step > 1 else frame


def _label(
    ax: Axes, title: str, xlabel: str, ylabel: str, *, legend: bool = False, counts: bool = False
) -> None:
    """Title and axis labels; ``counts`` when x is a count (visits, steps, cores)."""
    ax.set_title(title, fontsize=10)
    if counts:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=8)


def _throughput(run: Path) -> str:
    panels: list[Draw] = []
    missing = []
    batches = _series(run, "batches", ["t_s", "rows_per_s"])
    if batches is None:
        missing.append("batches.csv (processed rows/s)")
    else:

        def draw_batches(ax: Axes) -> None:
            groups = batches.groupby("query") if "query" in batches else [("rows", batches)]
            for query, rows in groups:
                ax.plot(rows["t_s"], rows["rows_per_s"], ".-", ms=3, label=str(query))
            _label(ax, "Processed rows/s per micro-batch", "t (s)", "rows/s", legend=True)

        panels.append(draw_batches)
    visits = _series(run, "visits", ["visit", "alerts"])
    if visits is None:
        missing.append("visits.csv (alerts per visit)")
    else:

        def draw_visits(ax: Axes) -> None:
            ax.bar(visits["visit"], visits["alerts"], label="sent", color="#9ecae1")
            if "acked" in visits:
                ax.plot(visits["visit"], visits["acked"], "k.", label="acked")
            _label(ax, "Producer alerts per visit", "visit", "alerts", legend=True, counts=True)

        panels.append(draw_visits)
    topics = _series(run, "topics", ["t_s", "messages"])
    if topics is not None:

        def draw_topics(ax: Axes) -> None:
            for topic, rows in topics.groupby("topic"):
                ax.plot(rows["t_s"], rows["messages"], ".-", ms=3, label=str(topic))
            _label(ax, "Output topics: messages/s", "t (s)", "messages/s", legend=True)

        panels.append(draw_topics)
    return _plot_section("throughput", "Throughput", panels, missing)


def _lag(run: Path) -> str:
    lag = _series(run, "lag", ["t_s", "lag"])
    panels: list[Draw] = []
    if lag is not None:

        def draw(ax: Axes) -> None:
            ax.plot(lag["t_s"], lag["lag"], "-", color="#d6604d")
            _label(ax, "Broker consumer lag", "t (s)", "messages behind")

        panels.append(draw)
    return _plot_section("lag", "Kafka lag", panels)


def _latency(run: Path) -> str:
    sets = {
        "raw": _series(run, "latency_raw", ["sent_s", "latency_s"]),
        "distribution": _series(run, "latency_dist", ["sent_s", "latency_s"]),
    }
    present = {name: frame for name, frame in sets.items() if frame is not None}
    missing = [f"latency {name}" for name, frame in sets.items() if frame is None]
    if not present:
        return _plot_section("latency", "Latency", [])

    def draw_hist(ax: Axes) -> None:
        for (name, frame), color in zip(present.items(), ("#4393c3", "#f4a582"), strict=False):
            values = frame["latency_s"].to_numpy()
            stats = summary(values) or {}
            quantiles = " / ".join(f"{stats[k]:.3g}" for k in ("p50", "p95", "p99"))
            ax.hist(values, bins=50, alpha=0.6, color=color, label=f"{name}: {quantiles} s")
            for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                ax.axvline(stats[key], color=color, ls=style)
        _label(ax, "Latency p50 — / p95 -- / p99 ··", "latency (s)", "alerts", legend=True)

    def draw_cdf(ax: Axes) -> None:
        for name, frame in present.items():
            values = np.sort(frame["latency_s"].to_numpy())
            ax.plot(values, np.arange(1, values.size + 1) / values.size, label=name)
        ax.axhline(LATENCY_SHARE, color="grey", ls="--", lw=0.8, label=f"{LATENCY_SHARE:.0%}")
        _label(ax, "Latency CDF", "latency (s)", "share of alerts", legend=True)

    def draw_over_time(ax: Axes) -> None:
        for name, frame in present.items():
            points = _sampled(frame)
            ax.plot(points["sent_s"], points["latency_s"], ".", ms=2, alpha=0.5, label=name)
        _label(ax, "Latency over the run", "sent at (s)", "latency (s)", legend=True)

    return _plot_section("latency", "Latency", [draw_hist, draw_cdf, draw_over_time], missing)


def _visits(run: Path) -> str:
    visits = _series(run, "visits", ["visit", "send_s", "lateness_s"])
    panels: list[Draw] = []
    if visits is not None:

        def draw_send(ax: Axes) -> None:
            ax.plot(visits["visit"], visits["send_s"], ".-")
            _label(ax, "Time to send each visit", "visit", "send (s)", counts=True)

        def draw_lateness(ax: Axes) -> None:
            ax.plot(visits["visit"], visits["lateness_s"], ".-", color="#d6604d")
            _label(ax, "Visit start lateness", "visit", "lateness (s)", counts=True)

        panels = [draw_send, draw_lateness]
    return _plot_section("visits", "Visits", panels)


def _resources(run: Path) -> str:
    usage = _series(run, "resources", ["t_s", "cpu_percent", "rss_mb"])
    panels: list[Draw] = []
    if usage is not None:
        groups = list(usage.groupby("component")) if "component" in usage else [("all", usage)]

        def panel(column: str, title: str, unit: str) -> Draw:
            def draw(ax: Axes) -> None:
                for component, rows in groups:
                    ax.plot(rows["t_s"], rows[column], label=str(component))
                _label(ax, title, "t (s)", unit, legend=True)

            return draw

        panels = [
            panel("cpu_percent", "CPU per component", "% of one core"),
            panel("rss_mb", "Memory per component", "RSS (MB)"),
        ]
    return _plot_section("resources", "Resources", panels)


def _scaling(run: Path) -> str:
    sweep = _series(run, "sweep", ["alerts_per_s"])
    if sweep is None:
        return _plot_section("scaling", "Scaling", [])
    params = [p for p in ("cores", "partitions", "producers") if p in sweep]
    for param in params:
        sweep[param] = pd.to_numeric(sweep[param], errors="coerce")
    # A sweep varies one parameter at a time around the scenario's values, which are
    # therefore the most common ones: each panel keeps the rows where only its parameter moved.
    baseline = {p: sweep[p].mode() for p in params}
    panels: list[Draw] = []
    for param in params:
        rows = sweep
        for other in params:
            if other != param and not baseline[other].empty:
                rows = rows[rows[other] == baseline[other].iloc[0]]
        rows = rows.dropna(subset=[param]).sort_values(param)
        if rows.empty:
            continue

        def draw(ax: Axes, param: str = param, rows: pd.DataFrame = rows) -> None:
            ax.plot(rows[param], rows["alerts_per_s"], "o-")
            _label(ax, f"Throughput vs {param}", param, "alerts/s", counts=True)

        panels.append(draw)
    return _plot_section("scaling", "Scaling", panels, extra=[_frame_table(sweep)])


def _steps(run: Path) -> str:
    steps = _series(run, "steps", ["step", "produced_per_s", "processed_per_s"])
    if steps is None:
        return _plot_section("steps", "Max-throughput steps", [])

    def draw(ax: Axes) -> None:
        if "rate" in steps:
            ax.plot(steps["step"], steps["rate"], "k--", lw=0.8, label="offered")
        ax.plot(steps["step"], steps["produced_per_s"], "o-", label="produced")
        ax.plot(steps["step"], steps["processed_per_s"], "s-", label="processed")
        if "held" in steps:
            held = steps["held"].astype(str).str.lower().isin(["true", "1", "yes"])
            lost = steps[~held]
            ax.plot(lost["step"], lost["processed_per_s"], "rx", ms=10, label="not held")
        _label(ax, "Produced vs processed per step", "step", "alerts/s", legend=True, counts=True)

    return _plot_section("steps", "Max-throughput steps", [draw], extra=[_frame_table(steps)])


def _frame_table(frame: pd.DataFrame) -> str:
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False)]
    return _table([str(c) for c in frame.columns], rows)


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one, so it formats like a results.json value."""
    return value.item() if isinstance(value, np.generic) else value


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
        _table(None, rows),
    ]
    return _section("summary", "Summary", body)


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
        ("Sampler errors", "sampler_errors"),
    ]
    rows = [(label, get(results, path)) for label, path in paths]
    config = [(f"config.{k}", v) for k, v in (results.get("config") or {}).items()]
    return _section("numbers", "Key numbers", [_table(None, rows), _table(None, config)])


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
    return _section("percentiles", "Percentiles", [_table(["", *keys], rows)])


def _resources_table(results: dict[str, Any]) -> str:
    usage = results.get("resources") or {}
    if not isinstance(usage, dict) or not usage:
        return _section("resource-use", "Resource use", [_not_measured()])
    keys = ("cpu_mean", "cpu_max", "rss_max_mb")
    rows = [[name, *((v or {}).get(k) for k in keys)] for name, v in usage.items()]
    header = ["component", "CPU mean (%)", "CPU max (%)", "RSS max (MB)"]
    return _section("resource-use", "Resource use", [_table(header, rows)])


def _integrity(results: dict[str, Any]) -> str:
    integrity = results.get("integrity")
    if not isinstance(integrity, dict):
        return _section("integrity", "Integrity", [_not_measured()])
    checks = [(k, v) for k, v in integrity.items() if k != "topics"]
    topics = integrity.get("topics") or {}
    # Topics are keyed by name; a list of dicts with a "topic" key reads the same.
    if isinstance(topics, list):
        topics = {str(t.get("topic", i)): t for i, t in enumerate(topics)}
    keys = ("expected", "received", "missing", "unexpected", "duplicates")
    rows = [[name, *((t or {}).get(k) for k in keys)] for name, t in topics.items()]
    body = [_table(None, checks)]
    body.append(_table(["topic", *keys], rows) if rows else _not_measured("distribution topics"))
    return _section("integrity", "Integrity", body)


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
        flag = verdict_status(value, share=share)
        if flag is None and name == "p99_target" and _is_number(p99):
            flag = p99 <= P99_TARGET_S
        details = format_value(value)
        if name == "p99_target" and p99 is not None:
            details = f"p99 = {format_value(p99)} s; {details}"
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(requirement)}</td>"
            f"<td>{_yes_no(flag)}</td><td>{escape(details)}</td></tr>"
        )
    header = "<tr><th>verdict</th><th>requirement</th><th>holds</th><th>details</th></tr>"
    return _section("verdicts", "Verdicts", ["<table>", header, *rows, "</table>"])


def _capacity(results: dict[str, Any]) -> str:
    capacity = results.get("capacity")
    body = []
    if not isinstance(capacity, dict):
        capacity = capacity_model(results)
        body.append('<p class="missing">Not in results.json: computed at report time.</p>')
    measured = capacity.get("measured") or {}
    body.append("<h3>Measured</h3>")
    body.append(_table(None, measured.items()))
    if capacity.get("missing"):
        body.append(_not_measured(", ".join(map(str, capacity["missing"]))))
    body.append("<h3>Needed per survey load</h3>")
    columns = [
        ("load", "name"),
        ("alerts/s", "alerts_per_s"),
        ("MB/s", "mb_per_s"),
        ("Spark cores (rate)", "spark_cores"),
        ("Spark cores per visit latency budget (s: cores)", "spark_cores_for_latency"),
        ("Kafka cores", "kafka_cores"),
        ("Kafka brokers", "kafka_brokers"),
        ("brokers by", "kafka_brokers_by"),
        ("source", "source"),
    ]
    loads = capacity.get("loads") or []
    body.append(_table([c for c, _ in columns], ([ld.get(k) for _, k in columns] for ld in loads)))
    body.append("<h3>Assumptions</h3>")
    assumptions = capacity.get("assumptions") or {}
    body.append(
        _table(
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
    return _section("capacity", "Capacity model", body)


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
        _capacity(results),
        _throughput(run),
        _lag(run),
        _latency(run),
        _visits(run),
        _resources(run),
        _scaling(run),
        _steps(run),
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>alertbench run {escape(run_id)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>alertbench run {escape(run_id)}</h1>",
            *sections,
            "</body></html>",
        ]
    )
    path = run / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
