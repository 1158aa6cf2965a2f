"""The report's plots: a section of matplotlib figures for each series/*.csv of a run.

Every figure is a PNG inlined as a base64 data URI, so the report stays one file. A
series that is missing or empty gives its section "not measured" instead of a plot.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alertbench.bench.markup import not_measured, section, table
from alertbench.bench.stats import summary
from alertbench.bench.values import LATENCY_SHARE

#: Ids of the plot sections, in report order.
PLOTS = ("throughput", "lag", "latency", "visits", "resources", "scaling", "steps")

# A scatter of millions of points takes minutes to draw and shows no more than this.
_MAX_SCATTER = 20_000

Draw = Callable[[Axes], None]


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
        return section(section_id, title, [not_measured()])
    body = [f'<img src="{escape(_png(panels))}" alt="{escape(title)}">']
    body.extend(not_measured(what) for what in missing)
    body.extend(extra)
    return section(section_id, title, body)


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
    null = _series(run, "ceiling_steps", ["step", "produced_per_s", "processed_per_s"])

    def draw(ax: Axes) -> None:
        if "rate" in steps:
            ax.plot(steps["rate"], steps["rate"], "k--", lw=0.8, label="asked")
        x = steps["rate"] if "rate" in steps else steps["step"]
        ax.plot(x, steps["produced_per_s"], "o-", label="produced")
        ax.plot(x, steps["processed_per_s"], "s-", label="processed by the broker")
        if null is not None and "rate" in null:
            ax.plot(
                null["rate"], null["processed_per_s"], "^:", label="processed by the null broker"
            )
        held = _held(steps)
        lost = steps[~held]
        ax.plot(x[~held], lost["processed_per_s"], "rx", ms=10, label="not held (see verdict)")
        _label(ax, "Produced vs processed per step", "asked alerts/s", "alerts/s", legend=True)

    extra = [_frame_table(steps)]
    if null is not None:
        extra += [
            "<p>The null broker (reads and commits only), same steps:</p>",
            _frame_table(null),
        ]
    return _plot_section("steps", "Max-throughput steps", [draw], extra=extra)


def _held(steps: pd.DataFrame) -> pd.Series:
    """Each step's held flag: its verdict where recorded, else the old held column."""
    if "verdict" in steps:
        return steps["verdict"].astype(str) == "held"
    if "held" in steps:
        return steps["held"].astype(str).str.lower().isin(["true", "1", "yes"])
    return pd.Series(True, index=steps.index)


def _frame_table(frame: pd.DataFrame) -> str:
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False)]
    return table([str(c) for c in frame.columns], rows)


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one, so it formats like a results.json value."""
    return value.item() if isinstance(value, np.generic) else value


def _shade_faults(ax: Axes, faults: list[dict[str, Any]]) -> None:
    """Each fault's window, from its injection to its heal, shaded and named."""
    for k, f in enumerate(faults):
        if f.get("injected_s") is None:
            continue
        end = max(f.get("healed_s") or f["injected_s"], f["injected_s"] + 0.3)
        color = ("#fdb863", "#b2abd2", "#a6dba0")[k % 3]
        ax.axvspan(f["injected_s"], end, color=color, alpha=0.45, label=f["name"])


