"""Which offsets a micro-batch of the task reader takes: plain offsets in, offsets out."""

from __future__ import annotations

import time

from alertbench.broker.source import OffsetPlanner, batch_key


class Planner(OffsetPlanner):
    """The planner's arithmetic on given watermarks instead of a cluster's."""

    def __init__(self, marks: dict, **kw) -> None:
        super().__init__("unused:9092", ["t"], **kw)
        self.marks = marks

    def _watermarks(self):
        return self.marks


def test_the_first_batch_takes_everything_and_later_ones_wait_for_the_minimum() -> None:
    p = Planner({"t": {"0": (0, 5), "1": (0, 3)}}, min_offsets=20, max_trigger_delay_s=60)
    start = p.initial()
    assert start == {"t": {"0": 0, "1": 0}}
    end = p.latest(start)
    assert end == {"t": {"0": 5, "1": 3}}  # the first trigger never waits
    p.marks = {"t": {"0": (0, 15), "1": (0, 10)}}  # 17 new: fewer than 20
    assert p.latest(end) == end
    p.marks = {"t": {"0": (0, 20), "1": (0, 10)}}  # 22 new
    assert p.latest(end) == {"t": {"0": 20, "1": 10}}


def test_the_minimum_is_waited_for_at_most_the_trigger_delay() -> None:
    p = Planner({"t": {"0": (0, 5)}}, min_offsets=100, max_trigger_delay_s=0.2)
    end = p.latest(p.initial())
    p.marks = {"t": {"0": (0, 8)}}
    assert p.latest(end) == end
    time.sleep(0.25)
    assert p.latest(end) == {"t": {"0": 8}}


def test_the_maximum_is_shared_by_backlog_and_expired_records_are_skipped() -> None:
    p = Planner({"t": {"0": (0, 300), "1": (0, 100)}}, max_offsets=40)
    assert p.latest({"t": {"0": 0, "1": 0}}) == {"t": {"0": 30, "1": 10}}
    # Records before offset 50 of partition 1 expired; a new partition 2 appeared.
    p.marks = {"t": {"0": (0, 300), "1": (50, 100), "2": (0, 0)}}
    assert p.latest({"t": {"0": 300, "1": 10}}) == {"t": {"0": 300, "1": 90, "2": 0}}


def test_nothing_new_is_no_batch_and_available_now_stops_at_its_end() -> None:
    p = Planner({"t": {"0": (0, 10)}})
    assert p.latest({"t": {"0": 10}}) == {"t": {"0": 10}}
    p.stop_at = {"t": {"0": 12}}
    p.marks = {"t": {"0": (0, 50)}}
    assert p.latest({"t": {"0": 10}}) == {"t": {"0": 12}}


def test_ranges_cover_each_partition_with_records_and_name_the_batch() -> None:
    p = Planner({})
    start, end = {"t": {"0": 3, "1": 7}}, {"t": {"0": 9, "1": 7, "2": 4}}
    ranges = p.ranges(start, end)
    assert [(r.partition, r.start, r.end) for r in ranges] == [(0, 3, 9), (2, 0, 4)]
    assert {r.staging for r in ranges} == {batch_key(start, end)}
    assert batch_key(start, end) == batch_key({"t": {"1": 7, "0": 3}}, end)
    assert batch_key(start, end) != batch_key(start, {"t": {"0": 9, "1": 8}})
