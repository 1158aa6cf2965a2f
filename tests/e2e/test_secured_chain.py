"""Secured clusters end to end: simulator, broker and Fink's own client, all with credentials.

Real alerts go from the simulator (as the admin principal) through SASL_SSL
into the broker, which reads and distributes over SASL_SSL with SCRAM; a
user made with `kafka user add` reads a distribution topic with
``fink-client``'s ``AlertConsumer`` over SASL_PLAINTEXT, with no schema
given: the message keys carry it, as Fink's do.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fastavro
import pytest

from alertbench.alerts.reader import AlertReader
from alertbench.broker.stream.run import run_broker
from alertbench.config import load_settings
from alertbench.kafka.credentials import CA_CERT, SECURITY_DIR
from alertbench.kafka.render import parse_properties
from alertbench.kafka.security import read_client_properties
from alertbench.kafka.users import Grant, add_user
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from conftest import read_messages, running_cluster

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

N = 80
CUTS = "rb >= 0.55 AND nbad = 0"
FILTERS = {"sec-bright": "magpsf <= 18.0", "sec-red": "fid = 2"}


def _expected(files: list[Path]) -> tuple[dict, dict[str, set[int]]]:
    read = AlertReader().read(files)
    sources = {a.record["candid"]: a.record for a in read}
    passing = {
        k: r["candidate"]
        for k, r in sources.items()
        if r["candidate"]["rb"] >= 0.55 and r["candidate"]["nbad"] == 0
    }
    return sources, {
        "sec-bright": {k for k, c in passing.items() if c["magpsf"] <= 18.0},
        "sec-red": {k for k, c in passing.items() if c["fid"] == 2},
    }


def _chain(rc, files: list[Path], run_dir: Path, topic: str, **broker):
    """Simulate and run the fused broker, both as the admin principal, over SASL_SSL."""
    assert rc.admin.protocol == "sasl_ssl"
    sent = simulate(
        SimulationOptions(
            servers=rc.admin,
            topic=topic,
            sources=[str(f) for f in files],
            schedule=Schedule(mode="max"),
            partitions=3,
        )
    )
    assert sent.summary["alerts"] == len(files)
    assert sent.summary["failures"] == 0
    settings = load_settings(
        run_dir=run_dir,
        broker={
            "master": "local[2]",
            "topics": [topic],
            "trigger": "1 second",
            "cuts": CUTS,
            "filters": FILTERS,
            **broker,
        },
    )
    return run_broker(settings, servers=rc.admin, fused=True, until_idle=6, timeout=400)


def _check_topics(rc, result, sources, expected):
    for topic, want in expected.items():
        schema = fastavro.parse_schema(
            json.loads((result.out / "schemas" / f"{topic}.avsc").read_text())
        )
        got = [
            fastavro.schemaless_reader(io.BytesIO(m.value()), schema)["candid"]
            for m in read_messages(rc.admin, topic, count=len(want))
        ]
        assert sorted(got) == sorted(want), topic
        for candid in got:
            assert candid in sources


def test_three_kraft_nodes_with_sasl_ssl_carry_every_alert_and_fink_reads_them(
    kafka4, alert_files, tmp_path
):
    files = alert_files[:N]
    sources, expected = _expected(files)
    assert all(expected.values())
    with running_cluster(
        tmp_path / "kraft3",
        kafka4,
        nodes=3,
        mode="kraft",
        security="sasl_ssl",
        listeners=["sasl_plaintext"],
    ) as rc:
        for node in rc.state.nodes:
            props = parse_properties((node.config_dir / "server.properties").read_text())
            assert props["inter.broker.listener.name"] == "SASL_SSL"
            assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
        result = _chain(rc, files, tmp_path / "broker", "sec-stream", distribution_key="schema")
        assert sum(result.rows.values()) == N
        _check_topics(rc, result, sources, expected)

        # Fink's client, as a Fink user would run it: servers, a group, SCRAM credentials.
        from fink_client.consumer import AlertConsumer

        ca = rc.cluster.state_dir / SECURITY_DIR / CA_CERT
        props_file = add_user(
            rc.admin,
            "fink-user",
            Grant(read=["sec-*"], group_prefix="fink-user"),
            protocol="sasl_plaintext",
            servers=rc.state.listeners["sasl_plaintext"],
            out=tmp_path / "fink-user.properties",
            ca_file=ca,
        )
        creds = read_client_properties(props_file)
        config = {
            "username": creds["sasl.username"],
            "password": creds["sasl.password"],
            "group.id": "fink-user-e2e",
            "bootstrap.servers": creds["bootstrap.servers"],
        }
        want = expected["sec-bright"]
        got: list[int] = []
        with AlertConsumer(["sec-bright"], config, survey="ztf") as consumer:
            deadline = time.monotonic() + 90
            while len(got) < len(want) and time.monotonic() < deadline:
                topic, alert, key = consumer.poll(timeout=1)
                if alert is not None:
                    assert topic == "sec-bright"
                    assert json.loads(key)["name"] == "ztf.alert"
                    assert alert["objectId"] == sources[alert["candid"]]["objectId"]
                    assert alert["cutoutScience"] == sources[alert["candid"]]["cutoutScience"]
                    got.append(alert["candid"])
        assert sorted(got) == sorted(want)


def test_zookeeper_mode_with_sasl_ssl_carries_every_alert_through_sparks_source(
    kafka3, alert_files, tmp_path
):
    """Spark's own Kafka source too reads with the credentials (Java client's names)."""
    files = alert_files[N : 2 * N]
    sources, expected = _expected(files)
    with running_cluster(
        tmp_path / "zk", kafka3, nodes=1, mode="zookeeper", security="sasl_ssl"
    ) as rc:
        props = parse_properties((rc.state.nodes[-1].config_dir / "server.properties").read_text())
        assert props["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
        assert props["inter.broker.listener.name"] == "SASL_SSL"
        result = _chain(rc, files, tmp_path / "broker", "sec-zk-stream", kafka_reader="spark")
        assert sum(result.rows.values()) == N
        _check_topics(rc, result, sources, expected)