def faults_section(run: Path, results: dict[str, Any]) -> str:
    """The faults of a run: a timeline with each fault's window shaded, and what each cost.

    Latency to raw and lag over the run, each fault shaded from its injection
    to its heal; a table of the stalls, the first commit after the heal and
    the recovery, beside the loss. An empty string when the run injected none.
    """
    section_ = results.get("faults")
    if not section_:
        return ""
    faults = section_.get("faults") or []
    latency = _series(run, "latency_raw", ["sent_s", "latency_s"])
    lag = _series(run, "lag", ["t_s", "lag"])
    panels: list[Draw] = []
    if latency is not None:

        def draw_latency(ax: Axes) -> None:
            points = _sampled(latency)
            ax.plot(points["sent_s"], points["latency_s"], ".", ms=2, color="#4393c3")
            _shade_faults(ax, faults)
            _label(ax, "Latency to raw around the faults", "sent at (s)", "latency (s)",
                   legend=True)  # fmt: skip

        panels.append(draw_latency)
    if lag is not None:

        def draw_lag(ax: Axes) -> None:
            ax.plot(lag["t_s"], lag["lag"], "-", color="#d6604d")
            _shade_faults(ax, faults)
            _label(ax, "Lag around the faults", "t (s)", "messages behind", legend=True)

        panels.append(draw_lag)
    rows = []
    for f in faults:
        stall = f.get("largest_commit_stall_s") or {}
        acks = f.get("largest_ack_stall_s") or {}
        rec = f.get("recovery") or {}
        rows.append(
            [
                f.get("label", f["name"]),
                f.get("injected_s"),
                f.get("healed_s"),
                acks.get("fault"),
                stall.get("baseline"),
                stall.get("fault"),
                f.get("first_commit_after_heal_s"),
                rec.get("back_at_visit") if rec.get("judged") else rec.get("why", "—"),
                f.get("error") or "",
            ]
        )
    header = [
        "fault", "struck (s)", "healed (s)", "ack stall (s)", "commit stall before (s)",
        "commit stall (s)", "first commit after heal (s)", "back at visit", "error",
    ]  # fmt: skip
    aged = section_.get("aged_out") or {}
    loss = table(
        None,
        [
            ["acknowledged", section_.get("acked")],
            ["acknowledged, lost", section_.get("acked_lost")],
            ["never acknowledged", section_.get("never_acked")],
            ["aged out of retention", aged.get("records", 0)],
            ["duplicates in raw / science", " / ".join(
                str(section_.get("duplicates", {}).get(k, "—")) for k in ("raw", "science")
            )],
            ["quarantined", section_.get("quarantined")],
            ["visits missing 98% in 60 s", ", ".join(
                map(str, section_.get("visits_missing_98pct_in_60s") or [])) or "none"],
            ["pass rules", section_.get("pass_rules")],
        ],
    )  # fmt: skip
    extra = [table(header, rows), loss]
    return _plot_section("faults", "Faults", panels, extra=extra)


def plot_sections(run: Path) -> list[str]:
    """The HTML sections of ``run``'s plots, in the order of `PLOTS`.

    Parameters
    ----------
    run : Path
        A run directory; each ``series/*.csv`` may be missing or empty.

    Returns
    -------
    list of str
        One ``<section>`` per id of `PLOTS`.
    """
    return [
        _throughput(run),
        _lag(run),
        _latency(run),
        _visits(run),
        _resources(run),
        _scaling(run),
        _steps(run),
    ]


def science_section(results: dict[str, Any]) -> str:
    """The science the broker ran: its profile, and each module's cost, as a table and a plot.

    A bar per module of its milliseconds per alert given to it; the table adds
    rows, rows computed, failed batches and the once-per-worker setup.
    """
    science = results.get("science")
    if not isinstance(science, dict):
        return section("science", "Science", [not_measured("no science recorded")])
    modules = science.get("modules") or {}
    header = [
        "module",
        "alerts given",
        "computed",
        "seconds",
        "ms per alert",
        "ms per computed",
        "failed batches",
        "setup (s)",
    ]
    keys = (
        "rows",
        "processed",
        "seconds",
        "ms_per_alert",
        "ms_per_processed",
        "failed_batches",
        "setup_seconds",
    )
    rows = [[name, *((m or {}).get(k) for k in keys)] for name, m in modules.items()]
    body = [
        f"<p>Profile: <b>{escape(str(science.get('profile')))}</b>; "
        f"{escape(str(science.get('ms_per_input_alert')))} ms of science per alert read.</p>",
        table(header, rows),
    ]
    costs = {n: m.get("ms_per_alert") for n, m in modules.items() if m.get("ms_per_alert")}
    if costs:

        def draw(ax: Axes) -> None:
            ax.barh(list(costs), list(costs.values()))
            ax.invert_yaxis()
            _label(ax, "Science cost per module", "ms per alert", "")

        body.insert(1, f'<img src="{escape(_png([draw]))}" alt="science cost per module">')
    notes = science.get("notes") or []
    if notes:
        body.append("<ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>")
    return section("science", "Science", body)
