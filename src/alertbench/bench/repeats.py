"""Repeated runs of one scenario: each headline figure's median and spread.

On a machine whose figures move by a third from one hour to the next, one
run proves little. ``bench run --repeat N`` runs the scenario N times and
writes ``repeats.json`` beside the runs: for every headline figure (the
metrics ``bench compare`` shows) its values, median, range and spread.
``bench compare`` then says whether two configurations differ by more than
their own spread: they differ when their ranges do not overlap.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from alertbench.bench import results as results_layout
from alertbench.bench.headlines import METRICS, Metric, is_number

REPEATS_FILE = "repeats.json"


def figures(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each numeric headline figure over ``runs`` (results.json dicts).

    Returns
    -------
    dict
        ``{label: {values, n, median, min, max, spread}}``; ``spread`` is the
        range over the median (None when the median is 0). Figures no run
        measured are left out.
    """
    found = {}
    for metric in METRICS:
        values = [metric.value(r) for r in runs]
        numbers = [v for v in values if is_number(v)]
        if not numbers:
            continue
        median = statistics.median(numbers)
        low, high = min(numbers), max(numbers)
        found[metric.label] = {
            "values": values,
            "n": len(numbers),
            "median": median,
            "min": low,
            "max": high,
            "spread": round((high - low) / abs(median), 4) if median else None,
        }
    return found


def summarise(run_dirs: list[Path]) -> dict[str, Any]:
    """The repeats' summary: which runs, their statuses, and every figure's spread."""
    runs = [results_layout.load(d) for d in run_dirs]
    return {
        "scenario": runs[0].get("scenario", {}).get("name") if runs else None,
        "repeats": len(runs),
        "runs": [str(d) for d in run_dirs],
        "statuses": [r.get("status") for r in runs],
        "status": "passed" if runs and all(r.get("status") == "passed" for r in runs) else "failed",
        "machine": runs[0].get("machine") if runs else None,
        "started_at": runs[0].get("started_at") if runs else None,
        "figures": figures(runs),
    }


def write(out: Path, name: str, run_dirs: list[Path]) -> Path:
    """Write ``out/<stamp>-<name>-x<N>/repeats.json``; returns its folder."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    folder = out / f"{stamp}-{name}-x{len(run_dirs)}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / REPEATS_FILE).write_text(json.dumps(summarise(run_dirs), indent=2) + "\n")
    return folder


def is_repeats(path: Path) -> bool:
    """Whether ``path`` is a repeats folder (it holds repeats.json)."""
    return (path / REPEATS_FILE).is_file()


def load_figures(path: Path) -> dict[str, dict[str, Any]]:
    """A repeats folder's figures, or one run directory's as repeats of one."""
    if is_repeats(path):
        return json.loads((path / REPEATS_FILE).read_text())["figures"]
    return figures([results_layout.load(path)])


def differ(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """Whether two figures differ by more than their spread.

    ``differ`` when their ranges do not overlap, ``within spread`` when they
    do, ``unknown`` with one run on each side (no spread is known) or a side
    that did not measure it.
    """
    if not a or not b:
        return "unknown"
    if a["n"] < 2 and b["n"] < 2:
        return "unknown: one run each"
    if a["max"] < b["min"] or b["max"] < a["min"]:
        return "differ"
    return "within spread"


def noise(a: Any, b: Any, figure: dict[str, Any] | None) -> str:
    """Whether B's change from A is within the run-to-run noise ``figure`` measured.

    ``figure`` is one figure of repeated runs of the same scenario (from
    :func:`figures`): its spread (range over median) is the noise. A change
    no larger than that, relative to A, is ``noise``; a larger one is
    ``beyond noise``; ``unknown`` when either value is not a number, or the
    repeats measured no spread (one run, or a median of 0).
    """
    if not (is_number(a) and is_number(b)) or not figure or figure.get("spread") is None:
        return "unknown"
    if figure["n"] < 2:
        return "unknown"
    if a == b:
        return "noise"
    if a == 0:
        return "beyond noise"
    return "noise" if abs(b - a) / abs(a) <= figure["spread"] else "beyond noise"


def metric_of(label: str) -> Metric | None:
    """The compare metric of a figure's label."""
    return next((m for m in METRICS if m.label == label), None)
