"""Two runs side by side: their key metrics and how much each changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from alertbench.bench import results as results_layout
from alertbench.bench.values import LATENCY_SHARE, format_value, get, verdict_status

MISSING = "—"


@dataclass(frozen=True)
class Metric:
    """One compared metric.

    Attributes
    ----------
    label : str
        Its row label.
    value : callable
        Reads it from a results.json dict (None when absent).
    better : int
        +1 when higher is better, -1 when lower is, 0 when neither.
    """

    label: str
    value: Callable[[dict[str, Any]], Any]
    better: int = 0


def _path(path: str) -> Callable[[dict[str, Any]], Any]:
    return lambda results: get(results, path)


def _verdict(name: str, share: float | None = None) -> Callable[[dict[str, Any]], Any]:
    def read(results: dict[str, Any]) -> Any:
        value = get(results, f"verdicts.{name}")
        return None if value is None else verdict_status(value, share=share)

    return read


def broker_name(results: dict[str, Any]) -> str | None:
    """Which broker a run measured: alertbench's (and its mode), or another's command."""
    broker = get(results, "config.broker")
    if not isinstance(broker, dict):
        return None
    if broker.get("kind") == "external":
        return f"external: {broker.get('cmd') or 'already running'}"
    return f"alertbench ({broker.get('mode', '?')})"


METRICS: tuple[Metric, ...] = (
    Metric("status", _path("status")),
    Metric("scenario", _path("scenario.name")),
    Metric("broker", broker_name),
    Metric("science profile", _path("science.profile")),
    Metric("science ms per alert", _path("science.ms_per_input_alert"), -1),
    Metric("machine cores", _path("machine.cores")),
    Metric("producer alerts/s", _path("producer.alerts_per_s"), +1),
    Metric("producer MB/s", _path("producer.mb_per_s"), +1),
    Metric("throughput alerts/s", _path("throughput.alerts_per_s"), +1),
    Metric("latency raw p50 (s)", _path("latency.raw.p50"), -1),
    Metric("latency raw p99 (s)", _path("latency.raw.p99"), -1),
    Metric("latency distribution p50 (s)", _path("latency.distribution.p50"), -1),
    Metric("latency distribution p95 (s)", _path("latency.distribution.p95"), -1),
    Metric("latency distribution p99 (s)", _path("latency.distribution.p99"), -1),
    Metric("latency distribution max (s)", _path("latency.distribution.max"), -1),
    Metric("kafka max lag", _path("kafka.max_lag"), -1),
    Metric("spark batches", _path("spark.batches")),
    Metric("spark rows/s p50", _path("spark.rows_per_s.p50"), +1),
    Metric("broker CPU mean (%)", _path("resources.broker.cpu_mean"), -1),
    Metric("broker RSS max (MB)", _path("resources.broker.rss_max_mb"), -1),
    Metric("kafka CPU mean (%)", _path("resources.kafka.cpu_mean"), -1),
    Metric("verdict: visits held", _verdict("rubin_visit"), +1),
    Metric("verdict: 98% within 60 s", _verdict("rubin_latency", LATENCY_SHARE), +1),
    Metric("verdict: p99 <= 10 s", _verdict("p99_target"), +1),
    Metric("integrity ok", _path("integrity.ok"), +1),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _change(a: Any, b: Any) -> str:
    """B relative to A: a signed percentage for numbers, same/changed for anything else."""
    if a is None or b is None:
        return MISSING
    if _is_number(a) and _is_number(b):
        if a == 0:
            return "+0.0%" if b == 0 else MISSING
        return f"{(b - a) / abs(a) * 100:+.1f}%"
    return "same" if a == b else "changed"


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The key metrics of two runs side by side.

    Parameters
    ----------
    a, b : dict
        results.json dicts; ``b`` is compared against ``a``.

    Returns
    -------
    list of (str, str, str, str)
        One row per entry of `METRICS`, in order: label, A's value, B's value and
        the change: ``"+12.3%"`` for numbers (relative to A), ``"same"`` or
        ``"changed"`` otherwise. A missing value, and the change of a row with
        one, is ``"—"``; so is the change from zero to non-zero.
    """
    rows = []
    for metric in METRICS:
        value_a, value_b = metric.value(a), metric.value(b)
        rows.append(
            (metric.label, format_value(value_a), format_value(value_b), _change(value_a, value_b))
        )
    return rows


def _style(metric: Metric, a: Any, b: Any) -> str:
    """Green when B improved on A, red when it got worse, yellow when a state changed."""
    if metric.better == 0 or a is None or b is None or a == b:
        return ""
    # Numbers and yes/no verdicts have a direction (True > False); states like status do not.
    if all(isinstance(v, int | float) for v in (a, b)):
        return "green" if (b > a) == (metric.better > 0) else "red"
    return "yellow"


def render_compare(a_dir: Path, b_dir: Path, console: Console) -> None:
    """Print the key metrics of two runs side by side.

    Parameters
    ----------
    a_dir, b_dir : Path
        Run directories; ``b_dir`` is compared against ``a_dir``.
    console : rich.console.Console
        Where the table is printed.

    Raises
    ------
    FileNotFoundError
        When either directory holds no results.json.
    """
    a = results_layout.load(a_dir)
    b = results_layout.load(b_dir)
    # Text, not markup strings: a run id or status could hold "[", which rich would parse.
    table = Table(title="Run comparison")
    table.add_column("metric")
    table.add_column(Text(str(a.get("run_id") or Path(a_dir).name)), justify="right")
    table.add_column(Text(str(b.get("run_id") or Path(b_dir).name)), justify="right")
    table.add_column("change", justify="right")
    for metric, (label, value_a, value_b, change) in zip(METRICS, compare_table(a, b), strict=True):
        style = _style(metric, metric.value(a), metric.value(b))
        table.add_row(Text(label), Text(value_a), Text(value_b), Text(change, style=style))
    console.print(table)
