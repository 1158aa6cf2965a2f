"""A broker alertbench did not build, seen from outside: its process, its group, its topics."""

from __future__ import annotations

import sys
import time

import psutil
import pytest
from confluent_kafka import Consumer

from alertbench.bench.external import (
    BrokerUnderTestError,
    ExternalBroker,
    command_argv,
    group_offsets,
)
from alertbench.errors import ConfigError
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import produce

pytestmark = pytest.mark.kafka


def test_the_command_gets_the_servers_topic_and_client_config() -> None:
    argv = command_argv(
        "kcat -b {servers} -t {input_topic} -F '{client_config}' -f '%s{{x}}'",
        servers="h:1",
        input_topic="in",
        client_config="/c d/p",
    )
    assert argv == ["kcat", "-b", "h:1", "-t", "in", "-F", "/c d/p", "-f", "%s{x}"]
    with pytest.raises(ConfigError, match=r"names 'brokers'"):
        command_argv("x {brokers}")
    with pytest.raises(ConfigError, match="cannot split"):
        command_argv("x 'unbalanced")
    with pytest.raises(ConfigError, match="not a regular expression"):
        ExternalBroker(outputs="out[")


def test_progress_is_the_groups_committed_offsets(single_kafka) -> None:
    servers = single_kafka.bootstrap
    create_topic(servers, "ext-in", partitions=2)
    assert produce(servers, "ext-in", [(str(i).encode(), b"x") for i in range(30)]).sent == 30
    assert group_offsets(servers, "ext-reader", "ext-in", 2) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "ext-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["ext-in"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 30 and time.monotonic() < deadline:
        got += len([m for m in consumer.consume(30, timeout=0.5) if m.error() is None])
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == 30
    assert group_offsets(servers, "ext-reader", "ext-in", 2) == 30
    broker = ExternalBroker(outputs=r"ext-out-.*", group="ext-reader")
    broker.wait_consuming(servers, "ext-in", 2, 30, timeout=5)
    create_topic(servers, "ext-out-a")
    create_topic(servers, "ext-out-b")
    create_topic(servers, "ext-outside")
    assert broker.output_topics(servers) == ["ext-out-a", "ext-out-b"]


def test_a_broker_that_crashes_fails_with_its_last_lines(tmp_path, single_kafka) -> None:
    script = "import sys; print('reading the stream'); print('boom: out of memory'); sys.exit(3)"
    broker = ExternalBroker(outputs="x", cmd=f'{sys.executable} -c "{script}"', group="g")
    broker.start(tmp_path / "broker.log", tmp_path)
    time.sleep(1.5)
    with pytest.raises(
        BrokerUnderTestError, match=r"exited during the run(.|\n)*boom: out of memory"
    ):
        broker.wait_consuming(single_kafka.bootstrap, "ext-in", 2, 30, timeout=10)


def test_one_that_never_consumes_is_reported_and_stopped_with_its_children(
    tmp_path, single_kafka
) -> None:
    create_topic(single_kafka.bootstrap, "idle-in", partitions=1, exist_ok=True)
    broker = ExternalBroker(outputs="x", cmd="sh -c 'sleep 600 & sleep 600'", group="idle")
    proc = broker.start(tmp_path / "broker.log", tmp_path)
    assert proc is not None
    time.sleep(0.5)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    with pytest.raises(BrokerUnderTestError, match="never consumed: its group 'idle'"):
        broker.wait_consuming(single_kafka.bootstrap, "idle-in", 1, 10, timeout=3)
    broker.stop(grace=2)
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"
    for child in children:
        assert not child.is_running() or child.status() == "zombie"
