"""Kafka offsets and consumer lag under Kafka Exporter's metric names and labels.

The names and labels are those of danielqsj/kafka_exporter, which Strimzi's
Kafka Exporter runs: ``kafka_topic_partition_current_offset{topic,partition}``,
``kafka_topic_partitions{topic}``, ``kafka_consumergroup_current_offset``,
``kafka_consumergroup_lag{consumergroup,topic,partition}`` and their ``_sum``
over partitions. A broker that keeps its offsets outside Kafka (Spark keeps
them in its checkpoint) is shown as a consumer group named after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric


@dataclass(frozen=True)
class Offsets:
    """One topic's offsets at one moment, and how far one reader has read it.

    Attributes
    ----------
    topic : str
        The topic.
    end : dict of int to int
        Each partition's end offset (the next offset to be written).
    group : str or None
        The reader's name (its consumer group), if it is known.
    read : dict of int to int or None
        The next offset the reader will read, per partition (None: unknown).
    """

    topic: str
    end: dict[int, int]
    group: str | None = None
    read: dict[int, int] | None = None

    def lag(self) -> dict[int, int] | None:
        """Records written and not yet read, per partition (never negative), or None."""
        if self.read is None:
            return None
        return {p: max(e - self.read.get(p, 0), 0) for p, e in self.end.items()}


def families(snapshots: list[Offsets]) -> Iterator[Metric]:
    """The Kafka Exporter metric families of ``snapshots``."""
    current = GaugeMetricFamily(
        "kafka_topic_partition_current_offset",
        "Current Offset of a Broker at Topic/Partition",
        labels=["topic", "partition"],
    )
    partitions = GaugeMetricFamily(
        "kafka_topic_partitions", "Number of partitions for this Topic", labels=["topic"]
    )
    group_offset = GaugeMetricFamily(
        "kafka_consumergroup_current_offset",
        "Current Offset of a ConsumerGroup at Topic/Partition",
        labels=["consumergroup", "topic", "partition"],
    )
    group_offset_sum = GaugeMetricFamily(
        "kafka_consumergroup_current_offset_sum",
        "Current Offset of a ConsumerGroup at Topic for all partitions",
        labels=["consumergroup", "topic"],
    )
    lag = GaugeMetricFamily(
        "kafka_consumergroup_lag",
        "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
        labels=["consumergroup", "topic", "partition"],
    )
    lag_sum = GaugeMetricFamily(
        "kafka_consumergroup_lag_sum",
        "Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
        labels=["consumergroup", "topic"],
    )
    seen: set[str] = set()
    for snap in snapshots:
        if snap.topic not in seen:  # a topic is one set of series, however many read it
            seen.add(snap.topic)
            partitions.add_metric([snap.topic], len(snap.end))
            for p, end in sorted(snap.end.items()):
                current.add_metric([snap.topic, str(p)], end)
        behind = snap.lag()
        if snap.group is None or behind is None or snap.read is None:
            continue
        for p in sorted(snap.end):
            labels = [snap.group, snap.topic, str(p)]
            group_offset.add_metric(labels, snap.read.get(p, 0))
            lag.add_metric(labels, behind[p])
        group_offset_sum.add_metric([snap.group, snap.topic], sum(snap.read.values()))
        lag_sum.add_metric([snap.group, snap.topic], sum(behind.values()))
    yield from (current, partitions, group_offset, group_offset_sum, lag, lag_sum)
