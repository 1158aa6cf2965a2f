"""The broker's disk filled mid-visit, then freed: it fails loudly and loses nothing.

One run (about two minutes, root): alertbench's broker writes its output on a
1 GB ext4 filesystem the bench mounts from an image; in visit 2 the fault
takes every free block of it, and 5 s later frees them. The broker's writes
fail with ENOSPC (its log says so); if it stopped, the heal starts it again
on its checkpoint. The run must find every acknowledged alert in raw exactly
once, no duplicate in science, and leave nothing mounted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alertbench.bench.faults import disk
from alertbench.bench.faults.broker_acts import NO_SPACE
from alertbench.bench.faults.measure import read_acks
from alertbench.bench.outcome import raw_alerts
from alertbench.bench.results import missing_fields
from conftest import bench_in_process

pytestmark = [
    pytest.mark.spark,
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(disk.why_not() is not None, reason=f"disk-full: {disk.why_not()}"),
]

VISITS, VISIT, WARMUP = 6, 150, 50


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, alerts_dir: Path, kafka4) -> Path:
    root = tmp_path_factory.mktemp("disk-full")
    scenario = root / "disk-full.toml"
    scenario.write_text(
        'name = "disk-full"\nkind = "stream"\nschedule = "visits"\n'
        f"visit_alerts = {VISIT}\nvisit_interval = 12.0\nvisits = {VISITS}\n"
        f'partitions = 2\nwarmup_alerts = {WARMUP}\nscience = "rules"\n'
        # The broker stops on the full disk: its restart is a Spark start (20-35 s here).
        "recovery_visits = 3\n"
        '[[faults]]\nname = "disk-full"\nvisit = 2\nafter_s = 1\nheal_after_s = 5\n'
        "size_mb = 1024\n"
    )
    run = bench_in_process(root, alerts_dir, str(scenario))
    yield run
    shutil.rmtree(run / "work", ignore_errors=True)


def test_a_full_output_disk_is_reported_and_loses_nothing(filled: Path) -> None:
    r = json.loads((filled / "results.json").read_text())
    assert missing_fields(r) == []
    assert r["status"] == "passed", r["failures"]
    (fault,) = r["faults"]["faults"]
    assert (fault["name"], fault["error"]) == ("disk-full", None)
    did, healed = fault["did"], fault["heal_did"]
    broker = filled / "work" / "main" / "broker"
    assert did["mount"] == str(broker)
    # Every block taken (a 1 GB filesystem), none left; all of them back at the heal.
    assert did["filled_bytes"] > 850 * 2**20
    assert did["free_bytes"] == 0
    assert healed["free_bytes"] > 850 * 2**20
    # The broker met the full disk and said so.
    assert healed["no_space_errors"] > 0
    assert NO_SPACE in healed["first_error"]
    # It stopped (Spark's file writes fail the batch), and the heal started it again.
    assert healed["broker_stopped"]
    assert healed["restarted_pids"]
    assert fault["recovery"]["recovery_visits"] == 3
    assert fault["recovery"]["back_in_time"], fault["recovery"]
    f = r["faults"]
    assert (f["acked"], f["acked_lost"], f["never_acked"]) == (VISITS * VISIT, 0, 0)
    assert (f["duplicates"]["raw"], f["duplicates"]["science"]) == (0, 0)
    raw = raw_alerts(broker)["alert_id"]
    assert raw.is_unique
    assert set(raw) >= set(read_acks(filled / "work" / "main")["alert_id"])
    assert len(raw) == WARMUP + VISITS * VISIT
    # Unmounted, its content copied back (--keep-data), the image gone.
    assert str(broker) not in Path("/proc/self/mounts").read_text()
    assert not (filled / "work" / "main" / "broker-disk.img").exists()
    assert not (broker / disk.FILLER).exists()
