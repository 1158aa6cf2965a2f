"""What a run has achieved so far: percentiles from the live histogram, visits held."""

from __future__ import annotations

import io
import re
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from rich.console import Console

from alertbench.bench.live import Progress, RunView
from alertbench.bench.sampler import LagSampler
from alertbench.bench.sofar import Visits, histogram_quantile, latency_buckets
from alertbench.observe.buckets import LATENCY_BUCKETS
from alertbench.observe.endpoint import serve


def timing_registry(latencies: dict[str, list[float]]) -> CollectorRegistry:
    """The timing consumer's histogram, as it serves it, after these arrivals."""
    registry = CollectorRegistry()
    h = Histogram(
        "alertbench_alert_latency_seconds", "l", ["topic"], buckets=LATENCY_BUCKETS,
        registry=registry,
    )  # fmt: skip
    for topic, values in latencies.items():
        for v in values:
            h.labels(topic).observe(v)
    return registry


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    # 100 alerts: 50 in (1, 2], 45 in (2, 5], 5 in (60, 90].
    buckets = [(1.0, 0), (2.0, 50), (5.0, 95), (60.0, 95), (90.0, 100), (float("inf"), 100)]
    assert histogram_quantile(0.5, buckets) == 2.0  # rank 50: the top of (1, 2]
    assert histogram_quantile(0.25, buckets) == pytest.approx(1.5)  # halfway through it
    assert histogram_quantile(0.9, buckets) == pytest.approx(2 + 3 * 40 / 45)
    assert histogram_quantile(0.99, buckets) == pytest.approx(60 + 30 * 4 / 5)
    assert histogram_quantile(0.1, [(0.1, 10), (float("inf"), 10)]) == pytest.approx(0.01)
    # Past the last finite bound: that bound, as Prometheus says.
    assert histogram_quantile(0.99, [(600.0, 1), (float("inf"), 10)]) == 600.0
    assert histogram_quantile(0.5, [(1.0, 0), (float("inf"), 0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_the_buckets_of_every_topic_are_summed() -> None:
    text = generate_latest(timing_registry({"a": [0.3, 1.5], "b": [1.5, 70.0]})).decode()
    buckets = dict(latency_buckets(text))
    assert buckets[0.25] == 0
    assert buckets[0.5] == 1
    assert buckets[2.0] == 3
    assert buckets[60.0] == 3
    assert buckets[90.0] == buckets[float("inf")] == 4
    assert len(buckets) == len(LATENCY_BUCKETS) + 1


def rows(t0: float, samples: list[tuple[float, int, int | None]]) -> list[tuple]:
    """Lag rows (t_s, produced, end, processed, lag) from (t_s, end, processed)."""
    return [(t, 0, end, done, None if done is None else end - done) for t, end, done in samples]


def test_a_visit_is_held_when_the_broker_read_it_before_the_next_was_due() -> None:
    t0 = 1000.0
    v = Visits(alerts=100, interval=10.0, base=20)  # 20 warm-up alerts before the load
    v.seen(0, t0 + 5)
    v.seen(1, t0 + 15)
    v.seen(1, t0 + 16)  # a later report of the same visit changes nothing
    v.seen(2, t0 + 25)
    samples = [(6, 70, 20), (10, 120, 80), (14, 120, 120), (16, 170, 120), (20, 220, 190)]
    # Visit 0's window closes at 15: read up to 120 = 20 + 100 by 14 s: held.
    assert v.judge(rows(t0, samples), t0) == (1, 1)
    # Visit 1's closes at 25: the broker had read 190 of 220 by then, 230 at 27.
    samples += [(26, 320, 230), (27, 320, 230)]
    assert v.judge(rows(t0, samples), t0) == (1, 2)
    # Visit 2's closes at 35, judged only once a sample was taken after it.
    samples += [(33, 320, 320)]
    assert v.judge(rows(t0, samples), t0) == (1, 2)
    samples += [(36, 320, 320)]
    assert v.judge(rows(t0, samples), t0) == (2, 3)
    assert v.judged == {0: True, 1: False, 2: True}


def test_visits_are_not_judged_without_the_brokers_progress() -> None:
    v = Visits(alerts=100, interval=10.0, base=0)
    v.seen(0, 0.0)
    assert v.judge(rows(0.0, [(5, 100, None), (12, 100, None)]), 0.0) == (0, 0)
    assert Visits(alerts=100, interval=10.0).judge(rows(0.0, [(12, 100, 100)]), 0.0) == (0, 0)


def test_the_view_shows_percentiles_and_visits_so_far() -> None:
    served = serve(timing_registry({"out": [1.5] * 98 + [70.0, 80.0]}), 0, "127.0.0.1")
    ends, reads = {0: 20}, {0: 20}
    lag = LagSampler("in", lambda: dict(ends), lambda: dict(reads), lambda: ends[0] - 20, 0.0)
    view = RunView("r", "s", 200, 20.0, visit=(100, 1.0))
    view.watch("main", lag, None)  # type: ignore[arg-type]
    lag.sample()
    view.enter("load")  # the 20 warm-up alerts are the base
    try:
        view.latency_url = served.url
        now = time.time()
        view.visit_seen(0, now - 2.5)  # its window closed 1.5 s ago
        view.visit_seen(1, now - 1.2)  # 0.2 s ago
        # The lag samples, at their own times (t0 = 0): visit 0 read 2 s ago, visit 1 not yet.
        lag.t0 = 0.0
        lag.rows[:] = [(now - 2.0, 100, 220, 120, 100), (now, 200, 220, 120, 100)]
        lines = generate_latest(view.registry).decode().splitlines()
        assert "alertbench_visits_held 1.0" in lines
        assert "alertbench_visits_judged 2.0" in lines
        line = view.line()
        # p50 within (1, 2]; p99 in (60, 90], 0.98 of the way to rank 99 of 100.
        assert "p50/p99 1.5/75.0 s · visits held 1 of 2" in line, line
        out = io.StringIO()
        with Progress(view, Console(file=out, force_terminal=False, width=300), every_s=0.1):
            time.sleep(0.25)
        assert re.search(r"p50/p99 1\.5/75\.0 s · visits held 1 of 2", out.getvalue())
    finally:
        served.stop()
