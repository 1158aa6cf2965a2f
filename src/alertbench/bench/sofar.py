"""What a run has achieved so far, while it goes: latency percentiles and visits held.

The results' figures are exact and come when the run ends; these are for
watching it. The percentiles come from the timing consumer's live histogram
(its endpoint, scraped as Prometheus would, interpolated within buckets as
Prometheus' ``histogram_quantile`` does). A visit is judged once its window
(the visit interval from its due time) has passed: held when the broker had
read past every alert of it and of the visits before by then, in the lag
samples the run records. The results' verdict uses each alert's own commit
time instead; the two agree to within a sample (a second).
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

#: The timing consumer's latency histogram.
LATENCY = "alertbench_alert_latency_seconds"


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus has it.

    Linear within the bucket the rank falls in (from 0 for the first); the
    highest finite bound when it falls in the ``+Inf`` bucket. None without
    observations.
    """
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def latency_buckets(text: str) -> list[tuple[float, float]]:
    """The latency histogram's buckets in an exposition, summed over its topics."""
    summed: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LATENCY:
            continue
        for s in family.samples:
            if s.name == f"{LATENCY}_bucket":
                le = float(s.labels["le"])
                summed[le] = summed.get(le, 0.0) + s.value
    return sorted(summed.items())


def scrape_latency(url: str, timeout: float = 1.0) -> list[tuple[float, float]] | None:
    """The timing consumer's buckets now; None when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return latency_buckets(resp.read().decode())
    except (OSError, ValueError):
        return None


@dataclass
class Visits:
    """The visits of a segment's load, judged as their windows pass.

    Attributes
    ----------
    alerts : int
        Alerts per visit.
    interval : float
        Seconds between visits: a visit is held when it is read before the next is due.
    due : dict of int to float
        Each visit's due time (epoch s), as the simulator reports its sends.
    base : int or None
        The input's end offsets (summed) when the load began: what came before.
    """

    alerts: int
    interval: float
    due: dict[int, float] = field(default_factory=dict)
    base: int | None = None
    judged: dict[int, bool] = field(default_factory=dict)

    def seen(self, visit: int, due: float) -> None:
        """Record ``visit``'s due time the first time the simulator reports it."""
        self.due.setdefault(visit, due)

    def judge(self, rows: list[tuple], t0: float) -> tuple[int, int]:
        """Visits held and visits judged so far, from the lag samples ``rows``.

        ``rows`` are :class:`~alertbench.bench.sampler.LagSampler` rows
        ``(t_s, produced, end, processed, lag)``, ``t_s`` from ``t0``. A visit is
        judged once a sample was taken after its window closed.
        """
        if self.base is None or not rows:
            return 0, 0
        last = t0 + rows[-1][0]
        most = max(r[2] for r in rows)  # what reached Kafka: fewer if deliveries failed
        for visit, due in sorted(self.due.items()):
            if visit in self.judged:
                continue
            deadline = due + self.interval
            if last < deadline:
                break
            need = min(self.base + (visit + 1) * self.alerts, most)
            done = [r[3] for r in rows if t0 + r[0] <= deadline and r[3] is not None]
            if not done and all(r[3] is None for r in rows):
                break  # the broker's progress is not known: nothing to judge by
            self.judged[visit] = bool(done) and max(done) >= need
        return sum(self.judged.values()), len(self.judged)
