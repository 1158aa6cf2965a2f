"""A run's series as an OpenMetrics file, for any Prometheus to load after the run.

``metrics.om`` in the run's folder holds, with each sample's own time, what
the run served live under the same names: the broker's lag and the input's
end offsets (Kafka Exporter's ``_sum`` names), the alerts acknowledged, CPU
and memory per component, every micro-batch's rows and time, and the
latency of every alert timed in an output topic as a histogram (cumulative
at each second alerts arrived). Every series carries ``run``.
``promtool tsdb create-blocks-from openmetrics metrics.om DIR`` turns it into
blocks a Prometheus serves from its data folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from alertbench.bench.outcome import SegmentOutcome
from alertbench.observe.buckets import LATENCY_BUCKETS  # the live histograms' own


def _labels(values: dict[str, str]) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in values.items()) + "}"


def _family(
    name: str, kind: str, help_: str, samples: Iterable[tuple[str, dict[str, str], float, float]]
) -> Iterator[str]:
    """A family's lines: samples as (suffix, labels, value, epoch s), grouped by series."""
    rows = list(samples)
    if not rows:
        return
    yield f"# TYPE {name} {kind}"
    yield f"# HELP {name} {help_}"
    if kind != "histogram":  # a histogram's come as its points go: buckets, count, sum
        # OpenMetrics wants each series' samples together, in time order.
        rows.sort(key=lambda r: (r[0], sorted(r[1].items()), r[3]))
    for suffix, labels, value, at in rows:
        yield f"{name}{suffix}{_labels(labels)} {_number(value)} {at:.3f}"


def _number(value: float) -> str:
    """A value as OpenMetrics takes it, exactly (no rounding to a few digits)."""
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def lines(
    run: str, t0: float, seg: SegmentOutcome, batches: list[dict], dist: pd.DataFrame
) -> Iterator[str]:
    """The file's lines (``dist``: alert_id, topic, latency_s and the arrival in epoch s)."""
    base = {"run": run}
    group = {**base, "consumergroup": seg.group or "", "topic": seg.topic}
    lag = [r for r in seg.lag if r[4] is not None]
    yield from _family(
        "kafka_consumergroup_lag_sum",
        "gauge",
        "Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
        (("", group, r[4], t0 + r[0]) for r in lag),
    )
    yield from _family(
        "kafka_topic_partition_current_offset_sum",
        "gauge",
        "The input topic's end offsets, summed over partitions",
        (("", {**base, "topic": seg.topic}, r[2], t0 + r[0]) for r in seg.lag),
    )
    yield from _family(
        "alertbench_alerts_acked",
        "counter",
        "Alerts the simulator has had acknowledged by Kafka in this segment",
        (("_total", base, r[1], t0 + r[0]) for r in seg.lag),
    )
    yield from _family(
        "alertbench_process_cpu_percent",
        "gauge",
        "CPU of a component's processes, percent of one core",
        (("", {**base, "component": r[1]}, r[2], t0 + r[0]) for r in seg.resources),
    )
    yield from _family(
        "alertbench_process_resident_memory_bytes",
        "gauge",
        "Resident memory of a component's processes",
        (("", {**base, "component": r[1]}, r[3] * 2**20, t0 + r[0]) for r in seg.resources),
    )
    yield from _family(
        "alertbench_broker_batch_rows",
        "gauge",
        "Rows (alerts) of a query's micro-batch, at its start",
        (("", {**base, "query": b["query"]}, b["rows"], t0 + b["t_s"]) for b in batches),
    )
    yield from _family(
        "alertbench_broker_batch_duration_seconds_last",
        "gauge",
        "Wall time of a query's micro-batch, at its start",
        (
            ("", {**base, "query": b["query"]}, (b["batch_ms"] or 0) / 1000, t0 + b["t_s"])
            for b in batches
        ),
    )
    yield from _family(
        "alertbench_alert_latency_seconds",
        "histogram",
        "Seconds from an alert's send to its arrival in an output topic",
        _histogram(base, dist),
    )
    yield "# EOF"


def _histogram(
    base: dict[str, str], dist: pd.DataFrame
) -> Iterator[tuple[str, dict[str, str], float, float]]:
    """Cumulative buckets, count and sum per topic, at each whole second alerts arrived."""
    for topic, rows in dist.groupby("topic", sort=True):
        rows = rows.sort_values("arrival_s")
        second = np.floor(rows["arrival_s"].to_numpy())
        latency = rows["latency_s"].to_numpy()
        labels = {**base, "topic": str(topic)}
        for at in np.unique(second):
            seen = latency[second <= at]
            for le in LATENCY_BUCKETS:
                yield ("_bucket", {**labels, "le": f"{float(le)}"}, int((seen <= le).sum()), at)
            yield ("_bucket", {**labels, "le": "+Inf"}, len(seen), at)
            yield ("_count", labels, len(seen), at)
            yield ("_sum", labels, float(seen.sum()), at)


def write(path: Path, *args: object) -> None:
    """Write :func:`lines` to ``path``."""
    path.write_text("\n".join(lines(*args)) + "\n")  # type: ignore[arg-type]
