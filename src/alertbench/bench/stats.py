"""Percentile summaries, the one shape every latency and duration is reported in."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def summary(values: Iterable[float]) -> dict[str, float] | None:
    """``{"count", "mean", "p50", "p95", "p99", "max"}`` of ``values``; None when empty.

    Percentiles use linear interpolation between order statistics (numpy's default).
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return None
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "count": int(arr.size),
        "mean": round(float(arr.mean()), 6),
        "p50": round(float(p50), 6),
        "p95": round(float(p95), 6),
        "p99": round(float(p99), 6),
        "max": round(float(arr.max()), 6),
    }


def share_within(values: Iterable[float], limit: float) -> float | None:
    """Fraction of ``values`` at most ``limit``; None when empty."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return None
    return float((arr <= limit).mean())
