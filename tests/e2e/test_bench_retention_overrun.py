"""alertbench's broker paused past a short input retention: what aged out is counted exactly.

One run (about two minutes): the broker (driver, Spark JVM, Python workers)
is stopped with SIGSTOP in visit 2 while the input keeps 2 s of records,
and resumed 25 s later. With ``fail_on_data_loss = false`` it skips what
Kafka deleted; the run must count those records exactly (the broker's
``_data_loss/`` ranges against the acknowledged alerts' offsets), find
every other acknowledged alert in raw, and pass because the scenario
allows aged-out records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alertbench.bench.faults.measure import read_acks
from alertbench.bench.outcome import raw_alerts
from alertbench.bench.results import missing_fields
from alertbench.broker.batch import loss
from conftest import bench_in_process

# Long: two minutes whose parts tests/integration/test_aged_out.py proves faster (the
# planner's and the task reader's exact ranges); it keeps CI under its 45 minutes.
pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow, pytest.mark.long]

VISITS, VISIT = 5, 150


@pytest.fixture(scope="module")
def overrun(tmp_path_factory: pytest.TempPathFactory, alerts_dir: Path, kafka4) -> Path:
    root = tmp_path_factory.mktemp("overrun")
    scenario = root / "overrun.toml"
    scenario.write_text(
        'name = "overrun"\nkind = "stream"\nschedule = "visits"\n'
        f"visit_alerts = {VISIT}\nvisit_interval = 8.0\nvisits = {VISITS}\n"
        "partitions = 2\nwarmup_alerts = 50\n"
        "fail_on_data_loss = false\nallow_aged_out = true\n"
        '[[faults]]\nname = "retention-overrun"\nvisit = 2\nafter_s = 1\n'
        "heal_after_s = 25\nretention_ms = 2000\n"
    )
    run = bench_in_process(root, alerts_dir, str(scenario))
    yield run
    shutil.rmtree(run / "work", ignore_errors=True)


def test_what_aged_out_is_counted_exactly_and_nothing_else_is_lost(overrun: Path) -> None:
    r = json.loads((overrun / "results.json").read_text())
    assert missing_fields(r) == []
    assert r["status"] == "passed", r["failures"]
    f = r["faults"]
    (fault,) = f["faults"]
    assert (fault["name"], fault["error"]) == ("retention-overrun", None)
    assert fault["did"]["signal"] == "SIGSTOP"
    assert len(fault["did"]["pids"]) >= 2  # the driver and its Spark JVM, at least
    broker_out = overrun / "work" / "main" / "broker"
    ranges = loss.read(broker_out)
    gone = sum(x.count for x in ranges)
    assert gone > 0
    # The broker's count, the run's count and the acknowledged alerts at those offsets agree.
    assert r["integrity"]["aged_out"]["records"] == gone
    assert f["aged_out"]["records"] == gone
    assert f["aged_out"]["acked"] == gone
    assert (f["acked"], f["acked_lost"], f["never_acked"]) == (VISITS * VISIT, 0, 0)
    # Every acknowledged alert is in raw exactly once, unless its offset aged out.
    acks = read_acks(overrun / "work" / "main")
    aged = pd_mask(acks, ranges)
    raw = raw_alerts(broker_out)["alert_id"]
    assert raw.is_unique
    assert set(raw) >= set(acks.loc[~aged, "alert_id"])
    assert not set(raw) & set(acks.loc[aged, "alert_id"])
    assert len(raw) == 50 + VISITS * VISIT - gone
    # Each range starts where the broker had read up to and ends at most where Kafka kept.
    lows = {int(p): o for p, o in fault["heal_did"]["earliest_offsets"].items()}
    assert all(x.end <= lows[x.partition] for x in ranges)


def pd_mask(acks, ranges):
    """Which acknowledged alerts were written inside an aged-out range."""
    mask = acks["alert_id"] != acks["alert_id"]
    for x in ranges:
        mask |= (acks["partition"] == x.partition) & acks["offset"].between(x.start, x.end - 1)
    return mask
