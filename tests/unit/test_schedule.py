"""When each alert is due: visits, constant rate, replay of real times, flat out."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.reader import observation_jd
from alertbench.simulator.schedule import Schedule


def test_visits_group_alerts_and_start_on_the_interval_grid() -> None:
    schedule = Schedule(mode="visits", visit_size=100, visit_interval=5.0)
    assert [schedule.visit(i) for i in (0, 1, 99, 100, 199, 200, 1050)] == [0, 0, 0, 1, 1, 2, 10]
    assert [schedule.due(i) for i in (0, 1, 99, 100, 199, 200, 1050)] == [
        0.0,
        0.0,
        0.0,
        5.0,
        5.0,
        10.0,
        50.0,
    ]


def test_default_schedule_is_rubin_like_visits() -> None:
    schedule = Schedule()
    assert (schedule.mode, schedule.visit_size, schedule.visit_interval) == ("visits", 10_000, 37.0)
    assert schedule.due(9_999) == 0.0
    assert schedule.due(10_000) == 37.0
    assert schedule.due(25_000) == 74.0


@pytest.mark.parametrize("rate", [1.0, 250.0, 1000.0])
def test_rate_mode_spaces_alerts_evenly(rate: float) -> None:
    schedule = Schedule(mode="rate", rate=rate)
    for i in (0, 1, 7, 250, 12_345):
        assert schedule.due(i) == i / rate
    # Visits only exist in visit mode.
    assert schedule.visit(12_345) == 0


def test_replay_compresses_real_offsets_and_loops_on_the_span() -> None:
    schedule = Schedule(mode="replay", replay_speed=10.0)
    due = [schedule.due(i, [0.0, 10.0, 30.0], span=40.0) for i in range(6)]
    assert due == [0.0, 1.0, 3.0, 4.0, 5.0, 7.0]
    assert schedule.visit(5) == 0


def test_replay_without_span_starts_each_loop_over() -> None:
    schedule = Schedule(mode="replay", replay_speed=2.0)
    assert [schedule.due(i, [0.0, 4.0]) for i in range(4)] == [0.0, 2.0, 0.0, 2.0]


def test_replay_of_real_observation_times(shared_data: Path) -> None:
    """Offsets from real Rubin alerts' midpointMjdTai replay in order, compressed."""
    files = sorted((shared_data / "lsst" / "lsstcam-20260306-v10.0").glob("*.avro"))
    assert len(files) == 7
    jds = []
    for path in files:
        with path.open("rb") as fo:
            (record,) = list(fastavro.reader(fo))
        jds.append(observation_jd(record))
    jds.sort()
    offsets = [(jd - jds[0]) * 86_400.0 for jd in jds]
    span = offsets[-1] + 1.0
    schedule = Schedule(mode="replay", replay_speed=100.0)
    due = [schedule.due(i, offsets, span) for i in range(len(offsets) + 2)]
    assert due[0] == 0.0
    assert due[: len(offsets)] == [o / 100.0 for o in offsets]
    assert due[len(offsets)] == span / 100.0
    assert due[len(offsets) + 1] == (offsets[1] + span) / 100.0
    assert due == sorted(due)
    assert due[len(offsets) - 1] > 0.0


def test_max_mode_is_always_due() -> None:
    schedule = Schedule(mode="max")
    assert [schedule.due(i) for i in (0, 1, 10**9)] == [0.0, 0.0, 0.0]
    assert schedule.visit(10**9) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"visit_size": 0}, "visit size must be >= 1, not 0"),
        ({"visit_size": -5}, "visit size must be >= 1, not -5"),
        ({"rate": 0.0}, "must be > 0"),
        ({"rate": -1.0}, "must be > 0"),
        ({"visit_interval": 0.0}, "must be > 0"),
        ({"replay_speed": 0.0}, "must be > 0"),
        ({"mode": "rate", "rate": 0.0}, "must be > 0"),
    ],
)
def test_invalid_values_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("offsets", [None, []])
def test_replay_needs_offsets(offsets: list[float] | None) -> None:
    schedule = Schedule(mode="replay")
    with pytest.raises(ValueError, match="replay needs the alerts' observation times"):
        schedule.due(0, offsets)


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (
            Schedule(mode="visits", visit_size=100, visit_interval=5.0),
            "visits of 100 alerts every 5 s",
        ),
        (
            Schedule(mode="visits", visit_size=10_000, visit_interval=37.5),
            "visits of 10000 alerts every 37.5 s",
        ),
        (Schedule(mode="rate", rate=2500.0), "2500 alerts/s"),
        (Schedule(mode="rate", rate=0.5), "0.5 alerts/s"),
        (Schedule(mode="replay", replay_speed=10.0), "real observation times, 10x faster"),
        (Schedule(mode="max"), "as fast as possible"),
    ],
)
def test_describe_mentions_the_numbers(schedule: Schedule, text: str) -> None:
    assert schedule.describe() == text
