"""The broker's sender against a real Kafka node: a task's chunks, one wait for acknowledgements."""

from __future__ import annotations

import pytest

from alertbench.broker.batch.send import Sender, SendError
from alertbench.kafka.admin import create_topic
from conftest import read_messages


def _messages(topic: str, first: int, n: int) -> list[tuple[str, bytes, bytes, list]]:
    return [
        (topic, f"k{i}".encode(), f"value {i}".encode() * 50, [("alertbench.id", str(i).encode())])
        for i in range(first, first + n)
    ]


def test_chunks_are_all_delivered_by_one_flush(single_kafka) -> None:
    servers = single_kafka.bootstrap
    create_topic(servers, "sender-chunks", partitions=2)
    sender = Sender(servers)
    assert sender.produce(_messages("sender-chunks", 0, 300)) == 300
    assert sender.produce(_messages("sender-chunks", 300, 200)) == 200
    assert sender.flush() == 500
    got = read_messages(servers, "sender-chunks", count=500)
    sent = {m[1]: (m[2], m[3]) for m in _messages("sender-chunks", 0, 500)}
    assert {m.key(): (m.value(), m.headers()) for m in got} == sent


def test_a_refused_message_fails_the_flush_naming_the_topic(single_kafka) -> None:
    servers = single_kafka.bootstrap
    create_topic(servers, "sender-small", config={"max.message.bytes": "1000"})
    sender = Sender(servers)
    sender.produce(_messages("sender-small", 0, 3))
    with pytest.raises(SendError, match=r"3 alert\(s\) not delivered: sender-small: .*too large"):
        sender.flush()
