"""Two runs side by side: their key metrics, how much each changed, and whether that is real.

Either side may be one run directory or a ``bench run --repeat N`` folder:
with repeats, each figure is the median of the runs, and whether the two
differ is read from the runs' own spread (:mod:`alertbench.bench.repeats`).
Two single runs can be read against the noise measured by repeats of the
same scenario (``--noise FOLDER``): a change no larger than that figure's
run-to-run spread is marked as noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from alertbench.bench import repeats
from alertbench.bench import results as results_layout
from alertbench.bench.headlines import METRICS, Metric, is_number
from alertbench.bench.values import format_value

MISSING = "—"


def _change(a: Any, b: Any) -> str:
    """B relative to A: a signed percentage for numbers, same/changed for anything else."""
    if a is None or b is None:
        return MISSING
    if is_number(a) and is_number(b):
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


def render_compare(a_dir: Path, b_dir: Path, console: Console, noise: Path | None = None) -> None:
    """Print the key metrics of two runs side by side.

    Parameters
    ----------
    a_dir, b_dir : Path
        Run directories; ``b_dir`` is compared against ``a_dir``.
    console : rich.console.Console
        Where the table is printed.
    noise : Path, optional
        A ``--repeat`` folder of the same scenario: each change is marked
        ``noise`` when it is within that figure's run-to-run spread.

    Raises
    ------
    FileNotFoundError
        When either directory holds no results.json.
    """
    if repeats.is_repeats(a_dir) or repeats.is_repeats(b_dir):
        render_repeats(a_dir, b_dir, console)
        return
    a = results_layout.load(a_dir)
    b = results_layout.load(b_dir)
    # Text, not markup strings: a run id or status could hold "[", which rich would parse.
    table = Table(title="Run comparison")
    table.add_column("metric")
    table.add_column(Text(str(a.get("run_id") or Path(a_dir).name)), justify="right")
    table.add_column(Text(str(b.get("run_id") or Path(b_dir).name)), justify="right")
    table.add_column("change", justify="right")
    spread = repeats.load_figures(noise) if noise is not None else None
    if spread is not None:
        table.add_column("noise?")
    for metric, (label, value_a, value_b, change) in zip(METRICS, compare_table(a, b), strict=True):
        va, vb = metric.value(a), metric.value(b)
        cells = [
            Text(label),
            Text(value_a),
            Text(value_b),
            Text(change, style=_style(metric, va, vb)),
        ]
        if spread is not None:
            known = va is not None and vb is not None
            mark = repeats.noise(va, vb, spread.get(label)) if known else MISSING
            cells.append(Text(mark, style="bold" if mark == "beyond noise" else "dim"))
        table.add_row(*cells)
    console.print(table)
    if spread is None:
        console.print(
            "One run each: a change within a run's own spread cannot be told from noise; "
            "compare `bench run --repeat N` folders, or give one as --noise, to know."
        )
    else:
        console.print(
            Text(
                f"noise: a change no larger than the figure's run-to-run spread over the "
                f"repeats in {noise}."
            )
        )


def repeats_table(
    a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]
) -> list[tuple[str, str, str, str, str]]:
    """Two sets of repeats' figures side by side.

    Parameters
    ----------
    a, b : dict
        ``{label: figure}`` as :func:`alertbench.bench.repeats.figures` gives.

    Returns
    -------
    list of (str, str, str, str, str)
        Label, A's and B's median with its range, the change of the medians,
        and whether they differ by more than their spread.
    """
    rows = []
    for metric in METRICS:
        fa, fb = a.get(metric.label), b.get(metric.label)
        if fa is None and fb is None:
            continue
        rows.append(
            (
                metric.label,
                _ranged(fa),
                _ranged(fb),
                _change(fa and fa["median"], fb and fb["median"]),
                repeats.differ(fa, fb),
            )
        )
    return rows


def _ranged(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return MISSING
    if figure["n"] < 2:
        return format_value(figure["median"])
    low, high = format_value(figure["min"]), format_value(figure["max"])
    return f"{format_value(figure['median'])} ({low}–{high}, n={figure['n']})"


def render_repeats(a_dir: Path, b_dir: Path, console: Console) -> None:
    """Print two sets of repeats (or a run against repeats): medians, ranges, differ or not."""
    a, b = repeats.load_figures(a_dir), repeats.load_figures(b_dir)
    table = Table(title="Comparison of repeats: median (range)")
    for name, justify in (
        ("metric", "left"),
        (Path(a_dir).name, "right"),
        (Path(b_dir).name, "right"),
        ("change", "right"),
        ("differ?", "left"),
    ):
        table.add_column(Text(name), justify=justify)  # type: ignore[arg-type]
    for label, va, vb, change, verdict in repeats_table(a, b):
        style = "bold" if verdict == "differ" else "dim"
        table.add_row(Text(label), Text(va), Text(vb), Text(change), Text(verdict, style=style))
    console.print(table)
