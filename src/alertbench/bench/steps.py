"""Judging max-throughput's steps: was a rate held, and what did each component pay for it.

A step is *held* when, over the step, the broker processed at least 95% of
what was produced and its backlog grew by no more than a few seconds of
input (``held_growth_s``), both measured from the step's own start; a step
whose producers sent less than 95% of the asked alerts is
*producer-limited*, never held, since it did not offer the rate it names.

A micro-batching broker's backlog is a saw-tooth: it grows while a batch
runs and drops when the batch commits. Comparing the backlog at two arbitrary
instants measures the tooth, not the trend, by up to a whole batch. So the
step is measured between the lowest backlog near its start and the lowest
near its end (each within ``edge_s``): two points in the same phase of the
saw-tooth, where a broker that keeps up shows no growth at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: Share of the asked alerts the producers must send for a step to count.
PRODUCED_SHARE = 0.95
#: Share of the produced alerts the broker must process over the step.
PROCESSED_SHARE = 0.95

HELD = "held"
NOT_HELD = "not held"
PRODUCER_LIMITED = "producer-limited"


@dataclass(frozen=True)
class StepWindow:
    """The input and the broker's progress between two troughs of the backlog.

    Attributes
    ----------
    t_start, t_end : float
        The two sample times (seconds since the run's start).
    produced, processed : int
        Offsets appended to the input, and read by the broker, between them.
    lag_start, lag_end : int
        The backlog at each.
    """

    t_start: float
    t_end: float
    produced: int
    processed: int
    lag_start: int
    lag_end: int


def window(
    lag_rows: Iterable[Sequence[Any]], start_s: float, end_s: float, edge_s: float = 10.0
) -> StepWindow | None:
    """The step between its start's and its end's lowest backlog.

    Parameters
    ----------
    lag_rows : iterable of (t_s, produced, end_offset, processed_offset, lag)
        The lag sampler's rows (:class:`alertbench.bench.sampler.LagSampler`).
    start_s, end_s : float
        The step's first send and last acknowledgement, in the rows' time.
    edge_s : float
        How far into the step (and back from its end) a trough is looked
        for; at most a third of the step.

    Returns
    -------
    StepWindow or None
        None when the broker's progress is not known (no samples with a lag
        in the step, or only one).
    """
    rows = [r for r in lag_rows if start_s <= r[0] <= end_s and r[4] is not None]
    if len(rows) < 2:
        return None
    edge = min(edge_s, (end_s - start_s) / 3)
    head = [r for r in rows if r[0] <= start_s + edge] or rows[:1]
    tail = [r for r in rows if r[0] >= end_s - edge] or rows[-1:]
    first = min(head, key=lambda r: (r[4], r[0]))
    last = min(tail, key=lambda r: (r[4], -r[0]))
    if last[0] <= first[0]:
        first, last = rows[0], rows[-1]
    return StepWindow(
        t_start=float(first[0]),
        t_end=float(last[0]),
        produced=int(last[2] - first[2]),
        processed=int(last[3] - first[3]),
        lag_start=int(first[4]),
        lag_end=int(last[4]),
    )


def judge(
    rate: float,
    seconds: float,
    sent: int,
    win: StepWindow | None,
    *,
    growth_s: float,
) -> dict[str, Any]:
    """One step's verdict and why.

    Parameters
    ----------
    rate, seconds : float
        The asked rate and the step's length.
    sent : int
        Alerts the producers had acknowledged over the step.
    win : StepWindow or None
        The broker's progress over the step (:func:`window`); None when it
        cannot be known, which never holds.
    growth_s : float
        The backlog may grow by this many seconds of input at ``rate``.

    Returns
    -------
    dict
        ``verdict`` (``held``, ``not held`` or ``producer-limited``),
        ``held``, ``reason``, the shares and the allowed growth.
    """
    asked = rate * seconds
    produced_share = sent / asked if asked else 0.0
    allowance = int(rate * growth_s)
    out: dict[str, Any] = {
        "asked": round(asked),
        "sent": sent,
        "produced_share": round(produced_share, 4),
        "allowed_growth": allowance,
    }
    problems = []
    if produced_share < PRODUCED_SHARE:
        problems.append(
            f"the producers sent {produced_share:.1%} of the {asked:,.0f} alerts asked "
            f"(under {PRODUCED_SHARE:.0%}): they, not the broker, set this step's rate"
        )
    if win is None:
        out.update(processed_share=None, growth=None)
        problems.append("the broker's progress over the step is not known")
    else:
        share = win.processed / win.produced if win.produced else 0.0
        growth = win.lag_end - win.lag_start
        out.update(processed_share=round(share, 4), growth=growth)
        if share < PROCESSED_SHARE:
            problems.append(
                f"the broker processed {share:.1%} of the {win.produced:,} alerts produced "
                f"(under {PROCESSED_SHARE:.0%})"
            )
        if growth > allowance:
            problems.append(
                f"its backlog grew by {growth:,} (allowed: {allowance:,}, {growth_s:g} s of input)"
            )
    if not problems:
        verdict = HELD
        reason = (
            f"processed {out['processed_share']:.1%} of what was produced; backlog grew by "
            f"{out['growth']:,} (allowed {allowance:,})"
        )
    else:
        verdict = PRODUCER_LIMITED if produced_share < PRODUCED_SHARE else NOT_HELD
        reason = "; ".join(problems)
    return {**out, "verdict": verdict, "held": verdict == HELD, "reason": reason}


def cpu_per_alert(
    resource_rows: Iterable[Sequence[Any]], start_s: float, end_s: float, alerts: int
) -> dict[str, float | None]:
    """Milliseconds of CPU per alert of each component over ``[start_s, end_s]``.

    Parameters
    ----------
    resource_rows : iterable of (t_s, component, cpu_percent, rss_mb)
        The resource sampler's rows; each sample's percentage covers the time
        since that component's previous sample.
    start_s, end_s : float
        The step's span.
    alerts : int
        Alerts of the step.

    Returns
    -------
    dict
        ``{component: ms per alert}`` and ``total``; None without alerts.
    """
    last: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for t, name, cpu, _rss in resource_rows:
        before = last.get(name)
        last[name] = t
        if before is None or not (start_s < t <= end_s):
            continue
        seconds[name] = seconds.get(name, 0.0) + cpu / 100 * (t - before)
    if not alerts:
        return {**dict.fromkeys(seconds), "total": None}
    per = {k: round(v * 1e3 / alerts, 4) for k, v in seconds.items()}
    per["total"] = round(sum(seconds.values()) * 1e3 / alerts, 4)
    return per


def max_held(steps: list[dict[str, Any]]) -> float | None:
    """The highest rate held before the first step that was not."""
    best = None
    for step in steps:
        if not step["held"]:
            break
        best = step["rate"] if best is None else max(best, step["rate"])
    return best


def as_row(win: StepWindow | None) -> dict[str, Any]:
    """A window's fields for a step's record (empty when unknown)."""
    return asdict(win) if win is not None else {}
