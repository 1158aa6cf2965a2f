"""The timing consumer on a broker it did not build: ids read from the messages themselves."""

from __future__ import annotations

import csv
import io
import json

import fastavro
import pytest

from alertbench.alerts.ids import IdReader
from alertbench.alerts.wire import SENT_HEADER
from alertbench.bench.timing import COLUMNS, read_arrivals
from alertbench.kafka.admin import create_topic
from alertbench.kafka.client import end_offsets, produce
from alertbench.simulator.run import SimulationOptions, simulate
from alertbench.simulator.schedule import Schedule
from conftest import read_messages

pytestmark = pytest.mark.kafka


def test_output_ids_are_matched_to_their_send_times(single_kafka, alert_files, tmp_path):
    servers = single_kafka.bootstrap
    simulate(
        SimulationOptions(
            servers=servers,
            topic="timing-in",
            sources=[str(f) for f in alert_files[:40]],
            schedule=Schedule(mode="max"),
            partitions=2,
        )
    )
    sent = read_messages(servers, "timing-in", count=40)
    stamp = {
        str(next(fastavro.reader(io.BytesIO(m.value())))["candid"]): int(
            dict(m.headers())[SENT_HEADER]
        )
        for m in sent
    }
    # What someone else's pass-through broker writes: the ZTF packets without
    # alertbench's headers, plus an alert that was never sent and a broken one.
    stranger = alert_files[100].read_bytes()
    create_topic(servers, "timing-out", partitions=1)
    report = produce(
        servers,
        "timing-out",
        [(m.key(), m.value()) for m in sent] + [(None, stranger), (None, b"not avro")],
    )
    assert report.sent == 42
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"timing-out": end_offsets(servers, "timing-out", 1)}))
    out = tmp_path / "arrivals.csv"
    n = read_arrivals(
        servers,
        ["timing-out"],
        out,
        targets,
        reader=IdReader("container"),
        input_topic="timing-in",
    )
    assert n == 42
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == COLUMNS
    matched = {r["alert_id"]: r for r in rows if r["alert_id"] in stamp}
    assert set(matched) == set(stamp)
    for ident, r in matched.items():
        assert int(r["sent_us"]) == stamp[ident]
        assert int(r["arrival_us"]) >= stamp[ident]
    never_sent = [r for r in rows if r["alert_id"] and r["alert_id"] not in stamp]
    assert [r["sent_us"] for r in never_sent] == [""]
    assert never_sent[0]["alert_id"] == str(next(fastavro.reader(io.BytesIO(stranger)))["candid"])
    assert [r["alert_id"] for r in rows if not r["alert_id"]] == [""]
