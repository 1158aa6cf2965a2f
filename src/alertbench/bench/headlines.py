"""The headline figures of a run: what ``bench compare`` and ``bench run --repeat`` report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alertbench.bench.values import LATENCY_SHARE, get, verdict_status


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


def _fault_names(results: dict[str, Any]) -> str | None:
    faults = get(results, "faults.faults")
    return ", ".join(f["name"] for f in faults) if faults else None


def _worst_stall(kind: str) -> Callable[[dict[str, Any]], Any]:
    """The longest ack or commit stall while any fault was live."""

    def read(results: dict[str, Any]) -> Any:
        faults = get(results, "faults.faults") or []
        stalls = [get(f, f"largest_{kind}_stall_s.fault") for f in faults]
        stalls = [s for s in stalls if s is not None]
        return max(stalls) if stalls else None

    return read


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
    Metric("faults", _fault_names),
    Metric("acked alerts lost", _path("faults.acked_lost"), -1),
    Metric("quarantined", _path("faults.quarantined")),
    Metric("longest ack stall in a fault (s)", _worst_stall("ack"), -1),
    Metric("longest commit stall in a fault (s)", _worst_stall("commit"), -1),
    Metric("share within 60 s", _path("verdicts.rubin_latency.share"), +1),
    Metric("max held rate (alerts/s)", _path("max_held_rate"), +1),
    Metric("null broker max held rate (alerts/s)", _path("ceiling.max_held_rate"), +1),
    Metric("max held rate / null broker's", _path("ceiling.ratio"), +1),
)


def is_number(value: Any) -> bool:
    """A number that is not a yes/no."""
    return isinstance(value, int | float) and not isinstance(value, bool)
