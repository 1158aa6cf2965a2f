"""The load a segment sends: the warm-up, then visits, a rate, a replay or max-throughput's steps.

Each part is one run of the simulator (:func:`alertbench.simulator.run.simulate`)
on the segment's topic, every alert a fresh clone (the run's clone counter
goes on across parts). Max-throughput raises the rate step by step and stops
at the first step the broker did not hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alertbench.bench.sampler import LagSampler
from alertbench.bench.session import Bench, Segment
from alertbench.kafka.client import end_offsets
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule


def send(
    bench: Bench,
    seg: Segment,
    topic: str,
    schedule: Schedule,
    *,
    count: int | None = None,
    visits: int | None = None,
    duration: float | None = None,
    monitor: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Send one part of the load with the simulator; returns its summary.

    Exactly one of ``count``, ``visits`` and ``duration`` bounds it (or the
    schedule does); ``monitor`` hears the acknowledged count as it goes.
    """
    s = bench.scenario
    opts = SimulationOptions(
        servers=bench.servers,
        topic=topic,
        wire=s.wire,
        registry=s.schema_registry,
        schedule=schedule,
        count=count,
        visits=visits,
        duration=duration,
        loop=not s.synthesize,
        synthesize=s.synthesize,
        first_clone=bench.clones,
        producers=seg.producers,
        partitions=seg.partitions,
        start_delay=0.2,
    )
    result = simulate(opts, alerts=bench.alerts, report=bench.report, monitor=monitor)
    summary = result.summary
    bench.clones += summary["sent"] + 1
    if result.failed:
        bench.say(f"[red]{summary['failures']} deliveries failed[/]")
    return summary


def drive(
    bench: Bench, seg: Segment, topic: str, lag: LagSampler, produced: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Send the measured load; returns the simulator summaries and max-throughput steps."""
    s = bench.scenario
    done = [0]

    def monitor(acked: int, *_rest: Any) -> None:
        produced[0] = done[0] + acked

    def ran(summary: dict[str, Any]) -> dict[str, Any]:
        done[0] += summary["alerts"]
        produced[0] = done[0]
        return summary

    if s.kind == "max-throughput":
        loads, steps = [], []
        for k, step in enumerate(s.steps):
            before, t_start = lag.processed() or 0, time.time()
            lag_start = max(
                sum(end_offsets(bench.servers, topic, seg.partitions).values()) - before, 0
            )
            bench.say(f"step {k + 1}: {step.rate:,.0f} alerts/s for {step.seconds:.0f} s")
            summary = ran(
                send(
                    bench,
                    seg,
                    topic,
                    Schedule(mode="rate", rate=step.rate),
                    duration=step.seconds,
                    monitor=monitor,
                )
            )
            loads.append(summary)
            end = sum(end_offsets(bench.servers, topic, seg.partitions).values())
            processed = lag.processed() or 0
            wall = max(time.time() - t_start, 1e-9)
            backlog = max(end - processed, 0)
            held = backlog <= step.rate * s.held_lag_s and summary["alerts"] >= 0.9 * (
                step.rate * step.seconds
            )
            steps.append(
                {
                    "step": k + 1,
                    "rate": step.rate,
                    "seconds": step.seconds,
                    "produced_per_s": round(summary["alerts"] / wall, 1),
                    "processed_per_s": round((processed - before) / wall, 1),
                    "lag_start": lag_start,
                    "lag_end": backlog,
                    "held": held,
                }
            )
            bench.say(f"  lag {backlog:,} at the end: {'held' if held else 'not held'}")
            if not held:
                break
        return loads, steps
    if s.schedule == "visits":
        schedule = Schedule(
            mode="visits", visit_size=s.visit_alerts, visit_interval=s.visit_interval
        )
        return [ran(send(bench, seg, topic, schedule, visits=s.visits, monitor=monitor))], []
    schedule = Schedule(mode=s.schedule, rate=s.rate, replay_speed=s.replay_speed)
    count = s.alerts or len(bench.alerts)
    return [ran(send(bench, seg, topic, schedule, count=count, monitor=monitor))], []
