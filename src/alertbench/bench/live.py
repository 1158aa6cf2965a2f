"""A run you can watch: its metrics served to Prometheus, and its progress on the terminal.

The bench's own endpoint serves what the bench process knows as it runs:
the input topic's offsets and the broker's progress under Kafka Exporter's
names (its consumer group, or for alertbench's Spark broker, which keeps its
offsets in its checkpoint, the name of its topics' prefix), the alerts the
simulator had acknowledged, the run's phase and each component's CPU and
memory. Every value is the latest sample the run records itself (lag.csv,
resources.csv), so what a dashboard shows is what the results say.
Latency per alert is served by the timing consumer, which sees each alert
arrive (``alertbench.bench.timing --metrics-port``); the view reads its
percentiles so far from there, and judges the visits as their windows pass
(:mod:`alertbench.bench.sofar`), served as visits held and judged.

On a terminal, a live view redraws every second; elsewhere (a CI log, a
file) a line is printed every ``every_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from rich.console import Console
from rich.live import Live
from rich.table import Table

from alertbench.bench.sofar import Visits, histogram_quantile, scrape_latency
from alertbench.observe.kafka_names import families

if TYPE_CHECKING:
    from alertbench.bench.sampler import LagSampler, ResourceSampler
    from alertbench.bench.scenario import Scenario

#: The phases of a segment, in order.
PHASES = ("starting", "warmup", "load", "healing", "drain", "timing", "done")


@dataclass(eq=False)  # a collector: registered by identity
class RunView:
    """What the run is doing now, as its metrics and its progress lines show it.

    Attributes
    ----------
    run, scenario : str
        The run's folder name and its scenario's.
    expected : int
        Alerts the measured load sends (0 when not known ahead).
    load_s : float or None
        How long the measured load lasts, when the scenario says.
    visit : tuple of (int, float), optional
        Alerts per visit and the visit interval, for a load of visits.
    latency_url : str, optional
        The timing consumer's endpoint, once it serves.
    """

    run: str
    scenario: str
    expected: int = 0
    load_s: float | None = None
    segment: str = ""
    phase: str = "starting"
    load_started: float | None = None
    failed: int = 0  # deliveries the simulator saw fail in this segment
    visit: tuple[int, float] | None = None
    visits: Visits | None = None
    latency_url: str | None = None
    _quantiles: tuple[float, dict[str, float] | None] = (0.0, None)
    lag: LagSampler | None = None
    resources: ResourceSampler | None = None
    registry: CollectorRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def enter(self, phase: str) -> None:
        """Move to ``phase`` (one of :data:`PHASES`)."""
        self.phase = phase
        if phase == "load":
            self.load_started = time.time()
            latest = self.lag.latest if self.lag is not None else None
            if self.visits is not None and latest is not None:
                # The warm-up is in Kafka and acknowledged: what the load's visits follow.
                _, snap, produced = latest
                self.visits.base = sum(snap.end.values()) - produced

    def visit_seen(self, visit: int, due: float) -> None:
        """The simulator reports sending ``visit``, due at ``due`` (epoch s)."""
        if self.visits is not None:
            self.visits.seen(visit, due)

    def visits_held(self) -> tuple[int, int] | None:
        """Visits held and visits judged so far; None for a load that is not visits."""
        if self.visits is None or self.lag is None:
            return None
        return self.visits.judge(self.lag.rows, self.lag.t0)

    def latency(self) -> dict[str, float] | None:
        """p50 and p99 (s) of the alerts timed so far, read at most every 2 s."""
        at, found = self._quantiles
        if self.latency_url is None or time.time() - at < 2:
            return found
        buckets = scrape_latency(self.latency_url)
        if buckets:  # else the last answer stays (the timing consumer has ended)
            p50, p99 = (histogram_quantile(q, buckets) for q in (0.5, 0.99))
            found = {"p50": p50, "p99": p99} if p50 is not None and p99 is not None else found
        self._quantiles = (time.time(), found)
        return found

    def watch(self, segment: str, lag: LagSampler, resources: ResourceSampler) -> None:
        """Follow a segment's samplers from now on."""
        self.segment, self.lag, self.resources = segment, lag, resources
        self.phase, self.load_started, self.failed = "starting", None, 0
        self.visits = Visits(*self.visit) if self.visit else None
        # The segment's timing consumer is listed before its samplers start: its URL
        # stays (a segment without one leaves the last, which no longer answers).
        self._quantiles = (0.0, None)

    def describe(self) -> list[Metric]:
        """No families ahead of a collection: their labels depend on the run."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family, from the latest samples."""
        # The run's name is the target label `run` (prometheus-targets.json), on every series.
        info = InfoMetricFamily("alertbench_run", "The run being measured")
        info.add_metric([], {"scenario": self.scenario, "segment": self.segment})
        yield info
        phase = GaugeMetricFamily(
            "alertbench_phase", "1 for the phase the run is in", labels=["phase"]
        )
        for name in PHASES:
            phase.add_metric([name], 1.0 if name == self.phase else 0.0)
        yield phase
        expected = GaugeMetricFamily(
            "alertbench_alerts_expected", "Alerts the measured load sends (0: not known ahead)"
        )
        expected.add_metric([], self.expected)
        yield expected
        failed = CounterMetricFamily(
            "alertbench_alerts_failed",
            "Alerts whose delivery failed in this segment (refused by Kafka or timed out)",
        )
        failed.add_metric([], self.failed)
        yield failed
        held = self.visits_held()
        if held is not None:
            for name, value, help_ in (
                ("alertbench_visits_held", held[0], "Visits read before the next was due, so far"),
                ("alertbench_visits_judged", held[1], "Visits whose window has passed, so far"),
            ):
                gauge = GaugeMetricFamily(name, help_)
                gauge.add_metric([], value)
                yield gauge
        latest = self.lag.latest if self.lag is not None else None
        if latest is not None:
            at, snap, produced = latest
            acked = CounterMetricFamily(
                "alertbench_alerts_acked",
                "Alerts the simulator has had acknowledged by Kafka in this segment",
            )
            acked.add_metric([], produced, timestamp=at)
            yield acked
            yield from families([snap])
        if self.resources is not None:
            cpu = GaugeMetricFamily(
                "alertbench_process_cpu_percent",
                "CPU of a component's processes, percent of one core",
                labels=["component"],
            )
            rss = GaugeMetricFamily(
                "alertbench_process_resident_memory_bytes",
                "Resident memory of a component's processes",
                labels=["component"],
            )
            for name, (c, mb) in sorted(self.resources.latest.items()):
                cpu.add_metric([name], c)
                rss.add_metric([name], mb * 2**20)
            yield cpu
            yield rss

    def status(self) -> dict[str, Any]:
        """The figures a progress line shows."""
        latest = self.lag.latest if self.lag is not None else None
        acked = read = lag = None
        if latest is not None:
            _, snap, acked = latest
            if snap.read is not None:
                read = sum(snap.read.get(p, 0) for p in snap.end)
                lag = sum((snap.lag() or {}).values())
        left = None
        if self.phase == "load" and self.load_started is not None and self.load_s is not None:
            left = max(self.load_s - (time.time() - self.load_started), 0.0)
        return {
            "acked": acked,
            "read": read,
            "lag": lag,
            "left_s": left,
            "latency": self.latency(),
            "visits": self.visits_held(),
        }

    def line(self) -> str:
        """One progress line, for logs."""
        s = self.status()
        parts = [f"{self.segment or '-'}: {self.phase}"]
        if s["acked"] is not None:
            of = f" of {self.expected:,}" if self.expected else ""
            parts.append(f"{s['acked']:,}{of} acknowledged")
        if s["read"] is not None:
            parts.append(f"broker read {s['read']:,}, lag {s['lag']:,}")
        if s["latency"] is not None:
            parts.append(f"p50/p99 {s['latency']['p50']:.1f}/{s['latency']['p99']:.1f} s")
        if s["visits"] is not None and s["visits"][1]:
            parts.append(f"visits held {s['visits'][0]} of {s['visits'][1]}")
        if s["left_s"] is not None:
            parts.append(f"{s['left_s']:.0f} s of load left")
        return " · ".join(parts)

    def table(self) -> Table:
        """The live view, for a terminal."""
        s = self.status()
        t = Table(show_header=False, box=None, title=f"{self.scenario} · {self.run}")
        t.add_row("segment, phase", f"{self.segment or '-'}, {self.phase}")
        if s["acked"] is not None:
            of = f" of {self.expected:,}" if self.expected else ""
            t.add_row("acknowledged", f"{s['acked']:,}{of}")
        if s["read"] is not None:
            t.add_row("broker read, lag", f"{s['read']:,}, {s['lag']:,}")
        if s["latency"] is not None:
            p50, p99 = s["latency"]["p50"], s["latency"]["p99"]
            t.add_row("latency p50, p99", f"{p50:.1f} s, {p99:.1f} s")
        if s["visits"] is not None and s["visits"][1]:
            t.add_row("visits held", f"{s['visits'][0]} of {s['visits'][1]}")
        if s["left_s"] is not None:
            t.add_row("load left", f"{s['left_s']:.0f} s")
        return t


