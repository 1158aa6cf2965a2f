"""Which offsets a micro-batch of the task reader takes: plain offsets in, offsets out."""

from __future__ import annotations

import time

from alertbench.broker.stream.offsets import OffsetPlanner, batch_key


class Planner(OffsetPlanner):
    """The planner's arithmetic on given watermarks instead of a cluster's."""

    def __init__(self, marks: dict, **kw) -> None:
        super().__init__("unused:9092", ["t"], **kw)
        self.marks = marks

    def _watermarks(self, *, strict: bool = True):
        if isinstance(self.marks, Exception):
            raise self.marks
        return {t: dict(ps) for t, ps in self.marks.items()}


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


def test_after_a_quiet_spell_the_clock_starts_at_the_first_new_record() -> None:
    """A visit that starts long after the last batch still waits for the rest of it."""
    p = Planner({"t": {"0": (0, 5)}}, min_offsets=100, max_trigger_delay_s=0.2)
    end = p.latest(p.initial())
    time.sleep(0.3)  # quiet, longer than the delay
    assert p.latest(end) == end
    p.marks = {"t": {"0": (0, 8)}}  # the visit's first alerts
    assert p.latest(end) == end
    p.marks = {"t": {"0": (0, 105)}}  # the rest of it
    assert p.latest(end) == {"t": {"0": 105}}
    p.marks = {"t": {"0": (0, 110)}}
    assert p.latest({"t": {"0": 105}}) == {"t": {"0": 105}}
    time.sleep(0.25)  # a straggler is taken once the delay has passed since it came
    assert p.latest({"t": {"0": 105}}) == {"t": {"0": 110}}


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


def test_ranges_are_shared_among_at_most_the_slots_by_size() -> None:
    p = Planner({})
    start = {"t": {"0": 0, "1": 0, "2": 0, "3": 0}}
    end = {"t": {"0": 100, "1": 300, "2": 250, "3": 50}}
    groups = p.tasks(start, end, 2)
    assert [[(r.partition, r.end - r.start) for r in g] for g in groups] == [
        [(1, 300), (3, 50)],
        [(2, 250), (0, 100)],
    ]
    every = sorted((r.partition, r.start, r.end) for g in groups for r in g)
    assert every == sorted((r.partition, r.start, r.end) for r in p.ranges(start, end))
    # Never more tasks than ranges, never none for a batch with records.
    assert [len(g) for g in p.tasks(start, end, 8)] == [1, 1, 1, 1]
    assert [len(g) for g in p.tasks(start, end, 1)] == [4]
    assert p.tasks(start, start, 2) == []


# --- CommitPlanner: the staged stages' micro-batches over an upstream stage's commits ---------


def _commit(root, stage: str, output: str, batch: int, files: dict[str, int]) -> list[str]:
    """Files of about the given sizes staged by night and committed by a real BatchSink."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alertbench.broker.stream.sink import BatchSink

    sink = BatchSink(root, stage)
    for name, size in files.items():
        staged = sink.staged(batch, output) / "night=20231018" / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [b"x" * size]}), staged, compression="none")
    sink.commit(batch, [output])
    return [str(root / output / "night=20231018" / f"b{batch:09d}-{name}") for name in files]


def test_a_staged_batch_takes_only_committed_upstream_batches_in_order(tmp_path) -> None:
    from alertbench.broker.stream.offsets import CommitPlanner
    from alertbench.broker.stream.sink import BatchSink

    planner = CommitPlanner(tmp_path, "stream2raw", "raw", tasks=2)
    assert planner.latest({"batch": -1}) == {"batch": -1}  # nothing committed yet
    first = _commit(tmp_path, "stream2raw", "raw", 0, {"part-0.parquet": 10})
    second = _commit(tmp_path, "stream2raw", "raw", 1, {"part-0.parquet": 10, "part-1.parquet": 9})
    # Batch 3 committed but not 2: the next micro-batch stops before the gap.
    _commit(tmp_path, "stream2raw", "raw", 3, {"part-0.parquet": 10})
    (tmp_path / "_commits" / "stream2raw" / "2.moving").touch()
    assert planner.latest({"batch": -1}) == {"batch": 1}
    sink = BatchSink(tmp_path, "stream2raw")
    assert [str(p) for p in sink.committed_files("raw", 0, 1)] == first + second
    assert [str(p) for p in sink.committed_files("raw", 1, 1)] == second
    _commit(tmp_path, "stream2raw", "raw", 2, {})
    assert planner.latest({"batch": 1}) == {"batch": 3}
    assert sink.committed_files("raw", 2, 2) == []
    # A mark written before marks named their files: the batch's files are found by name.
    (tmp_path / "_commits" / "stream2raw" / "3").write_text("")
    assert [p.name for p in sink.committed_files("raw", 3, 3)] == ["b000000003-part-0.parquet"]


def test_a_staged_batch_shares_its_files_among_tasks_by_size(tmp_path) -> None:
    from alertbench.broker.stream.offsets import CommitPlanner, batch_key

    sizes = {"a.parquet": 100_000, "b.parquet": 60_000, "c.parquet": 50_000, "d.parquet": 10_000}
    paths = dict(zip(sizes, _commit(tmp_path, "raw2science", "science", 0, sizes), strict=True))
    planner = CommitPlanner(tmp_path, "raw2science", "science", tasks=2)
    start, end = {"batch": -1}, planner.latest({"batch": -1})
    shares = planner.shares(start, end)
    assert sorted(s.files for s in shares) == sorted(
        [[paths["a.parquet"], paths["d.parquet"]], [paths["b.parquet"], paths["c.parquet"]]]
    )
    assert {s.staging for s in shares} == {batch_key(start, end)}
    # Fewer files than tasks: no empty shares.
    assert len(CommitPlanner(tmp_path, "raw2science", "science", tasks=8).shares(start, end)) == 4
    assert CommitPlanner(tmp_path, "raw2science", "science", tasks=2).shares(end, end) == []


def test_a_partition_whose_leader_does_not_answer_waits_and_the_rest_go_on() -> None:
    """A Kafka node died: its partitions are read once their new leader answers."""
    from confluent_kafka import KafkaError, KafkaException

    p = Planner({"t": {"0": (0, 5), "1": (0, 3)}})
    end = p.latest(p.initial())
    p.marks = {"t": {"0": (0, 9)}}  # partition 1's leader timed out
    moved = p.latest(end)
    assert moved == {"t": {"0": 9, "1": 3}}
    p.marks = KafkaException(KafkaError(KafkaError._TIMED_OUT))  # no metadata at all
    assert p.latest(moved) == moved
    p.marks = {"t": {"0": (0, 9), "1": (0, 7)}}  # the new leader answers
    assert p.latest(moved) == {"t": {"0": 9, "1": 7}}
