"""Batches of Kafka records as a task holds them: Arrow coordinates, values as bytes.

Light on purpose: the process that plans a Spark Python data source's
micro-batches imports it, and pays for every import at each query's start.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

#: The type of Kafka's record headers, as Spark's Kafka source gives them.
HEADERS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))


class KafkaRecords(NamedTuple):
    """A batch of Kafka records whose values are Python bytes (the task reader's).

    Attributes
    ----------
    coords : pyarrow.Table
        ``topic, partition, offset, timestamp, headers`` of each record.
    values : list of bytes or None
        Each record's value, in order: not copied into an Arrow column, which
        would cost a copy of every 75 KB alert.
    """

    coords: pa.Table
    values: list
