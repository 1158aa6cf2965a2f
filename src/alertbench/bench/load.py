"""The load a segment sends: the warm-up, then visits, a rate, a replay or max-throughput's steps.

Each part is one run of the simulator (:func:`alertbench.simulator.run.simulate`)
on the segment's topic, every alert a fresh clone (the run's clone counter
goes on across parts). Max-throughput settles the broker at its first rate,
then raises the rate step by step and stops at the first step the broker did
not hold (:mod:`alertbench.bench.steps` judges them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alertbench.bench.sampler import LagSampler, ResourceSampler
from alertbench.bench.scenario import Step
from alertbench.bench.session import Bench, Segment
from alertbench.bench.steps import as_row, cpu_per_alert, judge, window
from alertbench.simulator.run import SimulationOptions, make_source, simulate
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
    start_at: float | None = None,
    ack_log: Path | None = None,
) -> dict[str, Any]:
    """Send one part of the load with the simulator; returns its summary.

    Exactly one of ``count``, ``visits`` and ``duration`` bounds it (or the
    schedule does); ``monitor`` hears the acknowledged count as it goes.
    ``start_at`` fixes its first due send (epoch s); ``ack_log`` records every
    delivery report (a fault's loss is counted per id from it).
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
        start_at=start_at,
        ack_log=ack_log,
    )
    # Clones' templates take seconds to make: once per topic (its wire's subject), not per part.
    source = bench.sources.get(topic)
    if source is None:
        source = bench.sources[topic] = make_source(opts, bench.alerts)
    result = simulate(
        opts, alerts=bench.alerts, report=bench.report, monitor=monitor, source=source
    )
    summary = result.summary
    bench.clones += summary["sent"] + 1
    if result.failed:
        bench.say(f"[red]{summary['failures']} deliveries failed[/]")
    return summary


def settle(
    bench: Bench, seg: Segment, topic: str, lag: LagSampler, *, part_s: float = 10.0
) -> dict[str, Any]:
    """Send max-throughput's first rate, unmeasured, until the broker keeps up with it.

    A cold JVM or Python worker runs its first batches several times slower
    than a warm one: measured, that would be the broker's start, not its
    capacity. Parts of ``part_s`` seconds are sent until one is held by the
    step rule, or ``settle_s`` has passed. Returns what was sent.
    """
    s = bench.scenario
    rate = s.steps[0].rate
    spent, alerts, failures, parts, steady = 0.0, 0, 0, 0, False
    while spent < s.settle_s and not steady:
        length = min(part_s, s.settle_s - spent)
        summary = send(bench, seg, topic, Schedule(mode="rate", rate=rate), duration=length)
        lag.sample()
        spent += length
        parts += 1
        alerts += summary["alerts"]
        failures += summary["failures"]
        start, end = _span(bench, summary, lag)
        verdict = judge(
            rate, length, summary["alerts"], window(lag.rows, start, end),
            growth_s=s.held_growth_s,
        )  # fmt: skip
        steady = verdict["held"]
    bench.say(
        f"settled at {rate:,.0f} alerts/s for {spent:.0f} s: "
        + ("the broker keeps up" if steady else "not steady yet; measuring anyway")
    )
    return {
        "rate": rate,
        "seconds": spent,
        "parts": parts,
        "alerts": alerts,
        "failures": failures,
        "steady": steady,
    }


def _span(bench: Bench, summary: dict[str, Any], lag: LagSampler) -> tuple[float, float]:
    """A part's span in the samples' time: its first due send to the sample taken after it."""
    end = summary["finished"] - bench.t0
    return summary["t0"] - bench.t0, max(end, lag.rows[-1][0] if lag.rows else end)


