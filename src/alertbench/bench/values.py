"""Read, judge and format results.json values, for the report and for comparing runs.

Kept out of the report so that comparing two runs imports neither matplotlib nor HTML.
"""

from __future__ import annotations

import math
from typing import Any

from alertbench.bench import results as results_layout

#: Rubin's latency requirement: this share of alerts distributed within this budget.
LATENCY_BUDGET_S = 60.0
LATENCY_SHARE = 0.98
P99_TARGET_S = 10.0


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
        numbers = [v for k, v in value.items() if k.startswith("share") and is_number(v)]
        value = numbers[0] if numbers else None
    if is_number(value) and share is not None:
        return bool(value >= share)
    return None


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float; a bool is not a number here."""
    return isinstance(value, int | float) and not isinstance(value, bool)