def view_of(run: str, scenario: Scenario, alerts: int) -> RunView:
    """The view of a run of ``scenario``: what its load sends, how long, in what visits.

    ``alerts``: how many the run read, the load's size when the scenario names none.
    """
    if scenario.kind == "max-throughput":
        return RunView(run, scenario.name)
    if scenario.schedule == "visits" and scenario.visits:
        return RunView(
            run,
            scenario.name,
            scenario.visits * scenario.visit_alerts,
            scenario.visits * scenario.visit_interval,
            visit=(scenario.visit_alerts, scenario.visit_interval),
        )
    return RunView(run, scenario.name, scenario.alerts or alerts)


class Progress:
    """Shows a :class:`RunView` while the run lasts: live on a terminal, else a line a period.

    Parameters
    ----------
    view : RunView
        What to show.
    console : rich.console.Console
        Where; a terminal gets the live view.
    every_s : float
        Seconds between lines when the output is not a terminal.
    """

    def __init__(self, view: RunView, console: Console, every_s: float = 10.0) -> None:
        self.view = view
        self.console = console
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(
                self.view.table(),
                console=self.console,
                refresh_per_second=1,
                transient=True,
                get_renderable=self.view.table,
            )
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._lines, daemon=True, name="progress")
            self._thread.start()
        return self

    def _lines(self) -> None:
        while not self._stop.wait(self.every_s):
            stamp = time.strftime("%H:%M:%S")
            # One line each, however narrow the log's idea of a width: never wrapped.
            self.console.print(
                f"[dim]{stamp}[/] {self.view.line()}", highlight=False, soft_wrap=True
            )

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._live is not None:
            self._live.stop()
