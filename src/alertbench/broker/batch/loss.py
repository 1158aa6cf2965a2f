"""Offsets that aged out of Kafka before the broker read them: refused, or skipped and counted.

Kafka deletes a partition's oldest records once they pass the topic's
retention; a broker that falls further behind than that finds its next
offset gone. Spark's Kafka source then stops the query (``failOnDataLoss``,
true by default) or skips to the earliest offset kept with a warning. The
broker does the same (``broker.fail_on_data_loss``), and in both cases
writes down every range it could not read, exactly, one file per range
under the output root's ``_data_loss/``: named by the range, so a
micro-batch that Spark replays after a restart writes the same file again
rather than counting the same offsets twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from alertbench.errors import AlertbenchError

#: The folder, under the broker's output root, of the ranges it could not read.
LOSS_DIR = "_data_loss"


class DataLossError(AlertbenchError):
    """Offsets the broker had still to read were deleted by Kafka's retention."""


@dataclass(frozen=True)
class AgedOut:
    """Offsets ``[start, end)`` of one partition, deleted before they were read."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        """How many offsets the range holds."""
        return self.end - self.start

    def describe(self) -> str:
        """``topic[p] offsets a-b (n)`` for people."""
        first, last = self.start, self.end - 1
        return f"{self.topic}[{self.partition}] offsets {first}-{last} ({self.count:,})"


def record(root: Path, ranges: list[AgedOut]) -> None:
    """Write each range to ``root/_data_loss/`` (atomically, once per range)."""
    folder = Path(root) / LOSS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for r in ranges:
        path = folder / f"{r.topic}-{r.partition}-{r.start}-{r.end}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({**asdict(r), "count": r.count, "found_at": time.time()}))
        tmp.replace(path)


def read(root: Path) -> list[AgedOut]:
    """Every range recorded under ``root``, overlaps merged, in order."""
    found: dict[tuple[str, int], list[tuple[int, int]]] = {}
    folder = Path(root) / LOSS_DIR
    for f in sorted(folder.glob("*.json")) if folder.exists() else []:
        d = json.loads(f.read_text())
        found.setdefault((d["topic"], int(d["partition"])), []).append(
            (int(d["start"]), int(d["end"]))
        )
    merged = []
    for (topic, partition), spans in sorted(found.items()):
        spans.sort()
        start, end = spans[0]
        for s, e in spans[1:]:
            if s > end:
                merged.append(AgedOut(topic, partition, start, end))
                start = s
            end = max(end, e)
        merged.append(AgedOut(topic, partition, start, end))
    return merged


def refusal(ranges: list[AgedOut]) -> DataLossError:
    """The error that stops the query when offsets aged out and data loss is not allowed."""
    total = sum(r.count for r in ranges)
    return DataLossError(
        f"{total:,} input records aged out of Kafka's retention before the broker read them: "
        + "; ".join(r.describe() for r in ranges[:5])
        + ("; ..." if len(ranges) > 5 else "")
        + ". They are gone from Kafka. Raise the input topic's retention.ms (or give the "
        "broker more cores) so it stays within the retention; to skip such records and "
        "count them instead of stopping, set broker.fail_on_data_loss = false"
    )