def steps(
    bench: Bench,
    seg: Segment,
    topic: str,
    lag: LagSampler,
    resources: ResourceSampler,
    monitor: Callable[..., None],
    ran: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    start_at: float | None = None,
    ack_log: Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Max-throughput's steps, each judged (:mod:`alertbench.bench.steps`) as it ends.

    The first step starts at ``start_at``; every step records its delivery
    reports in ``ack_log`` (see :func:`send`).

    The run stops at the first step not held. While every step holds, up to
    ``extend_steps`` more are added, each 25% faster (:func:`faster`), so the
    highest held rate is found rather than capped by the scenario's last
    step. Returns the simulator summaries and the steps' records.
    """
    s = bench.scenario
    loads, found = [], []
    plan = list(s.steps)
    k = 0
    while k < len(plan):
        step = plan[k]
        bench.say(f"step {k + 1}: {step.rate:,.0f} alerts/s for {step.seconds:.0f} s")
        summary = ran(
            send(
                bench,
                seg,
                topic,
                Schedule(mode="rate", rate=step.rate),
                duration=step.seconds,
                monitor=monitor,
                start_at=start_at if k == 0 else None,
                ack_log=ack_log,
            )
        )
        lag.sample()
        loads.append(summary)
        start, end = _span(bench, summary, lag)
        win = window(lag.rows, start, end)
        verdict = judge(step.rate, step.seconds, summary["alerts"], win, growth_s=s.held_growth_s)
        span = (win.t_end - win.t_start) if win else 0.0
        found.append(
            {
                "step": k + 1,
                "rate": step.rate,
                "seconds": step.seconds,
                "produced_per_s": round(summary["alerts"] / step.seconds, 1),
                "processed_per_s": round(win.processed / span, 1) if win and span else None,
                "lag_start": win.lag_start if win else None,
                "lag_end": win.lag_end if win else None,
                **verdict,
                "window": as_row(win),
                "cpu_ms_per_alert": cpu_per_alert(resources.rows, start, end, summary["alerts"]),
                "extended": k >= len(s.steps),
            }
        )
        bench.say(f"  {verdict['verdict']}: {verdict['reason']}")
        if not verdict["held"]:
            break
        if k == len(plan) - 1 and len(plan) < len(s.steps) + s.extend_steps:
            # Every step held: the highest rate is not found yet, only bounded from below.
            plan.append(Step(rate=faster(step.rate), seconds=step.seconds))
        k += 1
    return loads, found


def faster(rate: float) -> float:
    """The rate of a step added after the scenario's: 25% faster, to 50 alerts/s."""
    return max(round(rate * 1.25 / 50) * 50, rate + 50)


def drive(
    bench: Bench,
    seg: Segment,
    topic: str,
    lag: LagSampler,
    resources: ResourceSampler,
    produced: list[int],
    *,
    on_start: Callable[[float], None] | None = None,
    ack_log: Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Send the measured load; returns the simulator summaries and max-throughput steps.

    ``on_start`` hears the load's first due send (epoch s) before it starts,
    so that faults can be timed on the simulator's own clock; ``ack_log``
    records every delivery report (see :func:`send`).
    """
    s = bench.scenario
    done = [0, 0]  # alerts acknowledged and deliveries failed, by the sends that ended
    start_at = None  # without faults, the simulator picks the next whole second itself
    if on_start is not None:
        # Two seconds ahead: the simulator's checks of Kafka before it sends fit in them.
        start_at = float(int(time.time()) + 2)
        on_start(start_at)
    timed = {"start_at": start_at, "ack_log": ack_log}

    def monitor(
        acked: int, _bytes: int = 0, failures: int = 0, visit: int = 0, late: float = 0.0
    ) -> None:
        produced[0] = done[0] + acked
        bench.view.failed = done[1] + failures
        if acked:  # a visit is being sent: its first send was `late` after it was due
            bench.view.visit_seen(visit, time.time() - late)

    def ran(summary: dict[str, Any]) -> dict[str, Any]:
        done[0] += summary["alerts"]
        done[1] += summary.get("failures", 0)
        produced[0], bench.view.failed = done
        return summary

    if s.kind == "max-throughput":
        return steps(bench, seg, topic, lag, resources, monitor, ran, **timed)
    if s.schedule == "visits":
        schedule = Schedule(
            mode="visits", visit_size=s.visit_alerts, visit_interval=s.visit_interval
        )
        sent = send(bench, seg, topic, schedule, visits=s.visits, monitor=monitor, **timed)
        return [ran(sent)], []
    schedule = Schedule(mode=s.schedule, rate=s.rate, replay_speed=s.replay_speed)
    count = s.alerts or len(bench.alerts)
    return [ran(send(bench, seg, topic, schedule, count=count, monitor=monitor, **timed))], []
